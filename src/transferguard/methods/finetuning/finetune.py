"""Fine-tuning: pre-train F and C on the source, re-initialise C, fine-tune on the target.

    stage 1:  θ* = argmin_{F,C} E_S[ℓ(C(F(x_s)), y_s)]                 (Trainer.fit, source only)
    stage 2:  min_{F,C} E_{T_L}[ℓ(C(F(x_l)), y_l)],  F initialised at θ*_F, C fresh,
              the backbone learning rate scaled by ``backbone_lr_mult`` (0.1)

``pretrained`` skips stage 1 and loads a checkpoint instead: a file written by
``Trainer.save_checkpoint``, :func:`pretrain_source` or ``torch.save(model.state_dict())``
(loaded with weights_only=True). ``pretrain_aux_weight`` = B > 0 pre-trains with the binary
auxiliary partition loss (:mod:`.aux`, methods reference section 6); only the backbone is
transferred, never the auxiliary head.

Twin (the same recipe from random initialisation): stage 1 is skipped and the backbone
learns at the full rate, because a reduced rate only makes sense for pre-trained weights
that should be preserved; the twin is thus the strongest honest target-only baseline.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from ...data import Batch, TrainData
from ...engine.checkpoint import load_error_text
from ...engine.types import StepOutput
from ...errors import CheckpointError
from ...utils import derive_seed
from ..base import Method, register_method, supervised_loss


@register_method("finetune", "pre-train on the source, fine-tune on the labeled target")
class FineTune(Method):
    streams_used = ("target_labeled",)

    def __init__(self, model: str = "lenet", model_options: Mapping[str, Any] | None = None,
                 source_free: bool = False, backbone_lr_mult: float = 0.1,
                 pretrain_iterations: int | None = None, pretrained: str | None = None,
                 pretrain_aux_weight: float = 0.0, partition_seed: int = 0) -> None:
        super().__init__(model, model_options, source_free)
        self.backbone_lr_mult = backbone_lr_mult
        self.pretrain_iterations = pretrain_iterations
        self.pretrained = pretrained
        self.pretrain_aux_weight = pretrain_aux_weight
        self.partition_seed = partition_seed

    def streams(self) -> tuple[str, ...]:
        return ("source",) if self.source_free else ("target_labeled",)

    def prepare(self, data: TrainData, trainer: Any) -> None:
        if self.source_free:
            return
        self.source_model_state_ = self.source_state(data, trainer)
        self.load_source_backbone()
        self.model_.reset_head()

    def source_state(self, data: TrainData, trainer: Any) -> dict[str, torch.Tensor]:
        """The pre-trained source model: given in memory, loaded, or trained now."""
        given = getattr(self, "initial_state_", None)
        if given is not None:
            return given
        if self.pretrained:
            return load_model_state(self.pretrained)
        return pretrain_source(data, trainer, self.model, self.model_options,
                               self.pretrain_iterations, self.pretrain_aux_weight,
                               self.partition_seed)

    def load_source_backbone(self, blocks: list[str] | None = None) -> None:
        """Copy the source backbone (or only the named blocks) into the model."""
        backbone = {k.removeprefix("backbone."): v for k, v in self.source_model_state_.items()
                    if k.startswith("backbone.")}
        if blocks is not None:
            backbone = {k: v for k, v in backbone.items()
                        if any(k.startswith(b + ".") for b in blocks)}
            empty = [b for b in blocks if not any(k.startswith(b + ".") for k in backbone)
                     and any(True for _ in self.model_.block(b).state_dict())]
            if empty:
                raise CheckpointError(f"the pre-trained weights have nothing for blocks "
                                      f"{empty} of {self.model!r}.")
        try:
            self.model_.backbone.load_state_dict(backbone, strict=blocks is None)
        except RuntimeError as exc:
            raise CheckpointError(
                f"the pre-trained weights do not fit model {self.model!r}: {exc}"
            ) from exc

    def twin(self) -> Method:
        return FineTune(self.model, self.model_options, source_free=True,
                        backbone_lr_mult=self.backbone_lr_mult,
                        pretrain_iterations=self.pretrain_iterations)

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


def pretrain_source(data: TrainData, trainer: Any, model: str = "lenet",
                    model_options: Mapping[str, Any] | None = None,
                    iterations: int | None = None, aux_weight: float = 0.0,
                    partition_seed: int = 0) -> dict[str, torch.Tensor]:
    """Train a model on the source alone (the Trainer's loop) and return its state dict.

    ``aux_weight`` > 0 adds the binary auxiliary partition loss of :mod:`.aux`.
    """
    from ..baselines.source_only import SourceOnly
    from .aux import SourceBinaryAux

    if aux_weight > 0:
        pre: Method = SourceBinaryAux(model, model_options, aux_weight=aux_weight,
                                      partition_seed=partition_seed)
    else:
        pre = SourceOnly(model, model_options)
    iters = iterations or trainer.config.iterations
    # a seed of its own: with the run's seed, the source network would start from the very
    # weights the target model is initialised with, and the "re-initialised" layers of a cut
    # transfer (and the from-scratch twin) would not be independent of the source network
    trainer.with_options(iterations=iters, select="last", checkpoint_dir=None,
                         seed=derive_seed(trainer.config.seed, "pretrain")).fit(
        pre, data.only_source())
    # on the CPU whatever the training device: a state to save or to load into a new model
    return {k: v.detach().cpu().clone() for k, v in pre.model_.state_dict().items()}


def load_model_state(path: str) -> dict[str, torch.Tensor]:
    """A model state dict from a model checkpoint or a ``Trainer.save_checkpoint`` file."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"pre-trained checkpoint {path} does not exist.") from None
    except Exception as exc:
        raise CheckpointError(
            f"could not read pre-trained checkpoint {path}: {load_error_text(exc)}. Do not load "
            "it with weights_only=False unless you wrote it yourself.") from None
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    if not isinstance(state, dict) or not any(str(k).startswith("backbone.") for k in state):
        raise CheckpointError(
            f"{path} is not a transferguard model checkpoint (no 'backbone.*' keys); save one "
            "with Trainer.save_checkpoint or torch.save(model.state_dict(), path)."
        )
    return state
