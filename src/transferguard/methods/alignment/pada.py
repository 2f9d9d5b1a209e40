"""PADA: partial adversarial domain adaptation (Cao et al., ECCV 2018).

Classes the target does not seem to contain are down-weighted in the source classification
loss and in the source side of the domain discriminator, with class weights estimated from
the target predictions:

    γ = mean over recent unlabeled-target batches of softmax(C(F(x_u))),   γ ← γ / max γ
    L = E_{T_L}[ℓ] + E_S[γ_{y_s} ℓ(C(F(x_s)), y_s)]
        + trade_off · ( E_S[γ_{y_s} BCE(D(GRL_μ(F(x_s))), 0)] + E_T[BCE(D(GRL_μ(F(x_u))), 1)] )

γ starts at 1 and is refreshed every ``update_every`` steps from the predictions accumulated
since the last refresh. In the negative-transfer tables the label spaces are equal, and PADA
acts as a DANN that can discount classes the source over-represents. With ``gate=True`` the
augmented discriminator replaces D and the source loss weight becomes γ_{y_s} · ω.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ...data import TrainData
from ..base import register_method
from ..components import DomainDiscriminator
from ..reweighting.weighter import WeighterOutput
from .adaptation import AdaptationMethod, Features
from .dann import domain_adversarial_loss


class ClassWeights(nn.Module):
    """γ and the target predictions accumulated since its last refresh, as buffers, so that
    checkpoints and resumed runs carry them."""

    def __init__(self, num_classes: int, update_every: int) -> None:
        super().__init__()
        self.update_every = update_every
        self.register_buffer("gamma", torch.ones(num_classes))
        self.register_buffer("pred_sum", torch.zeros(num_classes))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def update(self, logits_unl: torch.Tensor | None) -> torch.Tensor:
        if logits_unl is not None:
            self.pred_sum += torch.softmax(logits_unl.float(), 1).sum(0)
        self.steps += 1
        if int(self.steps) % self.update_every == 0 and self.pred_sum.sum() > 0:
            self.gamma.copy_(self.pred_sum / self.pred_sum.max())
            self.pred_sum.zero_()
        return self.gamma


@register_method("pada", "partial adversarial adaptation with target-estimated class weights")
class PADA(AdaptationMethod):
    gate_replaces_alignment = True

    def __init__(self, model: str = "lenet", model_options: Mapping[str, Any] | None = None,
                 source_free: bool = False, trade_off: float = 1.0, ramp_gamma: float = 10.0,
                 gate: bool | str = False, gate_options: Mapping[str, Any] | None = None,
                 hidden: int = 1024, update_every: int = 100,
                 combine: str | None = None,
                 combine_options: Mapping[str, Any] | None = None) -> None:
        super().__init__(model, model_options, source_free, trade_off, ramp_gamma, gate,
                         gate_options, combine, combine_options)
        self.hidden = hidden
        self.update_every = update_every

    def build_alignment(self, data: TrainData) -> None:
        if not self._alignment_replaced:
            self.extra_modules_["discriminator"] = DomainDiscriminator(
                self.model_.feature_dim, self.hidden)
        self.extra_modules_["class_weights"] = ClassWeights(data.num_classes, self.update_every)

    def source_loss(self, per_sample: torch.Tensor, feats: Features,
                    out: WeighterOutput) -> torch.Tensor:
        gamma = self.extra_modules_["class_weights"].update(feats.logits_unl)[feats.y_src]
        if out.weights is not None:
            gamma = gamma * out.weights * self.weighter_.lam
        return (gamma * per_sample).mean()

    def alignment_loss(self, feats: Features) -> torch.Tensor:
        gamma = self.extra_modules_["class_weights"].gamma[feats.y_src]
        return domain_adversarial_loss(self.extra_modules_["discriminator"], feats.h_src,
                                       feats.h_unl, feats.mu, gamma)
