"""The negative-transfer predictor, the A-distance, the recommendation rule and diagnose."""

from __future__ import annotations

import math

import numpy as np
import pytest

import transferguard as tg
from transferguard.analysis import NTPredictor, a_distance, grouped_predictions
from transferguard.experiments.diagnosis import (
    DEFENCES,
    DONT,
    DTNH,
    FEATURES,
    NONE,
    SAFE,
    default_predictor,
    recommend,
)

RNG = np.random.default_rng(0)


def test_a_distance_of_equal_and_separated_domains():
    x = RNG.normal(size=(200, 5))
    same = a_distance(x[:100], x[100:])
    apart = a_distance(x[:100], x[100:] + 10.0)
    assert same < 0.5 and apart == pytest.approx(2.0)
    with pytest.raises(tg.DataError, match="same width"):
        a_distance(x[:, :2], x)
    bad = x.copy()
    bad[0, 0] = np.nan
    with pytest.raises(tg.DataError, match="NaN"):
        a_distance(bad, x)


def test_predictor_learns_a_sign_and_round_trips():
    rows = [{"a": float(v), "b": float(w)} for v, w in RNG.normal(size=(80, 2))]
    y = [int(r["a"] > 0) for r in rows]
    p = NTPredictor(["a", "b"], C=1.0).fit(rows, y)
    assert np.mean(p.predict(rows) == np.array(y)) > 0.9
    prob = p.predict_proba(rows)
    assert ((prob >= 0) & (prob <= 1)).all()
    assert abs(p.contributions(rows[0])["a"]) > abs(p.contributions(rows[0])["b"]) - 1.0
    q = NTPredictor.from_dict(p.to_dict())
    np.testing.assert_allclose(q.predict_proba(rows), prob)
    with pytest.raises(tg.DataError, match="not fitted"):
        NTPredictor(["a"]).predict_proba(rows)
    with pytest.raises(tg.DataError, match="lacks feature"):
        p.predict_proba([{"a": 1.0}])
    with pytest.raises(tg.DataError, match="both outcomes"):
        NTPredictor(["a"]).fit(rows, [1] * len(rows))


def test_grouped_predictions_never_see_their_own_group():
    seen: list[tuple[set, set]] = []

    class Recording(NTPredictor):
        def fit(self, rows, y):
            self.fitted_on_ = {r["gid"] for r in rows}
            return super().fit(rows, y)

        def predict_proba(self, rows):
            seen.append((self.fitted_on_, {r["gid"] for r in rows}))
            return super().predict_proba(rows)

    rows = [{"gid": float(g), "x": float(RNG.normal())} for g in range(4) for _ in range(10)]
    y = [int(r["x"] > 0) for r in rows]
    prob = grouped_predictions(rows, y, [r["gid"] for r in rows],
                               lambda: Recording(["x"], C=10.0))
    assert len(seen) == 4
    for fitted, predicted in seen:
        assert len(predicted) == 1 and not fitted & predicted and len(fitted) == 3
    assert np.mean((prob >= 0.5) == np.array(y)) > 0.9  # x carries the label in every group
    with pytest.raises(tg.DataError, match="2 groups"):
        grouped_predictions(rows, y, ["one"] * len(rows), lambda: NTPredictor(["x"]))


def test_recommendation_rule():
    feats = {}
    dann = tg.create_method("dann")
    assert recommend(dann, 0.1, feats)[0] == NONE
    assert recommend(dann, 0.5, feats)[0] == SAFE
    assert recommend(dann, 0.9, feats)[0] == DONT
    assert recommend(tg.create_method("delta"), 0.5, feats)[0] == DTNH
    assert recommend(tg.create_method("delta", dtnh=True), 0.5, feats)[0] == SAFE
    assert "gate_tables" in recommend(dann, 0.9, feats)[1]


def test_default_predictor_reads_the_diagnose_features():
    p = default_predictor()
    assert set(p.features) <= set(FEATURES)
    assert p.n_train_ >= 0


def test_diagnose_end_to_end_on_a_tiny_task(tiny_task):
    res = tg.diagnose(tiny_task, "dann", trainer=tg.Trainer(batch_size=8, progress=False),
                      source_iterations=3, proxy_iterations=3)
    assert 0.0 <= res.probability <= 1.0
    assert res.recommendation in DEFENCES
    f = res.features
    assert set(FEATURES) <= set(f) and all(math.isfinite(v) for v in f.values())
    assert f["label_overlap"] == 1.0 and 0.0 <= f["a_distance"] <= 2.0
    assert res.diagnostics.scores.leep <= 0
    d = res.to_dict()
    assert d["applied"] is None and d["method"] == "dann"
    from transferguard.report import diagnose_text

    text = diagnose_text(res)
    assert "recommended defence" in text and "logme" in text


def test_diagnose_refuses_a_target_without_labels():
    task = tg.TransferTask("mnist", "uci-digits", labeled_percent=0, source_size=200,
                           spec=tg.InputSpec(3, 16))
    with pytest.raises(tg.DataError, match="labeled"):
        tg.diagnose(task, "dann", source_iterations=1, proxy_iterations=1)


def test_diagnose_apply_safe_selection(tiny_task, monkeypatch):
    """--apply with the safe-selection rule trains method and twin and keeps the
    validation-preferred one: never worse than the twin when validation agrees with test."""
    import transferguard.experiments.diagnosis as dg

    monkeypatch.setattr(dg, "recommend", lambda m, p, f: (SAFE, "forced for the test"))
    tr = tg.Trainer(iterations=4, batch_size=8, eval_every=2, progress=False)
    res = tg.diagnose(tiny_task, "dann", trainer=tr, source_iterations=2, proxy_iterations=2,
                      apply=True, seeds=[0], apply_trainer=tr)
    assert res.applied is not None and res.baseline is not None
    safe, base = res.applied, res.baseline
    assert safe.twin_accuracy == base.twin_accuracy
    assert safe.accuracy[0] in (base.accuracy[0], base.twin_accuracy[0])
    from transferguard.report import diagnose_text

    text = diagnose_text(res)
    assert "applied:" in text and "without safe selection" in text


def test_cli_diagnose(capsys):
    from transferguard.cli import main

    rc = main(["diagnose", "--source", "mnist", "--target", "uci-digits", "--labeled", "20",
               "--eps", "0.5", "--input-size", "16", "--source-iterations", "2",
               "--proxy-iterations", "2", "--batch-size", "8"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "verdict:" in out and "recommended defence:" in out and "P(negative transfer)" in out
    rc = main(["diagnose", "--source", "mnist", "--target", "uci-digits", "--labeled", "0",
               "--input-size", "16", "--source-iterations", "1", "--proxy-iterations", "1"])
    assert rc == 2 and "labeled" in capsys.readouterr().err
