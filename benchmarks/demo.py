"""The demo's table and run time, recorded for the README (``make demo`` runs the same code),
and the check that its verdicts do not hang on a seed.

    python benchmarks/demo.py               # the demo's 5 seeds, timed, then 7 seeds
    python benchmarks/demo.py --no-check    # the timed run only

Runs ``transferguard demo`` (its 5 seeds, :data:`SEEDS`) in a fresh run store (nothing
resumed) with the threads ``make demo`` gets, and times it; then, in the same store, the same
demo with 7 seeds (the first 5 resumed) and compares every row's verdict. Writes
docs/results/demo.md with both tables.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

from transferguard.experiments.demo import (
    HARMFUL,
    ITERATIONS,
    SEEDS,
    demo_table,
    run_demo,
    scenarios,
)

sys.path.insert(0, str(Path(__file__).parent))
from _common import write_result

CHECK_SEEDS = tuple(range(len(SEEDS) + 2))


def margin(r) -> str:
    """How far the interval end nearest 0 lies from 0, in points (negative: it straddles 0);
    "exactly 0" when every seed's gap is 0 (safe mode kept the twin each time)."""
    if all(g == 0 for g in r.gaps):
        return "exactly 0"
    _, low, high = r.interval
    m = low if low > 0 else (-high if high < 0 else -min(abs(low), abs(high)))
    return f"{m:+.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-check", action="store_true", help="skip the check with more seeds")
    args = ap.parse_args()
    out = Path(tempfile.mkdtemp(prefix="tg-demo-"))
    try:
        t0, c0, load0 = time.perf_counter(), time.process_time(), os.getloadavg()[0]
        rows3 = run_demo(out)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        load = (load0 + os.getloadavg()[0]) / 2
        rows5 = None if args.no_check else run_demo(out, seeds=CHECK_SEEDS, resume=True,
                                                     extended=True)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    trainings = sum(len(SEEDS) * (len(sc.methods) + 1) for sc in scenarios())  # methods + twin
    src, tgt, settings = HARMFUL
    text = [
        "# The demo", "",
        "Command: `python benchmarks/demo.py` (the same code and threads as `make demo` / "
        f"`transferguard demo`, in a fresh run store; then the {len(CHECK_SEEDS)}-seed check in "
        "the same store).", "",
        "Scenarios: mnist -> mnist-m, clean source, L = 5% (helpful); "
        f"{src} -> {tgt}, {settings} (harmful: every source label is the next class in a "
        "seeded cyclic order, images clean). LeNet at 24x24, "
        f"{ITERATIONS} iterations per run, batch 32.", "",
        f"## {len(SEEDS)} seeds (the demo)", "",
        demo_table(rows3, markdown=True), "",
        f"Run time: {seconds:.0f} s wall, {cpu:.0f} s of CPU time, on "
        f"{torch.get_num_threads()} CPU thread(s) of a machine with {os.cpu_count()} cores "
        f"and a load average of about {load:.1f} during the run (other work shares it: "
        "the CPU time is the figure to compare) for "
        f"{trainings} trainings (the twin is shared within a scenario, and safe mode "
        "trains nothing), plus loading the domains.", "",
        "NTG = acc(twin) − acc(method) in points, with its 95% Student-t interval over the "
        "seeds (each seed draws its own perturbation and splits); the twin DANN_T is shared by "
        "every DANN row of a scenario. Safe mode keeps the method, the twin or a blend of "
        "their probabilities, chosen on the validation split (Holm-corrected one-sided "
        "McNemar tests against the twin, α = 0.05); \"kept\" counts its choices over the seeds.",
        "",
    ]
    if rows5 is not None:
        # the check also trains DANN+gradsim on the helpful source (scenarios(extended=True))
        extra = [b for b in rows5 if (b.scenario, b.result.method) not in
                 {(a.scenario, a.result.method) for a in rows3}]
        rows5 = [b for b in rows5 if b not in extra]
        same = all(a.result.verdict == b.result.verdict for a, b in zip(rows3, rows5))
        n, m = len(SEEDS), len(CHECK_SEEDS)
        text += [f"## {m} seeds (the check)", "", demo_table(rows5, markdown=True), "",
                 f"| scenario | method | verdict, {n} seeds | verdict, {m} seeds | margin from "
                 f"0, {n} / {m} seeds |", "|---|---|---|---|---|"]
        for a, b in zip(rows3, rows5):
            text.append(f"| {a.scenario} | {a.result.method} | {a.result.verdict} | "
                        f"{b.result.verdict} | {margin(a.result)} / {margin(b.result)} |")
        changed = [a.result.method for a, b in zip(rows3, rows5)
                   if a.result.verdict != b.result.verdict]
        text += ["", (f"Every row keeps its verdict from {n} to {m} seeds." if same else
                      f"**The verdict of {', '.join(changed)} changes from {n} to {m} seeds**: "
                      f"with {n} seeds that row is not robust."),
                 "Margin: the distance of the interval end nearest 0 from 0, in points "
                 "(negative: the interval straddles 0, an inconclusive row).", ""]
        if extra:
            text += [f"## Not in the demo: the helpful source with the defence ({m} seeds)", "",
                     "Does gradient-similarity gating keep a helpful source's gain? Trained in "
                     "the check only (5 more trainings would take `make demo` past 5 minutes):",
                     "", demo_table(extra, markdown=True), ""]
    write_result("demo", "\n".join(text))


if __name__ == "__main__":
    main()
