"""Joint training: one classifier on the labeled source and the labeled target together.

    min_{F,C} E_{T_L}[ℓ(C(F(x_l)), y_l)] + E_S[ℓ(C(F(x_s)), y_s)]

This is L_CLF of Wang et al. (section 1.2), i.e. DANN without its adversary: the simplest
way to use a labeled source, and the first thing to check for negative transfer.
Twin: ``target_only``.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..data.task import Batch
from ..engine.types import StepOutput
from .base import Method, register_method, supervised_loss


@register_method("joint", "train on labeled source + labeled target together")
class Joint(Method):
    streams_used = ("source", "target_labeled")

    def training_step(self, batches: Mapping[str, Batch], progress: float) -> StepOutput:
        loss, logs = supervised_loss(self.model_, self.labeled_batches(batches))
        return StepOutput(loss, logs)
