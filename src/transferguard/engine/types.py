"""Plain records passed between the Trainer, methods and the experiment layer."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch


@dataclass
class StepOutput:
    """What a method's ``training_step`` returns.

    ``loss`` is what is minimised. Methods with a regulariser also give ``empirical`` and
    ``regularizer`` separately (``loss = empirical + regularizer``), so a gradient combiner
    such as DTNH can treat their gradients apart. ``logs`` are detached scalars for progress
    reports; turning them into Python floats is left to the Trainer (one sync per log).
    """

    loss: torch.Tensor
    logs: dict[str, torch.Tensor | float] = field(default_factory=dict)
    empirical: torch.Tensor | None = None
    regularizer: torch.Tensor | None = None


@dataclass
class EvalResult:
    """Accuracy (in %) of a model on one split, with signs of a collapsed run."""

    accuracy: float
    loss: float
    n: int
    per_class: list[float]
    predicted_counts: list[int]

    @property
    def majority_fraction(self) -> float:
        return max(self.predicted_counts) / max(1, self.n)

    @property
    def collapsed(self) -> bool:
        """Predicts (nearly) one class, or is no better than chance + 2 points."""
        k = len(self.predicted_counts)
        return self.majority_fraction >= 0.8 or self.accuracy <= 100.0 / k + 2.0


@dataclass
class FitResult:
    """The outcome of :meth:`Trainer.fit` (no test numbers: fit never sees the test split)."""

    method: str
    iterations: int
    trained: bool
    best_step: int | None = None
    val_accuracy: float | None = None
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    note: str = ""
    best_state: dict[str, Any] | None = None
    #: time of the training loop alone (no set-up, earlier stages or final bookkeeping)
    loop_seconds: float = 0.0


@dataclass
class RunResult:
    """One trained method evaluated on the test split of its task."""

    method: str
    seed: int
    test_accuracy: float
    test_accuracy_last: float
    val_accuracy: float | None
    best_step: int | None
    collapsed: bool
    majority_fraction: float
    trained: bool
    seconds: float
    iterations: int
    note: str = ""
    history: list[dict[str, float]] = field(default_factory=list)
    #: method-specific results (e.g. the gate's harmful-sample AUROC)
    extra: dict[str, Any] = field(default_factory=dict)

    def metrics(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("history")
        return d
