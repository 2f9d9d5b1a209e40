"""L2-SP (Li, Grandvalet & Davoine, ICML 2018), methods reference section 3.1.

    Ω(w) = (α/2) ‖w_S − w_S^0‖²  +  (β/2) ‖w_{S̄}‖²

w_S are the backbone weights shared with the source network, pulled back to their
pre-trained values w_S^0 (the "starting point"); w_{S̄} is the new head, with a plain L2
penalty. Weight decay is off on both (Ω replaces it). Defaults α = β = 0.01
(Transfer-Learning-Library). The gradient is closed form, g_R = α_t (w − w^0) on the backbone
and β w on the head, so DTNH needs no second backward pass.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ...data import Batch, TrainData
from ..base import register_method
from .regularized import RegularizedFineTune


class StartingPoint(nn.Module):
    """w^0, the pre-trained backbone weights, as buffers: they move with the model to the
    device once and are saved in checkpoints."""

    def __init__(self, params: list[torch.Tensor]) -> None:
        super().__init__()
        for i, p in enumerate(params):
            self.register_buffer(f"w{i}", p.detach().clone())

    def tensors(self) -> list[torch.Tensor]:
        return list(self.buffers())


@register_method("l2sp", "fine-tuning with L2 towards the pre-trained weights (L2-SP)")
class L2SP(RegularizedFineTune):
    def prepare_regularizer(self, data: TrainData, trainer: Any) -> None:
        self.extra_modules_["start"] = StartingPoint(list(self.model_.backbone.parameters()))

    def regularizer(self, batch: Batch, h: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        start = self.extra_modules_["start"].tensors()
        pull = sum((p - p0).pow(2).sum() for p, p0 in zip(self.model_.backbone.parameters(),
                                                          start))
        return 0.5 * self.alpha_t_ * pull + self.head_l2()

    def closed_form_gradients(self) -> dict[torch.Tensor, torch.Tensor]:
        start = self.extra_modules_["start"].tensors()
        grads = {p: self.alpha_t_ * (p.detach() - p0)
                 for p, p0 in zip(self.model_.backbone.parameters(), start)}
        grads.update({p: self.beta * p.detach() for p in self.model_.head.parameters()})
        return grads
