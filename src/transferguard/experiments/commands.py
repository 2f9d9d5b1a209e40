"""What the ``harmful`` and ``cutpoint`` commands do, as API functions the CLI calls.

Both start from a validated :class:`ExperimentConfig` (built from flags or YAML), so the
command modules only parse arguments and print.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..analysis import CutPointResult, HarmfulSourceReport, cut_point_sweep, harmful_source_report
from ..data import TransferTask
from ..engine import RunResult, Trainer
from .config import ExperimentConfig
from .pretrain import pretrained_checkpoint
from .runner import Runner
from .store import RunStore


@dataclass
class HarmfulFound:
    """A trained weighted method, its test result and its harmful-source report."""

    label: str
    task: TransferTask
    result: RunResult
    report: HarmfulSourceReport


def find_harmful(cfg: ExperimentConfig, seed: int = 0, top: int = 20) -> HarmfulFound:
    """Train the config's first method (with its source weighter) on one seed and rank the
    source samples by weight (:func:`~transferguard.analysis.harmful_source_report`)."""
    task = cfg.task.build(seed=seed)
    method = cfg.build_methods()[0]
    result = Trainer(cfg.trainer, seed=seed).run(method, task)
    return HarmfulFound(method.label, task, result, harmful_source_report(method, task, top=top))


def run_cutpoint(cfg: ExperimentConfig, out: str | Path, *, pretrained: str | None = None,
                 pretrain_iterations: int | None = None, resume: bool = False,
                 echo: Callable[[str], None] | None = print) -> CutPointResult:
    """The cut-point sweep of the config's task and model over its seeds.

    The source network is ``pretrained`` when given, else pre-trained once per seed on the
    source and cached under ``OUT/pretrained`` (see :func:`pretrained_checkpoint`).
    """
    seeds = list(cfg.seeds)
    task = cfg.task.build(seed=seeds[0])
    trainer = Trainer(cfg.trainer)
    model = cfg.methods[0].get("model", "lenet")
    model_options = cfg.methods[0].get("model_options")
    out = Path(out)

    def source(seed: int) -> str:
        if pretrained:
            return pretrained
        return pretrained_checkpoint(task.with_seed(seed), trainer, out / "pretrained",
                                     model=model, iterations=pretrain_iterations,
                                     model_options=model_options)

    runner = Runner(RunStore(out), trainer, "cutpoint", resume, echo)
    return cut_point_sweep(task, source, model=model, model_options=model_options,
                           seeds=seeds, run=runner)
