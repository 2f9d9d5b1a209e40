"""Prevention grid (issue 10, items 3 and 6): does each defence close every negative-transfer
gap, and what does it cost on a clean source?

The lead's full run (about 40 minutes on 2 cores; resumable, so it can be stopped and
started again with the same command):

    OMP_NUM_THREADS=1 python benchmarks/prevention_grid.py --workers 2 --gate glc --alt prototype

then, for gradient-similarity gating (its safe mode) and the permute cells:

    OMP_NUM_THREADS=1 python benchmarks/prevention_grid.py --workers 2 \
        --gate '{"combine": "gradsim"}' --alt glc

(a defence is a weighter, ``--gate NAME`` or ``--gate 'NAME:{"option": value}'``, or DANN's
own options as JSON, ``--gate '{"gate": "glc", "combine": "gradsim"}'``; ``--alt`` adds more,
in the same forms). A quick check of one cell:

    OMP_NUM_THREADS=1 python benchmarks/prevention_grid.py --only mnist-uci/pairflip/0.7/10/0 \
        --iterations 20 --results /tmp/grid.jsonl --page /tmp/grid.md

Grid: pairs mnist -> uci-digits (``mnist-uci``) and syndigits -> mnist (``syn-mnist``);
label noise ``uniform``, ``pairflip`` and ``permute``; ε = ε_x = ε_y in {0.3, 0.7, 0.9}; L in
{10, 30, 50}%; seeds 0, 1, 2; plus the clean-source control (``clean``, ε = 0) per pair, L and
seed. LeNet at ``InputSpec(3, 24)``, 200 iterations, batch 32, the Trainer's defaults
(selection on the labeled target's validation split).

Per cell (pair, noise, ε, L, seed): DANN; DANN with the paper's gate (``gate="paper"`` when
registered, else the discriminator gate ``gate="gate"``); DANN with the new gate
(``--gate``); safe mode around DANN+new gate (:class:`transferguard.SafeMode` defaults: the
method, the twin or a blend, chosen on validation by Holm-corrected one-sided McNemar tests;
computed from the stored predictions of DANN+new gate and the twin, no extra training); the
twin DANN_T (source-free: one run per (pair, L, seed), shared by every noise and ε, as the
run store shares it); and, with ``--alt NAME``, DANN with that weighter.

Resumable and parallel: each (cell, method) run appends one JSON line to the results file
(``docs/results/prevention_grid.jsonl`` by default; one ``os.write`` on an ``O_APPEND``
descriptor under a lock) and is skipped when its line is there (the key includes the method's
label and the iterations, so another ``--gate`` or ``--iterations`` is another run).
``--workers N`` trains in N processes (``torch.set_num_threads(1)`` each); ``--only``
filters the cells by shell patterns on ``pair/noise/eps/L/seed`` (e.g. ``'mnist-uci/*'``,
``'*/pairflip/0.9/*'``, ``'*/clean/*'``). The validation/test class probabilities that
safe mode needs are kept in ``--preds`` (``runs/prevention_grid/predictions``). The page
(``docs/results/prevention_grid.md``) is rewritten from the whole results file at the end of
every invocation; ``--report`` only rewrites it.
"""

from __future__ import annotations

import argparse
import fcntl
import fnmatch
import json
import math
import os
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

PAIRS = {"mnist-uci": ("mnist", "uci-digits"), "syn-mnist": ("syndigits", "mnist")}
NOISES = ("uniform", "pairflip", "permute")
EPS = (0.3, 0.7, 0.9)
LABELED = (10, 30, 50)
SEEDS = (0, 1, 2)
ITERATIONS = 200
SIZE = 24
DANN, PAPER, TWIN = "DANN", "DANN+gate (paper)", "DANN_T"
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RESULTS = ROOT / "docs" / "results" / "prevention_grid.jsonl"
DEFAULT_PAGE = ROOT / "docs" / "results" / "prevention_grid.md"
DEFAULT_PREDS = ROOT / "runs" / "prevention_grid" / "predictions"


@dataclass(frozen=True)
class Cell:
    """One grid cell and seed; ``noise == "clean"`` (ε = 0) is the clean-source control and
    ``noise == "twin"`` the source-free twin's run, shared by every noise and ε."""

    pair: str
    noise: str
    eps: float
    labeled: int
    seed: int

    @property
    def id(self) -> str:
        return f"{self.pair}/{self.noise}/{self.eps:g}/{self.labeled}/{self.seed}"

    def twin_cell(self) -> Cell:
        return Cell(self.pair, "twin", 0.0, self.labeled, self.seed)


def all_cells() -> list[Cell]:
    cells = [Cell(p, n, e, L, s) for p in PAIRS for n in NOISES for e in EPS for L in LABELED
             for s in SEEDS]
    cells += [Cell(p, "clean", 0.0, L, s) for p in PAIRS for L in LABELED for s in SEEDS]
    return cells


def select(cells: Iterable[Cell], only: list[str] | None) -> list[Cell]:
    if not only:
        return list(cells)
    return [c for c in cells if any(fnmatch.fnmatchcase(c.id, pat) for pat in only)]


def parse_gate(text: str) -> tuple[str, str | None, str, str]:
    """A defence: ``NAME`` / ``NAME:{json options}`` (a weighter) or ``{json}`` (DANN's own
    options, e.g. ``{"combine": "gradsim"}`` or ``{"gate": "glc", "combine": "gradsim"}``).
    Returns (display name, weighter, weighter options JSON, other options JSON)."""
    import transferguard as tg

    if text.lstrip().startswith("{"):
        kw = json.loads(text)
        if not isinstance(kw, dict):
            raise SystemExit(f"--gate/--alt must be a JSON object, got {text!r}")
        gate, opts = kw.pop("gate", None), kw.pop("gate_options", None) or {}
    else:
        gate, _, raw = text.partition(":")
        opts, kw = json.loads(raw) if raw else {}, {}
        if not isinstance(opts, dict):
            raise SystemExit(f"--gate/--alt options must be a JSON object, got {raw!r}")
    label = tg.create_method("dann", gate=gate or False, gate_options=opts or None, **kw).label
    name = "DANN" + label[len("dann"):]
    if gate and not kw:  # the names earlier runs were stored under
        name = f"DANN+{gate_label(gate, opts)}"
    return name, gate, json.dumps(opts, sort_keys=True), json.dumps(kw, sort_keys=True)


def paper_gate() -> str:
    import transferguard as tg

    return "paper" if "paper" in tg.list_weighters() else "gate"


# --------------------------------------------------------------------------------------------
# one run
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    cell: Cell
    method: str  # display name: DANN, DANN+gate (paper), DANN+<label>, DANN_T
    gate: str | None  # weighter name, None for plain DANN, "twin" for the twin
    options: str  # JSON of the weighter options
    iterations: int
    keep_predictions: bool
    extra: str = "{}"  # JSON of further DANN options (combine=...)

    @property
    def key(self) -> str:
        return run_key(self.cell, self.method, self.iterations)


def run_key(cell: Cell, method: str, iterations: int) -> str:
    return f"{cell.id}|{method}|{iterations}"


def preds_path(preds: Path, cell: Cell, method: str, iterations: int) -> Path:
    safe = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in f"{method}")
    return preds / f"{cell.id.replace('/', '_')}-{safe}-{iterations}.pt"


@lru_cache(maxsize=4)
def build_task(pair: str, noise: str, eps: float, labeled: int, seed: int) -> Any:
    import transferguard as tg

    src, tgt = PAIRS[pair]
    kw: dict[str, Any] = {"eps": eps} if noise in ("clean", "twin") else \
        {"eps": eps, "label_noise": noise}
    task = tg.TransferTask(src, tgt, labeled_percent=labeled, spec=tg.InputSpec(3, SIZE),
                           seed=seed, **kw)
    task.summary()
    return task


def make_method(job: Job) -> Any:
    import transferguard as tg

    if job.gate == "twin":
        return tg.create_method("dann").twin()
    extra = json.loads(job.extra)
    if job.gate is None:
        return tg.create_method("dann", **extra)
    return tg.create_method("dann", gate=job.gate, gate_options=json.loads(job.options) or None,
                            **extra)


def append_line(path: Path, record: dict[str, Any]) -> None:
    """One line, one ``os.write`` on an O_APPEND descriptor, under an exclusive lock."""
    data = (json.dumps(record, sort_keys=True) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def read_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:  # a torn last line after a crash: ignored, rerun
            continue
    return out


def run_job(job: Job, results: Path, preds: Path) -> dict[str, Any]:
    import torch

    import transferguard as tg
    from transferguard.analysis import predict_splits

    torch.set_num_threads(1)
    c = job.cell
    task = build_task(c.pair, c.noise, c.eps, c.labeled, c.seed)
    method = make_method(job)
    trainer = tg.Trainer(iterations=job.iterations, seed=c.seed, progress=False)
    t0 = time.perf_counter()
    res = trainer.run(method, task)
    if job.keep_predictions:
        preds.mkdir(parents=True, exist_ok=True)
        predict_splits(method.model_, task, trainer.device).save(
            preds_path(preds, c, job.method, job.iterations))
    record = {"key": job.key, "cell": asdict(c), "method": job.method, "label": method.label,
              "iterations": job.iterations, "test_accuracy": res.test_accuracy,
              "val_accuracy": res.val_accuracy, "collapsed": res.collapsed,
              "seconds": time.perf_counter() - t0}
    append_line(results, record)
    print(f"{c.id:<28} {job.method:<28} {res.test_accuracy:5.1f}  "
          f"({record['seconds']:.0f} s)", flush=True)
    return record


def _worker(args: tuple[Job, Path, Path]) -> dict[str, Any]:
    return run_job(*args)


def safe_record(cell: Cell, method: str, iterations: int, preds: Path) -> dict[str, Any]:
    """Safe mode around ``method`` in ``cell``, from the stored predictions (no training)."""
    from transferguard import SafeMode
    from transferguard.analysis import SplitPredictions
    from transferguard.analysis.safe import safe_label

    pa = SplitPredictions.load(preds_path(preds, cell, method, iterations))
    pb = SplitPredictions.load(preds_path(preds, cell.twin_cell(), TWIN, iterations))
    rule = SafeMode()
    choice, acc = rule.decide(pa, pb)
    name = rule.label(method)
    return {"key": run_key(cell, name, iterations), "cell": asdict(cell), "method": name,
            "label": name, "iterations": iterations, "test_accuracy": acc,
            "kept": safe_label(choice, method, TWIN), "choice": choice.to_dict(),
            "rule": rule.get_params(), "seconds": 0.0}


# --------------------------------------------------------------------------------------------
# the run
# --------------------------------------------------------------------------------------------


def jobs_for(cells: list[Cell], methods: list[tuple[str, str | None, str, str]],
             iterations: int, new: str) -> list[Job]:
    jobs: dict[str, Job] = {}
    for c in cells:
        t = Job(c.twin_cell(), TWIN, "twin", "{}", iterations, True)
        jobs.setdefault(t.key, t)
        for name, gate, opts, extra in methods:
            j = Job(c, name, gate, opts, iterations, name == new, extra)
            jobs[j.key] = j
    # twins first: every cell's safe mode waits on one
    return sorted(jobs.values(), key=lambda j: (j.method != TWIN, j.cell.pair, j.cell.labeled,
                                                j.cell.seed, j.cell.noise, j.cell.eps))


def run_grid(args: argparse.Namespace) -> None:
    import multiprocessing as mp

    new_gate = parse_gate(args.gate)
    new = new_gate[0]
    methods: list[tuple[str, str | None, str, str]] = [
        (DANN, None, "{}", "{}"), (PAPER, paper_gate(), "{}", "{}"), new_gate]
    for alt in args.alt or ():
        methods.append(parse_gate(alt))
    cells = select(all_cells(), args.only)
    if not cells:
        raise SystemExit(f"--only {args.only} matches no cell; cells look like "
                         f"{all_cells()[0].id}")
    results, preds = Path(args.results), Path(args.preds)
    results.parent.mkdir(parents=True, exist_ok=True)
    done = {r["key"] for r in read_lines(results)}
    todo = [j for j in jobs_for(cells, methods, args.iterations, new)
            # a run safe mode needs is redone when its predictions were lost
            if j.key not in done or (j.keep_predictions and not preds_path(
                preds, j.cell, j.method, j.iterations).exists())]
    t0 = time.perf_counter()
    print(f"{len(cells)} cells, {len(todo)} runs to train ({args.workers} workers)", flush=True)
    if args.workers > 1 and len(todo) > 1:
        with mp.get_context("spawn").Pool(args.workers) as pool:
            for _ in pool.imap_unordered(_worker, [(j, results, preds) for j in todo]):
                pass
    else:
        for j in todo:
            run_job(j, results, preds)
    done = {r["key"] for r in read_lines(results)}
    for c in cells:
        key = run_key(c, f"safe({new})", args.iterations)
        if key not in done:
            append_line(results, safe_record(c, new, args.iterations, preds))
    print(f"trained {len(todo)} runs in {time.perf_counter() - t0:.0f} s", flush=True)


def gate_label(name: str, options: dict[str, Any]) -> str:
    if not options:
        return name
    return f"{name}(" + ", ".join(f"{k}={v}" for k, v in sorted(options.items())) + ")"


# --------------------------------------------------------------------------------------------
# the page
# --------------------------------------------------------------------------------------------


def ci(values: list[float]) -> tuple[float, float, float]:
    from transferguard.analysis import confidence_interval

    return confidence_interval(values)


def fmt_cell(acc: list[float], gaps: list[float]) -> str:
    mean, low, high = ci(gaps)
    a = statistics.fmean(acc)
    if math.isnan(low):
        return f"{a:.1f} ({mean:+.1f})"
    return f"{a:.1f} ({mean:+.1f} ±{(high - low) / 2:.1f})"


def report(results: Path, iterations: int) -> str:
    rows = [r for r in read_lines(results) if r.get("iterations") == iterations]
    twins = {(r["cell"]["pair"], r["cell"]["labeled"], r["cell"]["seed"]): r["test_accuracy"]
             for r in rows if r["method"] == TWIN}
    # (pair, noise, eps, L) -> method -> seed -> accuracy
    acc: dict[tuple, dict[str, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    safe_rows = []
    for r in rows:
        c = r["cell"]
        if r["method"] == TWIN:
            continue
        acc[(c["pair"], c["noise"], c["eps"], c["labeled"])][r["method"]][c["seed"]] = \
            r["test_accuracy"]
        if r["method"].startswith("safe("):
            safe_rows.append(r)
    methods = list(dict.fromkeys(m for cell in acc.values() for m in cell))
    order = [m for m in [DANN, PAPER] if m in methods]
    order += sorted(m for m in methods if m not in order and not m.startswith("safe("))
    order += sorted(m for m in methods if m.startswith("safe("))
    n_cells = len(acc)
    out = ["# Prevention grid: accuracy (NTG) per cell, every defence", "",
           "Produced by `benchmarks/prevention_grid.py` (its docstring gives every setting) "
           "in two invocations on the same results file (resumable; the first was split "
           "between two processes with `--only 'mnist-uci/*'` and `--only 'syn-mnist/*'`, "
           "which changes no number). The first ran the uniform, pair-flip and clean cells "
           "(DANN, the paper's gate, glc, prototype, safe(DANN+glc)); the second added the "
           "permute cells and gradient-similarity gating with its safe mode (prototype was "
           "not run on the permute cells):", "",
           "    OMP_NUM_THREADS=1 python benchmarks/prevention_grid.py --workers 2 "
           "--gate glc --alt prototype",
           "    OMP_NUM_THREADS=1 python benchmarks/prevention_grid.py --workers 2 "
           "--gate '{\"combine\": \"gradsim\"}' --alt glc", "",
           f"LeNet, `InputSpec(3, {SIZE})`, {iterations} iterations per run, CPU. A cell is "
           "(pair, noise, ε = ε_x = ε_y, L); each entry is the mean test accuracy over its seeds "
           "and, in brackets, NTG = acc(DANN_T) − acc in points with the half-width of its 95% "
           "Student-t interval over seeds (> 0: the source hurt). DANN_T is the source-free "
           "twin, shared by every noise and ε of a (pair, L, seed). Safe mode keeps the "
           "method, the twin or a blend of their probabilities, chosen on the validation "
           "split (Holm-corrected one-sided McNemar tests against the twin, α = 0.05).", "",
           f"Coverage: {n_cells} of {len(PAIRS) * (len(NOISES) * len(EPS) + 1) * len(LABELED)} "
           f"cells, {len(rows)} result lines.", ""]
    if not acc:
        out += ["No results yet: run the command above.", ""]
        return "\n".join(out)

    def seeds_of(key: tuple, method: str) -> list[int]:
        return sorted(s for s in acc[key][method]
                      if (key[0], key[3], s) in twins)

    def gaps(key: tuple, method: str) -> tuple[list[float], list[float]]:
        ss = seeds_of(key, method)
        a = [acc[key][method][s] for s in ss]
        return a, [twins[(key[0], key[3], s)] - x for s, x in zip(ss, a)]

    for pair in PAIRS:
        for noise in (*NOISES, "clean"):
            keys = sorted(k for k in acc if k[0] == pair and k[1] == noise)
            if not keys:
                continue
            src, tgt = PAIRS[pair]
            what = "clean source (ε = 0)" if noise == "clean" else f"{noise} label noise"
            out += [f"## {src} -> {tgt}, {what}",
                    "", "| ε | L% | " + " | ".join(order) + f" | {TWIN} |",
                    "|---|---|" + "---|" * (len(order) + 1)]
            for k in keys:
                cells = []
                for m in order:
                    if m in acc[k] and seeds_of(k, m):
                        cells.append(fmt_cell(*gaps(k, m)))
                    else:
                        cells.append("–")
                tw = [twins[(k[0], k[3], s)] for s in SEEDS if (k[0], k[3], s) in twins]
                cells.append(f"{statistics.fmean(tw):.1f}" if tw else "–")
                out.append(f"| {k[2]:g} | {k[3]} | " + " | ".join(cells) + " |")
            out.append("")

    # the summary
    noisy = [k for k in acc if k[1] != "clean" and DANN in acc[k] and seeds_of(k, DANN)]
    hurt = [k for k in noisy if statistics.fmean(gaps(k, DANN)[1]) > 0]
    hurt_sig = [k for k in hurt if ci(gaps(k, DANN)[1])[1] > 0]
    defences = [m for m in order if m != DANN]
    out += ["## Summary", "",
            f"Noisy cells with results: {len(noisy)}. DANN has NTG > 0 (mean over seeds) in "
            f"**{len(hurt)}** of them ({len(hurt_sig)} with the whole interval above 0).", "",
            "| defence | NTG <= 0 where DANN's > 0 | of those with DANN's interval > 0 | "
            + " | ".join(f"mean gain over DANN, {n} cells" for n in NOISES)
            + " | clean-source cost (DANN − defence) |", "|---|---|---|" + "---|" * len(NOISES)
            + "---|"]

    def mean_gain(m: str, keys: list[tuple]) -> str:
        diffs = []
        for k in keys:
            if m in acc[k]:
                for s in acc[k][m]:
                    if s in acc[k].get(DANN, {}):
                        diffs.append(acc[k][m][s] - acc[k][DANN][s])
        return f"{statistics.fmean(diffs):+.2f} ({len(diffs)} runs)" if diffs else "–"

    def closed(m: str, keys: list[tuple]) -> str:
        have = [k for k in keys if m in acc[k] and seeds_of(k, m)]
        ok = sum(1 for k in have if statistics.fmean(gaps(k, m)[1]) <= 0)
        return f"{ok} / {len(have)}"

    clean = [k for k in acc if k[1] == "clean"]
    for m in defences:
        cost = mean_gain(m, clean)
        if cost != "–":  # cost = DANN − defence
            v, rest = cost.split(" ", 1)
            cost = f"{-float(v):+.2f} {rest}"
        gains = " | ".join(mean_gain(m, [k for k in acc if k[1] == n]) for n in NOISES)
        out.append(f"| {m} | {closed(m, hurt)} | {closed(m, hurt_sig)} | {gains} | {cost} |")
    out.append("")

    for name in sorted({r["method"] for r in safe_rows}):
        out += safe_summary(name, [r for r in safe_rows if r["method"] == name], acc, twins,
                            seeds_of, gaps)
    return "\n".join(out)


def safe_summary(name: str, safe_rows: list[dict[str, Any]], acc: dict, twins: dict,
                 seeds_of: Any, gaps: Any) -> list[str]:
    """What one safe mode kept over the grid, the gains it gave up, and its violations."""
    kept: dict[str, int] = defaultdict(int)
    gave_up, given, violations = 0, [], []
    meth = name[len("safe("):-1]
    for r in safe_rows:
        kept[r["choice"]["choice"]] += 1
        c = r["cell"]
        k = (c["pair"], c["noise"], c["eps"], c["labeled"])
        tw = twins.get((c["pair"], c["labeled"], c["seed"]))
        m_acc = acc[k].get(meth, {}).get(c["seed"])
        if r["choice"]["choice"] == "twin" and tw is not None and m_acc is not None \
                and m_acc > tw:
            gave_up += 1
            given.append(m_acc - tw)
    for k in acc:
        if name in acc[k] and len(seeds_of(k, name)) >= 2 and ci(gaps(k, name)[1])[1] > 0:
            violations.append(k)
    return [f"## {name}", "",
            f"{len(safe_rows)} choices (cell x seed): kept the twin {kept['twin']}, the method "
            f"{kept['method']}, a blend {kept['blend']} times. It gave up a real gain (kept "
            f"the twin where the method was better on the test split) {gave_up} times"
            + (f", by {statistics.fmean(given):.1f} points on average" if given else "")
            + f". Cells where its NTG interval lies above 0: {len(violations)}"
            + (f" ({', '.join(f'{a}/{b}/{e:g}/{L}' for a, b, e, L in violations)})"
               if violations else "") + ". Cost: no training beyond the method and the "
            "twin the NTG already trains (about 2x a single run without an NTG).", ""]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gate", default="prototype",
                    help="the new defence (safe mode is computed around it): a weighter NAME, "
                         "'NAME:{json options}', or DANN's options as JSON, e.g. "
                         "'{\"combine\": \"gradsim\"}' (default prototype)")
    ap.add_argument("--alt", action="append", default=None,
                    help="also DANN with this defence (same forms as --gate; repeatable)")
    ap.add_argument("--only", nargs="+", default=None,
                    help="shell patterns on pair/noise/eps/L/seed, e.g. 'mnist-uci/pairflip/*'")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--iterations", type=int, default=ITERATIONS)
    ap.add_argument("--results", default=str(DEFAULT_RESULTS))
    ap.add_argument("--preds", default=str(DEFAULT_PREDS))
    ap.add_argument("--page", default=str(DEFAULT_PAGE))
    ap.add_argument("--report", action="store_true", help="only rewrite the page")
    args = ap.parse_args()
    if args.workers < 1 or args.iterations < 1:
        raise SystemExit("--workers and --iterations must be >= 1")
    if not args.report:
        run_grid(args)
    page = Path(args.page)
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(report(Path(args.results), args.iterations))
    print(f"written: {page}")


if __name__ == "__main__":
    main()
