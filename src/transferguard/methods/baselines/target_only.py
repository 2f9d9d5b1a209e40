"""Target only: train F and C on the labeled target alone.

    min_{F,C} E_{T_L}[ℓ(C(F(x_l)), y_l)]

It is its own twin (there is no source to remove), and the baseline every practitioner
compares a transfer method with.
"""

from __future__ import annotations

from collections.abc import Mapping

from ...data import Batch
from ...engine.types import StepOutput
from ..base import Method, register_method, supervised_loss


@register_method("target_only", "train on the labeled target only")
class TargetOnly(Method):
    streams_used = ("target_labeled", "source")

    def streams(self) -> tuple[str, ...]:
        # in a source-free view the labeled target sits in the "source" slot
        return ("source",) if self.source_free else ("target_labeled",)

    def twin(self) -> Method:
        return self.clone()

    def training_step(self, batches: Mapping[str, Batch], progress: float) -> StepOutput:
        loss, logs = supervised_loss(self.model_, self.labeled_batches(batches))
        return StepOutput(loss, logs)
