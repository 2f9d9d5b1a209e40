"""Silencing units in place: forward hooks on a layer's output (methods reference 5.2).

- :func:`silence_units` (deterministic removal): the output of a pruned unit is 0, in
  training and at test time, with no rescaling of the others: exactly what the network with
  the unit structurally removed computes (:func:`.structural.remove_units`).
- :func:`guided_dropout` (Domain Guided Dropout, stochastic mode): during training, unit i
  is kept with probability p_i = sigmoid(s_i / T) (s: the impact normalised so that the
  most helpful unit has p = 0.9), one draw per sample and unit (per channel for feature
  maps, as spatial dropout), and the layer's output is scaled by C / Σ_i p_i; at test time
  the layer is the identity.

Hooks hold no parameters, so state dicts and checkpoints are unchanged; the hooks stay on
the model object (remove them with the returned handles).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from ...models import resolve_layer


def _view(v: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    return v.view(1, -1, *([1] * (out.dim() - 2)))


def silence_units(model: nn.Module, pruned: dict[str, torch.Tensor]) -> list[RemovableHandle]:
    """Set the outputs of the units marked ``True`` in ``pruned[layer]`` to 0."""
    handles = []
    for name, mask in pruned.items():
        if not bool(mask.any()):
            continue
        keep = (~mask.bool()).float()

        def hook(m: nn.Module, i: object, out: torch.Tensor,
                 keep: torch.Tensor = keep) -> torch.Tensor:
            return out * _view(keep.to(out.device, out.dtype), out)

        handles.append(resolve_layer(model, name).register_forward_hook(hook))
    return handles


def guided_dropout(model: nn.Module, keep_prob: dict[str, torch.Tensor]
                   ) -> list[RemovableHandle]:
    """Stochastic DGD: keep unit i with probability ``keep_prob[layer][i]`` while training."""
    handles = []
    for name, p in keep_prob.items():
        p = p.float().clamp(0.0, 1.0)
        scale = float(p.numel() / max(float(p.sum()), 1e-6))

        def hook(m: nn.Module, i: object, out: torch.Tensor, p: torch.Tensor = p,
                 scale: float = scale) -> torch.Tensor:
            if not m.training:
                return out
            probs = p.to(out.device, out.dtype).expand(out.shape[0], -1)
            keep = torch.bernoulli(probs)
            return out * keep.view(*keep.shape, *([1] * (out.dim() - 2))) * scale

        handles.append(resolve_layer(model, name).register_forward_hook(hook))
    return handles
