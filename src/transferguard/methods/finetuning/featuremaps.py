"""Feature maps of named blocks, captured with forward hooks (for DELTA and distillation)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn


@contextmanager
def capture(backbone: nn.Module, names: Sequence[str]) -> Iterator[dict[str, torch.Tensor]]:
    """Within the block, ``maps[name]`` holds the output of ``backbone.<name>`` of the last
    forward pass."""
    maps: dict[str, torch.Tensor] = {}
    handles = []
    for name in names:
        module = backbone.get_submodule(name)

        def hook(_m: nn.Module, _inp: object, out: torch.Tensor, name: str = name) -> None:
            maps[name] = out

        handles.append(module.register_forward_hook(hook))
    try:
        yield maps
    finally:
        for h in handles:
            h.remove()


@contextmanager
def zero_channel(backbone: nn.Module, name: str, channel: int) -> Iterator[None]:
    """Within the block, channel ``channel`` of ``backbone.<name>``'s output is zero."""

    def hook(_m: nn.Module, _inp: object, out: torch.Tensor) -> torch.Tensor:
        out = out.clone()
        out[:, channel] = 0
        return out

    handle = backbone.get_submodule(name).register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def map_distance(fm: torch.Tensor, fm_src: torch.Tensor,
                 weights: torch.Tensor | None = None) -> torch.Tensor:
    """0.5 · Σ_b Σ_j W_j ‖fm[b, j] − fm_src[b, j]‖² / (h·w) for (B, C, H, W) maps (B, C)
    vectors count as 1x1 maps). ``weights`` (C,) default to 1."""
    diff = (fm.float() - fm_src.float().detach())
    if diff.dim() == 2:
        diff = diff[:, :, None, None]
    per_channel = diff.pow(2).sum(dim=(2, 3)) / (diff.shape[2] * diff.shape[3])  # (B, C)
    if weights is not None:
        per_channel = per_channel * weights.to(per_channel.device)
    return 0.5 * per_channel.sum()
