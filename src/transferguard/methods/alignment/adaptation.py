"""The step shared by the domain-adaptation family, and the switch for the gate.

Every method of the family minimises (methods reference sections 1.2 and 1.3)

    L = E_{T_L}[ℓ(C(F(x_l)), y_l)] + source_loss
        + trade_off · alignment(F(x_s), F(x_u))  [+ L_ADV^aug with the gate]

where ``source_loss`` is E_S[ℓ(C(F(x_s)), y_s)], or λ E_S[ω ℓ] when the gate is on (ℓ replaced
by the weighter's own per-sample loss where it sets one: Gold Loss Correction), and
``alignment`` is what distinguishes the methods (a discriminator for DANN, MK-MMD for DAN,
CORAL for DCORAL, ...). One forward pass runs over the concatenated source, labeled and
unlabeled batches.

The ``gate`` option is the *source-weighter* slot (:mod:`..reweighting.weighter`):
``gate=True`` adds :class:`~transferguard.methods.reweighting.gate.Gate` (its options in
``gate_options``), a string names any registered weighter. Every method of the family calls
:meth:`AdaptationMethod.step_loss`, the one place a weighter enters. For methods whose
alignment *is* a domain discriminator (DANN, PADA, ADDA), the gate's augmented discriminator
replaces it (its marginal ``nil`` term is that alignment); for the others (DAN, DCORAL, CDAN,
joint) the gate adds its own discriminator, as the reference describes for non-adversarial
methods.

The ``combine`` option decides how the source's gradient joins the labeled target's:
``None`` adds it (the objective above); ``"gradsim"`` gates it by its cosine with the
target's (:class:`~transferguard.methods.gradient.gradsim.GradientSimilarity`, Du et al.
2018: a source that pulls against the target leaves the twin's step); ``"dtnh"`` removes its
component along the target's (:class:`~transferguard.methods.gradient.dtnh.DTNH`, over the
whole model). Both see R = everything but the labeled-target loss: the (weighted) source loss
and the alignment term, so they compose with any weighter. gradsim takes
``combine_options`` ``every`` (measure the cosine every k steps), ``scale`` and ``momentum``.

Twin: the source-free view with the gate and the combiner off. The gate re-weights *source*
samples, so without a source there is nothing to gate: DANN and DANN+gate share the twin
DANN_T, and NTG1 − NTG2 is the gain of the gate (reference 1.1).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from ...data import Batch, Split, TrainData, eval_batches
from ...engine.schedules import ramp
from ...engine.types import StepOutput
from ...errors import ConfigError
from ..base import Method, _short
from ..gradient.dtnh import DTNH
from ..gradient.gradsim import GradientSimilarity
from ..reweighting.weighter import (
    Features,
    SourceWeighter,
    WeighterOutput,
    create_weighter,
    weighter_class,
    weighter_name,
)

__all__ = ["COMBINERS", "COMBINER_DESCRIPTIONS", "AdaptationMethod", "Features"]

#: how the source's gradient g_R can join the labeled target's g_T (``combine=NAME``)
COMBINER_DESCRIPTIONS = {
    "gradsim": "g_T + c g_R, c = min(1, EMA cos(g_T, g_R) / κ): gradient-similarity gating "
               "(Du et al. 2018)",
    "dtnh": "g_T + g_R minus g_R's component along g_T, over the whole model (Wan et al.)",
}
#: the values of ``combine``: None adds g_R as it is
COMBINERS = (None, *COMBINER_DESCRIPTIONS)


class AdaptationMethod(Method):
    """Base of the DA family. Subclasses implement :meth:`alignment_loss`."""

    streams_used = ("source", "target_labeled", "target_unlabeled")
    accepts_weighter = True
    #: whether the alignment term needs unlabeled target features
    needs_unlabeled: ClassVar[bool] = True
    #: whether a weighter with a marginal discriminator (the gate) takes the place of the
    #: method's own alignment
    gate_replaces_alignment: ClassVar[bool] = False
    #: whether a step is one L_T + R a gradient combiner can split (not for methods that
    #: train in stages or with a pre-training phase: ADDA, GTA)
    takes_combiner: ClassVar[bool] = True

    def __init__(self, model: str = "lenet", model_options: Mapping[str, Any] | None = None,
                 source_free: bool = False, trade_off: float = 1.0, ramp_gamma: float = 10.0,
                 gate: bool | str = False, gate_options: Mapping[str, Any] | None = None,
                 combine: str | None = None, combine_options: Mapping[str, Any] | None = None
                 ) -> None:
        super().__init__(model, model_options, source_free)
        if combine not in COMBINERS:
            raise ConfigError(f"combine must be one of {COMBINERS}, got {combine!r}: None adds "
                              "the source's gradient, 'gradsim' gates it by its cosine with "
                              "the labeled target's, 'dtnh' projects out its conflicting part.")
        if combine is not None and not self.takes_combiner:
            raise ConfigError(f"{self.name} does not take combine={combine!r}: it trains in "
                              "separate stages; use dann, dan, dcoral, cdan, pada or joint.")
        self.combine, self.combine_options = combine, dict(combine_options or {})
        if self.combine_options and combine != "gradsim":
            raise ConfigError(f"combine_options {self.combine_options} are gradsim's (every, "
                              f"scale, momentum); combine={combine!r} takes none.")
        if combine == "gradsim":
            self._gradsim()  # bad options stop here, before any training
        self.trade_off = trade_off
        self.ramp_gamma = ramp_gamma
        weighter_name(gate)  # an unknown weighter name stops here, before any training
        self.gate = gate
        self.gate_options = dict(gate_options or {})

    @property
    def label(self) -> str:
        name = weighter_name(self.gate)
        weighter = ""
        if name:  # the weighter with its own options: dann+kmm(B=5.0)
            opts = ", ".join(f"{k}={_short(v)}" for k, v in sorted(self.gate_options.items()))
            weighter = f"+{name}" + (f"({opts})" if opts else "")
        base = self.name + self.param_text(skip=("gate", "gate_options", "combine",
                                                 "combine_options")) + weighter
        if self.combine:
            opts = ", ".join(f"{k}={_short(v)}" for k, v in sorted(self.combine_options.items()))
            base += f"+{self.combine}" + (f"({opts})" if opts else "")
        return f"{base}_T" if self.source_free else base

    @property
    def has_weighter(self) -> bool:
        return weighter_name(self.gate) is not None

    def twin(self) -> Method:
        return self.clone(source_free=True, gate=False, gate_options={}, combine=None,
                          combine_options={})

    def streams(self) -> tuple[str, ...]:
        if self.needs_unlabeled or weighter_class(self.gate).needs_unlabeled:
            return self.streams_used
        return ("source", "target_labeled")

    @property
    def _alignment_replaced(self) -> bool:
        return self.gate_replaces_alignment and weighter_class(self.gate).replaces_alignment

    # ------------------------------------------------------------------ building
    def build(self, data: TrainData, trainer: Any) -> None:
        if "target_unlabeled" in self.streams() and len(data.target_unlabeled) == 0:
            raise ConfigError(
                f"{self.label} needs unlabeled target samples, but the task has none "
                "(labeled_percent=100?); lower labeled_percent."
            )
        self.source_split_ = data.source
        if self.combine and not self.source_free and len(data.target_labeled) == 0:
            raise ConfigError(
                f"{self.label}: combine={self.combine!r} weighs the source's gradient against "
                "the labeled target's, but the task has no labeled target samples "
                "(labeled_percent=0); raise labeled_percent or drop combine."
            )
        if weighter_name(self.gate) and self.trade_off != 1.0 and (
                self._alignment_replaced or not self.needs_unlabeled):
            raise ConfigError(
                f"{self.label}: trade_off weights {self.name}'s own discriminator, which the "
                "gate replaces; set gate_options={'mu_max': ...} to weight the gate's "
                "adversarial term instead."
            )
        self.build_alignment(data)
        self.weighter_: SourceWeighter = create_weighter(
            self.gate, self.model_.feature_dim, data.num_classes, self.gate_options)
        if weighter_name(self.gate):
            self.extra_modules_["gate"] = self.weighter_
        self.weighter_.setup(self, data)
        self.combiner_: GradientSimilarity | DTNH | None = None
        if self.combine == "gradsim" and not self.source_free:
            self.combiner_ = self._gradsim()
        elif self.combine == "dtnh" and not self.source_free:
            self.combiner_ = DTNH("always", scope="model")

    def _gradsim(self) -> GradientSimilarity:
        try:
            return GradientSimilarity(**self.combine_options)
        except TypeError as exc:
            raise ConfigError(f"combine_options {self.combine_options}: gradsim takes every "
                              "(int >= 1), scale (in (0, 1]) and momentum (in [0, 1)); "
                              f"{exc}") from exc

    @property
    def gradient_combiner(self) -> GradientSimilarity | DTNH | None:
        return getattr(self, "combiner_", None)

    def build_alignment(self, data: TrainData) -> None:
        """Hook: create the modules of the alignment term in ``self.extra_modules_``."""

    # ------------------------------------------------------------------ one step
    def training_step(self, batches: Mapping[str, Batch], progress: float) -> StepOutput:
        feats = self.forward_streams(batches, progress)
        return self.step_loss(feats, lambda: self.alignment_loss(feats))

    def step_loss(self, feats: Features, alignment: Callable[[], torch.Tensor]) -> StepOutput:
        """The family's objective from one step's features: the weighter's loss, the
        (weighted) source loss, the labeled-target loss and ``trade_off · alignment()``."""
        logs: dict[str, Any] = {"mu": feats.mu}
        per_sample = F.cross_entropy(feats.logits_src, feats.y_src, reduction="none")
        loss = per_sample.new_zeros(())
        out = self.weighter_(feats)
        if out.loss is not None:
            loss = loss + out.loss
        logs.update(out.logs)
        ce_src = self.source_loss(out.per_sample(per_sample), feats, out)
        loss = loss + ce_src
        logs["ce_src"] = ce_src.detach()
        if feats.logits_lab is not None:
            ce_lab = F.cross_entropy(feats.logits_lab, feats.y_lab)
            loss = loss + ce_lab
            logs["ce_lab"] = ce_lab.detach()
        if self.needs_unlabeled and not self._alignment_replaced:
            align = alignment()
            loss = loss + self.trade_off * align
            logs["align"] = align.detach()
        if feats.logits_lab is None:
            return StepOutput(loss, logs)
        # for DTNH: the labeled-target loss is the empirical risk, the rest the regulariser
        return StepOutput(loss, logs, empirical=ce_lab, regularizer=loss - ce_lab)

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
            ramp(progress, self.ramp_gamma), progress, src.index,
            x_src=src.x, x_lab=lab.x if lab is not None else None,
        )

    def source_loss(self, per_sample: torch.Tensor, feats: Features,
                    out: WeighterOutput) -> torch.Tensor:
        """E_S[ℓ], or λ E_S[ω ℓ] with a weighter (PADA multiplies its class weights in)."""
        return self.weighter_.source_loss(per_sample, out)

    def alignment_loss(self, feats: Features) -> torch.Tensor:
        return feats.h_src.new_zeros(())

    def param_groups(self) -> list[dict[str, Any]]:
        """The model at the base rate; the weighter's parameters at ``lr_mult`` times it
        (``gate_options["lr_mult"]``, default 1)."""
        groups = [{"params": list(m.parameters())} for k, m in self.modules().items()
                  if k != "gate"]
        if "gate" in self.extra_modules_:
            groups.append({"params": list(self.weighter_.parameters()),
                           "lr_mult": self.weighter_.lr_mult})
        return groups

    # ------------------------------------------------------------------ after training
    @torch.no_grad()
    def source_scores(self, split: Split | None = None, batch_size: int = 512
                      ) -> dict[str, torch.Tensor]:
        """Per-sample scores of every source sample (in the order of the source split).

        The weighter's scores (:meth:`SourceWeighter.score_batch`; for the gate ``weight``
        ω = D/(1 − D) clipped and not normalised per batch, 1 for every sample when there was
        no labeled target, and ``log_joint`` / ``log_marginal``), plus ``loss``: the
        classifier's cross-entropy on the observed label (the "small-loss" baseline of
        label-noise detection).
        """
        if not self.has_weighter:
            raise ConfigError(f"{self.label} has no source weighter; create it with gate=True "
                              "(or gate=NAME) to get per-sample source weights.")
        split = split if split is not None else self.source_split_
        model, weighter = self.model_, self.weighter_
        was_model, was_w = model.training, weighter.training
        model.eval()
        weighter.eval()
        device = next(model.parameters()).device
        out: dict[str, list[torch.Tensor]] = {}
        for b in eval_batches(split, self.spec_, batch_size, device):
            h = self.source_features(b.x)
            logits = model.head(h).float()
            scores = weighter.score_batch(h, logits, b.y, b.index)
            scores["loss"] = F.cross_entropy(logits, b.y, reduction="none")
            for k, v in scores.items():
                out.setdefault(k, []).append(v.cpu())
        model.train(was_model)
        weighter.train(was_w)
        return {k: torch.cat(v) for k, v in out.items()}

    def source_features(self, x: torch.Tensor) -> torch.Tensor:
        """F(x) for a source sample (ADDA overrides: its source encoder is separate)."""
        return self.model_.features(x)

    def per_sample_weights(self, split: Split | None = None) -> torch.Tensor:
        """ω for every source sample: see :meth:`source_scores`."""
        return self.source_scores(split)["weight"]
