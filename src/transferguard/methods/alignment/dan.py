"""DAN: deep adaptation network with multi-kernel MMD (Long et al., ICML 2015).

    L = CE terms + trade_off · MK-MMD²(F(x_s), F(x_u))
    MK-MMD²(X, Y) = Σ_k β_k [ mean k_σk(X, X) + mean k_σk(Y, Y) − 2 mean k_σk(X, Y) ]

with Gaussian kernels k_σ(a, b) = exp(−‖a − b‖² / (2σ²)), σ² = 2^j · m̄ for j in
``kernel_powers`` ({−3, …, 1}, as in Transfer-Learning-Library) where m̄ is the mean squared
distance of the batch (the median-style bandwidth heuristic), and equal β_k. This is the
biased quadratic-time estimate on the feature layer F. ``gate=True`` adds the gate's own
discriminator (DAN is not adversarial) and weights the source loss by ω.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from ..base import register_method
from .adaptation import AdaptationMethod, Features


def mk_mmd(x: torch.Tensor, y: torch.Tensor, powers: Sequence[int] = (-3, -2, -1, 0, 1)
           ) -> torch.Tensor:
    """Multi-kernel MMD² between two samples (rows), averaged over Gaussian kernels."""
    z = torch.cat([x, y]).float()
    d2 = torch.cdist(z, z).pow(2)
    base = d2.detach().mean().clamp(min=1e-8)
    k = sum(torch.exp(-d2 / (2 * base * 2.0**p)) for p in powers) / len(powers)
    n = len(x)
    return k[:n, :n].mean() + k[n:, n:].mean() - 2 * k[:n, n:].mean()


@register_method("dan", "deep adaptation network: multi-kernel MMD on the features")
class DAN(AdaptationMethod):
    def __init__(self, model: str = "lenet", model_options: Mapping[str, Any] | None = None,
                 source_free: bool = False, trade_off: float = 1.0, ramp_gamma: float = 10.0,
                 gate: bool | str = False, gate_options: Mapping[str, Any] | None = None,
                 kernel_powers: Sequence[int] = (-3, -2, -1, 0, 1),
                 combine: str | None = None,
                 combine_options: Mapping[str, Any] | None = None) -> None:
        super().__init__(model, model_options, source_free, trade_off, ramp_gamma, gate,
                         gate_options, combine, combine_options)
        self.kernel_powers = tuple(kernel_powers)

    def alignment_loss(self, feats: Features) -> torch.Tensor:
        return mk_mmd(feats.h_src, feats.h_unl, self.kernel_powers)
