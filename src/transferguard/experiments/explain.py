"""``explain``: what is being transferred on one task, with the five tools of Neyshabur, Sedghi
and Zhang (NeurIPS 2020; methods reference section 4) run on models the toolkit trains.

On one :class:`TransferTask` (one split of the target, the task's seed):

1. the source network P is pre-trained once, with snapshots kept along the way
   (:func:`~transferguard.analysis.pretrain_with_snapshots`; files under ``OUT/pretrained``);
2. for every seed (the trainer's seed: head initialisation and batch order), a model is
   fine-tuned from P (P-T, the ``finetune`` method) and one is trained from scratch with the
   same recipe (RI-T, its twin); each records its initial state;
3. **basins**: interpolation P-T/P-T, RI-T/RI-T, P-T/RI-T (same seed) and start -> P-T, on
   the target test split, batch norm re-estimated on the labeled target;
4. **feature similarity**: linear CKA per block of F (and the full block x block matrix of
   the first pair) for P-T/P-T, P-T/P, P-T/RI-T, RI-T/RI-T, on the target test images;
5. **parameter distance** per module for P-T/P-T, P-T/start, RI-T/RI-T, RI-T/start;
6. **module criticality** of every P-T and RI-T model: rewinding drops on the test split and
   Chatterji et al.'s measure on the labeled target training split;
7. **which checkpoint**: fine-tuning from every snapshot, and the barrier of each snapshot to
   P on the source data (where pre-training enters its final basin);
8. **block shuffling**: P-T and RI-T on the block-shuffled target for several grids k.

The test split is only evaluated (as for the final accuracy of any run); nothing is trained
or selected on it. Trainings of steps 7 and 8 go through a :class:`Runner` (recorded in
``OUT/runs.sqlite``, resumable).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..analysis.basins import InterpolationResult, interpolate
from ..analysis.checkpoints import CheckpointResult, checkpoint_sweep, pretrain_with_snapshots
from ..analysis.criticality import ALPHAS, SIGMAS, CriticalityResult, module_criticality
from ..analysis.representation import (
    CKAResult,
    DistanceResult,
    feature_similarity,
    parameter_distance,
)
from ..analysis.shuffle import ShuffleResult, shuffled_task, valid_grids
from ..analysis.state import recording_init
from ..data import Split, TransferTask
from ..engine import Trainer
from ..errors import ConfigError, DataError
from ..methods.finetuning.finetune import FineTune
from ..utils import atomic_save
from .runner import Runner
from .store import RunStore


@dataclass
class ExplainResult:
    """Everything :func:`explain` measured on one task (data only; see report.explain)."""

    task: str
    seeds: list[int]
    blocks: list[str]
    accuracy: dict[str, list[float]]
    interpolation: dict[str, list[InterpolationResult]] = field(default_factory=dict)
    cka: dict[str, list[CKAResult]] = field(default_factory=dict)
    distance: dict[str, list[DistanceResult]] = field(default_factory=dict)
    criticality: dict[str, list[CriticalityResult]] = field(default_factory=dict)
    checkpoints: CheckpointResult | None = None
    shuffle: ShuffleResult | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    tolerance: float = 1.0

    # ---------------------------------------------------------------- summaries
    def barrier(self, kind: str) -> list[float]:
        return [c.barrier for c in self.interpolation.get(kind, [])]

    def mean_cka(self, kind: str) -> dict[str, float]:
        rs = self.cka.get(kind, [])
        return {b: statistics.fmean(r.per_block[b] for r in rs) for b in self.blocks} if rs \
            else {}

    def mean_distance(self, kind: str) -> tuple[dict[str, float], float]:
        rs = self.distance.get(kind, [])
        if not rs:
            return {}, math.nan
        mods = rs[0].modules
        return ({m: statistics.fmean(r.distance[m] for r in rs) for m in mods},
                statistics.fmean(r.total for r in rs))

    def mean_rewind_drop(self, kind: str) -> dict[str, float]:
        rs = self.criticality.get(kind, [])
        if not rs:
            return {}
        return {m: statistics.fmean(r.rewind_drop[m] for r in rs) for m in rs[0].modules}

    def median_mu(self, kind: str) -> dict[str, float]:
        rs = self.criticality.get(kind, [])
        if not rs:
            return {}
        return {m: statistics.median(r.mu[m] for r in rs) for m in rs[0].modules}

    def findings(self) -> list[dict[str, Any]]:
        """The paper's five findings, each with ``holds`` (True/False/None) and its numbers."""
        tol = self.tolerance
        out = []
        pt, ri = self.barrier("P-T/P-T"), self.barrier("RI-T/RI-T")
        if pt and ri:
            mpt, mri = statistics.fmean(pt), statistics.fmean(ri)
            out.append({"finding": "fine-tuned models stay in one basin, scratch models do not",
                        "holds": mpt <= tol < mri,
                        "numbers": {"barrier P-T/P-T": mpt, "barrier RI-T/RI-T": mri,
                                    "tolerance": tol}})
        dpt, tpt = self.mean_distance("P-T/P-T")
        dri, tri = self.mean_distance("RI-T/RI-T")
        cpt, cri = self.mean_cka("P-T/P-T"), self.mean_cka("RI-T/RI-T")
        if dpt and dri and cpt and cri:
            closer = tpt < tri
            similar = all(cpt[b] > cri[b] for b in self.blocks)
            out.append({"finding": "fine-tuned models are closer in parameter space and more "
                                   "similar in features than scratch models",
                        "holds": closer and similar,
                        "numbers": {"l2 P-T/P-T": tpt, "l2 RI-T/RI-T": tri,
                                    **{f"CKA {b} P-T/P-T": cpt[b] for b in self.blocks},
                                    **{f"CKA {b} RI-T/RI-T": cri[b] for b in self.blocks}}})
        drop = self.mean_rewind_drop("P-T")
        if drop:
            body = [drop[b] for b in self.blocks]
            lower, higher = body[: len(body) // 2] or body[:1], body[len(body) // 2:]
            scratch = self.mean_rewind_drop("RI-T")
            out.append({"finding": "lower modules are less critical than higher ones (P-T)",
                        "holds": max(lower) < min(higher),
                        "numbers": {**{f"rewind drop {b}": drop[b] for b in (*self.blocks,
                                                                             "head")},
                                    **{f"RI-T rewind drop {b}": scratch[b]
                                       for b in self.blocks if b in scratch}}})
        ck = self.checkpoints
        if ck is not None:
            final = ck.mean(ck.final_step)
            early = [st for st in ck.steps if 0 < st < ck.final_step
                     and ck.mean(st) >= final - tol]
            out.append({"finding": "early checkpoints transfer as well as the last",
                        "holds": bool(early),
                        "numbers": {"earliest step within tolerance": ck.earliest_as_good,
                                    "final step": ck.final_step,
                                    "final accuracy": final,
                                    "accuracy at earliest": ck.mean(ck.earliest_as_good),
                                    "random start (step 0)": ck.mean(0) if 0 in ck.accuracy
                                    else None,
                                    "scratch": statistics.fmean(ck.scratch),
                                    "final-basin entry step (P-T/P-T barrier)":
                                        ck.basin_entry}})
        sh = self.shuffle
        if sh is not None and len(sh.grids) >= 2:
            k0, kmax = min(sh.grids), max(sh.grids)
            b0, bmax = statistics.fmean(sh.benefit(k0)), statistics.fmean(sh.benefit(kmax))
            reuse, stats = b0 > bmax + tol, bmax > tol
            out.append({"finding": "feature reuse and low-level statistics both matter",
                        "holds": reuse and stats,
                        "numbers": {f"benefit k={k0}": b0, f"benefit k={kmax}": bmax,
                                    "feature reuse (benefit shrinks)": reuse,
                                    "low-level statistics (benefit stays)": stats}})
        return out

    def to_dict(self) -> dict[str, Any]:
        def many(d: dict[str, list[Any]]) -> dict[str, list[Any]]:
            return {k: [r.to_dict() for r in v] for k, v in d.items()}

        def clean(x: Any) -> Any:
            if isinstance(x, float) and not math.isfinite(x):
                return None
            if isinstance(x, dict):
                return {str(k): clean(v) for k, v in x.items()}
            if isinstance(x, (list, tuple)):
                return [clean(v) for v in x]
            return x

        return clean({"task": self.task, "seeds": self.seeds, "blocks": self.blocks,
                      "accuracy": self.accuracy, "interpolation": many(self.interpolation),
                      "cka": many(self.cka), "distance": many(self.distance),
                      "criticality": many(self.criticality),
                      "checkpoints": self.checkpoints.to_dict() if self.checkpoints else None,
                      "shuffle": self.shuffle.to_dict() if self.shuffle else None,
                      "seconds": self.seconds, "findings": self.findings()})


ANALYSES = ("basins", "cka", "distance", "criticality", "checkpoints", "shuffle")


def _source_states(task: TransferTask, trainer: Trainer, out: Path, steps: list[int],
                   model: str, model_options: dict | None, iterations: int) -> dict[int, str]:
    """One pre-training run with snapshots, cached as files named by what defines them."""
    cfg = task.config()
    ident = {k: cfg[k] for k in ("source", "eps_x", "eps_y", "label_noise", "corruptions",
                                 "source_size", "source_options", "spec", "seed")}
    tcfg = {k: v for k, v in trainer.config.__dict__.items()
            if k not in ("progress", "log_every", "checkpoint_dir", "device")}
    ident.update(model=model, model_options=model_options or {}, iterations=iterations,
                 trainer=tcfg)
    digest = hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode())
    stem = f"{task.source_name}-seed{task.seed}-{digest.hexdigest()[:10]}"
    paths = {s: out / f"{stem}-step{s}.pt" for s in steps}
    if not all(p.exists() for p in paths.values()):
        states = pretrain_with_snapshots(task.train_data(), trainer.with_options(seed=task.seed),
                                         steps, model=model, model_options=model_options,
                                         iterations=iterations)
        for s, p in paths.items():
            atomic_save(p, lambda fh, st=states[s]: torch.save(st, fh))
    return {s: str(p) for s, p in paths.items()}


def explain(task: TransferTask, out_dir: str | Path, *, model: str = "lenet",
            model_options: dict | None = None, seeds: Sequence[int] = (0, 1, 2),
            trainer: Trainer | None = None, pretrain_iterations: int | None = None,
            checkpoint_fractions: Sequence[float] = (0.0, 0.05, 0.1, 0.25, 0.5, 1.0),
            grids: Sequence[int] | None = None, shuffle_mode: str = "per_image",
            points: int = 11, cka_samples: int = 1000, criticality_samples: int = 3,
            criticality_alphas: Sequence[float] = ALPHAS,
            criticality_sigmas: Sequence[float] = SIGMAS, tolerance: float = 1.0,
            analyses: Sequence[str] = ANALYSES, resume: bool = False,
            echo: Callable[[str], None] | None = print) -> ExplainResult:
    """Run the analyses of the module docstring on ``task``; see :class:`ExplainResult`."""
    bad = sorted(set(analyses) - set(ANALYSES))
    if bad:
        raise ConfigError(f"unknown analyses {bad}; choose from {list(ANALYSES)}.")
    seeds = list(seeds)
    if len(seeds) < 2 and {"basins", "cka", "distance"} & set(analyses):
        raise ConfigError("comparing two fine-tuned (or two scratch) models needs at least two "
                          f"seeds, got {seeds}.")
    say = echo or (lambda _s: None)
    trainer = trainer or Trainer(progress=False)
    out = Path(out_dir)
    spec = task.spec
    iters = int(pretrain_iterations or trainer.config.iterations)
    steps = sorted({round(f * iters) for f in checkpoint_fractions} | {iters})
    ok = valid_grids(spec.size)
    if grids is None:
        grids = sorted({1, ok[1] if len(ok) > 1 else 1, ok[len(ok) // 2], ok[-1]})
    bad_k = [k for k in grids if k not in ok]
    if bad_k and "shuffle" in analyses:  # before any training, not after an hour of it
        raise DataError(f"block-shuffling grids {bad_k} do not divide the input size "
                        f"{spec.size}; choose k among {ok}.")
    timing: dict[str, float] = {}
    t0 = time.perf_counter()
    say(f"pre-training the source network ({iters} iterations, snapshots at {steps})")
    paths = _source_states(task, trainer, out / "pretrained", steps, model, model_options, iters)
    source = paths[iters]
    timing["pretrain"] = time.perf_counter() - t0

    # ---------------------------------------------------------------- the models
    t0 = time.perf_counter()
    models: dict[str, list[Any]] = {"P-T": [], "RI-T": []}
    acc: dict[str, list[float]] = {"P-T": [], "RI-T": []}
    for seed in seeds:
        for kind, m in (("P-T", FineTune(model, model_options, pretrained=source)),
                        ("RI-T", FineTune(model, model_options, source_free=True))):
            rec = recording_init(m)
            r = trainer.with_options(seed=seed).run(rec, task)
            models[kind].append(rec)
            acc[kind].append(r.test_accuracy)
            say(f"  {kind:5s} seed {seed}: test accuracy {r.test_accuracy:.1f}")
    timing["train"] = time.perf_counter() - t0
    ref = models["P-T"][0].model_
    blocks = list(ref.blocks)
    result = ExplainResult(repr(task), seeds, blocks, acc, tolerance=tolerance)
    data = task.train_data()
    test: Split = task.test_split()
    train_split = data.target_labeled
    pairs = list(itertools.combinations(range(len(seeds)), 2))

    def fm(kind: str, i: int):
        return models[kind][i].model_

    def init(kind: str, i: int):
        return models[kind][i].init_state_

    if "basins" in analyses:
        t0 = time.perf_counter()
        say("interpolating (basins)")
        ip = result.interpolation
        kw = dict(points=points, bn_data=train_split, trainer=trainer)
        for kind in ("P-T", "RI-T"):
            ip[f"{kind}/{kind}"] = [interpolate(fm(kind, i), fm(kind, j), test, spec,
                                                label=f"{kind} s{seeds[i]} - s{seeds[j]}", **kw)
                                    for i, j in pairs]
        ip["P-T/RI-T"] = [interpolate(fm("P-T", i), fm("RI-T", i), test, spec,
                                      label=f"P-T/RI-T s{seeds[i]}", **kw)
                          for i in range(len(seeds))]
        ip["P/P-T"] = [interpolate(init("P-T", i), fm("P-T", i), test, spec, like=ref,
                                   label=f"P -> P-T s{seeds[i]}", **kw)
                       for i in range(len(seeds))]
        timing["basins"] = time.perf_counter() - t0

    if "cka" in analyses:
        t0 = time.perf_counter()
        say("feature similarity (CKA)")
        ck = result.cka
        start = _with_state(ref, init("P-T", 0))
        for kind in ("P-T", "RI-T"):
            ck[f"{kind}/{kind}"] = [feature_similarity(fm(kind, i), fm(kind, j), test, spec,
                                                       trainer=trainer, cross=(i, j) == (0, 1),
                                                       max_samples=cka_samples,
                                                       label=f"{kind}/{kind}")
                                    for i, j in pairs]
        ck["P-T/P"] = [feature_similarity(fm("P-T", i), start, test, spec, trainer=trainer,
                                          cross=i == 0, label="P-T/P", max_samples=cka_samples)
                       for i in range(len(seeds))]
        ck["P-T/RI-T"] = [feature_similarity(fm("P-T", i), fm("RI-T", i), test, spec,
                                             trainer=trainer, cross=i == 0, label="P-T/RI-T",
                                             max_samples=cka_samples)
                          for i in range(len(seeds))]
        timing["cka"] = time.perf_counter() - t0

    if "distance" in analyses:
        dist = result.distance
        for kind in ("P-T", "RI-T"):
            dist[f"{kind}/{kind}"] = [parameter_distance(fm(kind, i), fm(kind, j),
                                                         label=f"{kind}/{kind}")
                                      for i, j in pairs]
            dist[f"{kind}/start"] = [parameter_distance(fm(kind, i), init(kind, i),
                                                        label=f"{kind}/start")
                                     for i in range(len(seeds))]

    if "criticality" in analyses:
        t0 = time.perf_counter()
        say("module criticality")
        for kind in ("P-T", "RI-T"):
            rows = []
            for i in range(len(seeds)):
                c = module_criticality(fm(kind, i), init(kind, i), train_split, spec,
                                       samples=criticality_samples, seed=seeds[i],
                                       alphas=criticality_alphas, sigmas=criticality_sigmas,
                                       trainer=trainer, label=f"{kind} s{seeds[i]}")
                # rewinding drops on the test split (the number the paper plots)
                t = module_criticality(fm(kind, i), init(kind, i), test, spec,
                                       alphas=(0.0, 1.0), sigmas=(0.0,), trainer=trainer)
                c.extra["test_rewind_drop"] = t.rewind_drop
                c.extra["test_base_error"] = t.base_error
                rows.append(c)
            result.criticality[kind] = rows
        timing["criticality"] = time.perf_counter() - t0

    runner = Runner(RunStore(out), trainer, "explain", resume, say)
    if "checkpoints" in analyses:
        t0 = time.perf_counter()
        say(f"fine-tuning from {len(steps)} pre-training checkpoints")
        kept: dict = {}
        ck = checkpoint_sweep(task, paths, model=model, model_options=model_options,
                              seeds=seeds, trainer=trainer, tolerance=tolerance,
                              label=repr(task), keep=kept)
        for s in steps:  # do fine-tunings from one checkpoint land in one basin?
            ck.finetuned_barrier[s] = [
                interpolate(kept[(s, seeds[i])].model_, kept[(s, seeds[j])].model_, test,
                            spec, points=points, bn_data=train_split, trainer=trainer).barrier
                for i, j in pairs]
        del kept
        src = data.source
        n = min(len(src), 2000)
        src = Split("source", src.images[:n], src.labels[:n], src.indices[:n])
        final = _load(ref, paths[iters], data.num_classes)
        for s in steps:
            snap = _load(ref, paths[s], data.num_classes)
            r = interpolate(snap, final, src, spec, points=points, bn_data=src,
                            trainer=trainer)
            ck.source_accuracy[s] = r.accuracy[0]
            ck.source_barrier[s] = r.barrier
        result.checkpoints = ck
        timing["checkpoints"] = time.perf_counter() - t0

    if "shuffle" in analyses:
        t0 = time.perf_counter()
        say(f"block shuffling, k in {list(grids)} ({shuffle_mode})")
        pre: dict[int, list[float]] = {}
        scr: dict[int, list[float]] = {}
        for k in grids:
            t = shuffled_task(task, k, mode=shuffle_mode)
            for seed in seeds:
                pre.setdefault(k, []).append(
                    runner(FineTune(model, model_options, pretrained=source), t, seed)
                    .test_accuracy)
                scr.setdefault(k, []).append(
                    runner(FineTune(model, model_options, source_free=True), t, seed)
                    .test_accuracy)
        result.shuffle = ShuffleResult(spec.size, list(grids), seeds, pre, scr, shuffle_mode,
                                       repr(task))
        timing["shuffle"] = time.perf_counter() - t0
    result.seconds = timing
    return result


def _with_state(like: Any, state: dict[str, torch.Tensor]) -> Any:
    import copy

    m = copy.deepcopy(like)
    m.load_state_dict(state)
    return m.eval()


def _load(like: Any, path: str, num_classes: int) -> Any:
    """A model like ``like`` with a saved source state (the source head has as many classes
    as the target's, since tasks share the label space)."""
    from ..methods.finetuning.finetune import load_model_state

    state = load_model_state(path)
    if state["head.weight"].shape[0] != num_classes:
        raise ConfigError("the source network's head does not match the target classes.")
    return _with_state(like, state)


def explain_config(cfg: Any, out_dir: str | Path, *, split_seed: int = 0,
                   **options: Any) -> ExplainResult:
    """:func:`explain` on the task, model and trainer of an :class:`ExperimentConfig`
    (its seeds are the fine-tuning seeds; ``split_seed`` draws the task's splits)."""
    task = cfg.task.build(seed=split_seed)
    method = cfg.methods[0] if cfg.methods else {}
    return explain(task, out_dir, model=method.get("model", "lenet"),
                   model_options=method.get("model_options"), seeds=list(cfg.seeds),
                   trainer=Trainer(cfg.trainer), **options)
