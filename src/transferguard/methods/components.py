"""Building blocks shared by the domain-adaptation methods.

- :func:`grad_reverse`: the gradient reversal layer (GRL) of Ganin & Lempitsky (2015):
  identity forward, gradient multiplied by -coeff backward. It turns "D minimises the domain
  loss, F maximises it" into one minimisation.
- :class:`DomainDiscriminator`: the usual DANN discriminator
  (1024-ReLU-Dropout0.5-1024-ReLU-Dropout0.5-1), methods reference section 1.3.
- :class:`FrozenEncoder`: a frozen copy of a network (ADDA's source encoder, the source model
  that DELTA and feature-map distillation compare with).
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class _GradReverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, coeff: float) -> torch.Tensor:  # type: ignore[override]
        ctx.coeff = coeff
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        return -ctx.coeff * grad, None


def grad_reverse(x: torch.Tensor, coeff: float = 1.0) -> torch.Tensor:
    """Identity in the forward pass; multiplies the gradient by ``-coeff`` going back."""
    return _GradReverse.apply(x, float(coeff))


class DomainDiscriminator(nn.Sequential):
    """Features (B, d) -> one logit per sample (target = 1, source = 0)."""

    def __init__(self, in_features: int, hidden: int = 1024, dropout: float = 0.5) -> None:
        super().__init__(
            nn.Linear(in_features, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(hidden, 1),
        )

    def forward(self, h: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return super().forward(h).squeeze(-1)


class FrozenEncoder(nn.Module):
    """A copy of a network whose weights never train.

    ``follow_mode=False`` (ADDA's source encoder): always in eval mode.
    ``follow_mode=True`` (the reference network of DELTA and distillation): in the same mode
    as the model it is compared with, so that with batch normalisation both normalise the
    batch the same way and the distance is zero at the pre-trained weights.
    """

    def __init__(self, encoder: nn.Module, follow_mode: bool = False) -> None:
        super().__init__()
        self.encoder = copy.deepcopy(encoder)
        self.follow_mode = follow_mode
        for p in self.encoder.parameters():
            p.requires_grad_(False)
        self.encoder.eval()

    def train(self, mode: bool = True) -> FrozenEncoder:
        return super().train(mode if self.follow_mode else False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.encoder(x)
