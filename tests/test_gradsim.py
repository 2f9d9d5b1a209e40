"""Gradient-similarity gating of the source (``combine="gradsim"``) and DTNH for the DA family."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import transferguard as tg
from transferguard.engine.types import StepOutput
from transferguard.errors import ConfigError
from transferguard.methods.gradient.gradsim import GradientSimilarity


class _Fake:
    """What the combiner reads from a method: the model and the other modules."""

    label = "fake"

    def __init__(self) -> None:
        torch.manual_seed(0)
        self.model_ = nn.Linear(4, 3)
        self.extra_modules_ = {"disc": nn.Linear(3, 1)}


def _losses(m: _Fake, sign: float, x: torch.Tensor) -> StepOutput:
    """sign > 0: R partly agrees with L_T; sign < 0: R = sign * L_T on the model (cos = -1)."""
    out = m.model_(x)
    emp = out.pow(2).mean()
    disc = m.extra_modules_["disc"]
    if sign < 0:
        reg = sign * emp + disc(out.detach()).pow(2).mean()
    else:
        reg = sign * emp + (out.sum(1) - 1).pow(2).mean() * 0.5 + disc(out).pow(2).mean()
    return StepOutput(emp + reg, {}, empirical=emp, regularizer=reg)


def _grads(loss: torch.Tensor, params: list[nn.Parameter]) -> list[torch.Tensor]:
    return [g if g is not None else torch.zeros_like(p)
            for p, g in zip(params, torch.autograd.grad(loss, params, retain_graph=True,
                                                        allow_unused=True))]


def _expected(m: _Fake, out: StepOutput, coef: float | None = None):
    model = list(m.model_.parameters())
    disc = list(m.extra_modules_["disc"].parameters())
    g_t = _grads(out.empirical, model)
    g_r = _grads(out.regularizer, model)
    flat_t, flat_r = torch.cat([g.flatten() for g in g_t]), torch.cat([g.flatten() for g in g_r])
    cos = float(flat_t @ flat_r / (flat_t.norm() * flat_r.norm()))
    c = max(0.0, cos) if coef is None else coef
    return [a + c * b for a, b in zip(g_t, g_r)], _grads(out.loss, disc), cos


@pytest.mark.parametrize("sign", [0.5, -3.0])
def test_refresh_step_gates_the_model_and_leaves_other_modules_whole(sign):
    m = _Fake()
    out = _losses(m, sign, torch.randn(8, 4))
    want_model, want_disc, cos = _expected(m, out)
    comb = GradientSimilarity(every=1, scale=1.0, momentum=0.0)  # Du et al.'s rule
    comb.backward(out, m)
    for p, g in zip(m.model_.parameters(), want_model):
        torch.testing.assert_close(p.grad, g)
    for p, g in zip(m.extra_modules_["disc"].parameters(), want_disc):
        torch.testing.assert_close(p.grad, g)
    assert comb.checked == 1 and comb.shut == (cos <= 0)
    if sign < 0:  # R pulls against L_T: the model steps on the target's gradient alone
        assert cos == pytest.approx(-1.0) and comb.coef == 0.0


def test_cheap_steps_reuse_the_last_coefficient_exactly():
    m = _Fake()
    comb = GradientSimilarity(every=3, scale=1.0, momentum=0.0)
    comb.backward(_losses(m, 0.5, torch.randn(8, 4)), m)
    c = comb.coef
    assert 0 < c <= 1
    for _ in range(2):  # steps 2 and 3: one backward with the kept c
        for p in [*m.model_.parameters(), *m.extra_modules_["disc"].parameters()]:
            p.grad = None
        out = _losses(m, 0.5, torch.randn(8, 4))
        want_model, want_disc, _ = _expected(m, out, coef=c)
        comb.backward(out, m)
        for p, g in zip(m.model_.parameters(), want_model):
            torch.testing.assert_close(p.grad, g)
        for p, g in zip(m.extra_modules_["disc"].parameters(), want_disc):
            torch.testing.assert_close(p.grad, g)
    assert comb.checked == 1 and comb.steps == 3


def test_scale_divides_the_cosine_and_caps_the_weight_at_one():
    m = _Fake()
    out = _losses(m, 0.5, torch.randn(8, 4))
    _, _, cos = _expected(m, out)
    assert 0 < cos < 1
    # cos / scale = 2: capped at 1
    comb = GradientSimilarity(every=1, scale=cos / 2, momentum=0.0)
    comb.backward(out, m)
    assert comb.coef == 1.0


def test_momentum_smooths_the_cosine_with_bias_correction():
    m = _Fake()
    comb = GradientSimilarity(every=1, scale=1.0, momentum=0.5)
    coses = []
    for sign in (0.5, -3.0, 0.5):
        for p in [*m.model_.parameters(), *m.extra_modules_["disc"].parameters()]:
            p.grad = None
        out = _losses(m, sign, torch.randn(8, 4))
        coses.append(_expected(m, out)[2])
        comb.backward(out, m)
    ema = 0.0
    for c in coses:
        ema = 0.5 * ema + 0.5 * c
    smooth = ema / (1 - 0.5 ** 3)
    assert comb.coef == pytest.approx(min(1.0, max(0.0, smooth)))
    assert comb.checked == 3 and comb.shut == 1  # the raw cosine of the middle step was < 0


def test_state_round_trip_and_bad_options():
    a = GradientSimilarity(every=2, momentum=0.0)
    m = _Fake()
    a.backward(_losses(m, -3.0, torch.randn(8, 4)), m)
    b = GradientSimilarity(every=2, momentum=0.0)
    b.load_state_dict(a.state_dict())
    assert b.state_dict() == a.state_dict() and b.shut_rate == 1.0
    with pytest.raises(ConfigError, match="every"):
        GradientSimilarity(every=0)
    with pytest.raises(ConfigError, match="momentum"):
        GradientSimilarity(momentum=1.0)
    with pytest.raises(ConfigError, match="labeled"):
        GradientSimilarity().backward(StepOutput(torch.zeros(())), m)


def test_dann_combine_trains_labels_and_twin(tiny_task, fast_trainer):
    m = tg.create_method("dann", combine="gradsim", combine_options={"every": 2},
                         gate="prototype")
    assert m.label == "dann+prototype+gradsim(every=2)"
    assert m.twin().label == "dann_T" and m.twin().combine is None
    res = fast_trainer.run(m, tiny_task)
    assert res.trained and 0 <= res.test_accuracy <= 100
    assert m.gradient_combiner.steps == 6 and m.gradient_combiner.checked == 3
    d = tg.create_method("dcoral", combine="dtnh")
    fast_trainer.fit(d, tiny_task.train_data())
    assert d.gradient_combiner.checked > 0 and d.gradient_combiner.scope == "model"


def test_combine_twin_is_unchanged_and_runs_are_reproducible(tiny_task, fast_trainer):
    a = fast_trainer.run(tg.create_method("dann", combine="gradsim"), tiny_task)
    b = fast_trainer.run(tg.create_method("dann", combine="gradsim"), tiny_task)
    assert a.test_accuracy == b.test_accuracy


def test_combine_bad_input_stops_before_training():
    with pytest.raises(ConfigError, match="gradsim"):
        tg.create_method("dann", combine="cosine")
    for staged in ("adda", "gta"):  # steps that are not one L_T + R
        with pytest.raises(ConfigError, match="stages"):
            tg.create_method(staged, combine="gradsim")
    with pytest.raises(ConfigError, match="every"):
        tg.create_method("dann", combine="gradsim", combine_options={"every": 0})
    with pytest.raises(ConfigError, match="scale"):
        tg.create_method("dann", combine="gradsim", combine_options={"scale": 0})
    with pytest.raises(ConfigError, match="takes none"):
        tg.create_method("dann", combine="dtnh", combine_options={"every": 2})
    with pytest.raises(ConfigError, match="takes every"):
        tg.create_method("dann", combine="gradsim", combine_options={"evry": 2})
    task = tg.TransferTask("mnist", "uci-digits", labeled_percent=0, source_size=50,
                           spec=tg.InputSpec(3, 16))
    trainer = tg.Trainer(iterations=2, batch_size=8, progress=False)
    with pytest.raises(ConfigError, match="labeled_percent"):
        trainer.fit(tg.create_method("dann", combine="gradsim"), task.train_data())
