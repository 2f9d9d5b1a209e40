"""BSS: batch spectral shrinkage (Chen et al., NeurIPS 2019), methods reference section 3.3.

    Ω = η Σ_{i=1..k} σ_{−i}²

σ_{−i} are the k smallest singular values of the batch feature matrix F(x) (B × d): shrinking
them suppresses the feature directions that fine-tuning on a small target set would
otherwise learn from noise ("catastrophic forgetting meets negative transfer"). Defaults
k = 1, η = ``alpha`` = 0.001 (Transfer-Learning-Library). BSS does not refer to the source
weights, so plain weight decay stays on and the twin keeps the term.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from ...data import Batch
from ...errors import ConfigError
from ..base import register_method
from .regularized import RegularizedFineTune


@register_method("bss", "fine-tuning with batch spectral shrinkage")
class BSS(RegularizedFineTune):
    uses_source_weights = False

    def __init__(self, model: str = "lenet", model_options: Mapping[str, Any] | None = None,
                 source_free: bool = False, backbone_lr_mult: float = 0.1,
                 pretrain_iterations: int | None = None, pretrained: str | None = None,
                 pretrain_aux_weight: float = 0.0, partition_seed: int = 0,
                 alpha: float = 0.001, beta: float = 0.0, alpha_decay: float | None = None,
                 dtnh: bool = False, dtnh_mode: str = "always", k: int = 1) -> None:
        super().__init__(model, model_options, source_free, backbone_lr_mult,
                         pretrain_iterations, pretrained, pretrain_aux_weight, partition_seed,
                         alpha, beta, alpha_decay, dtnh, dtnh_mode)
        if k < 1:
            raise ConfigError(f"bss k must be >= 1, got {k}.")
        self.k = k

    def regularizer(self, batch: Batch, h: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        sigma = torch.linalg.svdvals(h.float())  # descending
        return self.alpha_t_ * sigma[-self.k :].pow(2).sum()
