"""The step shared by the domain-adaptation family, and the switch for the gate.

Every method of the family minimises (methods reference sections 1.2 and 1.3)

    L = E_{T_L}[ℓ(C(F(x_l)), y_l)] + source_loss
        + trade_off · alignment(F(x_s), F(x_u))  [+ L_ADV^aug with the gate]

where ``source_loss`` is E_S[ℓ(C(F(x_s)), y_s)], or λ E_S[ω ℓ] when the gate is on, and
``alignment`` is what distinguishes the methods (a discriminator for DANN, MK-MMD for DAN,
CORAL for DCORAL, ...). One forward pass runs over the concatenated source, labeled and
unlabeled batches.

``gate=True`` adds :class:`~transferguard.methods.gate.Gate` (its options in
``gate_options``). For methods whose alignment *is* a domain discriminator (DANN, PADA), the
gate's augmented discriminator replaces it (its marginal ``nil`` term is that alignment); for
the others (DAN, DCORAL, CDAN, joint) the gate adds its own discriminator, as the reference
describes for non-adversarial methods.

Twin: the source-free view with the gate off. The gate re-weights *source* samples, so
without a source there is nothing to gate: DANN and DANN+gate share the twin DANN_T, and
NTG1 − NTG2 is the gain of the gate (reference 1.1).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from ..data.task import Batch, Split, TrainData, iterate_batches
from ..engine.schedules import ramp
from ..engine.types import StepOutput
from ..errors import ConfigError
from .base import Method
from .gate import Gate


@dataclass
class Features:
    """Features and logits of one step, split by stream (None where a stream is absent)."""

    h_src: torch.Tensor
    y_src: torch.Tensor
    logits_src: torch.Tensor
    h_lab: torch.Tensor | None
    y_lab: torch.Tensor | None
    logits_lab: torch.Tensor | None
    h_unl: torch.Tensor | None
    logits_unl: torch.Tensor | None
    mu: float
    progress: float


class AdaptationMethod(Method):
    """Base of the DA family. Subclasses implement :meth:`alignment_loss`."""

    streams_used = ("source", "target_labeled", "target_unlabeled")
    accepts_weighter = True
    #: whether the alignment term needs unlabeled target features
    needs_unlabeled: ClassVar[bool] = True
    #: whether the gate's augmented discriminator takes the place of the method's own
    gate_replaces_alignment: ClassVar[bool] = False

    def __init__(self, model: str = "lenet", model_options: Mapping[str, Any] | None = None,
                 source_free: bool = False, trade_off: float = 1.0, ramp_gamma: float = 10.0,
                 gate: bool = False, gate_options: Mapping[str, Any] | None = None) -> None:
        super().__init__(model, model_options, source_free)
        self.trade_off = trade_off
        self.ramp_gamma = ramp_gamma
        self.gate = bool(gate)
        self.gate_options = dict(gate_options or {})

    @property
    def label(self) -> str:
        base = self.name + ("+gate" if self.gate else "")
        return f"{base}_T" if self.source_free else base

    def twin(self) -> Method:
        return self.clone(source_free=True, gate=False, gate_options={})

    def streams(self) -> tuple[str, ...]:
        if self.needs_unlabeled or self.gate:
            return self.streams_used
        return ("source", "target_labeled")

    # ------------------------------------------------------------------ building
    def build(self, data: TrainData, trainer: Any) -> None:
        if "target_unlabeled" in self.streams() and len(data.target_unlabeled) == 0:
            raise ConfigError(
                f"{self.label} needs unlabeled target samples, but the task has none "
                "(labeled_percent=100?); lower labeled_percent."
            )
        self.source_split_ = data.source
        if self.gate and self.trade_off != 1.0 and (self.gate_replaces_alignment
                                                    or not self.needs_unlabeled):
            raise ConfigError(
                f"{self.label}: trade_off weights {self.name}'s own discriminator, which the "
                "gate replaces; set gate_options={'mu_max': ...} to weight the gate's "
                "adversarial term instead."
            )
        self.build_alignment(data)
        if self.gate:
            valid = set(inspect.signature(Gate.__init__).parameters) - {
                "self", "feature_dim", "num_classes"}
            bad = sorted(set(self.gate_options) - valid)
            if bad:
                raise ConfigError(f"unknown gate_options {bad}; valid: {sorted(valid)}.")
            self.extra_modules_["gate"] = Gate(self.model_.feature_dim, data.num_classes,
                                               **self.gate_options)

    def build_alignment(self, data: TrainData) -> None:
        """Hook: create the modules of the alignment term in ``self.extra_modules_``."""

    # ------------------------------------------------------------------ one step
    def training_step(self, batches: Mapping[str, Batch], progress: float) -> StepOutput:
        feats = self.forward_streams(batches, progress)
        logs: dict[str, Any] = {"mu": feats.mu}
        per_sample = F.cross_entropy(feats.logits_src, feats.y_src, reduction="none")
        loss = per_sample.new_zeros(())
        weights = None
        if self.gate:
            gate: Gate = self.extra_modules_["gate"]
            out = gate(gate.inputs(feats.h_src, feats.logits_src), feats.y_src,
                       None if feats.h_lab is None else gate.inputs(feats.h_lab, feats.logits_lab),
                       feats.y_lab, gate.inputs(feats.h_unl, feats.logits_unl), feats.mu,
                       feats.logits_unl)
            weights = out.weights
            loss = loss + out.adversarial
            logs.update(out.logs)
        ce_src = self.source_loss(per_sample, feats, weights)
        loss = loss + ce_src
        logs["ce_src"] = ce_src.detach()
        if feats.logits_lab is not None:
            ce_lab = F.cross_entropy(feats.logits_lab, feats.y_lab)
            loss = loss + ce_lab
            logs["ce_lab"] = ce_lab.detach()
        if self.needs_unlabeled and not (self.gate and self.gate_replaces_alignment):
            align = self.alignment_loss(feats)
            loss = loss + self.trade_off * align
            logs["align"] = align.detach()
        return StepOutput(loss, logs)

    def forward_streams(self, batches: Mapping[str, Batch], progress: float) -> Features:
        src, lab, unl = (batches.get(k) for k in self.streams_used)
        parts = [b for b in (src, lab, unl) if b is not None]
        h = self.model_.features(torch.cat([b.x for b in parts]))
        logits = self.model_.head(h).float()
        sizes = [len(b.x) for b in parts]
        hs, ls = torch.split(h, sizes), torch.split(logits, sizes)
        i_lab = 1 if lab is not None else None
        i_unl = (2 if lab is not None else 1) if unl is not None else None
        return Features(
            hs[0], src.y, ls[0],
            hs[i_lab] if i_lab else None, lab.y if lab is not None else None,
            ls[i_lab] if i_lab else None,
            hs[i_unl] if i_unl else None, ls[i_unl] if i_unl else None,
            ramp(progress, self.ramp_gamma), progress,
        )

    def source_loss(self, per_sample: torch.Tensor, feats: Features,
                    weights: torch.Tensor | None) -> torch.Tensor:
        """E_S[ℓ], or λ E_S[ω ℓ] with the gate."""
        if weights is None:
            return per_sample.mean()
        return self.extra_modules_["gate"].lam * (weights * per_sample).mean()

    def alignment_loss(self, feats: Features) -> torch.Tensor:
        return feats.h_src.new_zeros(())

    def param_groups(self) -> list[dict[str, Any]]:
        """The model at the base rate; the gate's discriminator at ``lr_mult`` times it
        (``gate_options["lr_mult"]``, default 1)."""
        groups = [{"params": list(m.parameters())} for k, m in self.modules().items()
                  if k != "gate"]
        if self.gate:
            gate = self.extra_modules_["gate"]
            groups.append({"params": list(gate.parameters()), "lr_mult": gate.lr_mult})
        return groups

    # ------------------------------------------------------------------ after training
    @torch.no_grad()
    def source_scores(self, split: Split | None = None, batch_size: int = 512
                      ) -> dict[str, torch.Tensor]:
        """Per-sample scores of every source sample (in the order of the source split).

        - ``weight``: ω = D(h, y)/(1 − D(h, y)), clipped, no per-batch normalisation (so that
          weights of different batches compare): the gate's estimate of P_T(x,y)/P_S(x,y);
          1 for every sample when there was no labeled target (L = 0), as in training;
        - ``log_joint`` / ``log_marginal``: log D/(1 − D) of the labeled and the nil query;
          their difference estimates log P_T(y|x)/P_S(y|x), the part a wrong label changes;
        - ``loss``: the classifier's cross-entropy on the observed label (the "small-loss"
          baseline of label-noise detection).
        """
        if not self.gate:
            raise ConfigError(f"{self.label} has no gate; create it with gate=True to get "
                              "per-sample source weights.")
        split = split if split is not None else self.source_split_
        gate: Gate = self.extra_modules_["gate"]
        model, disc = self.model_, gate.discriminator
        was_model, was_disc = model.training, disc.training
        model.eval()
        disc.eval()
        device = next(model.parameters()).device
        out: dict[str, list[torch.Tensor]] = {"weight": [], "log_joint": [],
                                              "log_marginal": [], "loss": []}
        for b in iterate_batches(split, self.spec_, batch_size, device):
            h = self.source_features(b.x)
            logits = model.head(h).float()
            x = gate.inputs(h, logits)
            joint = disc(x, b.y).float()
            marginal = disc(x, torch.full_like(b.y, gate.nil)).float()
            out["weight"].append(gate.ratio(joint, len(h), None, normalize=False).cpu())
            out["log_joint"].append(joint.cpu())
            out["log_marginal"].append(marginal.cpu())
            out["loss"].append(F.cross_entropy(logits, b.y, reduction="none").cpu())
        model.train(was_model)
        disc.train(was_disc)
        return {k: torch.cat(v) for k, v in out.items()}

    def source_features(self, x: torch.Tensor) -> torch.Tensor:
        """F(x) for a source sample (ADDA overrides: its source encoder is separate)."""
        return self.model_.features(x)

    def per_sample_weights(self, split: Split | None = None) -> torch.Tensor:
        """ω for every source sample: see :meth:`source_scores`."""
        return self.source_scores(split)["weight"]
