"""Run experiments through the run store: every training is recorded, finished ones resume.

:class:`Runner` is the store-backed ``run(method, task, seed)`` that
:func:`~transferguard.analysis.negative_transfer_gap` accepts; :func:`run_experiment` runs a
whole :class:`ExperimentConfig` (every method, its twin, every seed) and writes its summary
(``results-NAME.md``, ``results-NAME.json``: one per experiment, so two experiments or
commands sharing an output directory never overwrite each other's) next to ``runs.sqlite``.

A failed run (divergence, a bad checkpoint ...) is recorded and the other runs go on; the
summary lists it. Each run trains with a training checkpoint under ``OUT/checkpoints`` and
resumes from it after a kill (the checkpoint carries the run identity, and resuming is
exact); it is deleted when the run finishes. Source-free twins and pre-trained source
networks (``OUT/pretrained``) are shared by identity, whether or not ``resume`` is set.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..analysis.harmful import harmful_source_report
from ..analysis.ntg import NTGResult, negative_transfer_gap
from ..analysis.safe import SafeMode, SplitPredictions, predict_splits, safe_ntg
from ..data import TransferTask
from ..engine import RunResult, Trainer, TrainerConfig
from ..engine.loggers import make_loggers
from ..errors import CheckpointError
from ..identity import run_identity
from ..methods import Method
from ..report.tables import experiment_table, failures_text, format_table
from ..utils import atomic_write, clean_stale_tmp
from .config import ExperimentConfig, check_name
from .pretrain import pretrained_checkpoint
from .safe_records import predictions_path, record_decisions
from .store import RunStore, config_key, path_digest

#: task fields a source-free twin never reads: A_T of one target is the same run whatever
#: the source and its noise, so the store trains it once and pairs it with every source
SOURCE_FIELDS = ("source", "eps_x", "eps_y", "label_map", "label_noise", "corruptions",
                 "source_size", "source_options")


def run_config(method: Method, task: TransferTask, trainer: TrainerConfig,
               digest: Callable[[str], str] = path_digest) -> dict[str, Any]:
    """The canonical description of one training run (what the store hashes): the
    :func:`~transferguard.identity.run_identity` of the method on the task, plus the content
    digest of every file it reads by name (``folder:`` domains, a ``pretrained`` checkpoint),
    so that changing the images or the weights is another run, not a stale resumed one."""
    tconf = task.config()
    if method.source_free:
        tconf = {k: v for k, v in tconf.items() if k not in SOURCE_FIELDS}
    ident = run_identity(method, trainer, task=tconf)
    content = {side: digest(tconf[side].split(":", 1)[1]) for side in ("source", "target")
               if str(tconf.get(side, "")).startswith("folder:")}
    pretrained = method.get_params().get("pretrained")
    if isinstance(pretrained, str) and pretrained:
        content["pretrained"] = digest(pretrained)
    if content:
        ident["content"] = content
    return ident


def pretrains_inline(method: Method) -> bool:
    """Whether the method would pre-train a source network of its own (the runner gives it
    the shared one from ``OUT/pretrained`` instead: the same network, trained once)."""
    params = method.get_params()
    return "pretrained" in params and not params["pretrained"] and not method.source_free \
        and "pretrain_iterations" in params


def method_extras(method: Method, task: TransferTask) -> dict[str, Any]:
    """Results beyond accuracy: for a method with a source weighter on a perturbed source, how
    well its weights find the corrupted samples (recorded with the run)."""
    pert = task.perturbation
    if method.has_weighter and bool(pert.x_mask.any() or pert.label_flipped.any()):
        report = harmful_source_report(method, task)
        # the lowest-weight samples too, so that the HTML report can draw them
        return {"harmful": {**report.metrics(), "most_harmful": report.most_harmful}}
    return {}


def train_run(method: Method, task: TransferTask, trainer: Trainer, work_dir: str | Path,
              ckpt_dir: str | Path, seed: int,
              predictions_path: str | Path | None = None) -> dict[str, Any]:
    """Train one run and return what the store records (metrics and the history), without
    touching the store: the training checkpoint goes to ``ckpt_dir`` (resumed from when it
    holds one of this run), a method that would pre-train its own source network gets the
    shared one under ``work_dir/pretrained``, and with ``predictions_path`` the selected
    state's validation and test probabilities are saved there (safe mode). :class:`Runner`
    records around it; a Ray sweep calls it in a task and records on the driver
    (:mod:`.sweep`)."""
    ckpt_dir = Path(ckpt_dir)
    m = method
    if pretrains_inline(method):
        p = method.get_params()
        path = pretrained_checkpoint(
            task, trainer, Path(work_dir) / "pretrained", model=p["model"],
            model_options=p["model_options"], iterations=p["pretrain_iterations"],
            aux_weight=p.get("pretrain_aux_weight", 0.0),
            partition_seed=p.get("partition_seed", 0), seed=seed)
        m = method.clone(pretrained=path)
    every = max(1, trainer.config.iterations // 10)
    tr = trainer.with_options(checkpoint_dir=str(ckpt_dir), checkpoint_every=every)
    try:
        result = tr.run(m, task, resume=True)
    except CheckpointError:
        if not ckpt_dir.exists():
            raise
        shutil.rmtree(ckpt_dir, ignore_errors=True)  # unusable: train from scratch
        m = m.clone()
        result = tr.run(m, task)
    result.extra.update(method_extras(m, task))
    if predictions_path is not None:  # the selected state: what Trainer.run evaluated
        predict_splits(m.model_, task, trainer.device).save(predictions_path)
    return {**result.metrics(), "history": result.history}  # curves for the report


class Runner:
    """Trains (method, task, seed) once per config: recorded in the store, reused on resume
    and within one invocation (the twin shared by DANN and DANN+gate trains once).

    ``work_dir`` (the run store's directory by default) holds the training checkpoints
    (``checkpoints/``) and the shared pre-trained source networks (``pretrained/``). With
    ``predictions=True`` every run trained also leaves its validation and test class
    probabilities in ``predictions/`` (what safe mode chooses from; :meth:`predictions_of`).
    """

    def __init__(self, store: RunStore, trainer: Trainer, experiment: str = "default",
                 resume: bool = False, echo: Callable[[str], None] | None = None, *,
                 retry_failed: bool = False, work_dir: str | Path | None = None,
                 predictions: bool = False) -> None:
        self.store, self.trainer, self.experiment = store, trainer, experiment
        self.resume, self.echo, self.retry_failed = resume, echo, retry_failed
        self.predictions = predictions
        self.work_dir = Path(work_dir) if work_dir is not None else store.path.parent
        self.since = time.time()
        self._memo: dict[str, RunResult] = {}
        self.trained = 0
        self.reused = 0

    def _config(self, method: Method, task: TransferTask, seed: int
                ) -> tuple[Trainer, dict[str, Any], str]:
        trainer = self.trainer.with_options(seed=seed)
        config = run_config(method, task, trainer.config, self.store.content_digest)
        return trainer, config, config_key(config)

    def _predictions_path(self, key: str) -> Path:
        return predictions_path(self.work_dir, key)

    def predictions_of(self, method: Method, task: TransferTask, seed: int) -> SplitPredictions:
        """The validation/test probabilities of a run this runner trained with
        ``predictions=True``. A run recorded earlier without them (e.g. a twin shared with an
        experiment that had no safe mode) is trained again, outside the store, to get them."""
        trainer, _, key = self._config(method, task, seed)
        path = self._predictions_path(key)
        if not path.exists():
            if self.echo:
                self.echo(f"  {method.label:<22} seed {seed}: no stored predictions (recorded "
                          "before safe mode was asked); training it again for them")
            m = method.clone()
            trainer.run(m, task)
            predict_splits(m.model_, task, trainer.device).save(path)
        return SplitPredictions.load(path)

    def __call__(self, method: Method, task: TransferTask, seed: int) -> RunResult:
        trainer, config, key = self._config(method, task, seed)
        if key in self._memo:
            return self._memo[key]
        t0 = time.perf_counter()
        ckpt_dir = self.work_dir / "checkpoints" / key[:16]

        def train() -> dict[str, Any]:
            preds = self._predictions_path(key) if self.predictions else None
            return train_run(method, task, trainer, self.work_dir, ckpt_dir, seed, preds)

        metrics, reused = self.store.run(
            config, train, experiment=self.experiment, label=method.label, resume=self.resume,
            retry_failed=self.retry_failed, reuse=method.source_free, since=self.since)
        shutil.rmtree(ckpt_dir, ignore_errors=True)
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
    #: what did not finish: {"method", "seed" (None for a whole NTG), "error"}
    failed: list[dict[str, Any]] = field(default_factory=list)
    #: safe mode's choices: {"method", "rule", "seeds", "choices": [SafeChoice dicts]}
    safe: list[dict[str, Any]] = field(default_factory=list)


def run_experiment(config: ExperimentConfig, out_dir: str | Path | None = None, *,
                   resume: bool = False, retry_failed: bool = False,
                   echo: Callable[[str], None] | None = None) -> ExperimentResult:
    """Run every method (and its twin when ``config.ntg``) for every seed.

    A run that fails is recorded (status ``failed``, with its error) and the others go on;
    ``resume`` skips failed runs unless ``retry_failed``.
    """
    check_name(config.name)
    out = Path(out_dir or config.output or Path("runs") / config.name)
    store = RunStore(out)
    callbacks = make_loggers(config.loggers, base=out, experiment=config.name)
    clean_stale_tmp(out)
    rules = config.build_safe()
    runner = Runner(store, Trainer(config.trainer, callbacks=callbacks), config.name, resume,
                    echo, retry_failed=retry_failed, work_dir=out,
                    predictions=any(r is not None for r in rules))
    task = config.task.build(seed=config.seeds[0])
    task.summary()  # loads the domains and draws the splits: bad data stops before any run
    t0 = time.perf_counter()
    result = ExperimentResult(config.name)

    def attempt(method: Method, seed: int | None, fn: Callable[[], Any]) -> None:
        try:
            fn()
        except Exception as exc:  # recorded in the store; the other runs go on
            result.failed.append({"method": method.label, "seed": seed,
                                  "error": f"{type(exc).__name__}: {exc}"})
            if echo:
                echo(f"  {method.label}: FAILED: {exc}")

    for method, rule in zip(config.build_methods(), rules):
        if echo:
            echo(f"{method.label}: {task}")
        if config.ntg:
            attempt(method, None, lambda m=method: result.ntg.append(negative_transfer_gap(
                task, m, config.seeds, resplit=config.resplit, run=runner)))
            if rule is not None and result.ntg and result.ntg[-1].method == method.label:
                attempt(method, None, lambda m=method, r=rule: _safe_ntg(
                    result, runner, task, m, r, config, echo))
        else:
            for seed in config.seeds:
                t = task.with_seed(seed) if config.resplit else task
                attempt(method, seed, lambda m=method, t=t, s=seed: result.runs.append(
                    runner(m.clone(), t, s).metrics()))
    result.seconds = time.perf_counter() - t0
    result.trained, result.reused = runner.trained, runner.reused
    write_summary(result, out, config)
    return result


def _safe_ntg(result: ExperimentResult, runner: Runner, task: TransferTask, method: Method,
              rule: SafeMode, config: ExperimentConfig,
              echo: Callable[[str], None] | None) -> None:
    """Safe mode around ``method``: its runs and the NTG's shared twin, already trained (and
    their predictions stored), chosen between per seed; no training."""
    twin = method.twin()
    preds, runs = [], []
    for seed in config.seeds:
        t = task.with_seed(seed) if config.resplit else task
        preds.append((runner.predictions_of(method, t, seed), runner.predictions_of(twin, t, seed)))
        runs.append(tuple(runner.store.get(runner._config(m, t, seed)[2]) for m in (method, twin)))
    ntg, choices = safe_ntg(method.label, twin.label, config.seeds, preds, rule)
    if all(m is not None and tw is not None for m, tw in runs):  # recorded for the report
        record_decisions(runner.store, runner.experiment, rule, method.label, ntg, choices, runs)
    result.ntg.append(ntg)
    result.safe.append({"method": ntg.method, "rule": rule.get_params(), "seeds": config.seeds,
                        "choices": [c.to_dict() for c in choices]})
    if echo:
        for seed, c in zip(config.seeds, choices):
            echo(f"  {ntg.method} seed {seed}: kept {c.choice}"
                 f"{f' (w = {c.weight:g})' if c.choice == 'blend' else ''}: {c.reason}")


def summary_paths(out: str | Path, name: str) -> tuple[Path, Path]:
    """Where an experiment's summary goes: ``results-NAME.md`` and ``.json``."""
    return Path(out) / f"results-{name}.md", Path(out) / f"results-{name}.json"


def write_summary(result: ExperimentResult, out: Path, config: ExperimentConfig) -> None:
    md, js = summary_paths(out, result.name)
    with atomic_write(md, "w") as fh:
        fh.write(f"# {result.name}\n\n{experiment_table(result, markdown=True)}\n")
        if result.failed:
            fh.write(f"\n{failures_text(result.failed)}\n")
    payload = {"name": result.name, "config": config.to_dict(), "seconds": result.seconds,
               "ntg": [r.to_dict() for r in result.ntg], "runs": result.runs,
               "failed": result.failed, "safe": result.safe}
    with atomic_write(js, "w") as fh:
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
