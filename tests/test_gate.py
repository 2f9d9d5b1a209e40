"""The discriminator gate: weight formula, stop-gradient, nil path, corrections, detection."""

from __future__ import annotations

import math

import pytest
import torch

import transferguard as tg
from transferguard.errors import ConfigError
from transferguard.methods.alignment import AdaptationMethod
from transferguard.methods.reweighting.gate import Gate, gate_weight_formula
from transferguard.report.tables import harmful_summary

DA = [e.name for e in tg.methods.METHODS if issubclass(e.obj, AdaptationMethod)]


def _gate(**kw) -> Gate:
    """A small gate on raw 6-d features (no posterior input: these tests drive D directly),
    marked as having seen labeled target pairs, so that ω is D's ratio."""
    torch.manual_seed(0)
    g = Gate(6, 3, hidden=16, dropout=0.0, posterior=False, **kw)
    g.joint_trained.fill_(True)
    return g


def test_weight_is_d_over_one_minus_d_with_clipping():
    g = _gate(clip=None)
    logits = torch.tensor([-2.0, 0.0, 1.5, 20.0, -20.0])
    w = g.ratio(logits, 5, None)
    d = torch.sigmoid(logits).clamp(1e-3, 1 - 1e-3)
    assert torch.allclose(w, d / (1 - d))
    assert w[1] == pytest.approx(1.0)  # D = 1/2: as likely under target as under source
    assert w[3] == pytest.approx(999.0, rel=1e-4)  # D clipped at 1 - 1e-3
    assert w[4] == pytest.approx(1e-3 / (1 - 1e-3), rel=1e-4)
    assert gate_weight_formula(0.75) == pytest.approx(3.0)
    clipped = _gate(clip=10.0).ratio(logits, 5, None)
    assert clipped.max() == pytest.approx(10.0)


def test_batch_ratio_correction_and_normalisation():
    logits = torch.tensor([0.0, 1.0, -1.0, 0.5])
    plain = _gate(clip=None).ratio(logits, 4, 2)
    pooled = _gate(clip=None, joint_loss="pooled").ratio(logits, 4, 2)
    assert torch.allclose(pooled, plain * 4 / 2)  # multiplied by B_s / B_l
    normed = _gate(clip=None, normalize=True).ratio(logits, 4, 2)
    assert normed.mean() == pytest.approx(1.0)


def test_no_gradient_reaches_d_through_the_weights():
    g = _gate()
    h_src = torch.randn(8, 6, requires_grad=True)
    y_src = torch.randint(0, 3, (8,))
    out = g.adversarial(h_src, y_src, torch.randn(4, 6), torch.randint(0, 3, (4,)),
                        torch.randn(5, 6), 1.0)
    assert not out.weights.requires_grad
    per_sample = (h_src ** 2).sum(1)  # a stand-in for the source CE
    (out.weights * per_sample).mean().backward()
    assert all(p.grad is None for p in g.parameters())  # ω is a constant for the CE term
    assert h_src.grad is not None


def test_nil_label_path_and_gradient_routes():
    g = _gate()
    seen = []
    real = g.discriminator.forward

    def spy(h, y):
        seen.append(y.clone())
        return real(h, y)

    g.discriminator.forward = spy
    h_src = torch.randn(8, 6, requires_grad=True)
    h_lab = torch.randn(4, 6, requires_grad=True)
    h_unl = torch.randn(5, 6, requires_grad=True)
    y_src, y_lab = torch.randint(0, 3, (8,)), torch.randint(0, 3, (4,))
    out = g.adversarial(h_src, y_src, h_lab, y_lab, h_unl, 0.5)
    labels = seen[0]  # one call over [nil src, nil unl, src pairs, lab pairs]
    assert (labels[:13] == 3).all()  # nil = K = 3 for the marginal pairs
    assert torch.equal(labels[13:21], y_src) and torch.equal(labels[21:], y_lab)
    out.loss.backward()
    assert h_lab.grad is None  # joint term on detached features: F is not pushed by it
    assert h_unl.grad is not None and h_src.grad is not None  # the marginal term aligns F


def test_marginal_term_is_reversed_with_coefficient_mu():
    g = _gate()
    h_src, h_unl = torch.randn(8, 6), torch.randn(5, 6)
    y_src = torch.randint(0, 3, (8,))
    grads = []
    for mu in (1.0, 0.25):
        h = h_unl.clone().requires_grad_(True)
        g.adversarial(h_src, y_src, None, None, h, mu).loss.backward()
        grads.append(h.grad)
    # the gradient F receives is −μ times D's: it scales with μ
    assert torch.allclose(grads[1], grads[0] * 0.25, atol=1e-6)
    h = h_unl.clone().requires_grad_(True)
    d = g.discriminator
    loss = torch.nn.functional.binary_cross_entropy_with_logits(
        d(h, torch.full((5,), 3)), torch.ones(5), reduction="mean")
    (direct,) = torch.autograd.grad(loss, h)
    # the marginal term is ½(E_S + E_T): F gets −½ of D's gradient of the target side
    assert torch.allclose(grads[0], -0.5 * direct, atol=1e-6)


def test_posterior_input_is_detached_log_probabilities():
    g = Gate(6, 3, hidden=16)  # the default: D also sees log p_C(.|x)
    h = torch.randn(4, 6, requires_grad=True)
    logits = torch.randn(4, 3, requires_grad=True)
    x = g.inputs(h, logits)
    assert x.shape == (4, 9)
    assert torch.allclose(x[:, 6:].exp().sum(1), torch.ones(4))
    x.sum().backward()
    assert logits.grad is None and h.grad is not None  # no gradient into the classifier
    with pytest.raises(ConfigError, match="needs the classifier's logits"):
        g.inputs(h, None)
    assert torch.equal(Gate(6, 3, posterior=False).inputs(h, None), h)


def test_bad_gate_options():
    with pytest.raises(ConfigError, match="joint_grad"):
        Gate(4, 2, joint_grad="sideways")
    with pytest.raises(ConfigError, match="unknown gate_options"):
        m = tg.create_method("dann", gate=True, gate_options={"lamda": 1})
        task = tg.TransferTask("mnist", "uci-digits", labeled_percent=20, source_size=50,
                               spec=tg.InputSpec(3, 16))
        m.setup(task.train_data(), tg.Trainer())


@pytest.mark.parametrize("name", DA)
def test_every_da_method_trains_with_the_gate_and_shares_the_ungated_twin(
        name, tiny_task, fast_trainer):
    m = tg.create_method(name, gate=True)
    assert m.label == f"{name}+gate"
    res = fast_trainer.run(m, tiny_task)
    assert res.trained and math.isfinite(res.test_accuracy)
    twin = m.twin()
    assert not twin.gate and twin.source_free
    assert twin.get_params() == tg.create_method(name).twin().get_params()
    w = m.per_sample_weights()
    assert w.shape == (len(tiny_task.train_data().source),) and (w > 0).all()


def test_per_sample_weights_need_the_gate(tiny_task, fast_trainer):
    m = tg.create_method("dann")
    fast_trainer.fit(m, tiny_task.train_data())
    with pytest.raises(ConfigError, match="gate=True"):
        m.per_sample_weights()


@pytest.mark.slow
def test_gate_weights_separate_wrong_labels_from_clean_ones():
    """ε_y = 0.5, clean images: the samples with wrong labels get lower ω (AUROC > 0.6)."""
    task = tg.TransferTask("mnist", "uci-digits", eps_x=0.0, eps_y=0.5, labeled_percent=30,
                           spec=tg.InputSpec(3, 16))
    tr = tg.Trainer(iterations=250, batch_size=32, progress=False)
    m = tg.create_method("dann", gate=True)
    tr.run(m, task)
    rep = tg.harmful_source_report(m, task)
    assert rep.label_auroc > 0.6, harmful_summary(rep)
    assert rep.label_precision_at_rate > rep.label_corruption_rate
    w = rep.weights
    assert w[task.perturbation.label_flipped].mean() < w[~task.perturbation.label_flipped].mean()
    assert rep.most_harmful[0]["weight"] == pytest.approx(float(w.min()))


def test_auroc_against_sklearn():
    from sklearn.metrics import roc_auc_score

    from transferguard.analysis import auroc

    g = torch.Generator().manual_seed(0)
    s = torch.randint(0, 5, (300,), generator=g).float()
    y = torch.rand(300, generator=g) < 0.3
    assert auroc(s, y) == pytest.approx(roc_auc_score(y.numpy(), s.numpy()))
    assert auroc(s, torch.zeros(300, dtype=torch.bool)) is None


def test_trade_off_with_a_replaced_discriminator_is_refused(tiny_task, fast_trainer):
    """DANN's trade_off weights the discriminator the gate replaces: a silent no-op, refused."""
    with pytest.raises(ConfigError, match="mu_max"):
        fast_trainer.fit(tg.create_method("dann", gate=True, trade_off=0.5),
                         tiny_task.train_data())
    # DAN keeps its own alignment term next to the gate, so its trade_off still counts
    assert fast_trainer.fit(tg.create_method("dan", gate=True, trade_off=0.5),
                            tiny_task.train_data()).trained


def test_adda_twin_trains_its_target_encoder_with_labels(tiny_task):
    """In ADDA_T the labeled target also trains F_t through a supervised loss (without it,
    F_t only ever sees the adversarial signal and drifts)."""
    tr = tg.Trainer(iterations=2, batch_size=8, progress=False)
    twin = tg.create_method("adda", pretrain_iterations=2).twin()
    data = tiny_task.train_data().without_source()
    twin.setup(data, tr)
    twin.prepare(data, tr)
    for m in twin.modules().values():  # the Trainer's device, CPU or CUDA
        m.to(tr.device)
    batches = {name: tg.data.BatchStream(getattr(data, name), 8, data.spec, seed=0,
                                         device=tr.device).next()
               for name in ("source", "target_unlabeled")}
    twin.set_train_mode()
    out = twin.training_step(batches, 0.5)
    assert "ce_lab" in out.logs  # the labeled target's loss through F_t
    assert float(out.logs["ce_lab"]) > 0


def test_without_labeled_target_pairs_the_gate_does_not_reweight():
    g = Gate(6, 3, hidden=16, posterior=False)
    out = g.adversarial(torch.randn(8, 6), torch.randint(0, 3, (8,)), None, None,
                        torch.randn(5, 6), 1.0)
    assert torch.equal(out.weights, torch.ones(8))  # L = 0: the gate is DANN
    assert torch.equal(g.ratio(torch.tensor([-3.0, 2.0]), 2, None), torch.ones(2))
    out = g.adversarial(torch.randn(8, 6), torch.randint(0, 3, (8,)), torch.randn(4, 6),
            torch.randint(0, 3, (4,)), torch.randn(5, 6), 1.0)
    assert not torch.equal(out.weights, torch.ones(8))


def test_without_labeled_target_pairs_d_does_not_see_the_posterior():
    torch.manual_seed(0)
    g = Gate(6, 3, hidden=16, dropout=0.0)  # posterior=True, the default
    h_s, h_u, y_s = torch.randn(8, 6), torch.randn(5, 6), torch.randint(0, 3, (8,))

    def loss(logit_scale: float, labeled: bool) -> float:
        torch.manual_seed(1)
        ls, lu = logit_scale * torch.randn(8, 3), logit_scale * torch.randn(5, 3)
        lab = (g.inputs(torch.randn(4, 6), torch.randn(4, 3)), torch.randint(0, 3, (4,))) \
            if labeled else (None, None)
        out = g.adversarial(g.inputs(h_s, ls), y_s, *lab, g.inputs(h_u, lu), 1.0)
        return float(out.loss.detach())

    # L = 0: the marginal pairs are F(x) only, like DANN's discriminator input
    assert loss(1.0, labeled=False) == pytest.approx(loss(5.0, labeled=False), abs=1e-6)
    # with labeled target pairs the posterior is part of what D sees
    assert loss(1.0, labeled=True) != pytest.approx(loss(5.0, labeled=True), abs=1e-6)


def test_source_scores_at_l0_report_the_weights_training_used(fast_trainer):
    task = tg.TransferTask("mnist", "uci-digits", eps=0.3, labeled_percent=0, source_size=50,
                           spec=tg.InputSpec(3, 16))
    m = tg.create_method("dann", gate=True)
    fast_trainer.fit(m, task.train_data())
    assert torch.equal(m.per_sample_weights(), torch.ones(50))  # ω = 1 without labeled pairs
