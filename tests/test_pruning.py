"""Neuron impact, prune_transfer, structural removal, unit pictures and the cross-domain matrix."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from torch import nn

import transferguard as tg
from transferguard.analysis import (
    CrossDomainMatrix,
    ImpactResult,
    cross_domain_matrix,
    neuron_impact,
    top_activating,
)
from transferguard.data import Split
from transferguard.errors import ConfigError, DataError, UnknownNameError
from transferguard.methods import pretrain_source
from transferguard.methods.pruning import model_cost, remove_units, silence_units

SPEC8 = tg.InputSpec(1, 8)


def planted() -> tuple[tg.TransferModel, Split]:
    """3 classes of 8x8 images (class c: rows 2c, 2c+1 bright); F has one detector per class
    (units 0-2) and unit 3, a second detector of class 0 that the head wires to class 1."""
    fc = nn.Linear(64, 4)
    with torch.no_grad():
        fc.weight.zero_()
        fc.bias.zero_()
        for c in range(3):
            fc.weight[c].view(8, 8)[2 * c : 2 * c + 2] = 1 / 16
        fc.weight[3] = fc.weight[0]
    backbone = nn.Sequential(OrderedDict(fc=nn.Sequential(nn.Flatten(), fc, nn.ReLU())))
    model = tg.TransferModel(backbone, 4, 3, ["fc"], "planted")
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.zero_()
        for c in range(3):
            model.head.weight[c, c] = 4.0
        model.head.weight[1, 3] = 3.0  # the harmful wire: class-0 evidence votes for class 1
    labels = torch.arange(3).repeat(10)
    images = torch.zeros(30, 1, 8, 8, dtype=torch.uint8)
    for i, c in enumerate(labels.tolist()):
        images[i, 0, 2 * c : 2 * c + 2] = 255
    return model, Split("target_labeled", images, labels, torch.arange(30))


def lenet_and_data(n: int = 24) -> tuple[tg.TransferModel, Split, tg.InputSpec]:
    torch.manual_seed(0)
    spec = tg.InputSpec(3, 16)
    model = tg.create_model("lenet", 10, 3, 16).eval()
    for m in model.modules():  # non-trivial batch-norm statistics
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
    g = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (n, 3, 16, 16), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 10, (n,), generator=g)
    return model, Split("target_labeled", images, labels, torch.arange(n)), spec


def block_outputs(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    outs = {}
    handles = [model.backbone.get_submodule(b).register_forward_hook(
        lambda m, i, o, b=b: outs.__setitem__(b, o.detach().clone())) for b in model.blocks]
    with torch.no_grad():
        outs["logits"] = model(x)
    for h in handles:
        h.remove()
    return outs


# ----------------------------------------------------------------------- impact analysis
def test_silencing_a_unit_changes_only_that_unit():
    model, split, spec = lenet_and_data()
    x = spec.normalize(split.images)
    before = block_outputs(model, x)
    mask = torch.zeros(48, dtype=torch.bool)
    mask[5] = True
    handles = silence_units(model, {"conv2": mask})
    after = block_outputs(model, x)
    for h in handles:
        h.remove()
    assert torch.equal(after["conv1"], before["conv1"])
    assert torch.all(after["conv2"][:, 5] == 0) and before["conv2"][:, 5].abs().sum() > 0
    keep = torch.arange(48) != 5
    assert torch.equal(after["conv2"][:, keep], before["conv2"][:, keep])
    assert not torch.equal(after["fc"], before["fc"])  # later layers do see the change
    assert torch.equal(block_outputs(model, x)["conv2"], before["conv2"])  # hooks removed


def test_exact_impact_equals_silencing_one_unit_at_a_time():
    model, split, spec = lenet_and_data()
    res = neuron_impact(model, split, spec, max_elements=40000)  # groups: several forwards
    x = spec.normalize(split.images)
    with torch.no_grad():
        base = nn.functional.cross_entropy(model(x), split.labels)
    for layer, unit in (("conv1", 0), ("conv1", 31), ("conv2", 17), ("fc", 99), ("head", 4)):
        mask = torch.zeros(res.units(layer), dtype=torch.bool)
        mask[unit] = True
        handles = silence_units(model, {layer: mask})
        with torch.no_grad():
            loss = nn.functional.cross_entropy(model(x), split.labels)
        for h in handles:
            h.remove()
        assert float(res.impact[layer][unit]) == pytest.approx(float(loss - base), abs=1e-5)
    assert res.forwards > 4 and res.n_samples == 24 and set(res.layers) == {
        "conv1", "conv2", "fc", "head"}


@pytest.mark.parametrize("estimator", ["exact", "taylor"])
def test_planted_harmful_unit_gets_the_most_negative_impact(estimator):
    model, split = planted()
    res = neuron_impact(model, split, SPEC8, layers=["fc"], estimator=estimator)
    assert res.ranking(1)[0][:2] == ("fc", 3)
    assert float(res.impact["fc"][3]) < 0 < float(res.impact["fc"][:3].min())
    assert res.harmful()["fc"].tolist() == [False, False, False, True]
    assert res.select("negative")["fc"].tolist() == [False, False, False, True]
    if estimator == "exact":
        assert float(res.delta_accuracy["fc"][3]) >= 0  # removing it never costs accuracy
    else:
        assert res.check["units"] == 4 and res.check["sign_agreement"] == 1.0


def test_selection_rules_cap_and_normalisation():
    t = torch.tensor([-3.0, -2.0, -1.0, 0.5, 2.0, 4.0])
    res = ImpactResult(["a"], {"a": t}, {"a": torch.ones(6)}, {}, 1.0, 50.0, 10)
    assert res.select("negative", max_fraction=1.0)["a"].sum() == 3
    assert res.select("negative", max_fraction=0.34)["a"].tolist() == [True, True, False,
                                                                         False, False, False]
    assert res.select("threshold", threshold=1.0, max_fraction=1.0)["a"].sum() == 4
    assert res.select("fraction", fraction=0.5)["a"].tolist()[:3] == [True] * 3
    assert res.select("fraction", fraction=1.0)["a"].sum() == 5  # one unit always stays
    assert res.select("fraction", fraction=0.0)["a"].sum() == 0
    assert res.harmful(z=2.0)["a"].tolist()[:2] == [True, False]  # beyond two std errors
    assert torch.sigmoid(res.normalised()["a"].max()) == pytest.approx(0.9)
    assert res.suggested_cut(blocks=["a"]) == 1 and res.suggested_cut(level=0.4) == 0
    back = ImpactResult.from_dict(res.to_dict())
    assert torch.equal(back.impact["a"], t)


def test_impact_bad_input():
    model, split, spec = lenet_and_data()
    with pytest.raises(UnknownNameError, match=r"no layer 'conv9'.*conv1"):
        neuron_impact(model, split, spec, layers=["conv9"])
    with pytest.raises(ConfigError, match="estimator"):
        neuron_impact(model, split, spec, estimator="guess")
    with pytest.raises(DataError, match="test split"):
        neuron_impact(model, Split("target_test", split.images, split.labels, split.indices),
                      spec)
    with pytest.raises(DataError, match="unlabeled"):
        neuron_impact(model, split.unlabeled(), spec)
    res = neuron_impact(model, split, spec, layers=["fc"])
    for bad in (-0.1, 1.5):
        with pytest.raises(ConfigError, match=r"fraction.*\[0, 1\]"):
            res.select("fraction", fraction=bad)
    with pytest.raises(UnknownNameError, match="no impact was computed"):
        res.select(layers=["conv1"])


# ----------------------------------------------------------------------- removal
def test_pruning_an_empty_set_is_the_identity():
    pytest.importorskip("torch_pruning")
    model, split, spec = lenet_and_data()
    x = spec.normalize(split.images)
    empty = {b: torch.zeros(n, dtype=torch.bool) for b, n in (("conv1", 32), ("conv2", 48),
                                                              ("fc", 100))}
    assert silence_units(model, empty) == []
    smaller = remove_units(model, empty, spec)
    with torch.no_grad():
        assert torch.equal(smaller(x), model(x))
    assert model_cost(smaller, spec) == model_cost(model, spec)


def test_structural_removal_keeps_the_kept_units_equal_to_the_masked_model():
    pytest.importorskip("torch_pruning")
    model, split, spec = lenet_and_data()
    g = torch.Generator().manual_seed(3)
    pruned = {b: torch.rand(n, generator=g) < 0.3 for b, n in (("conv1", 32), ("conv2", 48),
                                                               ("fc", 100))}
    smaller = remove_units(model, pruned, spec)
    x = spec.normalize(split.images)
    handles = silence_units(model, pruned)
    masked = block_outputs(model, x)
    for h in handles:
        h.remove()
    removed = block_outputs(smaller, x)
    for b, mask in pruned.items():
        assert removed[b].shape[1] == int((~mask).sum())
        assert torch.allclose(removed[b], masked[b][:, ~mask], atol=1e-5)
    assert torch.allclose(removed["logits"], masked["logits"], atol=1e-5)
    before, after = model_cost(model, spec), model_cost(smaller, spec)
    assert after["params"] < before["params"] and after["macs"] < before["macs"]
    assert smaller.feature_dim == smaller.head.in_features == int((~pruned["fc"]).sum())
    with pytest.raises(ConfigError, match="classes"):
        remove_units(model, {"head": torch.ones(10, dtype=torch.bool)}, spec)


def test_model_cost_known_answer():
    model, _ = planted()
    assert model_cost(model, SPEC8) == {"params": 64 * 4 + 4 + 4 * 3 + 3,
                                        "macs": 64 * 4 + 4 * 3}


# ----------------------------------------------------------------------- the method
@pytest.fixture(scope="module")
def source_ckpt(tiny_task, tmp_path_factory):
    tr = tg.Trainer(iterations=10, batch_size=16, progress=False)
    path = tmp_path_factory.mktemp("prune") / "source.pt"
    torch.save(pretrain_source(tiny_task.train_data(), tr), path)
    return str(path)


def _prepared(task, ckpt, **params):
    tr = tg.Trainer(iterations=8, batch_size=16, progress=False)
    m = tg.create_method("prune_transfer", pretrained=ckpt, **params)
    data = task.train_data()
    m.setup(data, tr)
    m.prepare(data, tr)
    return m, data, tr


def test_prune_transfer_remove_structural_and_dropout(tiny_task, source_ckpt):
    pytest.importorskip("torch_pruning")
    m, data, tr = _prepared(tiny_task, source_ckpt, structural=True, rule="fraction",
                            fraction=0.25)
    assert m.pruned_counts() == {"conv1": (8, 32), "conv2": (12, 48), "fc": (25, 100)}
    assert m.cost_after_["params"] < m.cost_before_["params"]
    assert m.model_.backbone.conv1[0].out_channels == 24 and m.model_.head.in_features == 75
    assert m.impact_.n_samples == len(data.target_labeled) + len(data.target_val)
    res = tr.run(m, tiny_task)
    assert res.trained and 0 <= res.test_accuracy <= 100

    d, _, _ = _prepared(tiny_task, source_ckpt, mode="dropout")
    x = data.spec.normalize(data.target_val.images[:8])
    d.model_.eval()
    with torch.no_grad():
        eval_out = d.model_(x)
        for h in d.hooks_:
            h.remove()
        plain = d.model_(x)
    assert torch.equal(eval_out, plain)  # DGD is the identity at test time
    p = d.keep_prob_["conv2"]
    order = torch.argsort(d.impact_.impact["conv2"])
    assert p[order[0]] <= p[order[-1]] and float(p.max()) == pytest.approx(0.9, abs=1e-4)


def test_prune_transfer_nothing_pruned_and_bad_options(tiny_task, source_ckpt):
    m, _, _ = _prepared(tiny_task, source_ckpt, rule="fraction", fraction=0.0)
    assert all(k == 0 for k, _ in m.pruned_counts().values()) and m.hooks_ == []
    with pytest.raises(ConfigError, match=r"fraction.*\[0, 1\]"):
        tg.create_method("prune_transfer", fraction=1.5)
    with pytest.raises(ConfigError, match="mode"):
        tg.create_method("prune_transfer", mode="shrink")
    with pytest.raises(ConfigError, match="structural"):
        tg.create_method("prune_transfer", mode="dropout", structural=True)
    with pytest.raises(UnknownNameError, match=r"not blocks of 'lenet'.*conv1"):
        _prepared(tiny_task, source_ckpt, layers=["conv9"])
    twin = tg.create_method("prune_transfer").twin()
    assert twin.label == "finetune_T"


# ----------------------------------------------------------------------- pictures
def test_top_activating_images_and_plots(tmp_path):
    from transferguard.report.plots import impact_depth_plot, matrix_heatmap, unit_grid

    model, split = planted()
    pics = top_activating(model, "fc", [0, 2], split, SPEC8, k=5)
    assert [split.labels[i].item() for i in pics[0].indices] == [0] * 5
    assert [split.labels[i].item() for i in pics[1].indices] == [2] * 5
    assert pics[0].values == sorted(pics[0].values, reverse=True)
    assert pics[0].images.shape == (5, 1, 8, 8)
    with pytest.raises(ConfigError, match="has 4 units"):
        top_activating(model, "fc", 7, split, SPEC8)
    unit_grid(pics, tmp_path / "units.png")
    res = neuron_impact(model, split, SPEC8)
    impact_depth_plot({"a": [res, res]}, tmp_path / "depth.png")
    mat = CrossDomainMatrix(["a", "b"], [0], [[[80.0], [40.0]], [[20.0], [50.0]]])
    matrix_heatmap(mat, tmp_path / "m.png", ("raw", "row", "column"))
    assert all((tmp_path / f).stat().st_size > 1000 for f in ("units.png", "depth.png",
                                                               "m.png"))


# ----------------------------------------------------------------------- the matrix
def test_matrix_views_known_answer():
    mat = CrossDomainMatrix(["a", "b"], [0, 1], [[[80.0, 80.0], [40.0, 20.0]],
                                                 [[20.0, 20.0], [50.0, 50.0]]])
    assert mat.raw() == [[80.0, 30.0], [20.0, 50.0]]
    assert mat.relative("row") == [[0.0, -62.5], [-60.0, 0.0]]
    assert mat.relative("column") == [[0.0, -40.0], [-75.0, 0.0]]
    assert mat.percent_drop() == [62.5, 60.0]
    assert mat.sd()[0][1] == pytest.approx(14.142, abs=1e-3) and mat.sd()[0][0] == 0.0
    with pytest.raises(DataError, match="view"):
        mat.view("diagonal")


def test_matrix_runs_resume_and_label_space_errors(tmp_path):
    from transferguard.experiments import run_matrix

    spec = tg.InputSpec(3, 16)
    tr = tg.Trainer(iterations=3, batch_size=8, progress=False)
    calls = []
    res = run_matrix(["uci-digits", "mnist"], tmp_path, spec=spec, trainer=tr, echo=calls.append)
    assert len(calls) == 2 and all("resumed" not in c for c in calls)
    assert len(res.accuracy) == 2 and all(len(c) == 1 for row in res.accuracy for c in row)
    again = run_matrix(["uci-digits", "mnist"], tmp_path, spec=spec, trainer=tr, resume=True,
                       echo=calls.append)
    assert all("resumed" in c for c in calls[2:]) and again.accuracy == res.accuracy
    letters = tg.Domain("letters", torch.zeros(4, 1, 8, 8, dtype=torch.uint8),
                        torch.tensor([0, 1, 0, 1]), ("a", "b"))
    with pytest.raises(DataError, match="label space"):
        cross_domain_matrix(["uci-digits", letters], spec=spec, trainer=tr)
    with pytest.raises(DataError, match="at least two"):
        cross_domain_matrix(["uci-digits"], spec=spec)


def test_matrix_cli(tmp_path, capsys):
    from PIL import Image

    from transferguard.cli import main

    for c in ("x", "y"):
        (tmp_path / "f" / c).mkdir(parents=True)
        for i in range(2):
            Image.new("L", (8, 8), 40 * i).save(tmp_path / "f" / c / f"{i}.png")
    rc = main(["matrix", "uci-digits", f"folder:{tmp_path / 'f'}", "--input-size", "16",
               "--out", str(tmp_path / "r")])
    assert rc == 2 and "label space" in capsys.readouterr().err
    rc = main(["matrix", "uci-digits", "mnist", "--input-size", "16", "--iterations", "2",
               "--out", str(tmp_path / "r"), "--view", "row", "--markdown"])
    out = capsys.readouterr().out
    assert rc == 0 and "| uci-digits" in out and "0%" in out


def test_impact_cli(tmp_path, capsys):
    from transferguard.cli import main

    rc = main(["impact", "--source", "mnist", "--target", "uci-digits", "--input-size", "16",
               "--iterations", "8", "--labeled", "20", "--out", str(tmp_path), "--top", "3",
               "--units", str(tmp_path / "u.png")])
    out = capsys.readouterr().out
    assert rc == 0 and "suggested cut point" in out and "conv2" in out
    assert (tmp_path / "u.png").stat().st_size > 1000
    rc = main(["impact", "--source", "mnist", "--target", "uci-digits", "--input-size", "16",
               "--iterations", "8", "--labeled", "0", "--out", str(tmp_path)])
    assert rc == 2 and "L = 0" in capsys.readouterr().err
