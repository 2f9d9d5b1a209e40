"""Learning-rate schedules and the adversarial-weight ramp, as functions of progress p ∈ [0, 1].

- ``dann``: lr_p = lr_0 / (1 + α p)^β with α = 10, β = 0.75 (Ganin & Lempitsky 2015; the
  default of the DA literature, methods reference section 1.6);
- ``cosine``: lr_0 · ½(1 + cos πp);
- ``step``: lr_0 · 0.1^(number of milestones passed), milestones at p = 2/3 by default (the
  DELTA / L2-SP recipe: one 10x drop two thirds of the way);
- ``constant``.

``ramp(p)`` is the DANN ramp μ_p = 2 / (1 + exp(-γ p)) - 1 with γ = 10: the adversarial (or gate)
weight grows from 0 to 1 so that early, random features are not aligned.
"""

from __future__ import annotations

import math

SCHEDULES = ("dann", "cosine", "step", "constant")


def lr_factor(schedule: str, p: float, *, alpha: float = 10.0, beta: float = 0.75,
              milestones: tuple[float, ...] = (2 / 3,), gamma: float = 0.1) -> float:
    """Multiplier of the base learning rate at progress ``p``."""
    p = min(max(p, 0.0), 1.0)
    if schedule == "dann":
        return (1.0 + alpha * p) ** (-beta)
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * p))
    if schedule == "step":
        return gamma ** sum(p >= m for m in milestones)
    if schedule == "constant":
        return 1.0
    raise ValueError(f"unknown schedule {schedule!r}; choose from {SCHEDULES}.")


def ramp(p: float, gamma: float = 10.0) -> float:
    """μ_p = 2 / (1 + exp(-γ p)) - 1: 0 at p = 0, about 1 at p = 1."""
    return 2.0 / (1.0 + math.exp(-gamma * min(max(p, 0.0), 1.0))) - 1.0
