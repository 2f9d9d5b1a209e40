"""Sweeps: an experiment config plus grid axes, expanded into runs and executed in parallel.

A sweep config is an experiment config (:mod:`.config`) with a ``grid:`` mapping whose values
are lists; every combination of them is one *point*, an experiment with one method and one
seed::

    name: eps-grid
    task: {source: mnist, target: uci-digits, input_size: 24}
    trainer: {iterations: 300, batch_size: 32}
    ntg: true
    grid:
      eps: [0.0, 0.3, 0.7]
      labeled_percent: [10, 30]
      methods: [dann, joint, {name: dann, gate: true}]
      domains: ["mnist->uci-digits", [usps, mnist]]
      seeds: [0, 1, 2]
    resources: {num_cpus: 1, num_gpus: 0}      # per run, on Ray

Axes: ``eps``, ``eps_x``, ``eps_y``, ``labeled_percent``, ``source``, ``target``, ``domains``
(pairs: ``"A->B"``, ``[A, B]`` or ``{source: A, target: B}``), ``methods`` and ``seeds``
(without them in the grid, the config's own ``methods`` and ``seeds`` lists are axes), and
any ``task.KEY`` or ``trainer.KEY``. The product is taken in the order the axes are written,
the last varying fastest (``itertools.product``); methods then seeds come last when implicit.
Every axis value and every point is validated before anything trains; a bad one stops with a
:class:`~transferguard.errors.ConfigError` naming ``grid.AXIS[i]`` and the fix.

Each point is one run, plus its target-only twin when ``ntg`` is on. The runs are keyed
exactly as :class:`~.runner.Runner` keys them (:func:`~.runner.run_config`), so a twin that
several points share (it never reads the source: one per target, L% and seed) is one job,
trained once, and a run a ``transferguard run`` already recorded in the store is the same run.

Execution keeps the run store the single source of truth: a run is claimed in the store
before it trains and recorded when it ends (finished, or failed with its error), by whoever
trains it:

- local (``workers=N``): N spawned worker processes (one run in the driver when N = 1), each
  with ``cores // N`` torch threads, each running its jobs through a :class:`~.runner.Runner`
  (claim, train with a training checkpoint, record). A worker whose driver dies (even by
  SIGKILL) stops itself within a second, recording its run as interrupted; a worker killed
  outright leaves a ``running`` row whose process is dead, which the next claim takes over
  (the sweep restarts its pool and goes on; ``--resume`` does the same later). The shared
  pre-trained source networks are written atomically under a file lock, so two workers never
  both train one.
- Ray (``ray="auto"`` or an address): one Ray task per run with its ``num_cpus`` /
  ``num_gpus``. Here the *driver* claims each run before submitting it and records the
  result the task returns. Why the driver: the store is one SQLite file, and SQLite's locks
  are not safe on the network file systems a multi-node cluster would share; and a claim
  made by a process on the driver's host can be checked for liveness (its pid) after a
  crash, while one made on another node can not (it would block ``--resume`` for a day).
  A task killed by the system (worker or node death, after Ray's own retries) is recorded as
  interrupted, so ``--resume`` redoes it; an error raised by the run is recorded as failed.

With ``resume`` finished runs are skipped (failed ones too, unless ``retry_failed``); without
it finished runs are trained again, as ``transferguard run`` does, except source-free twins.
The summary (``results-NAME.md`` / ``.json``) holds the NTG of every grid cell over its seeds.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import multiprocessing
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..analysis.ntg import NTGResult
from ..errors import ConfigError, TransferGuardError
from ..utils import atomic_write, clean_stale_tmp
from .config import ExperimentConfig, check_name, config_from_dict, method_from_spec
from .store import INTERRUPTED, RunFailedBefore, RunStore, config_key

#: grid axes with their own meaning (``task.KEY`` and ``trainer.KEY`` are axes as well)
AXES = ("eps", "eps_x", "eps_y", "labeled_percent", "source", "target", "domains", "methods",
        "seeds")
#: other spellings of an axis
ALIASES = {"method": "methods", "seed": "seeds", "L": "labeled_percent",
           "domain_pairs": "domains", **{f"task.{a}": a for a in ("eps", "eps_x", "eps_y",
                                                                  "labeled_percent", "source",
                                                                  "target")}}
#: per-run resource requests (Ray)
RESOURCES = ("num_cpus", "num_gpus")
#: how often a local sweep rebuilds its worker pool after a worker died, before it gives up
MAX_POOL_RESTARTS = 3


class SweepError(TransferGuardError):
    """The sweep could not go on (its workers keep dying, Ray is not installed ...)."""


# --------------------------------------------------------------------------------------------
# the config and its expansion
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SweepPoint:
    """One combination of the grid: ``values`` (axis -> the value as written, methods by
    label, domains as ``A->B``) and the one-method, one-seed experiment it is."""

    index: int
    values: dict[str, Any]
    config: ExperimentConfig
    seed: int
    task_seed: int


@dataclass(frozen=True)
class SweepJob:
    """One training run of a sweep: a point's method or its twin, keyed like the Runner."""

    key: str
    label: str
    point: int
    config: ExperimentConfig
    method: dict[str, Any]
    twin: bool
    seed: int
    task_seed: int
    #: the run's canonical description (what the store hashes into ``key``)
    identity: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)

    def build_method(self) -> Any:
        m = method_from_spec(self.method)
        return m.twin() if self.twin else m


@dataclass
class SweepConfig:
    """A validated sweep: the base experiment, the axes (in expansion order) and the points."""

    base: ExperimentConfig
    axes: dict[str, list[Any]]
    points: list[SweepPoint]
    resources: dict[str, float] = field(default_factory=lambda: {"num_cpus": 1.0,
                                                                   "num_gpus": 0.0})

    @property
    def name(self) -> str:
        return self.base.name

    def point_runs(self, store: RunStore | None = None) -> list[list[SweepJob]]:
        """For each point, its run and (with ``ntg``) its twin's, keyed as the Runner keys
        them; ``store`` digests ``folder:`` domains and ``pretrained`` files the way the
        runner does (cached by sizes and times)."""
        from ..engine import Trainer
        from .runner import run_config
        from .store import path_digest

        digest = store.content_digest if store is not None else path_digest
        out = []
        for p in self.points:
            spec = p.config.methods[0]
            task = p.config.task.build(seed=p.task_seed)
            trainer = Trainer(p.config.trainer).with_options(seed=p.seed).config
            method = method_from_spec(spec)
            runs = []
            for twin, m in ((False, method), (True, method.twin()))[:2 if p.config.ntg else 1]:
                ident = run_config(m, task, trainer, digest)
                runs.append(SweepJob(config_key(ident), m.label, p.index, p.config, spec, twin,
                                     p.seed, p.task_seed, ident))
            out.append(runs)
        return out

    def jobs(self, store: RunStore | None = None) -> list[SweepJob]:
        """The runs to train, each once (a twin shared by several points is one job), in
        point order, the method before its twin."""
        return _unique(self.point_runs(store))


def load_sweep(path: str | os.PathLike[str]) -> SweepConfig:
    """Read and validate a YAML sweep config (every point, before anything runs)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"sweep config {p} does not exist; give the path of a YAML file.")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p} is not valid YAML: {exc}") from None
    try:
        return sweep_from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{p}: {exc}") from None


def sweep_from_dict(data: Any) -> SweepConfig:
    """Validate a sweep mapping (an experiment config plus ``grid`` and ``resources``) and
    expand it into points."""
    if not isinstance(data, dict):
        raise ConfigError("a sweep config is a mapping: an experiment config (name, task, "
                          "methods, trainer, seeds ...) plus a `grid:` of lists.")
    data = dict(data)
    grid = data.pop("grid", None)
    resources = _resources(data.pop("resources", None))
    if grid is None:
        grid = {}
    if not isinstance(grid, dict):
        raise ConfigError(f"grid must map axis names to lists of values, got {grid!r}; e.g. "
                          "grid: {eps: [0.0, 0.3], seeds: [0, 1]}.")
    try:
        base = config_from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{exc} (a sweep config also takes `grid:` and `resources:`)") \
            from None
    base_dict = _plain(data)
    if "method" in base_dict:
        base_dict["methods"] = [base_dict.pop("method")]
    axes: dict[str, list[Any]] = {}
    for raw, values in grid.items():
        axis = ALIASES.get(str(raw), str(raw))
        _check_axis_name(str(raw), axis)
        if axis in axes:
            raise ConfigError(f"grid.{raw}: the axis {axis!r} is given twice; merge the lists.")
        if not isinstance(values, list) or not values:
            raise ConfigError(f"grid.{raw} must be a non-empty list of values, got "
                              f"{values!r}; e.g. grid: {{{raw}: [value1, value2]}}.")
        axes[axis] = values
    both = [a for a in ("eps_x", "eps_y") if a in axes]
    if "eps" in axes and both:
        raise ConfigError(f"grid.eps and grid.{both[0]}: eps sets eps_x = eps_y, so a value of "
                          f"one would override the other; sweep eps, or eps_x / eps_y.")
    side = [a for a in ("source", "target") if a in axes]
    if "domains" in axes and side:
        raise ConfigError(f"grid.domains and grid.{side[0]}: a domain pair sets both source "
                          "and target; sweep domains, or source / target.")
    if "methods" not in axes and len(base.methods) > 1:
        axes["methods"] = list(base_dict.get("methods") or base.methods)
    if "seeds" not in axes and len(base.seeds) > 1:
        axes["seeds"] = list(base.seeds)
    for axis, values in axes.items():
        seen: list[str] = []
        for i, value in enumerate(values):
            where = f"grid.{axis}[{i}]"
            _point_config(base_dict, {axis: value}, where)  # this value alone on the base
            canon = json.dumps(_normalise(axis, value, where), sort_keys=True, default=str)
            if canon in seen:
                raise ConfigError(f"{where} = {value!r} repeats grid.{axis}[{seen.index(canon)}]"
                                  "; a value given twice would only train the same runs again.")
            seen.append(canon)
    seeds_axis = [int(s) for s in axes.get("seeds", base.seeds)]
    points = []
    names = list(axes)
    for index, combo in enumerate(itertools.product(*(axes[a] for a in names))):
        chosen = dict(zip(names, combo))
        where = "grid point " + ", ".join(f"{a}={_show(a, v)}" for a, v in chosen.items())
        cfg = _point_config(base_dict, chosen, where)
        seed = cfg.seeds[0]
        task_seed = seed if cfg.resplit else seeds_axis[0]
        values = {a: _display(a, v, cfg) for a, v in chosen.items()}
        points.append(SweepPoint(index, values, cfg, seed, task_seed))
    return SweepConfig(base, axes, points, resources)


def _check_axis_name(raw: str, axis: str) -> None:
    if axis in AXES:
        return
    section, _, key = axis.partition(".")
    if section in ("task", "trainer") and key:
        valid = _section_keys(section)
        if key in valid:
            return
        raise ConfigError(f"grid.{raw}: {section} has no key {key!r}; valid: {valid}.")
    raise ConfigError(f"grid.{raw}: unknown axis {raw!r}; axes are {list(AXES)}, or task.KEY / "
                      "trainer.KEY (e.g. trainer.lr: [0.01, 0.001]).")


def _section_keys(section: str) -> list[str]:
    from ..data import TaskSpec
    from ..data.spec import INPUT_KEYS
    from ..engine import TrainerConfig

    if section == "trainer":
        return sorted(f.name for f in dataclasses.fields(TrainerConfig))
    return sorted({f.name for f in dataclasses.fields(TaskSpec)} - {"spec"} | set(INPUT_KEYS))


def _resources(value: Any) -> dict[str, float]:
    out = {"num_cpus": 1.0, "num_gpus": 0.0}
    if value is None:
        return out
    if not isinstance(value, dict):
        raise ConfigError(f"resources must be a mapping {{num_cpus: N, num_gpus: G}}, got "
                          f"{value!r}.")
    bad = sorted(set(value) - set(RESOURCES))
    if bad:
        raise ConfigError(f"resources: unknown key(s) {bad}; valid: {list(RESOURCES)}.")
    for k, v in value.items():
        out[k] = check_resource(k, v, f"resources.{k}")
    return out


def check_resource(name: str, value: Any, where: str) -> float:
    """A per-run CPU or GPU request: a number >= 0 (CPUs > 0); fractions share a device."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value \
            or value < 0 or (name == "num_cpus" and value == 0):
        low = "> 0" if name == "num_cpus" else ">= 0"
        raise ConfigError(f"{where} must be a number {low} (fractions share a device), got "
                          f"{value!r}.")
    return float(value)


def _plain(data: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(data, default=str))


def _domain_pair(value: Any, where: str) -> tuple[str, str]:
    if isinstance(value, str) and "->" in value:
        src, tgt = (s.strip() for s in value.split("->", 1))
    elif isinstance(value, (list, tuple)) and len(value) == 2:
        src, tgt = value
    elif isinstance(value, dict) and set(value) == {"source", "target"}:
        src, tgt = value["source"], value["target"]
    else:
        raise ConfigError(f"{where}: a domain pair is 'SOURCE->TARGET', [SOURCE, TARGET] or "
                          f"{{source: S, target: T}}, got {value!r}.")
    if not (isinstance(src, str) and isinstance(tgt, str) and src and tgt):
        raise ConfigError(f"{where}: source and target are domain names, got {value!r}.")
    return src, tgt


def _normalise(axis: str, value: Any, where: str) -> Any:
    if axis == "domains":
        return list(_domain_pair(value, where))
    if axis == "methods":
        return {"name": value} if isinstance(value, str) else value
    return value


def _point_config(base: dict[str, Any], chosen: dict[str, Any], where: str) -> ExperimentConfig:
    """The base config with ``chosen`` axis values set, validated as one experiment with one
    method and one seed."""
    data = json.loads(json.dumps(base))
    task = data.setdefault("task", {})
    if not isinstance(task, dict):
        raise ConfigError(f"task must be a mapping, got {task!r}.")
    trainer = data.setdefault("trainer", {})
    for axis, value in chosen.items():
        if axis == "domains":
            task["source"], task["target"] = _domain_pair(value, where)
        elif axis == "methods":
            data["methods"] = [_normalise(axis, value, where)]
        elif axis == "seeds":
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"{where}: a seed is an integer, got {value!r}.")
            data["seeds"] = [value]
        elif axis == "eps":
            task.pop("eps_x", None)
            task.pop("eps_y", None)
            task["eps"] = value
        elif axis in ("eps_x", "eps_y"):
            if "eps" in task:  # eps sets both; keep it for the other one
                eps = task.pop("eps")
                task.setdefault("eps_x", eps)
                task.setdefault("eps_y", eps)
            task[axis] = value
        elif axis.startswith("trainer."):
            trainer[axis.split(".", 1)[1]] = value
        else:
            task[axis.split(".", 1)[1] if axis.startswith("task.") else axis] = value
    if len(data.get("methods") or [None]) > 1:
        data["methods"] = data["methods"][:1]  # the methods axis covers them
    if len(data.get("seeds") or [0]) > 1:
        data["seeds"] = data["seeds"][:1]
    try:
        return config_from_dict(data)
    except TransferGuardError as exc:
        fix = " Change that value in the grid (or the base config)." if chosen else ""
        raise ConfigError(f"{where}: {exc}{fix}") from None


def _show(axis: str, value: Any) -> str:
    if axis == "domains":
        with contextlib.suppress(ConfigError):
            return "->".join(_domain_pair(value, axis))
    if axis == "methods" and isinstance(value, dict):
        return str(value.get("name"))
    return str(value)


def _display(axis: str, value: Any, cfg: ExperimentConfig) -> Any:
    if axis == "domains":
        return f"{cfg.task.source_name}->{cfg.task.target_name}"
    if axis == "methods":
        return cfg.build_methods()[0].label
    return value


# --------------------------------------------------------------------------------------------
# execution
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Context:
    """What every worker needs besides the job (picklable)."""

    out: str
    resume: bool
    retry_failed: bool
    since: float
    env: dict[str, str]
    #: save every trained run's validation/test predictions (a point of the sweep is safe)
    predictions: bool = False
    #: runs already recorded whose predictions safe mode needs and can not find: trained
    #: again (outside the store, as ``transferguard run --safe`` does) to get them
    need_predictions: frozenset[str] = frozenset()


@dataclass
class SweepResult:
    """What a sweep did: its points, jobs (runs), what was trained, reused, skipped (failed
    in an earlier invocation) and what did not finish (``failed``: the skipped ones too, as
    ``transferguard run`` lists them), and the NTG (or accuracy) of every grid cell."""

    name: str
    out: str
    points: int = 0
    jobs: int = 0
    trained: int = 0
    reused: int = 0
    skipped: int = 0
    failed: list[dict[str, Any]] = field(default_factory=list)
    cells: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


def run_sweep(sweep: SweepConfig, out_dir: str | os.PathLike[str] | None = None, *,
              workers: int = 1, ray: str | None = None, resume: bool = False,
              retry_failed: bool = False, num_cpus: float | None = None,
              num_gpus: float | None = None,
              echo: Callable[[str], None] | None = None) -> SweepResult:
    """Train every run of ``sweep`` (each once) with ``workers`` local processes, or one Ray
    task per run when ``ray`` is ``"auto"`` or a cluster address; write the summary next to
    ``runs.sqlite`` in ``out_dir`` and return it. See the module doc for what a kill does."""
    if ray is not None and workers != 1:
        raise ConfigError("give --workers (local processes) or --ray (a cluster), not both.")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"workers must be a whole number >= 1, got {workers!r}.")
    resources = dict(sweep.resources)
    for name, value in (("num_cpus", num_cpus), ("num_gpus", num_gpus)):
        if value is not None:
            resources[name] = check_resource(name, value, f"--{name.replace('_', '-')}")
    check_name(sweep.name)
    out = Path(out_dir or sweep.base.output or Path("runs") / sweep.name)
    store = RunStore(out)
    clean_stale_tmp(out)
    _check_data(sweep)
    t0 = time.perf_counter()
    point_runs = sweep.point_runs(store)
    jobs = _unique(point_runs)
    result = SweepResult(sweep.name, str(out), len(sweep.points), len(jobs))
    safe = any(p.config.build_safe()[0] is not None for p in sweep.points)
    need = missing_predictions(sweep, store, out, point_runs) if safe else set()
    todo = []
    recorded = {r.key: r for r in store.records()} if resume else {}
    for job in jobs:  # skip what is already done without sending it to a worker
        rec = recorded.get(job.key)
        if rec is not None and rec.status == "finished" and rec.metrics is not None and \
                rec.error is None and job.key not in need:
            result.reused += 1
        elif rec is not None and rec.status == "failed" and not retry_failed and \
                not (rec.error or "").startswith(INTERRUPTED):
            result.skipped += 1
            result.failed.append({"method": job.label, "seed": job.seed, "point": job.point,
                                  "error": f"failed before, skipped: {rec.error}"})
        else:
            todo.append(job)
    if echo:
        echo(f"sweep {sweep.name}: {len(sweep.points)} points, {len(jobs)} runs "
             f"({len(jobs) - len(todo)} already recorded), "
             + (f"Ray ({ray})" if ray else f"{workers} worker(s)") + f"; store {out}")
    env = {k: v for k, v in os.environ.items() if k == "TRANSFERGUARD_CACHE"}
    ctx = _Context(str(out), resume, retry_failed, time.time(), env, safe, frozenset(need))
    done = 0

    def record(job: SweepJob, outcome: dict[str, Any]) -> None:
        nonlocal done
        done += 1
        status = outcome["status"]
        if status == "trained":
            result.trained += 1
        elif status == "reused":
            result.reused += 1
        if status == "skipped":
            result.skipped += 1
        if status in ("skipped", "failed"):
            result.failed.append({"method": job.label, "seed": job.seed, "point": job.point,
                                  "error": outcome.get("error")})
        if echo:
            acc = outcome.get("test_accuracy")
            what = f"test acc {acc:5.1f}" if acc is not None else status.upper()
            extra = f": {outcome.get('error')}" if status in ("failed", "skipped") else ""
            if outcome.get("predictions"):
                extra += f" ({outcome['predictions']})"
            echo(f"  [{done}/{len(todo)}] {job.label:<20} {_point_text(sweep, job)} "
                 f"{what} [{status}, {outcome.get('seconds', 0.0):.1f}s]{extra}")

    if ray is not None:
        _execute_ray(todo, ctx, ray, resources, store, sweep.name, record)
    elif workers == 1 or len(todo) <= 1:
        for job in todo:
            record(job, run_job(job, ctx))
    else:
        _execute_pool(todo, ctx, workers, record)
    result.seconds = time.perf_counter() - t0
    finished = {r.key for r in store.records(status="finished")}
    for job in jobs:  # a kill between a run's record and its clean-up leaves its checkpoint
        if job.key in finished:
            shutil.rmtree(out / "checkpoints" / job.key[:16], ignore_errors=True)
    if safe:  # on the driver, from the stored predictions: no training
        decided, reused, failed = decide_safe(sweep, store, out, point_runs)
        result.failed.extend(failed)
        if echo:
            echo(f"safe mode: {decided} decision(s) made from the stored predictions, "
                 f"{reused} already recorded" + (f", {len(failed)} not made (see below)"
                                                 if failed else ""))
    result.cells = sweep_cells(sweep, store, point_runs)
    write_sweep_summary(result, sweep, out)
    return result


def _unique(point_runs: Sequence[Sequence[SweepJob]]) -> list[SweepJob]:
    seen: dict[str, SweepJob] = {}
    for runs in point_runs:
        for job in runs:
            seen.setdefault(job.key, job)
    return list(seen.values())


def _check_data(sweep: SweepConfig) -> None:
    """Load every distinct pair of domains once and draw its splits (bad data stops here,
    before any run, and the domain caches are built before the workers read them)."""
    seen = set()
    for p in sweep.points:
        t = p.config.task
        key = json.dumps([t.source_name, t.target_name, t.source_options, t.target_options,
                          t.config()["spec"], t.stream], sort_keys=True, default=str)
        if key not in seen:
            seen.add(key)
            t.build(seed=p.task_seed).summary()


def _point_text(sweep: SweepConfig, job: SweepJob) -> str:
    values = sweep.points[job.point].values
    return " ".join(f"{a}={v}" for a, v in values.items() if a != "methods")


# ------------------------------------------------------------------ the work of one run


_RUNNERS: dict[str, Any] = {}
#: set while this process trains a job (the parent watch lets it record an interruption)
_IN_JOB = threading.Event()
#: set when a worker was told to stop (SIGTERM): it records its run and never starts another
_STOPPING = threading.Event()


def run_job(job: SweepJob, ctx: _Context) -> dict[str, Any]:
    """Train one job through a :class:`~.runner.Runner` (claim, train, record) in this
    process; return its outcome (``trained``, ``reused``, ``skipped`` or ``failed``)."""
    from ..engine import Trainer
    from ..engine.loggers import make_loggers
    from .runner import Runner

    cfg = job.config
    # one Runner per sweep invocation (``since``) and trainer: its memo never outlives a sweep
    rkey = json.dumps([ctx.out, dataclasses.asdict(cfg.trainer), cfg.name, cfg.loggers,
                       ctx.resume, ctx.retry_failed, ctx.since, ctx.predictions],
                      sort_keys=True, default=str)
    runner = _RUNNERS.get(rkey)
    if runner is None:
        for k in [k for k, r in _RUNNERS.items() if r.since != ctx.since]:
            del _RUNNERS[k]  # the runners of earlier sweeps in this process
        callbacks = make_loggers(cfg.loggers, base=ctx.out, experiment=cfg.name)
        runner = Runner(RunStore(ctx.out), Trainer(cfg.trainer, callbacks=callbacks), cfg.name,
                        ctx.resume, retry_failed=ctx.retry_failed, work_dir=ctx.out,
                        predictions=ctx.predictions)
        _RUNNERS[rkey] = runner
    runner.since = ctx.since  # what another worker finished since the sweep began is fresh
    t0 = time.perf_counter()
    reused = runner.reused
    if _STOPPING.is_set():  # the pool may still hand a stopped worker a queued job
        os._exit(1)
    _IN_JOB.set()
    healed = ""
    try:
        method, task = job.build_method(), job.config.task.build(seed=job.task_seed)
        res = runner(method, task, job.seed)
        healed = _heal_predictions(runner, job, ctx, method, task)
    except KeyboardInterrupt:
        if _STOPPING.is_set():  # the runner recorded the run as interrupted: end here, so
            os._exit(1)         # that this half-stopped process (a lazy import cut short by
        raise                   # the signal ...) never trains another run
    except RunFailedBefore as exc:
        return {"key": job.key, "status": "skipped", "error": str(exc),
                "seconds": time.perf_counter() - t0}
    except Exception as exc:  # recorded failed in the store by the runner
        if _STOPPING.is_set():
            # told to stop, the run broke on something other than the KeyboardInterrupt the
            # signal raises (library code can turn it into another error): it was
            # interrupted, not failed, so that --resume trains it again
            RunStore(ctx.out).fail(job.key, f"{INTERRUPTED} (worker stopped: "
                                   f"{type(exc).__name__}: {exc})", time.perf_counter() - t0)
            os._exit(1)
        return {"key": job.key, "status": "failed", "error": f"{type(exc).__name__}: {exc}",
                "seconds": time.perf_counter() - t0}
    finally:
        _IN_JOB.clear()
    return {"key": job.key, "status": "reused" if runner.reused > reused else "trained",
            "test_accuracy": res.test_accuracy, "seconds": time.perf_counter() - t0,
            "predictions": healed}


def _heal_predictions(runner: Any, job: SweepJob, ctx: _Context, method: Any, task: Any) -> str:
    """A recorded run whose predictions safe mode needs but can not find is trained again for
    them, outside the store (its recorded result stays), exactly as ``transferguard run
    --safe`` does (:meth:`~.runner.Runner.predictions_of`). Returns what happened, in words
    ("" when nothing was needed); an error is reported, not raised: the run itself is fine,
    and the driver names the missing file and the fix."""
    from .safe_records import predictions_path

    if job.key not in ctx.need_predictions or predictions_path(ctx.out, job.key).exists():
        return ""
    try:
        runner.predictions_of(method, task, job.seed)
    except Exception as exc:
        return f"its predictions for safe mode could not be made: {type(exc).__name__}: {exc}"
    return "trained again for its predictions (safe mode)"


# ------------------------------------------------------------------ local worker processes


def _init_worker(threads: int, parent: int, env: dict[str, str]) -> None:
    """A spawned worker: its share of the cores, SIGTERM as Ctrl-C (the run in progress is
    recorded as interrupted), and a watch on the driver (see :func:`_watch_parent`)."""
    import torch

    os.environ.update(env)
    torch.set_num_threads(threads)
    signal.signal(signal.SIGTERM, _interrupt)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()


def _interrupt(signum: int, frame: object) -> None:
    _STOPPING.set()
    raise KeyboardInterrupt(f"signal {signum}")


def _watch_parent(parent: int, every: float = 0.5, grace: float = 20.0) -> None:
    """End this worker when its driver is gone (killed with SIGKILL, it could not end us; and
    the pool's queues would keep us waiting for work forever): a run in progress is stopped
    with SIGTERM, which records it as interrupted, then the process exits. If the run does
    not stop within ``grace`` seconds the process exits anyway (the ``running`` row of a dead
    pid is reclaimed by the next claim)."""
    while os.getppid() == parent:
        time.sleep(every)
    if _IN_JOB.is_set():
        os.kill(os.getpid(), signal.SIGTERM)
        deadline = time.time() + grace
        while _IN_JOB.is_set() and time.time() < deadline:
            time.sleep(0.05)
    os._exit(1)


def worker_threads(workers: int) -> int:
    """Torch threads per worker: the cores shared out (``OMP_NUM_THREADS`` caps it)."""
    threads = max(1, (os.cpu_count() or 1) // workers)
    cap = os.environ.get("OMP_NUM_THREADS", "")
    return min(threads, int(cap)) if cap.isdigit() and int(cap) > 0 else threads


def _execute_pool(jobs: Sequence[SweepJob], ctx: _Context, workers: int,
                  record: Callable[[SweepJob, dict[str, Any]], None]) -> None:
    """Run ``jobs`` on ``workers`` spawned processes; rebuild the pool when a worker dies
    (its run is reclaimed from the store by the new pool) up to :data:`MAX_POOL_RESTARTS`."""
    pending = list(jobs)
    restarts = 0
    mp = multiprocessing.get_context("spawn")
    threads = worker_threads(workers)
    while pending:
        pool = ProcessPoolExecutor(min(workers, len(pending)), mp_context=mp,
                                   initializer=_init_worker,
                                   initargs=(threads, os.getpid(), ctx.env))
        broken = False
        try:
            futures = {pool.submit(run_job, job, ctx): job for job in pending}
            waiting = set(futures)
            while waiting:
                finished, waiting = wait(waiting, return_when=FIRST_COMPLETED)
                for f in finished:
                    job = futures[f]
                    try:
                        outcome = f.result()
                    except BrokenProcessPool:
                        broken = True
                        continue
                    except Exception as exc:  # the job could not even be sent or run
                        outcome = {"key": job.key, "status": "failed",
                                   "error": f"{type(exc).__name__}: {exc}"}
                    pending.remove(job)
                    record(job, outcome)
        except BaseException:
            _stop_pool(pool)
            raise
        pool.shutdown(wait=True)
        if broken and pending:
            restarts += 1
            if restarts > MAX_POOL_RESTARTS:
                raise SweepError(
                    f"sweep workers died {restarts} times (killed, or out of memory); "
                    f"{len(pending)} runs were not trained. Rerun with --resume (fewer "
                    "--workers if memory is short).")


def _stop_pool(pool: ProcessPoolExecutor, grace: float = 15.0) -> None:
    """SIGTERM every worker (each records its run as interrupted) and wait for them."""
    procs = list(getattr(pool, "_processes", {}).values())  # no public handle on them
    for p in procs:
        with contextlib.suppress(Exception):
            p.terminate()
    deadline = time.time() + grace
    for p in procs:
        with contextlib.suppress(Exception):
            p.join(max(0.0, deadline - time.time()))
    pool.shutdown(wait=False, cancel_futures=True)


# ------------------------------------------------------------------ Ray


def import_ray() -> Any:
    """Ray, imported only when a sweep asks for it (an optional extra)."""
    try:
        import ray
    except ImportError:
        raise SweepError("--ray needs Ray, which is not installed: pip install "
                         "'transferguard[ray]' (or run locally with --workers N).") from None
    return ray


def ray_task(job: SweepJob, out: str, env: dict[str, str], threads: int,
             predictions: bool = False) -> tuple[dict, float, Any]:
    """The body of one Ray task: train the run (no store access; the driver records it) and
    return (metrics, seconds, predictions): with ``predictions`` the selected state's
    validation/test probabilities (a :class:`~transferguard.analysis.safe.SplitPredictions`,
    for safe mode; the driver saves them: a file written here would be on the task's node),
    else None. Its training checkpoint lives under ``out/checkpoints`` on the node that runs
    it and is removed once the run finished."""
    import tempfile

    import torch

    from ..analysis.safe import SplitPredictions
    from ..engine import Trainer
    from ..engine.loggers import make_loggers
    from .runner import train_run

    os.environ.update(env)
    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    cfg = job.config
    trainer = Trainer(cfg.trainer, callbacks=make_loggers(cfg.loggers, base=out,
                                                          experiment=cfg.name))
    trainer = trainer.with_options(seed=job.seed)
    ckpt = Path(out) / "checkpoints" / job.key[:16]
    preds = None
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "predictions.pt" if predictions else None
        metrics = train_run(job.build_method(), cfg.task.build(seed=job.task_seed), trainer,
                            out, ckpt, job.seed, path)
        if path is not None:
            preds = SplitPredictions.load(path)
    shutil.rmtree(ckpt, ignore_errors=True)
    return metrics, time.perf_counter() - t0, preds


def _execute_ray(jobs: Sequence[SweepJob], ctx: _Context, address: str,
                 resources: dict[str, float], store: RunStore, experiment: str,
                 record: Callable[[SweepJob, dict[str, Any]], None], poll: float = 1.0) -> None:
    """One Ray task per job; the driver claims each run before submitting it and records it
    when its task ends (module doc: why the driver). In a safe sweep the tasks return their
    predictions and the driver saves them; a recorded run whose needed predictions are
    missing is trained again in a task for them alone (its record stays)."""
    from .safe_records import predictions_path

    ray = import_ray()
    started = not ray.is_initialized()
    if started:
        kw: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        ray.init(address=None if address == "auto" else address, **kw)
    remote = ray.remote(ray_task).options(num_cpus=resources["num_cpus"],
                                          num_gpus=resources["num_gpus"])
    threads = max(1, int(resources["num_cpus"]))
    waiting = list(jobs)
    #: ref -> (job, start, the recorded accuracy of a run trained again for its predictions)
    inflight: dict[Any, tuple[SweepJob, float, float | None]] = {}
    heals: dict[Any, tuple[SweepJob, float, float | None]] = {}
    try:
        while waiting or inflight or heals:
            busy = []
            for job in waiting:
                what, rec = store.claim(job.key, experiment, job.label, job.identity,
                                        resume=ctx.resume, retry_failed=ctx.retry_failed,
                                        reuse=job.twin, since=ctx.since)
                if what == "train":
                    inflight[remote.remote(job, ctx.out, ctx.env, threads, ctx.predictions)] = \
                        (job, time.perf_counter(), None)
                elif what == "reuse" and job.key in ctx.need_predictions and \
                        not predictions_path(ctx.out, job.key).exists():
                    heals[remote.remote(job, ctx.out, ctx.env, threads, True)] = \
                        (job, time.perf_counter(), (rec.metrics or {}).get("test_accuracy"))
                elif what == "reuse":
                    record(job, {"status": "reused", "seconds": 0.0,
                                 "test_accuracy": (rec.metrics or {}).get("test_accuracy")})
                elif what == "failed":
                    record(job, {"status": "skipped", "seconds": 0.0, "error": rec.error})
                else:  # another live process trains it: ask again later
                    busy.append(job)
            waiting = busy
            if not inflight and not heals:
                time.sleep(poll)
                continue
            ready, _ = ray.wait([*inflight, *heals], num_returns=1, timeout=poll)
            for ref in ready:
                if ref in heals:  # the run stays as recorded; only its predictions are new
                    job, t0, acc = heals.pop(ref)
                    note = "trained again for its predictions (safe mode)"
                    try:
                        predictions = ray.get(ref)[2]
                        predictions.save(predictions_path(ctx.out, job.key))
                    except Exception as exc:  # reported; the driver names the missing file
                        note = f"its predictions could not be made: {type(exc).__name__}: {exc}"
                    record(job, {"status": "reused", "seconds": time.perf_counter() - t0,
                                 "test_accuracy": acc, "predictions": note})
                    continue
                job, t0, _ = inflight.pop(ref)
                try:
                    metrics, seconds, predictions = ray.get(ref)
                except ray.exceptions.RayTaskError as exc:  # the run itself raised
                    cause = getattr(exc, "cause", None) or exc
                    error = f"{type(cause).__name__}: {cause}"
                    store.fail(job.key, error, time.perf_counter() - t0)
                    record(job, {"status": "failed", "error": error,
                                 "seconds": time.perf_counter() - t0})
                    continue
                except ray.exceptions.RayError as exc:  # worker or node died: redo on resume
                    error = f"{INTERRUPTED} (Ray: {type(exc).__name__}: {exc})"
                    store.fail(job.key, error, time.perf_counter() - t0)
                    record(job, {"status": "failed", "error": error,
                                 "seconds": time.perf_counter() - t0})
                    continue
                if predictions is not None:  # before the record: a finished run has them
                    predictions.save(predictions_path(ctx.out, job.key))
                store.finish(job.key, metrics, seconds)
                record(job, {"status": "trained", "seconds": seconds,
                             "test_accuracy": metrics.get("test_accuracy")})
    except BaseException as exc:
        for ref in heals:
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)
        for ref, (job, t0, _) in inflight.items():
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)
            store.fail(job.key, f"{INTERRUPTED} (sweep driver stopped: {type(exc).__name__})",
                       time.perf_counter() - t0)
        raise
    finally:
        if started:
            ray.shutdown()


# --------------------------------------------------------------------------------------------
# the summary
# --------------------------------------------------------------------------------------------


#: what to do about a missing prediction file (the dispatch of a resumed sweep trains the
#: recorded runs whose needed predictions are missing again, for them alone)
PREDICTIONS_FIX = ("Run the sweep again with --resume: it trains the runs whose predictions "
                   "are missing again for them (outside the store; their recorded results "
                   "stay), then makes the safe-mode choice.")


def _finished(store: RunStore) -> dict[str, Any]:
    return {r.key: r for r in store.records(status="finished") if r.metrics}


def _safe_points(sweep: SweepConfig, point_runs: Sequence[Sequence[SweepJob]]
                 ) -> list[tuple[SweepPoint, Any, SweepJob, SweepJob]]:
    """(point, rule, method job, twin job) of every point whose method has ``safe:``."""
    out = []
    for p, runs in zip(sweep.points, point_runs):
        rule = p.config.build_safe()[0]
        if rule is not None and len(runs) == 2:
            out.append((p, rule, runs[0], runs[1]))
    return out


def _decision(store: RunStore, rule: Any, m: Any, t: Any) -> Any:
    """The recorded decision between the runs ``m`` and ``t`` (records) under ``rule``, if
    it was made from these very runs (else None: they were trained again since)."""
    from .safe_records import inputs_stamp
    from .store import safe_key

    rec = store.get_safe(safe_key(m.key, t.key, rule.get_params()))
    return rec if rec is not None and rec.inputs == inputs_stamp(m, t) else None


def missing_predictions(sweep: SweepConfig, store: RunStore, out: str | os.PathLike[str],
                        point_runs: Sequence[Sequence[SweepJob]] | None = None) -> set[str]:
    """The runs whose predictions a safe point needs and that have no prediction file: a
    point with no decision recorded from its current runs. Runs that will train in this
    sweep save theirs anyway; recorded ones are trained again for them by the dispatch."""
    from .safe_records import predictions_path

    point_runs = point_runs if point_runs is not None else sweep.point_runs(store)
    done = _finished(store)
    need = set()
    for _, rule, mj, tj in _safe_points(sweep, point_runs):
        m, t = done.get(mj.key), done.get(tj.key)
        if m is not None and t is not None and _decision(store, rule, m, t) is not None:
            continue
        need.update(j.key for j in (mj, tj) if not predictions_path(out, j.key).exists())
    return need


def decide_safe(sweep: SweepConfig, store: RunStore, out: str | os.PathLike[str],
                point_runs: Sequence[Sequence[SweepJob]] | None = None
                ) -> tuple[int, int, list[dict[str, Any]]]:
    """Safe mode for every safe point whose method run and twin run both finished, on the
    driver, from their stored predictions (no training), with the function ``transferguard
    run --safe`` uses (:func:`~transferguard.analysis.safe.safe_ntg`); each decision is
    recorded in the store (:func:`~.safe_records.record_decisions`). A decision already
    recorded from the same two runs is reused. Returns (made, reused, failures): a failure
    (a missing prediction file ...) names the point and the fix."""
    from ..analysis.safe import safe_ntg
    from .safe_records import load_predictions, record_decisions

    point_runs = point_runs if point_runs is not None else sweep.point_runs(store)
    done = _finished(store)
    made = reused = 0
    failures = []
    for p, rule, mj, tj in _safe_points(sweep, point_runs):
        m, t = done.get(mj.key), done.get(tj.key)
        if m is None or t is None:  # the cell counts it as missing
            continue
        if _decision(store, rule, m, t) is not None:
            reused += 1
            continue
        try:
            preds = [(load_predictions(out, m, PREDICTIONS_FIX),
                      load_predictions(out, t, PREDICTIONS_FIX))]
            ntg, choices = safe_ntg(mj.label, tj.label, [p.seed], preds, rule)
        except (TransferGuardError, ValueError, OSError, RuntimeError) as exc:
            where = ", ".join(f"{a}={v}" for a, v in p.values.items())
            failures.append({"method": rule.label(mj.label), "seed": p.seed, "point": p.index,
                             "error": f"safe mode at grid point {where}: {exc}"})
            continue
        record_decisions(store, sweep.name, rule, mj.label, ntg, choices, [(m, t)])
        made += 1
    return made, reused, failures


def sweep_cells(sweep: SweepConfig, store: RunStore,
                point_runs: Sequence[Sequence[SweepJob]] | None = None) -> list[dict[str, Any]]:
    """One row per grid cell (a point less its seed): the axis values, the seeds whose runs
    finished and, with ``ntg``, the NTG over them (``result``: an
    :class:`~transferguard.analysis.NTGResult`); ``missing`` counts the seeds not finished.
    A method with ``safe:`` adds a cell of its own right after its method's (``safe``:
    True, ``method`` ``safe(LABEL)``, ``choices``: the recorded decision of each seed, its
    NTG against the same twin). Read from the store, so a resumed sweep's summary holds every
    run, whichever invocation trained it."""
    from ..analysis.safe import SafeMode
    from .safe_records import decisions_result

    point_runs = point_runs if point_runs is not None else sweep.point_runs(store)
    by_key = {r.key: r for r in store.records()}

    def finished(key: str) -> Any:
        rec = by_key.get(key)
        return rec if rec is not None and rec.status == "finished" and rec.metrics else None

    def new_cell(values: dict[str, Any], method: str, twin: str | None) -> dict[str, Any]:
        return {"values": values, "method": method, "twin": twin, "seeds": [], "accuracy": [],
                "twin_accuracy": [], "collapsed": [], "twin_collapsed": [], "missing": 0}

    cells: dict[str, dict[str, Any]] = {}
    for p, runs in zip(sweep.points, point_runs):
        values = {a: v for a, v in p.values.items() if a != "seeds"}
        cell = cells.setdefault(json.dumps(values, sort_keys=True, default=str), new_cell(
            values, runs[0].label, runs[-1].label if len(runs) > 1 else None))
        rule = p.config.build_safe()[0] if len(runs) > 1 else None
        if rule is not None:
            label = SafeMode.label(runs[0].label)
            safe_values = {**values, "methods": label} if "methods" in values else values
            safe_cell = cells.setdefault(
                json.dumps([safe_values, "safe"], sort_keys=True, default=str),
                {**new_cell(safe_values, label, runs[1].label), "safe": True, "choices": []})
        recs = [finished(j.key) for j in runs]
        decision = _decision(store, rule, *recs) if rule is not None and all(recs) else None
        if rule is not None:
            if decision is None:
                safe_cell["missing"] += 1
            else:
                safe_cell["seeds"].append(p.seed)
                safe_cell["choices"].append(decision.result)
        if not all(recs):
            cell["missing"] += 1
            continue
        cell["seeds"].append(p.seed)
        cell["accuracy"].append(recs[0].metrics["test_accuracy"])
        cell["collapsed"].append(bool(recs[0].metrics.get("collapsed", False)))
        if len(recs) > 1:
            cell["twin_accuracy"].append(recs[1].metrics["test_accuracy"])
            cell["twin_collapsed"].append(bool(recs[1].metrics.get("collapsed", False)))
    for cell in cells.values():
        if cell.get("safe"):
            cell["accuracy"] = [d["test_accuracy"] for d in cell["choices"]]
            cell["twin_accuracy"] = [d["twin_test_accuracy"] for d in cell["choices"]]
            cell["collapsed"] = cell["twin_collapsed"] = [False] * len(cell["choices"])
            if cell["choices"]:
                r = decisions_result(cell["method"], cell["twin"], cell["choices"])
                cell.update(result=r, ntg=r.ntg, interval=list(r.interval), verdict=r.verdict)
        elif cell["twin"] is not None and cell["seeds"]:
            r = NTGResult(cell["method"], cell["twin"], cell["seeds"], cell["accuracy"],
                          cell["twin_accuracy"], cell["collapsed"], cell["twin_collapsed"])
            cell.update(result=r, ntg=r.ntg, interval=list(r.interval), verdict=r.verdict)
    return list(cells.values())


def write_sweep_summary(result: SweepResult, sweep: SweepConfig, out: Path) -> None:
    """``results-NAME.md`` (:func:`~transferguard.report.sweeps.sweep_table`) and
    ``results-NAME.json`` next to the store, written atomically."""
    from ..report.sweeps import sweep_safe_text, sweep_table
    from ..report.tables import failures_text
    from .runner import summary_paths

    md, js = summary_paths(out, sweep.name)
    with atomic_write(md, "w") as fh:
        fh.write(f"# sweep {sweep.name}\n\n{sweep_table(result, markdown=True)}\n")
        safe = sweep_safe_text(result)
        if safe:
            fh.write(f"\n{safe}\n")
        if result.failed:
            fh.write(f"\n{failures_text(result.failed)}\n")
    payload = {"name": sweep.name, "axes": sweep.axes, "resources": sweep.resources,
               "points": result.points, "runs": result.jobs, "trained": result.trained,
               "reused": result.reused, "skipped": result.skipped, "failed": result.failed,
               "seconds": result.seconds, "base": sweep.base.to_dict(),
               "cells": [{k: v for k, v in c.items() if k != "result"} for c in result.cells]}
    with atomic_write(js, "w") as fh:
        json.dump(payload, fh, indent=2, default=str)
