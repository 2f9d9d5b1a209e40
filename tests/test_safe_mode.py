"""Safe mode (issue 10 item 4): the rule with blends and its multiple-testing correction, its
blindness to the test split, and safe mode inside experiments (the NTG's shared twin, no
third training)."""

from __future__ import annotations

import json

import pytest
import torch

import transferguard as tg
from transferguard.analysis.safe import (
    BLEND,
    METHOD,
    TWIN,
    SafeMode,
    SplitPredictions,
    adjust_pvalues,
    safe_ntg,
)
from transferguard.cli import main
from transferguard.errors import ConfigError
from transferguard.experiments import config_from_dict, run_experiment

K = 3


def onehot(classes: list[int], conf: float = 1.0) -> torch.Tensor:
    """Probabilities with ``conf`` on the given class and the rest spread evenly."""
    p = torch.full((len(classes), K), (1 - conf) / (K - 1))
    p[torch.arange(len(classes)), torch.tensor(classes)] = conf
    return p


def test_holm_and_bonferroni_known_answers():
    assert adjust_pvalues([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert adjust_pvalues([0.01, 0.04, 0.03], "bonferroni") == pytest.approx([0.03, 0.12, 0.09])
    assert adjust_pvalues([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    with pytest.raises(ValueError, match="correction"):
        adjust_pvalues([0.1], "sidak")


def test_harmful_method_keeps_the_twin():
    labels = torch.tensor([i % K for i in range(60)])
    twin = onehot(labels.tolist(), 0.9)  # the target alone is right everywhere
    method = onehot(((labels + 1) % K).tolist(), 0.9)  # the source taught the next class
    c = SafeMode().choose(method, twin, labels)
    assert c.choice == TWIN and c.weight == 0.0 and "not shown to help" in c.reason
    assert len(c.candidates) == 4 and all(x["losses"] > 0 or x["wins"] == 0
                                          for x in c.candidates)


def test_helpful_method_with_a_large_validation_split_is_kept():
    n = 500
    labels = torch.tensor([i % K for i in range(n)])
    right = labels.tolist()
    twin_pred = [y if i % 3 else (y + 1) % K for i, y in enumerate(right)]  # 2/3 right
    c = SafeMode().choose(onehot(right), onehot(twin_pred), labels)
    # the method is right wherever the twin is, and more: w = 1 and w = 0.75 tie at 100%,
    # and the tie goes to the plain method
    assert c.choice == METHOD and c.weight == 1.0
    assert c.wins == sum(1 for i in range(n) if i % 3 == 0) and c.losses == 0
    assert c.p_adjusted < 1e-10 and "beat the twin" in c.reason


def test_a_blend_of_complementary_runs_is_chosen():
    n = 200
    labels = torch.tensor([i % K for i in range(n)])
    half = torch.arange(n) < n // 2
    wrong = ((labels + 1) % K).tolist()
    # twin: sure and right on the first half, unsure and wrong on the second; method: the
    # other way round. Each alone is right on half; their average is right everywhere.
    twin = torch.where(half[:, None], onehot(labels.tolist(), 0.9), onehot(wrong, 0.4))
    method = torch.where(half[:, None], onehot(wrong, 0.4), onehot(labels.tolist(), 0.9))
    c = SafeMode().choose(method, twin, labels)
    assert c.choice == BLEND and 0.0 < c.weight < 1.0
    assert c.wins == n // 2 and c.losses == 0
    kept = SafeMode.apply(c, method, twin)
    assert bool((kept.argmax(1) == labels).all())
    assert SafeMode(blend=False).choose(method, twin, labels).choice == TWIN  # 100 vs 100


def test_trying_several_candidates_is_paid_for():
    # 5 wins, no loss: p = 1/32 passes alone at 0.05 but not after Holm over 4 candidates
    labels = torch.zeros(40, dtype=torch.long)
    twin_pred = [1] * 5 + [0] * 35
    twin, method = onehot(twin_pred), onehot([0] * 40)
    alone = SafeMode(blend=False).choose(method, twin, labels)
    assert alone.choice == METHOD and alone.p_value == pytest.approx(1 / 32)
    tried = SafeMode().choose(method, twin, labels)
    assert tried.choice == TWIN and tried.p_adjusted == pytest.approx(4 / 32)


def test_the_choice_never_reads_the_test_split():
    g = torch.Generator().manual_seed(0)
    val_y = torch.randint(0, K, (80,), generator=g)
    test_y = torch.randint(0, K, (300,), generator=g)
    m_val = onehot(val_y.tolist(), 0.8)
    m_val[:20] = onehot(((val_y[:20] + 1) % K).tolist(), 0.8)  # method: 60/80 right
    t_val = onehot(val_y.tolist(), 0.6)  # twin: 80/80
    rule = SafeMode()

    def preds(val: torch.Tensor, test: torch.Tensor) -> SplitPredictions:
        return SplitPredictions(val, val_y, test, test_y)

    # a test split on which the method is perfect and the twin always wrong ...
    good = preds(m_val, onehot(test_y.tolist())), preds(t_val, onehot(((test_y + 1) % K).tolist()))
    # ... and one poisoned the other way round, with NaNs for good measure
    nan = torch.full((300, K), float("nan"))
    bad = preds(m_val, nan), preds(t_val, onehot(test_y.tolist()))
    (c1, acc1), (c2, acc2) = rule.decide(*good), rule.decide(*bad)
    assert c1 == c2 and c1.choice == TWIN  # the same choice whatever the test split holds
    assert acc1 == 0.0 and acc2 == 100.0  # the test split is read only for the score


def test_predictions_from_other_splits_are_refused():
    y = torch.zeros(4, dtype=torch.long)
    a = SplitPredictions(onehot([0] * 4), y, onehot([0] * 4), y)
    b = SplitPredictions(onehot([0] * 4), y + 1, onehot([0] * 4), y)
    with pytest.raises(ValueError, match="same target"):
        SafeMode().decide(a, b)
    with pytest.raises(ValueError, match="same validation"):
        SafeMode().choose(onehot([0] * 3), onehot([0] * 4), y)


@pytest.mark.parametrize("bad, match", [({"alpha": 1.5}, "alpha"), ({"weights": [0.0]}, "weights"),
                                        ({"weights": [0.5, 0.5]}, "weights"),
                                        ({"correction": "fdr"}, "correction")])
def test_bad_rules_stop_with_the_option_named(bad, match):
    with pytest.raises(ConfigError, match=match):
        SafeMode(**bad).validate()


def test_safe_ntg_scores_the_kept_predictions():
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    twin = SplitPredictions(onehot([0, 1, 2, 0, 1, 2]), y, onehot([0, 1, 2, 0, 1, 0]), y)
    meth = SplitPredictions(onehot([1, 2, 0, 1, 2, 0]), y, onehot([0, 1, 2, 0, 1, 2]), y)
    r, choices = safe_ntg("dann", "dann_T", [0, 1], [(meth, twin), (meth, twin)])
    assert r.method == "safe(dann)" and r.twin == "dann_T"
    assert [c.choice for c in choices] == [TWIN, TWIN]
    assert r.accuracy == r.twin_accuracy == pytest.approx([500 / 6] * 2)  # the twin's, not 100


TINY = {
    "name": "tinysafe",
    "task": {"source": "mnist", "target": "uci-digits", "eps": 0.3, "labeled_percent": 20,
             "input_size": 16, "source_size": 200},
    "method": {"name": "dann", "safe": True},
    "trainer": {"iterations": 4, "batch_size": 8, "progress": False},
    "seeds": [0, 1],
}


def test_safe_in_a_config_reuses_the_shared_twin(tmp_path):
    res = run_experiment(config_from_dict(TINY), tmp_path)
    assert [r.method for r in res.ntg] == ["dann", "safe(dann)"]
    assert res.trained == 4  # dann and dann_T for 2 seeds: no third training
    plain, safe = res.ntg
    assert safe.twin_accuracy == pytest.approx(plain.twin_accuracy, abs=1e-6)
    for acc, c, m, t in zip(safe.accuracy, res.safe[0]["choices"], plain.accuracy,
                            plain.twin_accuracy):
        if c["choice"] == "method":
            assert acc == pytest.approx(m, abs=1e-6)
        elif c["choice"] == "twin":
            assert acc == pytest.approx(t, abs=1e-6)
    assert len(list((tmp_path / "predictions").glob("*.pt"))) == 4
    payload = json.loads((tmp_path / "results-tinysafe.json").read_text())
    assert payload["safe"][0]["method"] == "safe(dann)"
    # resumed: nothing trains again, the stored predictions give the same choices
    again = run_experiment(config_from_dict(TINY), tmp_path, resume=True)
    assert again.trained == 0 and again.ntg[1].accuracy == safe.accuracy


def test_safe_config_errors():
    for value, match in (("yes", "quoted"), ({"alpha": 2}, "alpha"), ({"beta": 1}, "beta"),
                         (3, "true, false or a mapping")):
        with pytest.raises(ConfigError, match=match):
            config_from_dict({**TINY, "method": {"name": "dann", "safe": value}})
    with pytest.raises(ConfigError, match="ntg: true"):
        config_from_dict({**TINY, "ntg": False})


def test_cli_ntg_safe_flag(tmp_path, capsys):
    assert main(["ntg", "--source", "mnist", "--target", "uci-digits", "--labeled", "20",
                 "--iterations", "3", "--batch-size", "8", "--input-size", "16",
                 "--method", "dann", "--seeds", "0", "--safe", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "safe(dann)" in out and "what it kept" in out and "validation samples" in out


def test_safe_function_reports_the_kept_candidate(tiny_task, fast_trainer):
    r = tg.safe("dann", tiny_task, fast_trainer)
    assert r.chose in ("dann", "dann_T") or r.chose.startswith("blend(dann")
    if r.choice.choice == TWIN:
        assert r.test_accuracy == pytest.approx(r.twin_test_accuracy, abs=1e-6)
    assert len(r.choice.candidates) == 4


def test_demo_shows_both_signs_with_safe_mode_in_each():
    from transferguard.analysis import NTGResult
    from transferguard.experiments.demo import DemoRow, demo_table, scenarios

    helpful, harmful = scenarios()
    assert helpful.task["eps"] == 0 and harmful.task["eps_y"] == 1.0
    gradsim = ("dann", {"combine": "gradsim"}, False)  # the trained defence
    assert helpful.methods == (("dann", {}, False),)
    assert harmful.methods == (("dann", {}, True), gradsim)  # DANN with safe mode around it
    assert scenarios(extended=True)[0].methods == (("dann", {}, False), gradsim)
    r = NTGResult("safe(dann+prototype)", "dann_T", [0, 1, 2], [90.0] * 3, [90.0] * 3)
    text = demo_table([DemoRow("harmful", r, ["twin", "twin", "blend w=0.5"])])
    assert "kept twin x2, blend w=0.5 x1" in text and "+0.0 [+0.0, +0.0]" in text


def test_safe_mode_on_runs_recorded_without_predictions(tmp_path):
    plain = {**TINY, "method": {"name": "dann"}, "seeds": [0]}
    first = run_experiment(config_from_dict(plain), tmp_path)
    assert first.trained == 2 and not (tmp_path / "predictions").exists()
    lines: list[str] = []
    res = run_experiment(config_from_dict({**TINY, "seeds": [0]}), tmp_path, resume=True,
                         echo=lines.append)
    assert res.trained == 0 and [r.method for r in res.ntg] == ["dann", "safe(dann)"]
    assert sum("no stored predictions" in ln for ln in lines) == 2  # trained again for them
    assert len(list((tmp_path / "predictions").glob("*.pt"))) == 2


def test_cli_run_safe_flag_applies_to_every_method(tmp_path, capsys):
    import yaml

    cfg = {**TINY, "method": {"name": "dann"}, "seeds": [0]}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["run", str(path), "--safe", "--quiet", "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "safe(dann)" in out and "what it kept" in out
    path.write_text(yaml.safe_dump({**cfg, "ntg": False}))
    assert main(["run", str(path), "--safe", "--out", str(tmp_path / "p")]) == 2
    assert "ntg: false" in capsys.readouterr().err
