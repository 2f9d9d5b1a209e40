"""One conformance test over every registered method, plus method-specific behaviour."""

from __future__ import annotations

import copy
import math

import pytest
import torch

import transferguard as tg
from transferguard.errors import ConfigError, UnknownNameError


@pytest.mark.parametrize("name", tg.list_methods())
def test_every_method_trains_and_its_twin_runs(name, tiny_task, fast_trainer):
    method = tg.create_method(name)
    assert method.name == name
    # scikit-learn rule: the constructor stores hyper-parameters only
    assert not any(k.endswith("_") for k in vars(method))
    params = method.get_params()
    assert method.clone().get_params() == params
    before = copy.deepcopy(params)
    fit = fast_trainer.fit(method, tiny_task.train_data())
    assert method.get_params() == before  # scikit-learn: fit leaves hyper-parameters alone
    assert fit.trained and fit.iterations == 6
    assert all(math.isfinite(row["loss"]) for row in fit.history if "loss" in row)
    for p in method.model_.parameters():
        assert torch.isfinite(p).all()
    twin = method.twin()
    assert twin.label.endswith("_T") or twin.label == method.label
    drawn: list[str] = []
    real_next = tg.data.BatchStream.next

    def spy(stream):
        drawn.append(stream.split.name)
        return real_next(stream)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tg.data.BatchStream, "next", spy)
        res = fast_trainer.run(twin, tiny_task)
    assert 0.0 <= res.test_accuracy <= 100.0
    assert drawn and "source" not in drawn  # the twin never draws a source batch


def test_create_method_errors():
    with pytest.raises(UnknownNameError, match="Known methods"):
        tg.create_method("danm")
    with pytest.raises(ConfigError, match="valid"):
        tg.create_method("dann", tradeoff=1.0)


def test_twin_data_has_no_source(tiny_task):
    data = tiny_task.train_data().without_source()
    assert data.source_free
    assert torch.equal(data.source.indices, tiny_task.train_data().target_labeled.indices)
    assert len(data.target_labeled) == 0


def test_untrained_twin_at_zero_labels_is_reported(fast_trainer):
    task = tg.TransferTask("mnist", "uci-digits", labeled_percent=0, source_size=200,
                           spec=tg.InputSpec(3, 16))
    res = fast_trainer.run(tg.create_method("dann").twin(), task)
    assert not res.trained and "no labeled samples" in res.note


def test_dann_needs_unlabeled_target(fast_trainer):
    task = tg.TransferTask("mnist", "uci-digits", labeled_percent=100, source_size=200,
                           spec=tg.InputSpec(3, 16))
    with pytest.raises(ConfigError, match="unlabeled target"):
        fast_trainer.fit(tg.create_method("dann"), task.train_data())


def test_gradient_reversal():
    from transferguard.methods.components import grad_reverse

    x = torch.randn(4, requires_grad=True)
    grad_reverse(x, 0.5).sum().backward()
    assert torch.allclose(x.grad, torch.full((4,), -0.5))


def test_finetune_loads_the_source_backbone_and_resets_the_head(tiny_task, tmp_path,
                                                               fast_trainer):
    pre = tg.create_method("source_only")
    fast_trainer.fit(pre, tiny_task.train_data())
    path = tmp_path / "src.pt"
    torch.save(pre.model_.state_dict(), path)
    ft = tg.create_method("finetune", pretrained=str(path))
    ft.setup(tiny_task.train_data(), fast_trainer)
    ft.prepare(tiny_task.train_data(), fast_trainer)
    # the source network trained on the Trainer's device; the loaded copy is on the CPU
    src_conv, src_head = (pre.model_.backbone.conv1[0].weight.cpu(),
                          pre.model_.head.weight.cpu())
    assert torch.equal(ft.model_.backbone.conv1[0].weight.cpu(), src_conv)
    assert not torch.equal(ft.model_.head.weight.cpu(), src_head)
    groups = ft.param_groups()
    assert groups[0]["lr_mult"] == 0.1 and groups[1]["lr_mult"] == 1.0
    twin = ft.twin()
    twin.setup(tiny_task.train_data().without_source(), fast_trainer)
    assert twin.param_groups()[0]["lr_mult"] == 1.0  # random init learns at the full rate


def _state(method) -> dict[str, torch.Tensor]:
    return {f"{name}.{k}": v.detach().cpu().clone()
            for name, m in method.modules().items() for k, v in m.state_dict().items()}


@pytest.mark.parametrize("name", tg.list_methods())
def test_every_method_refits_to_the_same_result(name, tiny_task, fast_trainer):
    """scikit-learn's idempotence check: fitting again (the same object, or a clone) with
    the same seed gives the same model, so one seed gives one result."""
    method = tg.create_method(name)
    fast_trainer.fit(method, tiny_task.train_data())
    first = _state(method)
    fast_trainer.fit(method, tiny_task.train_data())
    again = _state(method)
    clone = method.clone()
    fast_trainer.fit(clone, tiny_task.train_data())
    other = _state(clone)
    assert first.keys() == again.keys() == other.keys()
    for k in first:
        assert torch.equal(first[k], again[k]), f"{name}: refit changed {k}"
        assert torch.equal(first[k], other[k]), f"{name}: a clone fit to another {k}"


def test_gta_trains_in_three_stages_without_nan(tiny_task, fast_trainer):
    for gate in (False, True):
        m = tg.create_method("gta", gate=gate)
        assert m.stages == ("d", "g", "main")
        fit = fast_trainer.fit(m, tiny_task.train_data())
        assert fit.trained
        rows = [r for r in fit.history if "loss" in r]
        assert rows and all(math.isfinite(v) for r in rows for v in r.values())
        for mod in m.modules().values():
            assert all(torch.isfinite(p).all() for p in mod.parameters())
        stages = {g["stage"] for g in m.param_groups()}
        assert stages == {"d", "g", "main"}
    # every stage moves its own modules only
    m = tg.create_method("gta")
    m.setup(tiny_task.train_data(), fast_trainer)
    batches = {name: tg.data.BatchStream(getattr(tiny_task.train_data(), name), 8,
                                         tiny_task.spec, 0).next()
               for name in m.streams()}
    out = m.stage_step("g", batches, 0.5)
    out.loss.backward()
    assert all(p.grad is None for p in m.model_.parameters())
    assert any(p.grad is not None for p in m.extra_modules_["generator"].parameters())
