"""Linear probe: the pre-trained backbone frozen, only a new classifier trained on the target.

    min_C E_{T_L}[ℓ(C(F*(x_l)), y_l)],   F* = the source backbone, fixed

The cheapest transfer baseline, and the first stage of DELTA's channel attention (reference
3.2). Twin: the same probe on a random, frozen backbone (random features).
"""

from __future__ import annotations

from typing import Any

from ...data import TrainData
from ..base import register_method
from .finetune import FineTune


@register_method("linear_probe", "train a new head on the frozen pre-trained backbone")
class LinearProbe(FineTune):
    def prepare(self, data: TrainData, trainer: Any) -> None:
        super().prepare(data, trainer)
        for p in self.model_.backbone.parameters():
            p.requires_grad_(False)

    def twin(self) -> FineTune:
        return self.clone(source_free=True, pretrained=None)

    def set_train_mode(self) -> None:
        self.model_.train()
        self.model_.backbone.eval()  # frozen: no batch-norm statistics updates either
