"""Which pre-trained checkpoint to start from. Methods reference section 4.7.

The source network is pre-trained once (the Trainer's loop) and its state is kept at several
steps of that one run (:func:`pretrain_with_snapshots`: step 0 is the random
initialisation, the last step is the finished network). Fine-tuning from each snapshot gives
target accuracy against pre-training progress (:func:`checkpoint_sweep`). The paper finds
that earlier checkpoints transfer as well as the last one, from the point where pre-training
enters its *final basin*. Two measurements of that point are kept:

- ``source_barrier``: the barrier (section 4.3) of the linear path from each snapshot to the
  final network, on the source data. Measured on the built-in digits, it is ~0 for every
  snapshot (the path from an earlier, worse snapshot to the final one is monotone), so it does
  not locate the entry; it is reported, not used;
- ``finetuned_barrier``: the barrier between two fine-tunings (two seeds) started from the
  same snapshot, on the target: a start inside the final basin sends them into one basin.
  :attr:`CheckpointResult.basin_entry` is the first snapshot from which this barrier stays
  below ``tolerance`` points.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..data import TrainData, TransferTask
from ..engine import RunResult, Trainer
from ..errors import ConfigError
from ..utils import derive_seed
from .state import clone_state


class _Snapshots:
    """Mixin: keep the model's state before the training steps named in ``snapshot_steps_``
    (the state after that many updates), in ``snapshots_``."""

    def training_step(self, batches: Any, progress: float) -> Any:
        done = self._steps_done_
        if done in self.snapshot_steps_:
            self.snapshots_[done] = clone_state(self.model_)  # type: ignore[attr-defined]
        self._steps_done_ = done + 1
        return super().training_step(batches, progress)  # type: ignore[misc]


def pretrain_with_snapshots(data: TrainData, trainer: Trainer, steps: Sequence[int], *,
                            model: str = "lenet", model_options: Mapping[str, Any] | None = None,
                            iterations: int | None = None) -> dict[int, dict[str, torch.Tensor]]:
    """Pre-train on the source alone, as :func:`transferguard.methods.pretrain_source` does
    (same seed, same recipe), and return ``{step: model state}`` for every requested step
    (0 .. iterations; the last one is the finished network)."""
    from ..methods.baselines.source_only import SourceOnly

    iters = int(iterations or trainer.config.iterations)
    wanted = sorted({int(s) for s in steps})
    if not wanted or wanted[0] < 0 or wanted[-1] > iters:
        raise ConfigError(f"snapshot steps must lie in [0, {iters}] (the pre-training "
                          f"iterations), got {list(steps)}.")
    cls = type("SourceOnly", (_Snapshots, SourceOnly), {"__module__": SourceOnly.__module__})
    pre = cls(model, model_options)
    pre.snapshot_steps_ = set(wanted)
    pre.snapshots_ = {}
    pre._steps_done_ = 0
    trainer.with_options(iterations=iters, select="last", checkpoint_dir=None,
                         seed=derive_seed(trainer.config.seed, "pretrain")).fit(
        pre, data.only_source())
    pre.snapshots_[iters] = clone_state(pre.model_)
    return {s: pre.snapshots_[s] for s in wanted}


@dataclass
class CheckpointResult:
    """Target test accuracy after fine-tuning from each pre-training snapshot.

    ``accuracy[step]`` holds one value per seed; ``scratch`` the same recipe from random
    initialisation; ``source_accuracy[step]`` the snapshot's accuracy on the source data and
    ``source_barrier[step]`` the barrier of its linear path to the final network (points).
    """

    steps: list[int]
    seeds: list[int]
    accuracy: dict[int, list[float]]
    scratch: list[float]
    source_accuracy: dict[int, float] = field(default_factory=dict)
    source_barrier: dict[int, float] = field(default_factory=dict)
    #: barriers between the fine-tuned models of two seeds started from the same checkpoint
    finetuned_barrier: dict[int, list[float]] = field(default_factory=dict)
    tolerance: float = 1.0
    label: str = ""

    def mean(self, step: int) -> float:
        return statistics.fmean(self.accuracy[step])

    @property
    def final_step(self) -> int:
        return max(self.steps)

    @property
    def earliest_as_good(self) -> int:
        """The first step whose mean accuracy is within ``tolerance`` of the final one's."""
        final = self.mean(self.final_step)
        return next(s for s in sorted(self.steps) if self.mean(s) >= final - self.tolerance)

    @property
    def basin_entry(self) -> int | None:
        """The first step from which the fine-tuned pair barrier (mean over pairs) stays
        below ``tolerance`` points up to the final step; None when it never does (or was not
        measured)."""
        if not self.finetuned_barrier:
            return None
        entry = None
        for s in sorted(self.finetuned_barrier, reverse=True):
            vals = self.finetuned_barrier[s]
            if not vals or statistics.fmean(vals) > self.tolerance:
                break
            entry = s
        return entry

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "steps": self.steps, "seeds": self.seeds,
                "accuracy": {str(k): v for k, v in self.accuracy.items()},
                "scratch": self.scratch,
                "source_accuracy": {str(k): v for k, v in self.source_accuracy.items()},
                "source_barrier": {str(k): v for k, v in self.source_barrier.items()},
                "finetuned_barrier": {str(k): v for k, v in self.finetuned_barrier.items()},
                "tolerance": self.tolerance, "earliest_as_good": self.earliest_as_good,
                "basin_entry": self.basin_entry}


RunFn = Callable[[Any, TransferTask, int], RunResult]


def checkpoint_sweep(task: TransferTask, checkpoints: Mapping[int, str], *,
                     model: str = "lenet", model_options: Mapping[str, Any] | None = None,
                     seeds: Sequence[int] = (0, 1, 2), trainer: Trainer | None = None,
                     run: RunFn | None = None, tolerance: float = 1.0,
                     label: str = "", keep: dict | None = None) -> CheckpointResult:
    """Fine-tune (``finetune``, the toolkit's recipe) from every checkpoint ``{step: path}``
    for every seed (the trainer seed; the task and its splits stay fixed), and from scratch.

    ``run(method, task, seed)`` trains and tests (default ``trainer.run``; a
    :class:`~transferguard.experiments.Runner` records and resumes). ``keep``, a dict, gets
    the trained methods as ``keep[(step, seed)]`` (only with the default ``run``, which
    trains in this process).
    """
    from ..methods.finetuning.finetune import FineTune

    if not checkpoints:
        raise ConfigError("checkpoint_sweep needs at least one checkpoint {step: path}.")
    trainer = trainer or Trainer(progress=False)
    if run is not None and keep is not None:
        raise ConfigError("keep needs the default run (a Runner may return recorded results "
                          "without models).")
    run = run or (lambda m, t, s: trainer.with_options(seed=s).run(m, t))
    steps = sorted(int(s) for s in checkpoints)
    acc: dict[int, list[float]] = {s: [] for s in steps}
    scratch = []
    for seed in seeds:
        for s in steps:
            m = FineTune(model, model_options, pretrained=checkpoints[s])
            acc[s].append(run(m, task, seed).test_accuracy)
            if keep is not None:
                keep[(s, seed)] = m
        scratch.append(run(FineTune(model, model_options, source_free=True), task,
                           seed).test_accuracy)
    return CheckpointResult(steps, list(seeds), acc, scratch, tolerance=tolerance, label=label)
