"""Run experiments through the run store: every training is recorded, finished ones resume.

:class:`Runner` is the store-backed ``run(method, task, seed)`` that
:func:`~transferguard.analysis.negative_transfer_gap` accepts; :func:`run_experiment` runs a
whole :class:`ExperimentConfig` (every method, its twin, every seed) and writes the summary
(``results.md``, ``results.json``) next to ``runs.sqlite``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..analysis.harmful import harmful_source_report
from ..analysis.ntg import NTGResult, negative_transfer_gap
from ..data import TransferTask
from ..engine import RunResult, Trainer, TrainerConfig
from ..engine.loggers import make_loggers
from ..identity import run_identity
from ..methods import Method
from ..report.tables import experiment_table, format_table
from ..utils import atomic_write
from .config import ExperimentConfig
from .store import RunStore, config_key

#: task fields a source-free twin never reads: A_T of one target is the same run whatever
#: the source and its noise, so the store trains it once and pairs it with every source
SOURCE_FIELDS = ("source", "eps_x", "eps_y", "label_map", "label_noise", "corruptions",
                 "source_size", "source_options")


def run_config(method: Method, task: TransferTask, trainer: TrainerConfig) -> dict[str, Any]:
    """The canonical description of one training run (what the store hashes): the
    :func:`~transferguard.identity.run_identity` of the method on the task."""
    tconf = task.config()
    if method.source_free:
        tconf = {k: v for k, v in tconf.items() if k not in SOURCE_FIELDS}
    return run_identity(method, trainer, task=tconf)


def method_extras(method: Method, task: TransferTask) -> dict[str, Any]:
    """Results beyond accuracy: for a method with a source weighter on a perturbed source, how
    well its weights find the corrupted samples (recorded with the run)."""
    pert = task.perturbation
    if method.has_weighter and bool(pert.x_mask.any() or pert.label_flipped.any()):
        report = harmful_source_report(method, task)
        # the lowest-weight samples too, so that the HTML report can draw them
        return {"harmful": {**report.metrics(), "most_harmful": report.most_harmful}}
    return {}


class Runner:
    """Trains (method, task, seed) once per config: recorded in the store, reused on resume
    and within one invocation (the twin shared by DANN and DANN+gate trains once)."""

    def __init__(self, store: RunStore, trainer: Trainer, experiment: str = "default",
                 resume: bool = False, echo: Callable[[str], None] | None = None) -> None:
        self.store, self.trainer, self.experiment = store, trainer, experiment
        self.resume, self.echo = resume, echo
        self._memo: dict[str, RunResult] = {}
        self.trained = 0
        self.reused = 0

    def __call__(self, method: Method, task: TransferTask, seed: int) -> RunResult:
        trainer = self.trainer.with_options(seed=seed)
        config = run_config(method, task, trainer.config)
        key = config_key(config)
        if key in self._memo:
            return self._memo[key]
        t0 = time.perf_counter()

        def train() -> dict[str, Any]:
            result = trainer.run(method, task)
            result.extra.update(method_extras(method, task))
            return {**result.metrics(), "history": result.history}  # curves for the report

        metrics, reused = self.store.run(config, train, experiment=self.experiment,
                                         label=method.label, resume=self.resume)
        result = RunResult(**metrics)
        self._memo[key] = result
        if reused:
            self.reused += 1
        else:
            self.trained += 1
        if self.echo:
            how = "resumed" if reused else f"{time.perf_counter() - t0:.1f}s"
            flag = "  (collapsed)" if result.collapsed else ""
            self.echo(f"  {method.label:<22} seed {seed}: test acc {result.test_accuracy:5.1f}"
                      f"  [{how}]{flag}")
        return result


@dataclass
class ExperimentResult:
    name: str
    ntg: list[NTGResult] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    trained: int = 0
    reused: int = 0


def run_experiment(config: ExperimentConfig, out_dir: str | Path | None = None, *,
                   resume: bool = False, echo: Callable[[str], None] | None = None
                   ) -> ExperimentResult:
    """Run every method (and its twin when ``config.ntg``) for every seed."""
    out = Path(out_dir or config.output or Path("runs") / config.name)
    store = RunStore(out)
    callbacks = make_loggers(config.loggers, base=out, experiment=config.name)
    runner = Runner(store, Trainer(config.trainer, callbacks=callbacks), config.name, resume,
                    echo)
    task = config.task.build(seed=config.seeds[0])
    t0 = time.perf_counter()
    result = ExperimentResult(config.name)
    for method in config.build_methods():
        if echo:
            echo(f"{method.label}: {task}")
        if config.ntg:
            r = negative_transfer_gap(task, method, config.seeds, resplit=config.resplit,
                                      run=runner)
            result.ntg.append(r)
        else:
            for seed in config.seeds:
                t = task.with_seed(seed) if config.resplit else task
                result.runs.append(runner(method.clone(), t, seed).metrics())
    result.seconds = time.perf_counter() - t0
    result.trained, result.reused = runner.trained, runner.reused
    write_summary(result, out, config)
    return result


def write_summary(result: ExperimentResult, out: Path, config: ExperimentConfig) -> None:
    with atomic_write(out / "results.md", "w") as fh:
        fh.write(f"# {result.name}\n\n{experiment_table(result, markdown=True)}\n")
    payload = {"name": result.name, "config": config.to_dict(), "seconds": result.seconds,
               "ntg": [r.to_dict() for r in result.ntg], "runs": result.runs}
    with atomic_write(out / "results.json", "w") as fh:
        json.dump(payload, fh, indent=2, default=str)


def runs_table(store: RunStore, markdown: bool = False) -> str:
    """All recorded runs: method, task, seed, status, accuracy, time."""
    rows = []
    for r in store.records():
        task = r.config.get("task", {})
        m = r.metrics or {}
        rows.append([
            r.experiment, r.label, f"{task.get('source')}->{task.get('target')}",
            task.get("eps_x"), task.get("eps_y"), task.get("labeled_percent"), task.get("seed"),
            r.status, m.get("test_accuracy"), r.seconds,
            (r.error or "")[:60],
        ])
    headers = ["experiment", "method", "task", "eps_x", "eps_y", "L%", "seed", "status",
               "test acc", "seconds", "error"]
    return format_table(rows, headers, markdown)
