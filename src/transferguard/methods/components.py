"""Building blocks shared by the domain-adaptation methods.

- :func:`grad_reverse`: the gradient reversal layer (GRL) of Ganin & Lempitsky (2015):
  identity forward, gradient multiplied by -coeff backward. It turns "D minimises the domain
  loss, F maximises it" into one minimisation.
- :class:`DomainDiscriminator`: the usual DANN discriminator
  (1024-ReLU-Dropout0.5-1024-ReLU-Dropout0.5-1), methods reference section 1.3.
"""

from __future__ import annotations

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
