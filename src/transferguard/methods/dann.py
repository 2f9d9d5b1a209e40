"""DANN with labeled source, labeled target and unlabeled target (methods reference 1.2).

    min_{F,C} max_D  L_CLF(F, C) − μ L_ADV(F, D)
    L_CLF = E_{T_L}[ℓ(C(F(x_l)), y_l)] + E_S[ℓ(C(F(x_s)), y_s)]
    L_ADV = E_{x_u ~ T_U}[log D(F(x_u))] + E_{x_s ~ S}[log(1 − D(F(x_s)))]

Implemented with a gradient reversal layer of coefficient μ_p = 2/(1+exp(−γp)) − 1 between F
and D: D minimises the binary cross-entropy of the domain labels (target 1, source 0) and F
receives −μ times its gradient. ``trade_off`` scales the domain loss.

Twin DANN_T: the labeled target plays the source's role (classification loss and the source
side of D), the unlabeled target is D's target side (the default source-free view).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

from ..data.task import Batch, TrainData
from ..engine.schedules import ramp
from ..engine.types import StepOutput
from ..errors import ConfigError
from .base import Method, register_method
from .components import DomainDiscriminator, grad_reverse


@register_method("dann", "domain-adversarial training with a gradient reversal layer")
class DANN(Method):
    streams_used = ("source", "target_labeled", "target_unlabeled")

    def __init__(self, model: str = "lenet", model_options: Mapping[str, Any] | None = None,
                 source_free: bool = False, trade_off: float = 1.0, hidden: int = 1024,
                 ramp_gamma: float = 10.0) -> None:
        super().__init__(model, model_options, source_free)
        self.trade_off = trade_off
        self.hidden = hidden
        self.ramp_gamma = ramp_gamma

    def build(self, data: TrainData, trainer: Any) -> None:
        if len(data.target_unlabeled) == 0:
            raise ConfigError(
                f"{self.label} needs unlabeled target samples for its discriminator, but the "
                "task has none (labeled_percent=100?); lower labeled_percent."
            )
        self.extra_modules_["discriminator"] = DomainDiscriminator(
            self.model_.feature_dim, self.hidden
        )

    def training_step(self, batches: Mapping[str, Batch], progress: float) -> StepOutput:
        labeled = self.labeled_batches(batches)  # source (or T_L in the twin), then T_L
        unlabeled = batches["target_unlabeled"]
        xs = [b.x for b in labeled]
        h = self.model_.features(torch.cat([*xs, unlabeled.x]))
        n_lab = sum(len(x) for x in xs)
        logits = self.model_.head(h[:n_lab]).float()
        ce = logits.new_zeros(())
        start = 0
        for b in labeled:
            ce = ce + F.cross_entropy(logits[start : start + len(b.x)], b.y)
            start += len(b.x)
        mu = ramp(progress, self.ramp_gamma)
        n_src = len(labeled[0].x)
        h_src, h_tgt = h[:n_src], h[n_lab:]
        d = self.extra_modules_["discriminator"](
            grad_reverse(torch.cat([h_src, h_tgt]), mu)
        ).float()
        domain = torch.cat([torch.zeros(n_src), torch.ones(len(h_tgt))]).to(d.device)
        adv = F.binary_cross_entropy_with_logits(d[:n_src], domain[:n_src]) + \
            F.binary_cross_entropy_with_logits(d[n_src:], domain[n_src:])
        loss = ce + self.trade_off * adv
        return StepOutput(loss, {"ce": ce.detach(), "adv": adv.detach(), "mu": mu})
