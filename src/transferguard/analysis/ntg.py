"""The negative transfer gap (Wang et al. 2019, methods reference section 1.1).

    NTG = Acc(A_T) − Acc(A)        in accuracy points; > 0 means negative transfer

A is a transfer algorithm run on (S, T); A_T is *the same algorithm* with the source removed,
on the same target splits (its :meth:`~transferguard.methods.Method.twin`). Each seed draws
its own perturbation and splits (``resplit=True``), and A and A_T share them, so the gaps are
paired and their spread includes the data's variability as well as the training's.

The verdict uses a two-sided Student-t 95% confidence interval of the mean gap over seeds:
"negative transfer" when the whole interval lies above 0, "positive transfer" when it lies
below 0, "inconclusive" otherwise (always with one seed). A verdict whose interval ends
close to 0 (within a quarter of its half-width, :data:`THIN_MARGIN`) is flagged as resting
on a thin margin: one more seed can flip it, so the warning asks for more seeds. A run that
collapsed (predicts one class, or sits at chance) is flagged rather than reported as an
ordinary gap.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ..data import TransferTask
from ..engine import RunResult, Trainer
from ..utils import check_seeds

NEGATIVE, POSITIVE, INCONCLUSIVE = "negative transfer", "positive transfer", "inconclusive"
#: an interval end within this share of the half-width from 0 makes the verdict "thin"
THIN_MARGIN = 0.25


def t_quantile(level: float, dof: int) -> float:
    """Two-sided Student-t quantile (scipy when present; the values below otherwise)."""
    try:
        from scipy import stats

        return float(stats.t.ppf(0.5 + level / 2, dof))
    except ImportError:  # pragma: no cover - scipy ships with scikit-learn
        table = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365,
                 8: 2.306, 9: 2.262, 10: 2.228}
        return table.get(dof, 1.96)


def confidence_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high) of a Student-t interval; low = high = nan with fewer than 2 values."""
    vals = [float(v) for v in values]
    if not vals:
        raise ValueError("a confidence interval needs at least one value.")
    mean = statistics.fmean(vals)
    if len(vals) < 2:
        return mean, math.nan, math.nan
    half = t_quantile(level, len(vals) - 1) * statistics.stdev(vals) / math.sqrt(len(vals))
    return mean, mean - half, mean + half


@dataclass
class NTGResult:
    """Accuracies of A and A_T over seeds, the gap, its interval and a verdict."""

    method: str
    twin: str
    seeds: list[int]
    accuracy: list[float]
    twin_accuracy: list[float]
    collapsed: list[bool] = field(default_factory=list)
    twin_collapsed: list[bool] = field(default_factory=list)
    level: float = 0.95
    seconds: float = 0.0

    def __post_init__(self) -> None:
        n = len(self.seeds)
        if not (len(self.accuracy) == len(self.twin_accuracy) == n) or n == 0:
            raise ValueError(
                f"NTG needs one accuracy of A and of A_T per seed; got {len(self.accuracy)} "
                f"and {len(self.twin_accuracy)} for {n} seeds."
            )
        self.collapsed = self.collapsed or [False] * n
        self.twin_collapsed = self.twin_collapsed or [False] * n

    @property
    def gaps(self) -> list[float]:
        return [t - a for a, t in zip(self.accuracy, self.twin_accuracy)]

    @property
    def mean_accuracy(self) -> float:
        return statistics.fmean(self.accuracy)

    @property
    def mean_twin_accuracy(self) -> float:
        return statistics.fmean(self.twin_accuracy)

    @property
    def interval(self) -> tuple[float, float, float]:
        return confidence_interval(self.gaps, self.level)

    @property
    def ntg(self) -> float:
        return self.interval[0]

    @property
    def verdict(self) -> str:
        _, low, high = self.interval
        if math.isnan(low):
            return INCONCLUSIVE
        if low > 0:
            return NEGATIVE
        if high < 0:
            return POSITIVE
        return INCONCLUSIVE

    @property
    def thin_margin(self) -> bool:
        """Whether the interval end nearest 0 lies within :data:`THIN_MARGIN` of the
        half-width from 0 (on either side): the verdict could flip with another seed."""
        _, low, high = self.interval
        if math.isnan(low) or high == low:
            return False
        nearest = min(abs(low), abs(high))
        return nearest < THIN_MARGIN * (high - low) / 2

    @property
    def warnings(self) -> list[str]:
        out = []
        if any(self.collapsed):
            out.append(f"{self.method} collapsed in {sum(self.collapsed)} of "
                       f"{len(self.seeds)} seeds (one predicted class or chance accuracy)")
        if any(self.twin_collapsed):
            out.append(f"{self.twin} collapsed in {sum(self.twin_collapsed)} of "
                       f"{len(self.seeds)} seeds")
        if len(self.seeds) < 2:
            out.append("one seed: no confidence interval; use at least 3 seeds")
        elif self.thin_margin:
            _, low, high = self.interval
            end = low if abs(low) < abs(high) else high
            out.append(f"the verdict '{self.verdict}' rests on a thin margin: the interval "
                       f"ends {abs(end) + 0.0:.2f} points from 0, so one more seed can flip "
                       f"it; run more seeds (e.g. {max(5, 2 * len(self.seeds))}) to settle "
                       f"it")
        return out

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        mean, low, high = self.interval
        d.update(ntg=mean, ci_low=None if math.isnan(low) else low,
                 ci_high=None if math.isnan(high) else high, verdict=self.verdict,
                 gaps=self.gaps, warnings=self.warnings)
        return d


RunFn = Callable[[Any, TransferTask, int], RunResult]


def negative_transfer_gap(
    task: TransferTask,
    method: Any,
    seeds: Sequence[int] = (0, 1, 2),
    trainer: Trainer | None = None,
    *,
    resplit: bool = True,
    level: float = 0.95,
    run: RunFn | None = None,
) -> NTGResult:
    """Train A and its twin A_T for each seed and compare their test accuracies.

    ``method`` is a :class:`~transferguard.methods.Method` or a registered method name.
    ``trainer`` sets the loop (its seed is replaced by each seed). ``run(method, task, seed)``
    replaces the training call (the experiment runner passes one that records every run in
    the run store and skips finished ones).
    """
    from ..methods import Method, create_method

    if isinstance(method, str):
        method = create_method(method)
    if not isinstance(method, Method):
        raise TypeError(f"method must be a Method or a method name, got {type(method).__name__}.")
    seeds = check_seeds(seeds)
    trainer = trainer or Trainer()

    def default_run(m: Any, t: TransferTask, seed: int) -> RunResult:
        return trainer.with_options(seed=seed).run(m, t)

    run = run or default_run
    twin = method.twin()
    acc, twin_acc, col, twin_col, secs = [], [], [], [], 0.0
    for seed in seeds:
        t = task.with_seed(seed) if resplit else task
        a = run(method.clone(), t, seed)
        b = run(twin.clone(), t, seed)
        acc.append(a.test_accuracy)
        twin_acc.append(b.test_accuracy)
        col.append(a.collapsed)
        twin_col.append(b.collapsed)
        secs += a.seconds + b.seconds
    return NTGResult(method.label, twin.label, seeds, acc, twin_acc, col, twin_col, level, secs)
