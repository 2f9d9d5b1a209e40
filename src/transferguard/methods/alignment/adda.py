"""ADDA: adversarial discriminative domain adaptation (Tzeng et al., CVPR 2017).

Untied encoders. Stage 1 trains the source encoder F_s and the classifier C; stage 2 trains a
target encoder F_t, initialised from F_s, so that a discriminator can not tell F_t(x_u) from
F_s(x_s), while F_s stays frozen:

    stage 1:  min_{F_s, C}  E_S[ℓ(C(F_s(x_s)), y_s)] + E_{T_L}[ℓ(C(F_s(x_l)), y_l)]     (joint)
    stage 2:  min_D   E_S[−log(1 − D(F_s(x_s)))] + E_{T_U}[−log D(F_t(x_u))]
              min_{F_t} E_{T_U}[−log(1 − D(F_t(x_u)))]                 (inverted labels)
              min_{F_t, C} E_{T_L}[ℓ(C(F_t(x_l)), y_l)] + E_S[ℓ(C(F_s(x_s)), y_s)]
    prediction on the target: C(F_t(x))

The labeled target (Wang et al.'s semi-supervised setting) enters both stages; keeping the
source loss on C in stage 2 is what the gate weights. ``gan_loss="inverted"`` (default, the
paper's) trains D on detached features and F_t against a frozen copy of D's parameters;
``"reverse"`` uses a gradient reversal layer instead. Stage 1 runs through
``Trainer.fit`` for ``pretrain_iterations`` (default: half the main iterations).

``gate=True``: stage 1 is joint+gate; in stage 2 the augmented discriminator replaces D (nil
pairs F_s(x_s) vs F_t(x_u), joint pairs (F_s(x_s), y_s) vs (F_t(x_l), y_l), the reversal form)
and the source loss is weighted by ω. Twin ADDA_T: both stages on the source-free view; in
stage 2 the labeled target plays both roles, the source side (through F_s) and the labeled
target (through F_t), so that F_t keeps its supervised loss as in ADDA.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch.func import functional_call

from ...data import Batch, TrainData
from ...engine.schedules import ramp
from ...engine.types import StepOutput
from ...errors import ConfigError
from ..base import register_method
from ..baselines.joint import Joint
from ..components import DomainDiscriminator, FrozenEncoder
from .adaptation import AdaptationMethod, Features
from .dann import domain_adversarial_loss


@register_method("adda", "adversarial discriminative adaptation with untied encoders")
class ADDA(AdaptationMethod):
    gate_replaces_alignment = True
    takes_combiner = False  # a pre-training phase, then its own step

    def __init__(self, model: str = "lenet", model_options: Mapping[str, Any] | None = None,
                 source_free: bool = False, trade_off: float = 1.0, ramp_gamma: float = 10.0,
                 gate: bool | str = False, gate_options: Mapping[str, Any] | None = None,
                 hidden: int = 1024, gan_loss: str = "inverted",
                 pretrain_iterations: int | None = None,
                 combine: str | None = None,
                 combine_options: Mapping[str, Any] | None = None) -> None:
        super().__init__(model, model_options, source_free, trade_off, ramp_gamma, gate,
                         gate_options, combine, combine_options)
        if gan_loss not in ("inverted", "reverse"):
            raise ConfigError(f"adda gan_loss must be 'inverted' or 'reverse', got {gan_loss!r}.")
        self.hidden = hidden
        self.gan_loss = gan_loss
        self.pretrain_iterations = pretrain_iterations

    def build_alignment(self, data: TrainData) -> None:
        if not self._alignment_replaced:
            self.extra_modules_["discriminator"] = DomainDiscriminator(
                self.model_.feature_dim, self.hidden)

    def prepare(self, data: TrainData, trainer: Any) -> None:
        stage1 = Joint(self.model, self.model_options, gate=self.gate,
                       gate_options=self.gate_options)
        iters = self.pretrain_iterations or max(1, trainer.config.iterations // 2)
        trainer.with_options(iterations=iters, select="last", checkpoint_dir=None).fit(
            stage1, data)
        self.model_.load_state_dict(stage1.model_.state_dict())
        self.extra_modules_["source_encoder"] = FrozenEncoder(stage1.model_.backbone)

    def training_step(self, batches: Mapping[str, Batch], progress: float) -> StepOutput:
        src, lab, unl = (batches.get(k) for k in self.streams_used)
        if self.source_free:
            lab = src  # the labeled target is also the labeled target of F_t
        h_s = self.extra_modules_["source_encoder"](src.x)
        target = [b for b in (lab, unl) if b is not None]
        h_t = self.model_.features(torch.cat([b.x for b in target]))
        h_l = h_t[: len(lab.x)] if lab is not None else None
        h_u = h_t[len(h_t) - len(unl.x) :]
        head = self.model_.head
        feats = Features(h_s, src.y, head(h_s).float(), h_l, lab.y if lab else None,
                         None if h_l is None else head(h_l).float(), h_u, head(h_u).float(),
                         ramp(progress, self.ramp_gamma), progress, src.index)
        return self.step_loss(feats, lambda: self._adversarial(h_s, h_u, feats.mu))

    def source_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.extra_modules_["source_encoder"](x)

    def _adversarial(self, h_s: torch.Tensor, h_u: torch.Tensor, mu: float) -> torch.Tensor:
        d = self.extra_modules_["discriminator"]
        if self.gan_loss == "reverse":
            return domain_adversarial_loss(d, h_s, h_u, mu)
        # D learns on detached features ...
        d_loss = domain_adversarial_loss(d, h_s, h_u.detach(), 0.0)
        # ... and F_t learns to make D call its features "source", against D's current,
        # frozen parameters (the gradient reaches F_t only)
        frozen = {k: v.detach() for k, v in d.named_parameters()}
        logits = functional_call(d, frozen, (h_u,)).float()
        g_loss = F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits))
        return d_loss + mu * g_loss
