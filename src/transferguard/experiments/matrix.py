"""The cross-domain matrix through the run store: one recorded run per (training domain,
seed), holding its accuracy on every domain's test split; ``resume`` skips finished ones."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..analysis import CrossDomainMatrix, cross_domain_matrix
from ..data import Domain, InputSpec, TransferTask
from ..engine import RunResult, Trainer, TrainerConfig
from .runner import run_config
from .store import RunStore


def stored_matrix_run(store: RunStore, trainer: Trainer, experiment: str = "matrix",
                      resume: bool = False, echo: Callable[[str], None] | None = None):
    """A ``run`` for :func:`cross_domain_matrix` that records every training in ``store``."""

    def run(method: Any, task: TransferTask, seed: int,
            tests: dict[str, TransferTask]) -> dict[str, float]:
        tr = trainer.with_options(seed=seed)
        config = run_config(method, task, tr.config)
        config["evaluate_on"] = {name: t.config()["target"] for name, t in tests.items()}
        t0 = time.perf_counter()

        def train() -> dict[str, Any]:
            result = tr.run(method, task)
            result.extra["cross"] = {
                name: tr.evaluate(method.model_, t.test_split(), t.spec).accuracy
                for name, t in tests.items()}
            return result.metrics()

        metrics, reused = store.run(config, train, experiment=experiment,
                                    label=f"matrix:{task.target_name}", resume=resume)
        res = RunResult(**metrics)
        if echo:
            how = "resumed" if reused else f"{time.perf_counter() - t0:.1f}s"
            cells = "  ".join(f"{k} {v:5.1f}" for k, v in res.extra["cross"].items())
            echo(f"  trained on {task.target_name:<12} seed {seed}: {cells}  [{how}]")
        return dict(res.extra["cross"])

    return run


def run_matrix(domains: Sequence[str | Domain], out: str | Path, *, spec: InputSpec | None = None,
               trainer: TrainerConfig | Trainer | None = None, seeds: Sequence[int] = (0,),
               model: str = "lenet", model_options: dict | None = None,
               test_fraction: float = 0.5,
               domain_options: Mapping[str, Mapping[str, Any]] | None = None,
               resume: bool = False, echo: Callable[[str], None] | None = None
               ) -> CrossDomainMatrix:
    """:func:`cross_domain_matrix` with every training recorded in ``OUT/runs.sqlite``."""
    tr = trainer if isinstance(trainer, Trainer) else Trainer(trainer)
    run = stored_matrix_run(RunStore(out), tr, "matrix", resume, echo)
    return cross_domain_matrix(domains, spec=spec, model=model, model_options=model_options,
                               trainer=tr, seeds=seeds, test_fraction=test_fraction,
                               domain_options=domain_options, run=run)
