"""Layer cut point (Yosinski et al., NIPS 2014), methods reference section 5.3.

Transfer the first k blocks of the pre-trained backbone, re-initialise blocks k+1..L and the
head, and train on the target:

- ``freeze=True`` (AnB): the transferred blocks are frozen (no gradient, eval mode);
- ``freeze=False`` (AnB+): everything is fine-tuned, the transferred blocks at the same rate
  as the new ones (``backbone_lr_mult`` = 1).

k = 0 is training from scratch. :func:`~transferguard.analysis.cut_point_sweep` runs every k
in both modes and names the best cut and the cutting point. Twin: k = 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...data import TrainData
from ...errors import ConfigError
from ..base import Method, register_method
from .finetune import FineTune


@register_method("cut_transfer", "transfer the first k backbone blocks, frozen or fine-tuned")
class CutTransfer(FineTune):
    def __init__(self, model: str = "lenet", model_options: Mapping[str, Any] | None = None,
                 source_free: bool = False, backbone_lr_mult: float = 1.0,
                 pretrain_iterations: int | None = None, pretrained: str | None = None,
                 pretrain_aux_weight: float = 0.0, partition_seed: int = 0, blocks: int = 1,
                 freeze: bool = True) -> None:
        super().__init__(model, model_options, source_free, backbone_lr_mult,
                         pretrain_iterations, pretrained, pretrain_aux_weight, partition_seed)
        if blocks < 0:
            raise ConfigError(f"cut_transfer blocks must be >= 0, got {blocks}.")
        self.blocks = blocks
        self.freeze = freeze

    @property
    def label(self) -> str:
        mode = "frozen" if self.freeze else "finetuned"
        return "cut_T" if self.source_free else f"cut{self.blocks}-{mode}"

    def twin(self) -> Method:
        return self.clone(source_free=True, blocks=0, pretrained=None)

    def transferred_blocks(self) -> list[str]:
        names = self.model_.blocks
        if self.blocks > len(names):
            raise ConfigError(f"cut_transfer blocks={self.blocks} but {self.model} has only "
                              f"{len(names)} blocks: {names}.")
        return [] if self.source_free else names[: self.blocks]

    def prepare(self, data: TrainData, trainer: Any) -> None:
        blocks = self.transferred_blocks()
        if not blocks:
            return  # k = 0: from scratch
        self.source_model_state_ = self.source_state(data, trainer)
        self.load_source_backbone(blocks)
        self.model_.reset_head()
        if self.freeze:
            for name in blocks:
                for p in self.model_.block(name).parameters():
                    p.requires_grad_(False)

    def param_groups(self) -> list[dict[str, Any]]:
        groups = super().param_groups()
        groups[0]["lr_mult"] = self.backbone_lr_mult
        return groups

    def set_train_mode(self) -> None:
        self.model_.train()
        if self.freeze:
            for name in self.transferred_blocks():
                self.model_.block(name).eval()
