"""Fine-tuning defences: DTNH, L2-SP, DELTA, KD, BSS, the cut point, binary auxiliary loss."""

from __future__ import annotations

import pytest
import torch

import transferguard as tg
from transferguard.analysis import CutPointResult
from transferguard.errors import ConfigError
from transferguard.methods import DTNH, pretrain_source
from transferguard.methods.finetuning.aux import binary_partition
from transferguard.methods.finetuning.finetune import FineTune
from transferguard.report.tables import cutpoint_table

REGULARIZED = ["l2sp", "delta", "kd", "bss"]


@pytest.fixture(scope="module")
def source_ckpt(tiny_task, tmp_path_factory):
    """A source network pre-trained for a few steps, saved as a checkpoint."""
    tr = tg.Trainer(iterations=10, batch_size=16, progress=False)
    state = pretrain_source(tiny_task.train_data(), tr)
    path = tmp_path_factory.mktemp("src") / "source.pt"
    torch.save(state, path)
    return str(path)


def _ready(name, task, ckpt, **params):
    """A method set up and prepared (source loaded), with one step's output."""
    tr = tg.Trainer(iterations=10, batch_size=16, progress=False)
    m = tg.create_method(name, pretrained=ckpt, **params)
    data = task.train_data()
    torch.manual_seed(0)
    m.setup(data, tr)
    m.prepare(data, tr)
    stream = tg.data.BatchStream(data.target_labeled, 16, data.spec, seed=0)
    m.set_train_mode()  # as the Trainer does before every step
    out = m.training_step({"target_labeled": stream.next()}, 0.5)
    return m, out


@pytest.mark.parametrize("mode", ["always", "on_conflict"])
def test_dtnh_direction_property_on_random_tensors(mode):
    g = torch.Generator().manual_seed(0)
    dtnh = DTNH(mode)
    for _ in range(200):
        ge, gr = torch.randn(7, 5, generator=g), 3 * torch.randn(7, 5, generator=g)
        d = dtnh.combine(ge, gr)
        inner, norm2 = float((d * ge).sum()), float(ge.pow(2).sum())
        if mode == "always":
            assert inner == pytest.approx(norm2, rel=1e-4, abs=1e-4)
        else:
            assert inner >= norm2 - 1e-4
    assert 0.3 < dtnh.conflict_rate < 0.7  # random directions conflict half of the time
    with pytest.raises(ConfigError, match="DTNH mode"):
        DTNH("sometimes")


@pytest.mark.parametrize("mode", ["always", "on_conflict"])
def test_dtnh_batched_combination_equals_per_tensor(mode):
    g = torch.Generator().manual_seed(1)
    shapes = [(3, 4), (7,), (2, 2, 5), (1,)]
    ge = [torch.randn(s, generator=g) for s in shapes]
    gr = [torch.randn(s, generator=g) for s in shapes]
    one, many = DTNH(mode), DTNH(mode)
    expected = [one.combine(a, b) for a, b in zip(ge, gr)]
    got = many.combine_many(ge, gr)
    for e, d in zip(expected, got):
        assert d.shape == e.shape and torch.allclose(d, e, atol=1e-6)
    assert many.conflicts == one.conflicts and many.checked == one.checked == len(shapes)


@pytest.mark.parametrize("name", REGULARIZED)
@pytest.mark.parametrize("mode", ["always", "on_conflict"])
def test_dtnh_gradients_per_tensor_and_head_untouched(name, mode, tiny_task, source_ckpt):
    m, out = _ready(name, tiny_task, source_ckpt, dtnh=True, dtnh_mode=mode, alpha=1.0)
    shared = [p for p in m.model_.backbone.parameters() if p.requires_grad]
    head = list(m.model_.head.parameters())
    params = shared + head
    g_e = torch.autograd.grad(out.empirical, params, retain_graph=True, allow_unused=True)
    g_r = torch.autograd.grad(out.regularizer, params, retain_graph=True, allow_unused=True)
    combiner = m.gradient_combiner
    combiner.steps = 1  # past the unmodified first step
    combiner.backward(out, m)
    for p, ge in zip(shared, g_e):
        ge = torch.zeros_like(p) if ge is None else ge
        inner, norm2 = float((p.grad * ge).sum()), float(ge.pow(2).sum())
        if mode == "always":
            assert inner == pytest.approx(norm2, rel=1e-3, abs=1e-6)
        else:
            assert inner >= norm2 - 1e-5
    for p, ge, gr in zip(head, g_e[len(shared):], g_r[len(shared):]):
        expected = (ge if ge is not None else 0) + (gr if gr is not None else 0)
        assert torch.allclose(p.grad, expected, atol=1e-6)  # the head is not projected


def test_first_dtnh_step_is_plain(tiny_task, source_ckpt):
    m, out = _ready("l2sp", tiny_task, source_ckpt, dtnh=True, alpha=1.0)
    params = [p for p in m.model_.parameters() if p.requires_grad]
    total = torch.autograd.grad(out.loss, params, retain_graph=True)
    m.gradient_combiner.backward(out, m)
    for p, g in zip(params, total):
        assert torch.allclose(p.grad, g, atol=1e-5)


def test_l2sp_closed_form_gradient_equals_autograd(tiny_task, source_ckpt):
    m, _ = _ready("l2sp", tiny_task, source_ckpt, alpha=0.3, beta=0.05)
    with torch.no_grad():  # move away from the starting point so that w - w0 is not zero
        for p in m.model_.backbone.parameters():
            p.add_(0.01 * torch.randn_like(p))
    batch = tg.data.BatchStream(tiny_task.train_data().target_labeled, 8,
                                tiny_task.spec, seed=1).next()
    h = m.model_.features(batch.x)
    reg = m.regularizer(batch, h, m.model_.head(h))
    params = list(m.model_.backbone.parameters()) + list(m.model_.head.parameters())
    auto = torch.autograd.grad(reg, params)
    closed = m.closed_form_gradients()
    for p, g in zip(params, auto):
        assert torch.allclose(closed[p], g, atol=1e-6)


def test_l2sp_switches_weight_decay_off_on_shared_weights(tiny_task, source_ckpt):
    m, _ = _ready("l2sp", tiny_task, source_ckpt)
    groups = m.param_groups()
    assert groups[0]["weight_decay"] == 0.0 and groups[1]["weight_decay"] == 0.0
    b, _ = _ready("bss", tiny_task, source_ckpt)
    assert "weight_decay" not in b.param_groups()[0]  # BSS keeps plain weight decay


def test_delta_attention_shape_and_normalisation(tiny_task, source_ckpt):
    m, out = _ready("delta", tiny_task, source_ckpt, attention_iterations=5,
                    attention_batches=2)
    assert m.layers_ == ["conv1", "conv2"]
    for name, channels in (("conv1", 32), ("conv2", 48)):
        w = m.channel_weights_[name]
        assert w.shape == (channels,)
        assert (w > 0).all() and w.mean() == pytest.approx(1.0, rel=1e-5)
    assert out.regularizer.item() > 0
    kd, _ = _ready("kd", tiny_task, source_ckpt)
    assert kd.channel_weights_ is None  # distillation: every channel weighted 1


def test_regularizers_start_at_zero_distance(tiny_task, source_ckpt):
    """At the pre-trained weights, L2-SP's pull and KD's map distance are zero."""
    _, out = _ready("kd", tiny_task, source_ckpt, beta=0.0)
    assert out.regularizer.item() == pytest.approx(0.0, abs=1e-6)
    _, out = _ready("l2sp", tiny_task, source_ckpt, beta=0.0)
    assert out.regularizer.item() == pytest.approx(0.0, abs=1e-8)


def test_regularized_twins(tiny_task):
    for name in ("l2sp", "delta", "kd"):
        twin = tg.create_method(name, dtnh=True).twin()
        assert type(twin) is FineTune and twin.source_free and twin.label == "finetune_T"
    bss_twin = tg.create_method("bss").twin()
    assert bss_twin.name == "bss" and bss_twin.source_free
    assert tg.create_method("l2sp", dtnh=True).label == "l2sp+dtnh"


@pytest.mark.parametrize("freeze", [True, False])
def test_cut_transfer_freezes_exactly_the_first_k_blocks(freeze, tiny_task, source_ckpt):
    src = torch.load(source_ckpt, weights_only=True)
    tr = tg.Trainer(iterations=5, batch_size=16, progress=False, select="last")
    m = tg.create_method("cut_transfer", pretrained=source_ckpt, blocks=2, freeze=freeze)
    tr.fit(m, tiny_task.train_data())
    blocks = m.model_.blocks
    assert blocks == ["conv1", "conv2", "fc"]
    for name in blocks:
        params = dict(m.model_.block(name).named_parameters())
        for pname, p in params.items():
            key = f"backbone.{name}.{pname}"
            if name in blocks[:2]:
                assert p.requires_grad is not freeze
                if freeze:  # untouched by training: still the source weights
                    assert torch.equal(p, src[key])
            else:
                assert p.requires_grad
                assert not torch.equal(p, src[key])  # re-initialised, not transferred
    if freeze:  # batch-norm statistics of the frozen blocks are not updated either
        bn = m.model_.block("conv1")[1]
        assert torch.equal(bn.running_mean, src["backbone.conv1.1.running_mean"])


@pytest.mark.parametrize("model", tg.list_models())
def test_cut_transfer_copies_exactly_the_first_k_blocks_of_every_model(model, tmp_path):
    task = tg.TransferTask("mnist", "uci-digits", labeled_percent=20, source_size=64,
                           spec=tg.InputSpec(3, 32))
    data = task.train_data()
    torch.manual_seed(0)
    source = tg.create_model(model, 10, 3, 32)
    path = tmp_path / "src.pt"
    torch.save(source.state_dict(), path)
    k = 2
    m = tg.create_method("cut_transfer", model=model, pretrained=str(path), blocks=k)
    tr = tg.Trainer(iterations=1, batch_size=4, progress=False)
    torch.manual_seed(1)  # another initialisation than the source's
    m.setup(data, tr)
    m.prepare(data, tr)
    for i, name in enumerate(m.model_.blocks):
        ours = m.model_.block(name).state_dict()
        theirs = source.backbone.get_submodule(name).state_dict()
        same = [torch.equal(ours[key], theirs[key]) for key in ours
                if ours[key].is_floating_point() and ours[key].numel() > 1]
        if i < k:
            assert all(same), f"{name} was not copied"
            assert all(not p.requires_grad for p in m.model_.block(name).parameters())
        elif same:
            assert not all(same), f"{name} was copied but should be re-initialised"


def test_cut_transfer_rejects_too_many_blocks(tiny_task, source_ckpt):
    tr = tg.Trainer(iterations=2, batch_size=8, progress=False)
    with pytest.raises(ConfigError, match="only 3 blocks"):
        tr.fit(tg.create_method("cut_transfer", pretrained=source_ckpt, blocks=5),
               tiny_task.train_data())


def test_cut_point_choices_are_made_on_validation_not_test():
    test = {"frozen": {1: [83.0, 83.0], 2: [81.5, 81.0], 3: [70.0, 72.0]},
            "finetuned": {1: [84.0, 86.0], 2: [85.0, 85.5], 3: [84.0, 84.0]}}
    val = {"frozen": {1: [90.0, 90.0], 2: [70.0, 70.0], 3: [60.0, 60.0]},
           "finetuned": {1: [88.0, 88.0], 2: [85.0, 85.0], 3: [86.0, 86.0]}}
    r = CutPointResult(["conv1", "conv2", "fc"], [0, 1], [80.0, 82.0], test, [80.0, 80.0], val)
    assert r.best == (1, "frozen", 90.0)  # the validation choice ...
    assert r.test_of(r.best) == 83.0  # ... reported with its test accuracy
    assert r.best_oracle == (2, "finetuned", 85.25)  # what choosing on test would give
    assert r.cut_point == 1  # on validation, frozen k=2 (70) falls below scratch (80)
    # on test, frozen k=1 (83.0) and k=2 (81.25) are not below scratch (81.0); k=3 is
    assert r.cut_point_oracle == 2
    text = cutpoint_table(r)
    assert "chosen on validation" in text and "Oracle" in text
    no_val = CutPointResult(["a"], [0], [80.0], {"frozen": {1: [79.0]}}, [None],
                            {"frozen": {1: [None]}})
    assert no_val.best is None and no_val.cut_point is None and no_val.cut_point_oracle == 0


def test_binary_partition_and_aux_head_absent_after_transfer(tiny_task):
    table = binary_partition(10, seed=3)
    assert table.sum() == 5 and set(table.tolist()) == {0, 1}
    assert not torch.equal(table, binary_partition(10, seed=4))
    tr = tg.Trainer(iterations=4, batch_size=8, progress=False)
    ft = tg.create_method("finetune", pretrain_aux_weight=0.5, partition_seed=1)
    tr.fit(ft, tiny_task.train_data())
    assert "aux_head" not in ft.modules()
    assert not any("aux" in k for k in ft.model_.state_dict())
    aux = tg.create_method("source_aux", aux_weight=0.5)
    tr.fit(aux, tiny_task.train_data())
    assert "aux_head" in aux.modules() and aux.extra_modules_["aux_head"].out_features == 2
    with pytest.raises(ConfigError, match="aux_weight"):
        tg.create_method("source_aux", aux_weight=1.5)


def test_delta_without_labeled_target_does_not_crash(source_ckpt):
    task = tg.TransferTask("mnist", "uci-digits", labeled_percent=0, source_size=64,
                           spec=tg.InputSpec(3, 16))
    trainer = tg.Trainer(iterations=2, batch_size=8, progress=False)
    fit = trainer.fit(tg.create_method("delta", pretrained=source_ckpt), task.train_data())
    assert not fit.trained and "no labeled samples" in fit.note


def test_source_network_does_not_start_from_the_target_models_initialisation(tiny_task):
    """Pre-training runs on a seed of its own: otherwise the re-initialised layers of a cut
    transfer and the from-scratch twin would start exactly where the source network did."""
    from transferguard.utils import seed_everything

    tr = tg.Trainer(iterations=1, batch_size=8, lr=1e-12, progress=False, seed=0)
    state = pretrain_source(tiny_task.train_data(), tr)  # ~ the source network's init
    seed_everything(0)  # what a run with seed 0 builds its model from
    fresh = tg.create_model("lenet", 10, 3, 16).state_dict()
    weights = [k for k in fresh if k.endswith("weight") and fresh[k].dim() > 1]
    assert weights and not any(torch.allclose(state[k], fresh[k]) for k in weights)
