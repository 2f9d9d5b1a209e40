"""Structural removal of units (Torch-Pruning) and the cost of a network.

:func:`remove_units` returns a copy of the model where the pruned units no longer exist:
the layer that produces each unit loses that output channel (with its batch-norm entry) and
every consumer loses the matching input (the next convolution, the head), through
Torch-Pruning's dependency graph (``pip install transferguard[pruning]``; MIT licence,
needs only torch and numpy). A silenced unit (:func:`.masks.silence_units`) outputs 0, so
the kept units of both networks compute the same thing; the copy is checked against the
masked network on a random batch, and a model where removal is not exact (a unit coupled to
others by a residual connection) is refused instead of silently changing its outputs.

:func:`model_cost` counts parameters and multiply-adds (convolutions and linear layers, one
image) with forward hooks; it needs nothing beyond torch.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ...data import InputSpec
from ...errors import ConfigError
from ...models import resolve_layer
from .masks import silence_units


def model_cost(model: nn.Module, spec: InputSpec) -> dict[str, int]:
    """Parameters and multiply-adds of one forward pass on one ``spec`` image."""
    macs = 0

    def hook(m: nn.Module, i: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal macs
        if isinstance(m, nn.Conv2d):
            k = m.kernel_size[0] * m.kernel_size[1] * (m.in_channels // m.groups)
            macs += out[0].numel() * k
        elif isinstance(m, nn.Linear):
            macs += out[0].numel() * m.in_features

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Conv2d, nn.Linear))]
    was = model.training
    model.eval()
    try:
        dev = next(model.parameters()).device
        with torch.no_grad():
            model(torch.zeros(1, *spec.shape, device=dev))
    finally:
        model.train(was)
        for h in handles:
            h.remove()
    return {"params": sum(p.numel() for p in model.parameters()), "macs": int(macs)}


def _producer(block: nn.Module, name: str) -> nn.Module:
    """The last convolution or linear layer of a block: the one that makes its units."""
    found = [m for m in block.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    if not found:
        raise ConfigError(f"layer {name!r} has no convolution or linear layer to remove "
                          "units from; prune it by silencing (structural=False).")
    return found[-1]


def remove_units(model: nn.Module, pruned: dict[str, torch.Tensor], spec: InputSpec,
                 atol: float = 1e-4) -> nn.Module:
    """A smaller copy of ``model`` without the units marked ``True`` in ``pruned``."""
    try:
        import torch_pruning as tp
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ConfigError(
            "structural removal needs Torch-Pruning: pip install 'transferguard[pruning]' "
            "(or torch-pruning); without it, prune by silencing (structural=False)."
        ) from exc
    if "head" in pruned and bool(pruned["head"].any()):
        raise ConfigError("the head's units are the classes and can not be removed; prune "
                          "layers of F only.")
    new = copy.deepcopy(model).eval()
    dev = next(new.parameters()).device
    example = torch.randn(2, *spec.shape, device=dev)
    graph = tp.DependencyGraph().build_dependency(new, example_inputs=example, verbose=False)
    for name, mask in pruned.items():
        idx = torch.nonzero(mask).flatten().tolist()
        if not idx:
            continue
        layer = _producer(resolve_layer(new, name), name)
        fn = tp.prune_conv_out_channels if isinstance(layer, nn.Conv2d) \
            else tp.prune_linear_out_channels
        group = graph.get_pruning_group(layer, fn, idxs=idx)
        if not graph.check_pruning_group(group):
            raise ConfigError(f"removing {len(idx)} units of {name!r} would empty a layer; "
                              "keep at least one unit.")
        group.prune()
    if hasattr(new, "feature_dim") and hasattr(new, "head"):
        new.feature_dim = int(new.head.in_features)
    _check_exact(model, new, pruned, spec, atol)
    return new


def _check_exact(model: nn.Module, new: nn.Module, pruned: dict[str, torch.Tensor],
                 spec: InputSpec, atol: float) -> None:
    """The removed network must compute what the masked one computes."""
    masked = copy.deepcopy(model).eval()
    handles = silence_units(masked, pruned)
    g = torch.Generator().manual_seed(0)
    dev = next(new.parameters()).device
    x = torch.randn(8, *spec.shape, generator=g).to(dev)
    with torch.no_grad():
        a, b = masked(x), new.eval()(x)
    for h in handles:
        h.remove()
    if a.shape != b.shape or not torch.allclose(a, b, atol=atol, rtol=1e-4):
        raise ConfigError("structural removal changed the network's outputs (units coupled "
                          "across layers, e.g. by a residual connection); prune by silencing "
                          "(structural=False) for this model.")
