"""Source only: train F and C on the labeled source alone; the target is never used.

    min_{F,C} E_S[ℓ(C(F(x_s)), y_s)]

Twin: with the source removed, the labeled target takes its place, which is ``target_only``.
"""

from __future__ import annotations

from collections.abc import Mapping

from ...data import Batch
from ...engine.types import StepOutput
from ..base import Method, register_method, supervised_loss


@register_method("source_only", "train on the labeled source only")
class SourceOnly(Method):
    streams_used = ("source",)

    def training_step(self, batches: Mapping[str, Batch], progress: float) -> StepOutput:
        loss, logs = supervised_loss(self.model_, [batches["source"]])
        return StepOutput(loss, logs)
