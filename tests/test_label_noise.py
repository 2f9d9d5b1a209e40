"""Asymmetric label noise: pair-flip and permute change exactly the masked labels."""

import pytest
import torch

import transferguard as tg
from transferguard.data import noise_class_map, perturb_source
from transferguard.errors import DataError


@pytest.mark.parametrize("kind", ["pairflip", "permute"])
def test_asymmetric_noise_changes_exactly_the_masked_labels(kind):
    d = tg.load_domain("uci-digits")
    p = perturb_source(d.images, d.labels, 10, 0.0, 0.5, torch.Generator().manual_seed(3),
                       label_noise=kind)
    assert 0.4 < p.y_mask.float().mean() < 0.6
    assert torch.equal(p.label_flipped, p.y_mask)  # every masked label wrong, no other touched
    assert torch.equal(p.labels[~p.y_mask], d.labels[~p.y_mask])
    # one class map: every wrong label of a class goes to the same other class
    for c in range(10):
        wrong = p.labels[p.y_mask & (d.labels == c)]
        assert wrong.unique().numel() == 1 and int(wrong[0]) != c


@pytest.mark.parametrize("kind", ["pairflip", "permute"])
def test_class_map_is_a_seeded_derangement(kind):
    maps = [noise_class_map(10, kind, torch.Generator().manual_seed(s)) for s in range(20)]
    for m in maps:
        assert sorted(m.tolist()) == list(range(10))  # a permutation
        assert not bool((m == torch.arange(10)).any())  # never keeps the true label
    assert torch.equal(maps[0], noise_class_map(10, kind, torch.Generator().manual_seed(0)))
    assert len({tuple(m.tolist()) for m in maps}) > 10  # the seed matters


def test_pairflip_is_one_cycle_through_all_classes():
    m = noise_class_map(10, "pairflip", torch.Generator().manual_seed(5))
    c, seen = 0, set()
    for _ in range(10):
        seen.add(c)
        c = int(m[c])
    assert c == 0 and len(seen) == 10


def test_task_accepts_asymmetric_noise_and_rejects_unknown():
    task = tg.TransferTask("mnist", "uci-digits", eps_y=0.7, label_noise="pairflip",
                           spec=tg.InputSpec(1, 16), source_size=300)
    pert = task.perturbation
    assert torch.equal(pert.label_flipped, pert.y_mask)
    with pytest.raises(DataError, match="label_noise must be one of"):
        tg.TransferTask("mnist", "uci-digits", label_noise="pairwise")
