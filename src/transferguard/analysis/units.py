"""What a unit responds to: the images that activate it most (a small Network Dissection).

The pruning poster planned MIT's Network Dissection (methods reference section 5.4) to see
which features survive the cut. Without segmentation masks of concepts, the part that
needs none is kept: for a unit (a channel or neuron of a layer), rank images by its
activation, the channel's spatial maximum for feature maps (where the unit fires most),
and show the top ones as a grid (:func:`transferguard.report.plots.unit_grid`). Run it on
target images that training may see (the labeled or unlabeled target), so that a user can
look at what a target-harmful unit (negative impact) reacts to.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..data import InputSpec, Split, iterate_batches
from ..errors import ConfigError, DataError
from ..models import resolve_layer


@dataclass
class UnitPictures:
    """The ``k`` images (uint8, C x H x W) that activate one unit most, best first."""

    layer: str
    unit: int
    indices: list[int]  # positions in the split
    values: list[float]  # the unit's activation for each image
    images: torch.Tensor
    labels: list[int] | None
    impact: float | None = None

    def caption(self) -> str:
        text = f"{self.layer}:{self.unit}"
        return text + (f"\nimpact {self.impact:+.3f}" if self.impact is not None else "")


@torch.no_grad()
def unit_activations(model: nn.Module, layer: str, split: Split, spec: InputSpec,
                     batch_size: int = 512) -> torch.Tensor:
    """(N, units) activation of every unit of ``layer`` on every image of ``split`` (the
    spatial maximum for feature maps)."""
    if len(split) == 0:
        raise DataError(f"split {split.name!r} is empty; there are no images to rank.")
    module = resolve_layer(model, layer)
    seen: list[torch.Tensor] = []

    def hook(m: nn.Module, i: object, out: torch.Tensor) -> None:
        a = out.detach().float()
        seen.append((a.flatten(2).amax(2) if a.dim() > 2 else a).cpu())

    dev = next(model.parameters()).device
    was = model.training
    model.eval()
    handle = module.register_forward_hook(hook)
    try:
        for batch in iterate_batches(split, spec, batch_size, dev):
            model(batch.x)
    finally:
        handle.remove()
        model.train(was)
    return torch.cat(seen)


def top_activating(model: nn.Module, layer: str, units: int | Sequence[int], split: Split,
                   spec: InputSpec, k: int = 16, impact: object | None = None
                   ) -> list[UnitPictures]:
    """The ``k`` images of ``split`` that activate each of ``units`` of ``layer`` most.

    ``impact`` (an :class:`ImpactResult`) adds each unit's impact to its caption.
    """
    if k < 1:
        raise ConfigError(f"k must be >= 1, got {k}.")
    ids = [units] if isinstance(units, int) else list(units)
    acts = unit_activations(model, layer, split, spec)
    bad = [u for u in ids if not 0 <= u < acts.shape[1]]
    if bad:
        raise ConfigError(f"layer {layer!r} has {acts.shape[1]} units; no unit {bad}.")
    out = []
    for u in ids:
        vals, order = torch.sort(acts[:, u], descending=True)
        order, vals = order[:k], vals[:k]
        scores = getattr(impact, "impact", {}).get(layer) if impact is not None else None
        out.append(UnitPictures(
            layer, u, order.tolist(), vals.tolist(), split.images[order],
            split.labels[order].tolist() if split.labels is not None else None,
            float(scores[u]) if scores is not None else None))
    return out
