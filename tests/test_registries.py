"""Conformance over every registry: domains, source weighters (methods and models have their
own generic tests in test_methods.py and test_models.py)."""

from __future__ import annotations

import pytest
import torch

import transferguard as tg
from transferguard.errors import ConfigError, UnknownNameError
from transferguard.methods import WEIGHTERS, create_weighter
from transferguard.methods.reweighting.weighter import Features

#: keyword options that make a registered domain small enough for a unit test
SMALL = {"syndigits": {"num_samples": 60}}


@pytest.mark.parametrize("name", tg.list_domains())
def test_every_registered_domain_loads_as_a_valid_domain(name):
    d = tg.load_domain(name, **SMALL.get(name, {}))
    assert d.images.dtype == torch.uint8 and d.images.dim() == 4
    assert d.images.shape[1] in (1, 3)
    assert d.labels.dtype == torch.int64 and len(d.labels) == len(d.images) > 0
    assert int(d.labels.min()) >= 0 and int(d.labels.max()) < d.num_classes
    assert len(set(d.classes)) == d.num_classes  # distinct class names
    assert d.class_counts().min() > 0  # every class present
    again = tg.load_domain(name, **SMALL.get(name, {}))  # deterministic (from the cache)
    assert torch.equal(d.images, again.images) and torch.equal(d.labels, again.labels)
    assert "cache" in again.meta  # the second load read the cache


def test_domain_registry_lists_what_describe_reports():
    assert [i.name for i in tg.describe_domains()] == tg.list_domains()
    with pytest.raises(UnknownNameError, match="Known domains"):
        tg.load_domain("mnsit")


def _features(n_src=8, n_lab=4, n_unl=5, dim=6, k=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    return Features(r(n_src, dim), torch.randint(0, k, (n_src,), generator=g), r(n_src, k),
                    r(n_lab, dim), torch.randint(0, k, (n_lab,), generator=g), r(n_lab, k),
                    r(n_unl, dim), r(n_unl, k), 1.0, 0.5, torch.arange(n_src))


@pytest.mark.parametrize("name", WEIGHTERS.names())
def test_every_source_weighter_gives_detached_non_negative_weights(name):
    w = create_weighter(name, 6, 3)
    assert w.name == name
    feats = _features()
    out = w(feats)
    if out.weights is not None:
        assert out.weights.shape == (8,) and not out.weights.requires_grad
        assert (out.weights >= 0).all() and torch.isfinite(out.weights).all()
    if out.loss is not None:
        assert out.loss.dim() == 0 and torch.isfinite(out.loss)
    if name == "glc":  # the one loss correction: replaces the per-sample source loss once
        assert (out.source_loss is not None) == bool(w.active)  # C is estimated
        assert out.source_loss is None or out.source_loss.shape == (8,)
    else:  # re-weighting only: the method's cross-entropy is kept
        assert out.source_loss is None
    w.eval()
    scores = w.score_batch(feats.h_src, feats.logits_src, feats.y_src, feats.index_src)
    assert scores["weight"].shape == (8,)
    with pytest.raises(ConfigError, match="unknown gate_options"):
        create_weighter(name, 6, 3, {"no_such_option": 1})


def test_gate_option_names_a_weighter():
    assert tg.create_method("dann", gate=True).label == "dann+gate"
    assert tg.create_method("dann", gate="gate").label == "dann+gate"
    assert tg.create_method("dann", gate="paper").label == "dann+gate"  # the paper's, by name
    assert tg.create_method("dann", gate="glc").label == "dann+glc"
    assert tg.create_method("dann").label == "dann"
    with pytest.raises(UnknownNameError, match="source weighter"):
        tg.create_method("dann", gate="no")


def test_methods_listing_names_every_method_and_every_source_weighter(capsys):
    """`transferguard methods` is where a user finds the gate's choices (glc, prototype...)."""
    from transferguard.cli import main
    from transferguard.methods import METHODS, WEIGHTERS

    assert main(["methods"]) == 0
    first_words = {row.split()[0] for row in capsys.readouterr().out.splitlines() if row.split()}
    assert set(METHODS.names()) <= first_words
    assert set(WEIGHTERS.names()) <= first_words
    from transferguard.methods.alignment.adaptation import COMBINERS

    assert {c for c in COMBINERS if c} <= first_words  # the choices of combine=
