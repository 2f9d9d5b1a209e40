"""Regularised fine-tuning: min_w L_emp(w) + Ω(w), optionally with the DTNH direction.

The base of L2-SP, DELTA, feature-map distillation and BSS (methods reference sections 2 and
3). A subclass implements ``regularizer(batch, h, logits)`` (the value of Ω with its
coefficient applied) and, when it has one, ``closed_form_gradients()``.

- ``alpha`` is the regulariser's strength; it decays as α_t = α · decay^epoch, with
  ``alpha_decay`` = None meaning 0.99 per epoch with DTNH (the authors' code) and no decay
  without it (the regularisers' own papers); give a number to use the same schedule for both.
- ``dtnh=True`` makes the Trainer combine the gradients with :class:`~.dtnh.DTNH`
  (``dtnh_mode``: "always" or "on_conflict").
- Regularisers that pull towards the source weights (``uses_source_weights``) switch plain
  weight decay off on the backbone, as L2-SP requires, and put their own L2 (β) on the head.

Twin: for regularisers of the source weights, removing the source removes w* and Ω with it,
so the twin is fine-tuning from random initialisation (``finetune_T``, shared by all of
them); a regulariser that does not refer to the source (BSS) keeps its term in the twin.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from ...data import Batch, TrainData
from ...engine.types import StepOutput
from ...errors import ConfigError
from ..base import Method
from ..gradient.dtnh import DTNH, DTNH_MODES
from .finetune import FineTune


class RegularizedFineTune(FineTune):
    uses_source_weights: ClassVar[bool] = True

    def __init__(self, model: str = "lenet", model_options: Mapping[str, Any] | None = None,
                 source_free: bool = False, backbone_lr_mult: float = 0.1,
                 pretrain_iterations: int | None = None, pretrained: str | None = None,
                 pretrain_aux_weight: float = 0.0, partition_seed: int = 0,
                 alpha: float = 0.01, beta: float = 0.01, alpha_decay: float | None = None,
                 dtnh: bool = False, dtnh_mode: str = "always") -> None:
        super().__init__(model, model_options, source_free, backbone_lr_mult,
                         pretrain_iterations, pretrained, pretrain_aux_weight, partition_seed)
        if dtnh_mode not in DTNH_MODES:
            raise ConfigError(f"dtnh_mode must be one of {DTNH_MODES}, got {dtnh_mode!r}.")
        if alpha < 0 or beta < 0:
            raise ConfigError(f"alpha and beta must be >= 0, got {alpha} and {beta}.")
        self.alpha = alpha
        self.beta = beta
        self.alpha_decay = alpha_decay
        self.dtnh = bool(dtnh)
        self.dtnh_mode = dtnh_mode

    @property
    def label(self) -> str:
        base = self.name + self.param_text(skip=("dtnh",)) + ("+dtnh" if self.dtnh else "")
        return f"{base}_T" if self.source_free else base

    def twin(self) -> Method:
        if self.uses_source_weights:
            return FineTune(self.model, self.model_options, source_free=True,
                            backbone_lr_mult=self.backbone_lr_mult,
                            pretrain_iterations=self.pretrain_iterations)
        return self.clone(source_free=True, pretrained=None, pretrain_aux_weight=0.0)

    # ------------------------------------------------------------------ set-up
    def setup(self, data: TrainData, trainer: Any) -> None:
        super().setup(data, trainer)
        labeled = data.source if self.source_free else data.target_labeled
        cfg = trainer.config
        self.total_epochs_ = cfg.iterations * cfg.batch_size / max(1, len(labeled))
        self.alpha_t_ = self.alpha
        self.combiner_ = DTNH(self.dtnh_mode) if self.dtnh else None

    @property
    def gradient_combiner(self) -> DTNH | None:
        return getattr(self, "combiner_", None)

    def prepare(self, data: TrainData, trainer: Any) -> None:
        super().prepare(data, trainer)
        if not self.source_free or not self.uses_source_weights:
            self.prepare_regularizer(data, trainer)

    def prepare_regularizer(self, data: TrainData, trainer: Any) -> None:
        """Hook: what Ω needs before fine-tuning (a copy of w*, channel attention ...)."""

    def param_groups(self) -> list[dict[str, Any]]:
        groups = super().param_groups()
        if self.uses_source_weights and not self.source_free:
            groups[0]["weight_decay"] = 0.0  # Ω replaces weight decay on shared weights
            groups[1]["weight_decay"] = 0.0  # ... and β‖w_head‖²/2 on the head
        return groups

    # ------------------------------------------------------------------ one step
    def coefficient(self, progress: float) -> float:
        decay = self.alpha_decay if self.alpha_decay is not None else (
            0.99 if self.dtnh else 1.0)
        return self.alpha * decay ** (progress * self.total_epochs_)

    def training_step(self, batches: Mapping[str, Batch], progress: float) -> StepOutput:
        (batch,) = self.labeled_batches(batches)
        self.alpha_t_ = self.coefficient(progress)
        h = self.model_.features(batch.x)
        logits = self.model_.head(h).float()
        empirical = F.cross_entropy(logits, batch.y)
        reg = self.regularizer(batch, h, logits)
        logs = {"ce": empirical.detach(), "reg": reg.detach(), "alpha": self.alpha_t_}
        if self.combiner_ is not None:
            logs["conflict_rate"] = self.combiner_.conflict_rate
        return StepOutput(empirical + reg, logs, empirical=empirical, regularizer=reg)

    def regularizer(self, batch: Batch, h: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def head_l2(self) -> torch.Tensor:
        """β/2 ‖w_head‖²: the new classifier's plain L2 penalty."""
        return 0.5 * self.beta * sum(p.pow(2).sum() for p in self.model_.head.parameters())
