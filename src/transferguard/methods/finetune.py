"""Fine-tuning: pre-train F and C on the source, re-initialise C, fine-tune on the target.

    stage 1:  θ* = argmin_{F,C} E_S[ℓ(C(F(x_s)), y_s)]                 (Trainer.fit, source only)
    stage 2:  min_{F,C} E_{T_L}[ℓ(C(F(x_l)), y_l)],  F initialised at θ*_F, C fresh,
              the backbone learning rate scaled by ``backbone_lr_mult`` (0.1)

``pretrained`` skips stage 1 and loads a checkpoint instead: a file written by
``Trainer.save_checkpoint`` or ``torch.save(model.state_dict())`` (weights_only=True).

Twin (the same recipe from random initialisation): stage 1 is skipped and the backbone
learns at the full rate, because a reduced rate only makes sense for pre-trained weights
that should be preserved; the twin is thus the strongest honest target-only baseline.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from ..data.task import Batch, TrainData
from ..engine.types import StepOutput
from ..errors import CheckpointError
from .base import Method, register_method, supervised_loss
from .source_only import SourceOnly


@register_method("finetune", "pre-train on the source, fine-tune on the labeled target")
class FineTune(Method):
    streams_used = ("target_labeled",)

    def __init__(self, model: str = "lenet", model_options: Mapping[str, Any] | None = None,
                 source_free: bool = False, backbone_lr_mult: float = 0.1,
                 pretrain_iterations: int | None = None, pretrained: str | None = None) -> None:
        super().__init__(model, model_options, source_free)
        self.backbone_lr_mult = backbone_lr_mult
        self.pretrain_iterations = pretrain_iterations
        self.pretrained = pretrained

    def streams(self) -> tuple[str, ...]:
        return ("source",) if self.source_free else ("target_labeled",)

    def prepare(self, data: TrainData, trainer: Any) -> None:
        if self.source_free:
            return
        if self.pretrained:
            self.source_model_state_ = load_model_state(self.pretrained)
        else:
            pre = SourceOnly(self.model, self.model_options)
            iters = self.pretrain_iterations or trainer.config.iterations
            trainer.with_options(iterations=iters, select="last", checkpoint_dir=None).fit(
                pre, data.only_source()
            )
            self.source_model_state_ = pre.model_.state_dict()
        self.load_source_backbone()
        self.model_.reset_head()

    def load_source_backbone(self) -> None:
        backbone = {k.removeprefix("backbone."): v for k, v in self.source_model_state_.items()
                    if k.startswith("backbone.")}
        try:
            self.model_.backbone.load_state_dict(backbone)
        except RuntimeError as exc:
            raise CheckpointError(
                f"the pre-trained weights do not fit model {self.model!r}: {exc}"
            ) from exc

    def param_groups(self) -> list[dict[str, Any]]:
        mult = 1.0 if self.source_free else self.backbone_lr_mult
        groups = [
            {"params": list(self.model_.backbone.parameters()), "lr_mult": mult},
            {"params": list(self.model_.head.parameters()), "lr_mult": 1.0},
        ]
        groups += [{"params": list(m.parameters())} for m in self.extra_modules_.values()]
        return groups

    def training_step(self, batches: Mapping[str, Batch], progress: float) -> StepOutput:
        loss, logs = supervised_loss(self.model_, self.labeled_batches(batches))
        return StepOutput(loss, logs)


def load_model_state(path: str) -> dict[str, torch.Tensor]:
    """A model state dict from a model checkpoint or a ``Trainer.save_checkpoint`` file."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"pre-trained checkpoint {path} does not exist.") from None
    except Exception as exc:
        raise CheckpointError(f"could not read pre-trained checkpoint {path}: {exc}") from exc
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    if not isinstance(state, dict) or not any(str(k).startswith("backbone.") for k in state):
        raise CheckpointError(
            f"{path} is not a transferguard model checkpoint (no 'backbone.*' keys); save one "
            "with Trainer.save_checkpoint or torch.save(model.state_dict(), path)."
        )
    return state
