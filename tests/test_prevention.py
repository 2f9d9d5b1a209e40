"""Harmful-source scorers, detection scores and safe mode (issue 10) on tiny constructed data."""

from types import SimpleNamespace

import pytest
import torch

import transferguard as tg
from transferguard.analysis import detection_scores
from transferguard.analysis.safe import METHOD, TWIN, choose, mcnemar_one_sided
from transferguard.data import Split
from transferguard.methods import create_weighter
from transferguard.methods.reweighting.weighter import Features

K, DIM, PLANT = 3, 6, 0


def _clusters(n_per: int, seed: int, spread: float = 0.1):
    """Features around one centre per class (the first K axes), labels = the cluster."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(K).repeat_interleave(n_per)
    h = torch.eye(K, DIM)[y] * 3 + spread * torch.randn(len(y), DIM, generator=g)
    return h, y


def _planted(y: torch.Tensor) -> torch.Tensor:
    """The observed labels: the true ones with sample PLANT given the next class."""
    obs = y.clone()
    obs[PLANT] = (y[PLANT] + 1) % K
    return obs


def _feats(h_src, y_src, h_lab, y_lab, progress=0.5):
    logits = lambda h: h[:, :K] * 2  # noqa: E731  (a classifier that reads the cluster)
    return Features(h_src, y_src, logits(h_src), h_lab, y_lab,
                    None if h_lab is None else logits(h_lab), None, None, 1.0, progress,
                    torch.arange(len(y_src)))


def _lowest_is_planted(w: torch.Tensor) -> None:
    others = torch.cat([w[:PLANT], w[PLANT + 1:]])
    assert float(w[PLANT]) < float(others.min())


def test_prototype_ranks_a_planted_wrong_label_below_the_clean_ones():
    h_src, y = _clusters(10, 0)
    h_lab, y_lab = _clusters(3, 1)
    w = create_weighter("prototype", DIM, K)
    assert w(_feats(h_src, _planted(y), h_lab, y_lab)).weights is not None
    out = w(_feats(h_src, _planted(y), h_lab, y_lab))
    _lowest_is_planted(out.weights)
    _lowest_is_planted(w.score_batch(h_src, h_src[:, :K], _planted(y))["weight"])
    assert abs(float(out.weights.mean()) - 1) < 1e-5  # mean 1 per batch: the loss scale kept


def test_prototype_is_uniform_until_every_class_has_a_prototype():
    h_src, y = _clusters(4, 0)
    h_lab, y_lab = _clusters(2, 1)
    w = create_weighter("prototype", DIM, K)
    keep = y_lab != 2
    assert w(_feats(h_src, y, h_lab[keep], y_lab[keep])).weights is None
    assert w(_feats(h_src, y, None, None)).weights is None


def _image_data(n_per: int = 15, seed: int = 0):
    """Tiny images whose class is a bright block; the source labels carry one planted error."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(K).repeat_interleave(n_per)
    img = (torch.rand(len(y), 1, 6, 6, generator=g) * 60).to(torch.uint8)
    for c in range(K):
        img[y == c, :, 2 * c: 2 * c + 2, :] = 220
    obs = _planted(y)
    src = Split("source", img, obs, torch.arange(len(y)))
    return SimpleNamespace(source=src, source_free=False), y


def test_confident_learning_flags_a_planted_wrong_label():
    pytest.importorskip("cleanlab", reason="the 'confident' weighter needs cleanlab "
                                           "(pip install 'transferguard[prevention]')")
    data, _ = _image_data()
    w = create_weighter("confident", DIM, K, {"folds": 3})
    w.setup(None, data)
    _lowest_is_planted(w.quality)
    assert bool(w.issue[PLANT]) and int(w.issue.sum()) <= 3
    idx = torch.arange(len(data.source))
    h = torch.zeros(len(idx), DIM)
    out = w(Features(h, data.source.labels, h[:, :K], None, None, None, None, None, 1.0, 0.5,
                     idx))
    assert float(out.weights[PLANT]) == 0.0 and float(out.weights.sum()) >= len(idx) - 3
    _lowest_is_planted(w.score_batch(h, h[:, :K], data.source.labels, idx)["quality"])


def test_small_loss_ranks_a_planted_wrong_label_below_the_clean_ones():
    h_src, y = _clusters(10, 0)
    obs = _planted(y)
    w = create_weighter("smallloss", DIM, K, {"warmup": 0.5})
    w.setup(None, SimpleNamespace(source=Split("source", torch.zeros(len(y), 1, 2, 2,
                                                                      dtype=torch.uint8),
                                                obs, torch.arange(len(y)))))
    for step in range(5):  # warm-up: uniform weights, losses recorded
        assert w(_feats(h_src, obs, None, None, progress=step / 10)).weights is None
    out = w(_feats(h_src, obs, None, None, progress=0.6))
    _lowest_is_planted(out.weights)
    assert float(out.weights[PLANT]) < 0.1
    assert float(torch.cat([out.weights[:PLANT], out.weights[PLANT + 1:]]).min()) > 0.9


def test_detection_scores_known_answers():
    mask = torch.tensor([True, True, False, False, False])
    perfect = detection_scores(torch.tensor([5.0, 4, 3, 2, 1]), mask)
    assert (perfect.auroc, perfect.average_precision, perfect.precision_at_rate) == (1, 1, 1)
    worst = detection_scores(torch.tensor([1.0, 2, 3, 4, 5]), mask)
    assert worst.auroc == 0 and worst.precision_at_rate == 0
    assert worst.average_precision == pytest.approx((1 / 4 + 2 / 5) / 2)
    assert perfect.rate == pytest.approx(0.4)
    with pytest.raises(ValueError, match="same shape"):
        detection_scores(torch.zeros(3), mask)


def test_safe_rule_needs_evidence_to_keep_the_source():
    assert mcnemar_one_sided(0, 0) == 1.0
    assert mcnemar_one_sided(5, 0) == pytest.approx(1 / 32)
    twin_right = torch.zeros(100, dtype=torch.bool)
    method_right = twin_right.clone()
    method_right[:20] = True  # 20 wins, no loss
    assert choose(method_right, twin_right).choice == METHOD
    slightly = torch.zeros(100, dtype=torch.bool)
    slightly[:5] = True
    other = torch.zeros(100, dtype=torch.bool)
    other[5:9] = True  # 5 wins, 4 losses: not evidence
    c = choose(slightly, other)
    assert c.choice == TWIN and (c.wins, c.losses) == (5, 4) and "not shown" in c.reason


def test_safe_mode_picks_the_twin_on_a_random_label_source():
    task = tg.TransferTask("mnist", "uci-digits", eps_y=1.0, labeled_percent=30,
                           spec=tg.InputSpec(1, 16), source_size=200)
    r = tg.safe(tg.create_method("dann"), task, tg.Trainer(iterations=20, eval_every=20))
    assert r.choice.choice == TWIN and r.chose == "dann_T"
    assert r.test_accuracy == r.twin_test_accuracy
    assert r.twin_val_accuracy > r.method_val_accuracy  # the source really hurt here


def test_harmful_report_works_for_a_weighter_without_the_gate_factors():
    task = tg.TransferTask("mnist", "uci-digits", eps_y=0.5, spec=tg.InputSpec(1, 16),
                           source_size=60, label_noise="pairflip")
    wrong = task.perturbation.label_flipped
    fake = SimpleNamespace(has_weighter=True, label="dann+prototype", source_scores=lambda s: {
        "weight": (~wrong).float(), "loss": wrong.float()})
    rep = tg.harmful_source_report(fake, task)
    assert rep.label_auroc == 1.0 and rep.conditional_label_auroc is None


def test_safe_summary_names_the_kept_run():
    from transferguard.analysis.safe import SafeChoice, SafeResult
    from transferguard.report import safe_summary

    c = SafeChoice(TWIN, 1, 9, 40, 0.99, 0.05, "not shown to help")
    r = SafeResult("dann+prototype", "dann_T", 0, c, 80.0, 60.0, 80.0, 55.0, 77.5, 1.0)
    text = safe_summary(r)
    assert "kept dann_T" in text and "40 samples" in text


# --------------------------------------------------------------------- Gold Loss Correction
def _pairflip_source(n_per: int, flip: float, seed: int):
    """Cluster features whose observed label is the next class for a ``flip`` fraction."""
    h, y = _clusters(n_per, seed)
    g = torch.Generator().manual_seed(seed + 10)
    obs = y.clone()
    flipped = torch.rand(len(y), generator=g) < flip
    obs[flipped] = (y[flipped] + 1) % K
    return h, y, obs


def _fit_glc(options: dict, flip: float = 0.6, steps: int = 150):
    """Train GLC's noisy head on a pair-flipped source (its own loss), the labeled clusters
    as the trusted set; returns the weighter and the planted truth C[k, k+1] = flip."""
    h_src, _, obs = _pairflip_source(40, flip, 0)
    h_lab, y_lab = _clusters(4, 1)
    w = create_weighter("glc", DIM, K, {"momentum": 0.5, "smoothing": 0.0, **options})
    opt = torch.optim.SGD(w.parameters(), lr=0.5)
    for step in range(steps):
        out = w(_feats(h_src, obs, h_lab, y_lab, progress=step / steps))
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    truth = (1 - flip) * torch.eye(K) + flip * torch.roll(torch.eye(K), 1, dims=1)
    return w, truth, out


def test_glc_recovers_a_planted_pairflip_corruption_matrix():
    w, truth, out = _fit_glc({})
    C = w.C
    assert torch.allclose(C.sum(1), torch.ones(K), atol=1e-5)  # rows are distributions
    assert (C >= 0).all()
    assert torch.allclose(C, truth, atol=0.12), C
    # once C is known the source loss is the forward-corrected one, with its graph
    assert out.weights is None and out.source_loss is not None
    assert out.source_loss.shape == (3 * 40,)


def test_glc_is_plain_cross_entropy_until_every_class_is_trusted_and_warmed_up():
    h_src, _, obs = _pairflip_source(4, 0.5, 0)
    h_lab, y_lab = _clusters(2, 1)
    w = create_weighter("glc", DIM, K, {"warmup": 0.5})
    keep = y_lab != 2
    assert w(_feats(h_src, obs, h_lab[keep], y_lab[keep], progress=0.9)).source_loss is None
    assert w(_feats(h_src, obs, h_lab, y_lab, progress=0.2)).source_loss is None  # warm-up
    assert torch.equal(w.C, torch.eye(K))
    assert w(_feats(h_src, obs, h_lab, y_lab, progress=0.6)).source_loss is not None
    assert w(_feats(h_src, obs, None, None, progress=0.7)).source_loss is not None  # stays


def test_glc_with_a_rank_one_matrix_gives_the_source_no_gradient():
    """Uniform noise at ε = (K−1)/K: every row of C is the same, the corrected source loss
    does not depend on the classifier, so the source teaches nothing (NTG -> 0)."""
    w = create_weighter("glc", DIM, K, {"smoothing": 0.0})
    w.corruption.fill_(1.0 / K)
    w.active.fill_(True)
    h_src, y = _clusters(3, 0)
    logits = torch.randn(len(y), K, requires_grad=True)
    feats = Features(h_src, y, logits, None, None, None, None, None, 1.0, 0.5)
    out = w(feats)
    (g,) = torch.autograd.grad(out.source_loss.sum(), logits)
    assert float(g.abs().max()) < 1e-6


def test_glc_ranks_a_planted_wrong_label_below_the_clean_ones():
    w, _, _ = _fit_glc({}, flip=0.1)
    h_src, y = _clusters(10, 0)
    obs = _planted(y)
    _lowest_is_planted(w.score_batch(h_src, h_src[:, :K] * 2, obs)["weight"])


def test_glc_prototype_estimator_recovers_the_matrix_too():
    w, truth, _ = _fit_glc({"estimator": "prototype", "joint_momentum": 0.5}, steps=30)
    assert torch.allclose(w.C, truth, atol=0.12), w.C


def test_source_loss_override_is_checked_and_only_replaces_when_set():
    from transferguard.methods.reweighting.weighter import WeighterOutput

    ce = torch.rand(4)
    assert WeighterOutput(None).per_sample(ce) is ce
    own = torch.rand(4)
    assert WeighterOutput(None, source_loss=own).per_sample(ce) is own
    with pytest.raises(tg.errors.ConfigError, match="one loss per source sample"):
        WeighterOutput(None, source_loss=torch.rand(3)).per_sample(ce)


@pytest.mark.parametrize("name, options, match", [
    ("glc", {"estimator": "oracle"}, "glc estimator"),
    ("glc", {"momentum": 1.0}, "glc momentum"),
    ("glc", {"smoothing": -0.1}, "glc smoothing"),
    ("glc", {"warmup": 1.0}, "glc warmup"),
    ("l2rw", {"meta_lr": 0.0}, "l2rw meta_lr"),
])
def test_new_weighters_refuse_bad_options(name, options, match):
    with pytest.raises(tg.errors.ConfigError, match=match):
        create_weighter(name, DIM, K, options)


# --------------------------------------------------------------------- learning to reweight
def test_l2rw_gives_a_planted_wrong_label_the_lowest_weight():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(DIM, 8), torch.nn.ReLU(), torch.nn.Linear(8, K))
    w = create_weighter("l2rw", DIM, K)
    n_src = 3 * 10
    data = SimpleNamespace(source=Split("source", torch.zeros(n_src, 1, 2, 2, dtype=torch.uint8),
                                        torch.zeros(n_src, dtype=torch.long),
                                        torch.arange(n_src)))
    w.setup(SimpleNamespace(model_=model), data)
    h_src, y = _clusters(10, 0)
    obs = _planted(y)
    h_lab, y_lab = _clusters(3, 1)
    feats = _feats(h_src, obs, h_lab, y_lab)
    feats.x_src, feats.x_lab = h_src, h_lab  # the model reads the cluster features directly
    out = w(feats)
    assert float(out.weights[PLANT]) == 0.0
    assert float(out.weights.mean()) == pytest.approx(1.0, abs=1e-5)
    assert not out.weights.requires_grad and all(p.grad is None for p in model.parameters())
    _lowest_is_planted(out.weights)
    _lowest_is_planted(w.score_batch(h_src, h_src[:, :K], obs, torch.arange(n_src))["weight"])
    feats.x_src = None
    with pytest.raises(tg.errors.ConfigError, match="inputs"):
        w(feats)


def test_glc_knn_estimator_recovers_the_matrix_too():
    w, truth, _ = _fit_glc({"estimator": "knn", "neighbors": 20, "bank": 120}, steps=5)
    assert torch.allclose(w.C, truth, atol=0.15), w.C


@pytest.mark.parametrize("gate, options", [("glc", {"warmup": 0.0}), ("l2rw", {})])
def test_dann_trains_with_glc_and_l2rw_and_scores_every_source_sample(tiny_task, fast_trainer,
                                                                      gate, options):
    m = tg.create_method("dann", gate=gate, gate_options=options)
    fit = fast_trainer.fit(m, tiny_task.train_data())
    row = fit.history[-1]
    assert torch.isfinite(torch.tensor(row["loss"]))
    assert ("glc_diag" if gate == "glc" else "l2rw_zero") in row  # the weighter ran
    s = m.source_scores()
    n = len(tiny_task.train_data().source)
    assert s["weight"].shape == (n,) and torch.isfinite(s["weight"]).all()
    if gate == "glc":  # C became active (every class trusted, no warm-up): rows sum to 1
        assert bool(m.weighter_.active)
        assert torch.allclose(m.weighter_.C.sum(1), torch.ones(len(m.weighter_.C)), atol=1e-5)
        assert ((s["weight"] >= 0) & (s["weight"] <= 1)).all()  # a posterior
    assert m.twin().label == "dann_T"
