"""Loss basins: accuracy and loss along the straight line between two models, and the
performance barrier. Methods reference section 4.3 (Neyshabur et al.; Frankle et al. 2020).

    theta(lambda) = (1 - lambda) theta_1 + lambda theta_2   over all state-dict tensors,
    lambda in linspace(0, 1, points)

    B = max_lambda [ Err(theta(lambda)) - ((1 - lambda) Err(theta_1) + lambda Err(theta_2)) ]

(in error points, %). B ~ 0 (within seed noise) means the two models sit in one basin: the
finding of the paper is that two fine-tunings of the same pre-trained network do, and two
networks trained from random initialisations do not. ``loss_barrier`` is the same with the
cross-entropy in place of the error, and ``barrier_vs_mean`` the drop below the mean of the
endpoints' accuracies, the looser reading of the issue.

Cost: ``points`` evaluation passes over the split (one per point, batched), plus, with
``bn_data``, one pass over ``bn_data`` per interior point to re-estimate the batch-norm
statistics (weights moved, running statistics must follow; the endpoints keep their own, so
that they are exactly the two models). Integer buffers (batch-norm step counters) are taken
from the nearer endpoint.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..data import InputSpec, Split
from ..engine import Trainer
from ..errors import ConfigError
from .state import check_same_architecture, evaluate, load_tensors, working_copy


@dataclass
class InterpolationResult:
    """Accuracy (%) and loss at each lambda from model 1 (lambda = 0) to model 2 (lambda = 1)."""

    lambdas: list[float]
    accuracy: list[float]
    loss: list[float]
    label: str = ""
    seconds: float = 0.0
    eval_seconds: float = 0.0
    bn_reestimated: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def _excess(self, values: Sequence[float]) -> float:
        a, b = values[0], values[-1]
        return max(v - ((1 - t) * a + t * b) for t, v in zip(self.lambdas, values))

    @property
    def error(self) -> list[float]:
        return [100.0 - a for a in self.accuracy]

    @property
    def barrier(self) -> float:
        """Frankle et al.'s error barrier in points (>= 0; 0 = linearly connected)."""
        return self._excess(self.error)

    @property
    def loss_barrier(self) -> float:
        return self._excess(self.loss)

    @property
    def barrier_vs_mean(self) -> float:
        """Largest drop of accuracy below the mean of the endpoints' accuracies (>= 0)."""
        mean = (self.accuracy[0] + self.accuracy[-1]) / 2
        return max(0.0, max(mean - a for a in self.accuracy))

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "lambdas": self.lambdas, "accuracy": self.accuracy,
                "loss": self.loss, "barrier": self.barrier, "loss_barrier": self.loss_barrier,
                "barrier_vs_mean": self.barrier_vs_mean, "seconds": self.seconds,
                "bn_reestimated": self.bn_reestimated}


def _as_state(m: nn.Module | Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    state = m.state_dict() if isinstance(m, nn.Module) else m
    return {k: v.detach() for k, v in state.items()}


@torch.no_grad()
def interpolate(model_a: nn.Module | Mapping[str, torch.Tensor],
                model_b: nn.Module | Mapping[str, torch.Tensor], split: Split,
                spec: InputSpec, *, points: int = 11, like: nn.Module | None = None,
                bn_data: Split | None = None, trainer: Trainer | None = None,
                label: str = "") -> InterpolationResult:
    """Evaluate ``theta(lambda)`` at ``points`` evenly spaced lambdas, endpoints included.

    Either side may be a model or a state dict (``like`` gives the architecture when both
    are state dicts). One evaluation pass over ``split`` per point.
    """
    if int(points) < 2:
        raise ConfigError(f"points must be at least 2 (the two endpoints), got {points}.")
    ref = like if like is not None else next(
        (m for m in (model_a, model_b) if isinstance(m, nn.Module)), None)
    if ref is None:
        raise ConfigError("interpolate needs a model (or like=model) to evaluate states.")
    check_same_architecture(model_a, model_b)
    check_same_architecture(ref, model_b, "the model and the states")
    trainer = trainer or Trainer(progress=False)
    t0 = time.perf_counter()
    work = working_copy(ref, trainer)
    dev = trainer.device
    sa = {k: v.to(dev) for k, v in _as_state(model_a).items()}
    sb = {k: v.to(dev) for k, v in _as_state(model_b).items()}
    floats = [k for k, v in sa.items() if v.is_floating_point()]
    ints = [k for k in sa if k not in floats]
    lambdas = [float(x) for x in torch.linspace(0, 1, int(points))]
    acc, loss = [], []
    eval_s = 0.0
    for lam in lambdas:
        vals = {k: torch.lerp(sa[k], sb[k], lam) for k in floats}
        vals.update({k: (sa[k] if lam < 0.5 else sb[k]) for k in ints})
        load_tensors(work, vals)
        interior = 0.0 < lam < 1.0
        t1 = time.perf_counter()
        r = evaluate(work, split, spec, trainer, bn_data if interior else None)
        eval_s += time.perf_counter() - t1
        acc.append(r.accuracy)
        loss.append(r.loss)
    return InterpolationResult(lambdas, acc, loss, label, time.perf_counter() - t0, eval_s,
                               bn_data is not None)


@dataclass
class BarrierSummary:
    """Barriers of one kind of pair (e.g. P-T/P-T) over several pairs: mean and interval."""

    kind: str
    barriers: list[float]
    loss_barriers: list[float]
    curves: list[InterpolationResult] = field(default_factory=list)

    def interval(self, level: float = 0.95) -> tuple[float, float, float]:
        from .ntg import confidence_interval

        return confidence_interval(self.barriers, level)

    @property
    def mean(self) -> float:
        return sum(self.barriers) / len(self.barriers) if self.barriers else math.nan

    def to_dict(self) -> dict[str, Any]:
        m, lo, hi = self.interval()
        return {"kind": self.kind, "barriers": self.barriers,
                "loss_barriers": self.loss_barriers, "mean": m, "ci95": [lo, hi],
                "curves": [c.to_dict() for c in self.curves]}


def summarize_barriers(kind: str, curves: Sequence[InterpolationResult]) -> BarrierSummary:
    return BarrierSummary(kind, [c.barrier for c in curves], [c.loss_barrier for c in curves],
                          list(curves))
