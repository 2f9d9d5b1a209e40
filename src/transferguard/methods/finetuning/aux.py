"""Binary auxiliary pre-training (Borthakur & Einhorn, Cornell CS6784 poster; methods
reference section 6).

Split the source classes at random into two halves c_0, c_1, set y_b = 1[y ∈ c_1], add a
two-way head f_b to the source network and pre-train with

    L = (1 − B) · CE(y, f(x)) + B · CE(y_b, f_b(x))

"to pose a harder problem", hoping for features that relate classes to each other. The
network is then transferred *without* the binary head (``finetune`` copies the backbone
only). The effect is disputed (the authors' own project page reports no significant gain),
so compare several partitions (``partition_seed``) and seeds against B = 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ...data import Batch, TrainData
from ...engine.types import StepOutput
from ...errors import ConfigError
from ..base import Method, register_method


def binary_partition(num_classes: int, seed: int) -> torch.Tensor:
    """y -> y_b lookup: a random half of the classes (floor(K/2) of them) maps to 1."""
    perm = torch.randperm(num_classes, generator=torch.Generator().manual_seed(seed))
    table = torch.zeros(num_classes, dtype=torch.long)
    table[perm[num_classes - num_classes // 2 :]] = 1
    return table


@register_method("source_aux", "source pre-training with a binary auxiliary partition loss")
class SourceBinaryAux(Method):
    streams_used = ("source",)

    def __init__(self, model: str = "lenet", model_options: Mapping[str, Any] | None = None,
                 source_free: bool = False, aux_weight: float = 0.25,
                 partition_seed: int = 0) -> None:
        super().__init__(model, model_options, source_free)
        if not 0.0 <= aux_weight <= 1.0:
            raise ConfigError(f"aux_weight (B) must lie in [0, 1], got {aux_weight}.")
        self.aux_weight = aux_weight
        self.partition_seed = partition_seed

    def build(self, data: TrainData, trainer: Any) -> None:
        self.extra_modules_["aux_head"] = nn.Linear(self.model_.feature_dim, 2)
        self.partition_ = binary_partition(data.num_classes, self.partition_seed)

    def training_step(self, batches: Mapping[str, Batch], progress: float) -> StepOutput:
        b = batches["source"]
        h = self.model_.features(b.x)
        ce = F.cross_entropy(self.model_.head(h).float(), b.y)
        y_b = self.partition_.to(b.y.device)[b.y]
        aux = F.cross_entropy(self.extra_modules_["aux_head"](h).float(), y_b)
        loss = (1 - self.aux_weight) * ce + self.aux_weight * aux
        return StepOutput(loss, {"ce": ce.detach(), "aux": aux.detach()})
