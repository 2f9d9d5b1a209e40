"""What is being transferred (methods reference section 4): CKA, parameter distance,
interpolation, rewinding and criticality, block shuffling, checkpoints, and `explain`."""

from __future__ import annotations

import copy
import math

import pytest
import torch

import transferguard as tg
from transferguard.analysis import (
    block_shuffle,
    feature_similarity,
    interpolate,
    linear_cka,
    module_criticality,
    parameter_distance,
    pretrain_with_snapshots,
    rbf_cka,
    recording_init,
    rewind,
    shuffled_domain,
    shuffled_task,
    valid_grids,
)
from transferguard.errors import ConfigError, DataError, UnknownNameError
from transferguard.methods import pretrain_source


def _lenet(seed: int, spec: tg.InputSpec, **kw) -> tg.TransferModel:
    torch.manual_seed(seed)
    return tg.create_model("lenet", 10, spec.channels, spec.size, **kw).eval()


def _orthogonal(d: int, seed: int) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=torch.Generator().manual_seed(seed),
                                       dtype=torch.float64))
    return q


# ------------------------------------------------------------------------------------ CKA
@pytest.mark.parametrize("n,d", [(200, 12), (20, 50)])  # feature form and Gram form
def test_cka_is_one_with_itself_and_invariant_to_rotation_and_scale(n, d):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = torch.randn(n, d, generator=g, dtype=torch.float64) + x @ torch.randn(
        d, d, generator=g, dtype=torch.float64)
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-9)
    assert rbf_cka(x, x) == pytest.approx(1.0, abs=1e-9)
    base, base_rbf = linear_cka(x, y), rbf_cka(x, y)
    assert 0.0 < base < 0.999
    q = _orthogonal(d, 1)
    for xt in (x @ q, 3.7 * x, 0.01 * (x @ q)):
        assert linear_cka(xt, y) == pytest.approx(base, abs=1e-9)
        assert rbf_cka(xt, y) == pytest.approx(base_rbf, abs=1e-6)
    # not invariant to an arbitrary invertible map (CKA is not CCA)
    a = torch.diag(torch.linspace(0.1, 10, d, dtype=torch.float64))
    assert abs(linear_cka(x @ a, y) - base) > 1e-3
    # independent noise is dissimilar
    z = torch.randn(n, d, generator=g, dtype=torch.float64)
    assert linear_cka(torch.randn(2000, 5, generator=g), torch.randn(2000, 5, generator=g)) \
        < 0.05
    assert linear_cka(x, z) < base + 0.5


def test_cka_gram_and_feature_forms_agree():
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(30, 29, generator=g), torch.randn(30, 31, generator=g)
    # 30 < 31: Gram form; drop a column of y to get the feature form on nearly the same data
    xd, yd = x.double() - x.double().mean(0), y.double() - y.double().mean(0)
    feature = float((yd.T @ xd).pow(2).sum() / ((xd.T @ xd).norm() * (yd.T @ yd).norm()))
    assert linear_cka(x, y) == pytest.approx(feature, rel=1e-9)


def test_cka_bad_input():
    with pytest.raises(ConfigError, match="same inputs"):
        linear_cka(torch.randn(5, 3), torch.randn(6, 3))
    with pytest.raises(ConfigError, match="sigma"):
        rbf_cka(torch.randn(5, 3), torch.randn(5, 3), sigma=0)


def test_feature_similarity_per_block(tiny_task):
    spec, test = tiny_task.spec, tiny_task.test_split()
    a, b = _lenet(0, spec), _lenet(1, spec)
    same = feature_similarity(a, copy.deepcopy(a), test, spec, max_samples=200)
    assert same.blocks_a == ["conv1", "conv2", "fc"] and same.n == 200
    assert all(v == pytest.approx(1.0, abs=1e-6) for v in same.per_block.values())
    other = feature_similarity(a, b, test, spec, max_samples=200, kernel="rbf")
    assert all(0 < v < 1 for v in other.per_block.values())
    assert len(other.matrix) == 3 and all(len(r) == 3 for r in other.matrix)


# ------------------------------------------------------------------------------ distance
def test_parameter_distance_known_answer(tiny_task):
    spec = tiny_task.spec
    a = _lenet(0, spec)
    b = copy.deepcopy(a)
    with torch.no_grad():
        for p in b.backbone.conv2.parameters():
            p.add_(0.5)
    numel = sum(p.numel() for p in a.backbone.conv2.parameters())
    d = parameter_distance(a, b)
    assert d.modules == ["conv1", "conv2", "fc", "head"]
    assert d.distance["conv2"] == pytest.approx(0.5 * math.sqrt(numel), rel=1e-6)
    assert d.distance["conv1"] == d.distance["fc"] == d.distance["head"] == 0.0
    assert d.total == pytest.approx(d.distance["conv2"])
    assert parameter_distance(a, a.state_dict()).total == 0.0  # a state dict works too
    layers = parameter_distance(a, b, granularity="layers")
    assert "conv2.0" in layers.modules and layers.distance["conv2.0"] > 0


# ---------------------------------------------------------------------------- bad input
def test_different_architectures_and_unknown_modules_stop(tiny_task):
    spec, test = tiny_task.spec, tiny_task.test_split()
    a = _lenet(0, spec)
    wide = _lenet(0, spec, width=2)
    five = tg.create_model("lenet", 5, 3, spec.size)
    for other in (wide, five):
        with pytest.raises(ConfigError, match="different architectures"):
            interpolate(a, other, test, spec, points=3)
        with pytest.raises(ConfigError, match="different architectures"):
            parameter_distance(a, other)
        with pytest.raises(ConfigError, match="different architectures"):
            feature_similarity(a, other, test, spec)
        with pytest.raises(ConfigError, match="different architectures"):
            rewind(a, other.state_dict(), "conv1")
    res = tg.create_model("resnet18", 10, 3, spec.size)
    with pytest.raises(ConfigError, match="'lenet' and 'resnet18'"):
        parameter_distance(a, res)
    with pytest.raises(UnknownNameError, match=r"no module\(s\) \['conv9'\].*conv1"):
        rewind(a, a.state_dict(), "conv9")
    with pytest.raises(UnknownNameError, match="conv9"):
        module_criticality(a, a.state_dict(), test, spec, modules=["conv9"])
    with pytest.raises(UnknownNameError, match="conv9"):
        parameter_distance(a, a, modules=["conv9"])
    with pytest.raises(UnknownNameError, match="no block"):
        feature_similarity(a, a, test, spec, blocks=["conv9"])


# ------------------------------------------------------------------------- interpolation
def test_interpolation_endpoints_are_the_models_and_one_pass_per_point(tiny_task,
                                                                       monkeypatch):
    spec, test = tiny_task.spec, tiny_task.test_split()
    tr = tg.Trainer(progress=False, eval_batch_size=64)
    a, b = _lenet(0, spec), _lenet(1, spec)
    with torch.no_grad():  # distinct running statistics, so endpoints are not trivial
        a.backbone.conv1[1].running_mean.fill_(0.3)
    own_a, own_b = tr.evaluate(a, test, spec), tr.evaluate(b, test, spec)
    calls = []
    real = tg.Trainer.evaluate
    monkeypatch.setattr(tg.Trainer, "evaluate",
                        lambda self, *args: calls.append(1) or real(self, *args))
    r = interpolate(a, b, test, spec, points=11, trainer=tr,
                    bn_data=tiny_task.train_data().target_labeled)
    assert len(calls) == 11 and len(r.lambdas) == 11  # one evaluation pass per point
    assert r.lambdas[0] == 0.0 and r.lambdas[-1] == 1.0
    assert r.accuracy[0] == own_a.accuracy and r.accuracy[-1] == own_b.accuracy
    assert r.loss[0] == pytest.approx(own_a.loss) and r.loss[-1] == pytest.approx(own_b.loss)
    assert r.barrier >= 0.0 and r.barrier_vs_mean >= 0.0
    same = interpolate(a, copy.deepcopy(a), test, spec, points=5, trainer=tr)
    assert same.barrier == pytest.approx(0.0, abs=1e-4)
    assert len(set(same.accuracy)) == 1
    # the input models are left untouched
    assert tr.evaluate(a, test, spec).accuracy == own_a.accuracy
    with pytest.raises(ConfigError, match="at least 2"):
        interpolate(a, b, test, spec, points=1)


# --------------------------------------------------------------------- rewinding, mu
@pytest.mark.parametrize("granularity,module", [("blocks", "conv2"), ("blocks", "head"),
                                                ("layers", "conv1.1")])
def test_rewinding_restores_exactly_one_module(tiny_task, granularity, module):
    spec = tiny_task.spec
    final, start = _lenet(0, spec), _lenet(1, spec)
    with torch.no_grad():
        start.backbone.conv1[1].running_var.fill_(2.0)
    init = start.state_dict()
    out = rewind(final, init, module, granularity=granularity)
    prefix = {"conv2": "backbone.conv2.", "head": "head.", "conv1.1": "backbone.conv1.1."}[
        module]
    changed = 0
    for k, v in out.state_dict().items():
        if k.startswith(prefix):
            assert torch.equal(v, init[k]), k
            changed += 1
        else:
            assert torch.equal(v, final.state_dict()[k]), k
    assert changed > 0
    keys = [k for k in init if k.startswith(prefix)]
    assert any(not torch.equal(final.state_dict()[k], out.state_dict()[k]) for k in keys)


def _head(split, n: int = 200):
    pick = torch.linspace(0, len(split) - 1, n).long()
    return type(split)(split.name, split.images[pick], split.labels[pick], split.indices[pick])


def test_criticality_grid_and_measure(tiny_task):
    spec, test = tiny_task.spec, _head(tiny_task.test_split())
    tr = tg.Trainer(progress=False)
    final, start = _lenet(0, spec), _lenet(1, spec)
    base = 100 - tr.evaluate(final, test, spec).accuracy
    r = module_criticality(final, start.state_dict(), test, spec, alphas=(0, 0.5, 1),
                           sigmas=(0.01, 0.1), samples=2, trainer=tr)
    assert r.sigmas == [0.0, 0.01, 0.1] and r.modules == ["conv1", "conv2", "fc", "head"]
    assert r.base_error == pytest.approx(base) and r.threshold == pytest.approx(base + 5)
    for m in r.modules:
        assert r.error[m][-1][0] == pytest.approx(base)  # alpha = 1, no noise: the model
        assert r.mu[m] >= 0
    # a module whose start equals its trained value is never critical
    same = module_criticality(final, final.state_dict(), test, spec, alphas=(0, 1),
                              sigmas=(0.01,), samples=1, trainer=tr)
    assert all(v == 0.0 for v in same.mu.values())
    assert all(v == pytest.approx(0.0, abs=1e-6) for v in same.rewind_drop.values())


# -------------------------------------------------------------------------- shuffling
def test_block_shuffle_identity_multiset_and_errors():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (6, 3, 24, 24), generator=g, dtype=torch.uint8)
    assert torch.equal(block_shuffle(x, 1, seed=5), x)
    assert valid_grids(24) == [1, 2, 3, 4, 6, 8, 12, 24]
    for k in valid_grids(24):
        for mode in ("per_image", "shared"):
            y = block_shuffle(x, k, seed=3, mode=mode)
            assert torch.equal(y.flatten(1).sort(1).values, x.flatten(1).sort(1).values)
            # every block of the output is a block of the input, channels moving together
            b = 24 // k
            blocks_x = x.unfold(2, b, b).unfold(3, b, b).permute(0, 2, 3, 1, 4, 5)
            blocks_y = y.unfold(2, b, b).unfold(3, b, b).permute(0, 2, 3, 1, 4, 5)
            bx = blocks_x.reshape(6, k * k, -1)
            by = blocks_y.reshape(6, k * k, -1)
            for i in range(6):
                assert sorted(map(tuple, bx[i].tolist())) == sorted(map(tuple, by[i].tolist()))
    y1, y2 = block_shuffle(x, 4, seed=3), block_shuffle(x, 4, seed=3)
    assert torch.equal(y1, y2) and not torch.equal(y1, block_shuffle(x, 4, seed=4))
    # per image: the same image is shuffled the same way whatever else is in the batch
    one = block_shuffle(x[2:3], 4, seed=3, indices=torch.tensor([2]))
    assert torch.equal(one[0], y1[2])
    # shared: one permutation for every image; per image: not
    same = torch.stack([x[0]] * 6)
    assert len({block_shuffle(same, 4, 0, "shared")[i].sum().item() for i in range(6)}) == 1
    pi = block_shuffle(same, 4, 0, "per_image")
    assert len({tuple(pi[i].flatten().tolist()) for i in range(6)}) == 6
    with pytest.raises(DataError, match=r"k = 5 .*\[1, 2, 3, 4, 6, 8, 12, 24\]"):
        block_shuffle(x, 5)
    with pytest.raises(DataError, match="mode"):
        block_shuffle(x, 2, mode="sometimes")


def test_shuffled_task_keeps_splits_and_shuffles_every_target_split(tiny_task):
    t = shuffled_task(tiny_task, 4)
    a, b = tiny_task.train_data(), t.train_data()
    for name in ("target_labeled", "target_val"):
        sa, sb = getattr(a, name), getattr(b, name)
        assert torch.equal(sa.indices, sb.indices) and torch.equal(sa.labels, sb.labels)
        assert not torch.equal(sa.images, sb.images)
        assert torch.equal(sa.images.flatten(1).sort(1).values,
                           sb.images.flatten(1).sort(1).values)
    ta, tb = tiny_task.test_split(), t.test_split()
    assert torch.equal(ta.indices, tb.indices) and not torch.equal(ta.images, tb.images)
    assert torch.equal(a.source.images, b.source.images)  # the source is not shuffled
    assert torch.equal(shuffled_task(tiny_task, 1).test_split().images, ta.images)
    with pytest.raises(DataError, match="does not divide"):
        shuffled_task(tiny_task, 3)
    d = shuffled_domain(tg.load_domain("uci-digits"), 2, seed=1)
    assert d.name == "uci-digits~shuffle2-per_image"


# ------------------------------------------------------------------ checkpoints, init
def test_snapshots_match_plain_pretraining_and_init_recording(tiny_task, tmp_path):
    data = tiny_task.train_data()
    tr = tg.Trainer(iterations=8, batch_size=8, progress=False)
    snaps = pretrain_with_snapshots(data, tr, [0, 4, 8])
    plain = pretrain_source(data, tr)
    assert sorted(snaps) == [0, 4, 8]
    assert all(torch.equal(snaps[8][k], plain[k].cpu()) for k in plain)
    assert not torch.equal(snaps[0]["head.weight"], snaps[8]["head.weight"])
    with pytest.raises(ConfigError, match="snapshot steps"):
        pretrain_with_snapshots(data, tr, [9])
    path = tmp_path / "src.pt"
    torch.save(plain, path)
    m = tg.create_method("finetune", pretrained=str(path))
    rec = recording_init(m)
    r1 = tr.run(m, tiny_task)
    r2 = tr.run(rec, tiny_task)
    assert r1.test_accuracy == r2.test_accuracy  # recording changes nothing
    init = rec.init_state_
    bb = [k for k in init if k.startswith("backbone.")]
    assert all(torch.equal(init[k], plain[k].cpu()) for k in bb)  # the pre-trained start
    assert not torch.equal(init["head.weight"], plain["head.weight"].cpu())  # fresh head


# --------------------------------------------------------------------- other models
@pytest.mark.parametrize("name,kw", [("resnet18", {"small_input": True}), ("mobilenet_v2", {})])
def test_analyses_walk_the_blocks_of_any_registered_model(tiny_task, name, kw):
    spec = tiny_task.spec
    test = tiny_task.test_split()
    torch.manual_seed(0)
    a = tg.create_model(name, 10, 3, spec.size, **kw).eval()
    torch.manual_seed(1)
    b = tg.create_model(name, 10, 3, spec.size, **kw).eval()
    sim = feature_similarity(a, b, test, spec, max_samples=12, cross=False)
    assert list(sim.per_block) == a.blocks
    d = parameter_distance(a, b)
    assert d.modules == [*a.blocks, "head"] and all(v > 0 for v in d.distance.values())
    blk = a.blocks[1]
    out = rewind(a, b.state_dict(), blk)
    pre = f"backbone.{blk}."
    assert all(torch.equal(v, (b if k.startswith(pre) else a).state_dict()[k])
               for k, v in out.state_dict().items())


# --------------------------------------------------------------------------- explain
def test_explain_end_to_end_writes_plots_and_summary(tmp_path):
    from transferguard.experiments import explain
    from transferguard.report.explain import write_explain_report

    task = tg.TransferTask("mnist", "uci-digits", labeled_percent=20, source_size=200,
                           test_fraction=0.15, spec=tg.InputSpec(3, 16), seed=0)
    tr = tg.Trainer(iterations=6, batch_size=8, eval_every=3, log_every=3, progress=False)
    r = explain(task, tmp_path, seeds=[0, 1], trainer=tr, pretrain_iterations=6,
                checkpoint_fractions=(0.0, 1.0), grids=[1, 16], points=3,
                criticality_samples=1, criticality_alphas=(0.0, 1.0),
                criticality_sigmas=(0.1,), cka_samples=100, echo=None)
    assert set(r.interpolation) == {"P-T/P-T", "RI-T/RI-T", "P-T/RI-T", "P/P-T"}
    assert r.checkpoints.steps == [0, 6] and r.shuffle.grids == [1, 16]
    found = r.findings()
    assert len(found) == 5 and all(isinstance(f["holds"], bool) for f in found)
    # fine-tuned from the same start, a few steps apart: closer than two scratch models
    assert r.mean_distance("P-T/P-T")[1] < r.mean_distance("RI-T/RI-T")[1]
    summary = write_explain_report(r, tmp_path / "report")
    text = summary.read_text()
    assert "The five findings" in text and "Block shuffling" in text
    for name in ("interpolation", "cka", "distance", "criticality", "checkpoints", "shuffle"):
        assert (tmp_path / "report" / f"{name}.png").stat().st_size > 1000
    with pytest.raises(ConfigError, match="two seeds"):
        explain(task, tmp_path, seeds=[0], trainer=tr, echo=None)
    with pytest.raises(ConfigError, match="unknown analyses"):
        explain(task, tmp_path, analyses=["cka", "vibes"], trainer=tr, echo=None)


def test_cli_explain_writes_the_summary_and_refuses_bad_grids(tmp_path, capsys):
    from transferguard.cli import main

    flags = ["explain", "--source", "mnist", "--target", "uci-digits", "--labeled", "20",
             "--input-size", "16", "--iterations", "3", "--batch-size", "8", "--seeds", "0",
             "1", "--pretrain-iterations", "4", "--out", str(tmp_path)]
    assert main([*flags, "--grids", "1", "3"]) == 2
    err = capsys.readouterr().err
    assert "grids [3] do not divide the input size 16" in err and "[1, 2, 4, 8, 16]" in err
    assert main([*flags, "--analyses", "distance", "cka"]) == 0
    out = capsys.readouterr().out
    assert "closer in parameter space" in out
    summary = (tmp_path / "summary.md").read_text()
    assert "Parameter distance" in summary and (tmp_path / "cka.png").exists()
