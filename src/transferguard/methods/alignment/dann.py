"""DANN with labeled source, labeled target and unlabeled target (methods reference 1.2).

    min_{F,C} max_D  L_CLF(F, C) − μ L_ADV(F, D)
    L_CLF = E_{T_L}[ℓ(C(F(x_l)), y_l)] + E_S[ℓ(C(F(x_s)), y_s)]
    L_ADV = E_{x_u ~ T_U}[log D(F(x_u))] + E_{x_s ~ S}[log(1 − D(F(x_s)))]

Implemented with a gradient reversal layer of coefficient μ_p = 2/(1+exp(−γp)) − 1 between F
and D: D minimises the binary cross-entropy of the domain labels (target 1, source 0) and F
receives −μ times its gradient. ``trade_off`` scales the domain loss, which is the mean BCE
over the domain batch, ½(E_S + E_T) (the Transfer-Learning-Library convention): with the plain
sum E_S + E_T of the formula, D's gradient dominated and DANN could not even fit the source
in 600-step digits runs (syndigits -> mnist without target labels: 14% vs 51%).

``gate=True`` gives DANN_gate (reference 1.3): the augmented discriminator D(h, y) replaces D.
Twin DANN_T: the labeled target plays the source's role (classification loss and the source
side of D), the unlabeled target is D's target side.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

from ...data import TrainData
from ..base import register_method
from ..components import DomainDiscriminator, grad_reverse
from .adaptation import AdaptationMethod, Features


@register_method("dann", "domain-adversarial training with a gradient reversal layer")
class DANN(AdaptationMethod):
    gate_replaces_alignment = True

    def __init__(self, model: str = "lenet", model_options: Mapping[str, Any] | None = None,
                 source_free: bool = False, trade_off: float = 1.0, ramp_gamma: float = 10.0,
                 gate: bool | str = False, gate_options: Mapping[str, Any] | None = None,
                 hidden: int = 1024, combine: str | None = None,
                 combine_options: Mapping[str, Any] | None = None
                 ) -> None:
        super().__init__(model, model_options, source_free, trade_off, ramp_gamma, gate,
                         gate_options, combine, combine_options)
        self.hidden = hidden

    def build_alignment(self, data: TrainData) -> None:
        if not self._alignment_replaced:
            self.extra_modules_["discriminator"] = DomainDiscriminator(
                self.model_.feature_dim, self.hidden
            )

    def alignment_loss(self, feats: Features) -> torch.Tensor:
        return domain_adversarial_loss(self.extra_modules_["discriminator"],
                                       feats.h_src, feats.h_unl, feats.mu)


def domain_adversarial_loss(discriminator: torch.nn.Module, h_src: torch.Tensor,
                            h_tgt: torch.Tensor, coeff: float,
                            source_weights: torch.Tensor | None = None) -> torch.Tensor:
    """½ (E_S[−log(1 − D)] (optionally weighted) + E_T[−log D]) on reversed features."""
    d = discriminator(grad_reverse(torch.cat([h_src, h_tgt]), coeff)).float()
    d_src, d_tgt = d[: len(h_src)], d[len(h_src) :]
    src = F.binary_cross_entropy_with_logits(d_src, torch.zeros_like(d_src), reduction="none")
    if source_weights is not None:
        src = src * source_weights
    tgt = F.binary_cross_entropy_with_logits(d_tgt, torch.ones_like(d_tgt))
    return 0.5 * (src.mean() + tgt)
