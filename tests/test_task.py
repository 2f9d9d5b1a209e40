"""The transfer protocol: perturbation rates and masks, splits, streams, label spaces."""

from __future__ import annotations

import pytest
import torch

import transferguard as tg
from transferguard.data import BatchStream, perturb_source, stratified_split
from transferguard.errors import DataError


@pytest.mark.parametrize("eps_x,eps_y", [(0.0, 0.0), (0.3, 0.7), (1.0, 1.0)])
def test_perturbation_rates_and_masks(eps_x, eps_y):
    d = tg.load_domain("mnist").convert(tg.InputSpec(1, 28))
    g = torch.Generator().manual_seed(0)
    p = perturb_source(d.images, d.labels, 10, eps_x, eps_y, g)
    n = len(d)
    assert abs(p.x_mask.float().mean().item() - eps_x) < 0.03
    assert abs(p.y_mask.float().mean().item() - eps_y) < 0.03
    changed_x = (p.images != d.images).flatten(1).any(1)
    assert torch.equal(changed_x, p.x_mask)  # an image changed iff its mask is set
    assert not (p.label_flipped & ~p.y_mask).any()  # labels change only under the mask
    # uniform redraw keeps the old label 1 time in 10
    if eps_y > 0:
        kept = (~p.label_flipped & p.y_mask).sum().item() / max(1, p.y_mask.sum().item())
        assert 0.05 < kept < 0.15
    assert torch.equal(p.clean_labels, d.labels)
    assert p.images.shape == d.images.shape and n == len(p.labels)


def test_flip_label_noise_changes_every_masked_label():
    d = tg.load_domain("uci-digits")
    p = perturb_source(d.images, d.labels, 10, 0.0, 0.5, torch.Generator().manual_seed(1),
                       label_noise="flip")
    assert torch.equal(p.label_flipped, p.y_mask)


def test_corruption_is_strong():
    d = tg.load_domain("mnist").convert(tg.InputSpec(1, 28))
    p = perturb_source(d.images[:500], d.labels[:500], 10, 1.0, 0.0,
                       torch.Generator().manual_seed(0))
    diff = (p.images.float() - d.images[:500].float()).abs().mean()
    assert diff > 30  # rotation + flips + 20% salt and pepper, not a few pixels


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan"), "x"])
def test_eps_outside_unit_interval_is_rejected(bad):
    with pytest.raises(DataError, match="eps_x must"):
        tg.TransferTask("mnist", "uci-digits", eps_x=bad)


def test_eps_and_eps_x_together_is_ambiguous():
    with pytest.raises(DataError, match="not both"):
        tg.TransferTask("mnist", "uci-digits", eps=0.3, eps_x=0.1)


def test_labeled_percent_range_message():
    with pytest.raises(DataError, match="for 10% labeled, pass 10"):
        tg.TransferTask("mnist", "uci-digits", labeled_percent=150)


def _all_indices(task):
    data = task.train_data()
    return {
        "labeled": set(data.target_labeled.indices.tolist()),
        "unlabeled": set(data.target_unlabeled.indices.tolist()),
        "val": set(data.target_val.indices.tolist()),
        "test": set(task.test_split().indices.tolist()),
    }


@pytest.mark.parametrize("labeled", [0, 10, 30, 50])
def test_target_splits_are_disjoint_stratified_and_cover_the_target(labeled):
    task = tg.TransferTask("mnist", "uci-digits", labeled_percent=labeled, seed=3,
                           spec=tg.InputSpec(3, 16))
    parts = _all_indices(task)
    names = list(parts)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert not parts[a] & parts[b], f"{a} and {b} overlap"
    assert set().union(*parts.values()) == set(range(1797))
    test = task.test_split()
    assert abs(len(test) - 1797 / 2) <= 10
    counts = test.class_counts(10).float()
    target = tg.load_domain("uci-digits").class_counts().float()
    assert torch.allclose(counts / target, torch.full((10,), 0.5), atol=0.02)  # stratified
    data = task.train_data()
    lab = len(data.target_labeled) + len(data.target_val)
    pool = lab + len(data.target_unlabeled)
    assert abs(lab / pool - labeled / 100) < 0.02
    if labeled:
        assert (data.target_labeled.class_counts(10) >= 1).all()  # >= 1 per class
        assert len(data.target_val) > 0
    else:
        assert len(data.target_labeled) == 0 and len(data.target_val) == 0
    assert data.target_unlabeled.labels is None


def test_unlabeled_pool_option():
    rest = tg.TransferTask("mnist", "uci-digits", labeled_percent=30, seed=2)
    pool = tg.TransferTask("mnist", "uci-digits", labeled_percent=30, seed=2, unlabeled="pool")
    a, b = rest.train_data(), pool.train_data()
    assert torch.equal(a.target_labeled.indices, b.target_labeled.indices)
    assert set(b.target_unlabeled.indices.tolist()) == (
        set(a.target_unlabeled.indices.tolist()) | set(a.target_labeled.indices.tolist()))
    assert not set(b.target_unlabeled.indices.tolist()) & set(b.target_val.indices.tolist())
    assert "unlabeled" not in rest.config() and pool.config()["unlabeled"] == "pool"
    with pytest.raises(DataError, match="unlabeled must be"):
        tg.TransferTask("mnist", "uci-digits", unlabeled="everything")


def test_test_split_is_never_yielded_by_training_streams(tiny_task):
    data = tiny_task.train_data()
    assert not hasattr(data, "target_test") and not hasattr(data, "test")
    test_idx = set(tiny_task.test_split().indices.tolist())
    for name in ("target_labeled", "target_unlabeled", "target_val"):
        stream = BatchStream(getattr(data, name), 16, data.spec, seed=0)
        seen = set()
        for _ in range(len(stream) // 16 + 2):  # a little over one epoch
            seen |= set(stream.next().index.tolist())
        assert seen == set(getattr(data, name).indices.tolist())  # every sample, no other
        assert not seen & test_idx


def test_same_seed_same_splits_other_seed_other_splits():
    a = tg.TransferTask("mnist", "uci-digits", eps=0.5, labeled_percent=10, seed=1)
    b = tg.TransferTask("mnist", "uci-digits", eps=0.5, labeled_percent=10, seed=1)
    c = a.with_seed(2)
    assert torch.equal(a.test_split().indices, b.test_split().indices)
    assert torch.equal(a.perturbation.y_mask, b.perturbation.y_mask)
    assert not torch.equal(a.test_split().indices, c.test_split().indices)
    assert not torch.equal(a.perturbation.x_mask, c.perturbation.x_mask)


def test_batch_stream_shapes_normalisation_and_determinism(tiny_task):
    data = tiny_task.train_data()
    s1 = BatchStream(data.source, 32, data.spec, seed=5)
    s2 = BatchStream(data.source, 32, data.spec, seed=5)
    b1, b2 = s1.next(), s2.next()
    assert b1.x.shape == (32, 3, 16, 16) and b1.x.dtype == torch.float32
    assert b1.x.min() >= -1 and b1.x.max() <= 1
    assert torch.equal(b1.index, b2.index) and torch.equal(b1.x, b2.x)
    # a split smaller than the batch still yields full batches
    small = BatchStream(data.target_val, 64, data.spec, seed=0)
    assert small.next().x.shape[0] == 64


def test_mismatched_label_spaces_need_a_label_map():
    grid = tg.Domain("letters", torch.zeros(20, 1, 8, 8, dtype=torch.uint8),
                     torch.arange(20) % 4, ("a", "b", "c", "d"))
    with pytest.raises(DataError, match="label_map"):
        tg.TransferTask(grid, "uci-digits").train_data()
    task = tg.TransferTask(grid, "uci-digits", label_map={"a": "0", "b": "1"},
                           spec=tg.InputSpec(3, 16))
    src = task.train_data().source
    assert len(src) == 10 and set(src.labels.tolist()) == {0, 1}
    with pytest.raises(DataError, match="unknown classes"):
        tg.TransferTask(grid, "uci-digits", label_map={"z": "0"}).train_data()


def test_stratified_split_keeps_one():
    labels = torch.tensor([0, 0, 1, 1, 1])
    _, rest = stratified_split(labels, 0.9, torch.Generator().manual_seed(0), 2,
                                    keep_one=True)
    assert set(rest.tolist()) & {0, 1} and set(rest.tolist()) & {2, 3, 4}


def test_source_size_is_honoured_exactly_and_stratified():
    task = tg.TransferTask("mnist", "uci-digits", source_size=64, spec=tg.InputSpec(1, 8))
    labels = task.train_data().source.labels
    assert len(labels) == 64
    counts = torch.bincount(labels, minlength=10)
    assert int(counts.max() - counts.min()) <= 1
    with pytest.raises(DataError, match="below the number of classes"):
        tg.TransferTask("mnist", "uci-digits", source_size=4, spec=tg.InputSpec(1, 8)).summary()


def test_empty_test_split_is_refused():
    with pytest.raises(DataError, match="test_fraction"):
        tg.TransferTask("mnist", "uci-digits", test_fraction=0.0)


def test_corruption_rate_without_corruptions_is_refused():
    with pytest.raises(DataError, match="corruptions is empty"):
        tg.TransferTask("mnist", "uci-digits", eps_x=0.5, corruptions=(),
                        spec=tg.InputSpec(1, 8)).summary()


def test_same_source_and_target_warns():
    with pytest.warns(UserWarning, match="same domain"):
        tg.TransferTask("uci-digits", "uci-digits")
