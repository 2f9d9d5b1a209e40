"""``TransferModel``: every model is a feature extractor F (``backbone``) and a classifier C
(``head``), so methods can put a discriminator on F, re-initialise C, or regularise F alone,
and analysis tools can walk F's named modules.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn


class TransferModel(nn.Module):
    """F and C with the contract the rest of the toolkit relies on.

    - ``features(x)`` returns F(x), a (B, feature_dim) tensor;
    - ``forward(x)`` returns C(F(x)) logits;
    - ``blocks`` names F's stages in input-to-output order (``conv1``, ``layer1`` ...): the
      unit of the cut-point sweep and of per-module analyses;
    - ``map_blocks`` names the blocks whose outputs are spatial feature maps worth
      regularising or comparing (DELTA, distillation, CKA); by default all but the last;
    - ``reset_head()`` re-initialises C (fine-tuning starts with a fresh classifier).
    """

    def __init__(
        self, backbone: nn.Module, feature_dim: int, num_classes: int, blocks: list[str],
        arch: str, map_blocks: list[str] | None = None,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(feature_dim, num_classes)
        self.feature_dim = int(feature_dim)
        self.num_classes = int(num_classes)
        self.blocks = list(blocks)
        self.map_blocks = list(map_blocks) if map_blocks is not None else self.blocks[:-1]
        self.arch = arch

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))

    def reset_head(self, num_classes: int | None = None) -> None:
        if num_classes is not None and num_classes != self.num_classes:
            self.head = nn.Linear(self.feature_dim, num_classes).to(self.head.weight.device)
            self.num_classes = int(num_classes)
        else:
            self.head.reset_parameters()

    def block(self, name: str) -> nn.Module:
        if name not in self.blocks:
            raise KeyError(f"{self.arch} has no block {name!r}; blocks: {self.blocks}")
        return self.backbone.get_submodule(name)

    def named_blocks(self) -> Iterator[tuple[str, nn.Module]]:
        for name in self.blocks:
            yield name, self.backbone.get_submodule(name)

    def backbone_parameters(self) -> Iterator[nn.Parameter]:
        return self.backbone.parameters()

    def head_parameters(self) -> Iterator[nn.Parameter]:
        return self.head.parameters()
