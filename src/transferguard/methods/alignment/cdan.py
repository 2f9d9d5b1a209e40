"""CDAN: conditional domain adversarial network (Long et al., NeurIPS 2018).

The discriminator sees the multilinear map of the features h and the (detached) class
predictions g = softmax(C(h)), so it aligns the joint of features and predictions:

    T(h, g) = vec(g ⊗ h)                       (d·K inputs; randomised when d·K > 4096:
    T(h, g) = (R_h h) ⊙ (R_g g) / √m,           R fixed Gaussian, m = ``random_dim``)
    L = CE terms + trade_off · BCE(D(GRL_μ(T(h, g))), domain)

``entropy_conditioning=True`` (CDAN+E) weights each sample by 1 + exp(−H(g)), normalised to
mean 1 per domain. ``gate=True`` adds the gate's own discriminator on F and weights the source
loss by ω (CDAN keeps its conditional discriminator).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ...data import TrainData
from ..base import register_method
from ..components import DomainDiscriminator, grad_reverse
from .adaptation import AdaptationMethod, Features


class MultilinearMap(nn.Module):
    """g ⊗ h, or its randomised version for large d·K (fixed, non-trained projections)."""

    def __init__(self, feature_dim: int, num_classes: int, max_dim: int = 4096,
                 random_dim: int = 1024) -> None:
        super().__init__()
        self.randomized = feature_dim * num_classes > max_dim
        self.out_dim = random_dim if self.randomized else feature_dim * num_classes
        if self.randomized:
            self.register_buffer("r_h", torch.randn(feature_dim, random_dim))
            self.register_buffer("r_g", torch.randn(num_classes, random_dim))

    def forward(self, h: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        if self.randomized:
            return (h @ self.r_h) * (g @ self.r_g) / self.out_dim**0.5
        return torch.bmm(g.unsqueeze(2), h.unsqueeze(1)).flatten(1)


@register_method("cdan", "conditional adversarial adaptation on features x predictions")
class CDAN(AdaptationMethod):
    def __init__(self, model: str = "lenet", model_options: Mapping[str, Any] | None = None,
                 source_free: bool = False, trade_off: float = 1.0, ramp_gamma: float = 10.0,
                 gate: bool | str = False, gate_options: Mapping[str, Any] | None = None,
                 hidden: int = 1024, entropy_conditioning: bool = False,
                 combine: str | None = None,
                 combine_options: Mapping[str, Any] | None = None) -> None:
        super().__init__(model, model_options, source_free, trade_off, ramp_gamma, gate,
                         gate_options, combine, combine_options)
        self.hidden = hidden
        self.entropy_conditioning = entropy_conditioning

    def build_alignment(self, data: TrainData) -> None:
        mm = MultilinearMap(self.model_.feature_dim, data.num_classes)
        self.extra_modules_["multilinear"] = mm
        self.extra_modules_["discriminator"] = DomainDiscriminator(mm.out_dim, self.hidden)

    def alignment_loss(self, feats: Features) -> torch.Tensor:
        h = torch.cat([feats.h_src, feats.h_unl])
        g = F.softmax(torch.cat([feats.logits_src, feats.logits_unl]), 1).detach()
        t = self.extra_modules_["multilinear"](h.float(), g)
        d = self.extra_modules_["discriminator"](grad_reverse(t, feats.mu)).float()
        n = len(feats.h_src)
        target = torch.cat([torch.zeros(n), torch.ones(len(d) - n)]).to(d.device)
        loss = F.binary_cross_entropy_with_logits(d, target, reduction="none")
        if self.entropy_conditioning:
            ent = -(g * torch.log(g.clamp(min=1e-8))).sum(1)
            w = 1 + torch.exp(-ent)
            w = torch.cat([w[:n] / w[:n].mean(), w[n:] / w[n:].mean()])
            loss = loss * w
        return 0.5 * (loss[:n].mean() + loss[n:].mean())
