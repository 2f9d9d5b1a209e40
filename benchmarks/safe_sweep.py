"""Safe mode in a sweep: what it kept on an eps grid, what the driver's decisions cost, and
that they are the decisions ``transferguard run --safe`` makes on the same runs.

One sweep (mnist -> uci-digits, LeNet at 3x24x24, L = 20%, DANN with ``safe: true``, eps in
{0, 0.5, 0.9} x seeds {0, 1, 2}: 9 method runs and 3 shared twins) through ``run_sweep`` in
this process, then:

(a) the sweep table (acc, twin acc, NTG [95% CI], verdict, what safe mode kept);
(b) the cost of safe mode on the driver: the seconds of the 9 decisions made from the stored
    predictions (timed again after deleting the recorded decisions) and of a ``--resume``
    that reuses them, as ratios of the sweep's training seconds measured in this same run;
(c) for every cell, ``run_experiment`` of the same one-method config with ``safe: true`` on
    the same store (``--resume``: no training): its safe-mode accuracies and choices against
    the sweep's.

Command (about 4 minutes on one busy core)::

    OMP_NUM_THREADS=1 python benchmarks/safe_sweep.py
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import tempfile
import time
from pathlib import Path

import torch

from _common import small_sweep, write_result

NAME = "safesweep"


def config(iterations: int) -> dict:
    return {
        **small_sweep(NAME, iterations),
        "methods": [{"name": "dann", "safe": True}],
        "grid": {"eps": [0.0, 0.5, 0.9], "seeds": [0, 1, 2]},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--iterations", type=int, default=300)
    ap.add_argument("--out", help="store directory (default: a temporary one)")
    args = ap.parse_args()
    torch.set_num_threads(1)

    from transferguard.experiments import RunStore, config_from_dict, run_experiment
    from transferguard.experiments.sweep import decide_safe, run_sweep, sweep_from_dict
    from transferguard.report.sweeps import sweep_safe_text, sweep_table

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out or tmp)
        sweep = sweep_from_dict(config(args.iterations))
        t0 = time.perf_counter()
        first = run_sweep(sweep, out, workers=1, echo=print)
        wall = time.perf_counter() - t0
        assert first.trained == 12 and not first.failed, first.failed
        store = RunStore(out)
        train_s = sum(r.seconds or 0.0 for r in store.records(status="finished"))

        con = sqlite3.connect(out / "runs.sqlite")
        with con:
            con.execute("DELETE FROM safe")
        con.close()
        t0 = time.perf_counter()
        made, reused, failed = decide_safe(sweep, store, out)
        decide_s = time.perf_counter() - t0
        assert (made, reused, failed) == (9, 0, []), (made, reused, failed)
        t0 = time.perf_counter()
        again = run_sweep(sweep, out, workers=1, resume=True)
        resume_s = time.perf_counter() - t0
        assert again.trained == 0 and not again.failed

        # (c) the same cells through run_experiment (what `transferguard run --safe` calls)
        agree = []
        cells = [c for c in again.cells if c.get("safe")]
        for cell in cells:
            point = next(p for p in sweep.points if p.values["eps"] == cell["values"]["eps"])
            cfg = point.config.to_dict()
            cfg["seeds"] = [0, 1, 2]
            exp = run_experiment(config_from_dict(cfg), out, resume=True)
            assert exp.trained == 0
            safe_ntg = exp.ntg[1]
            same_acc = safe_ntg.accuracy == cell["result"].accuracy
            same_choice = [c["choice"] for c in exp.safe[0]["choices"]] == \
                [d["choice"]["choice"] for d in cell["choices"]]
            agree.append({"eps": cell["values"]["eps"], "same_accuracy": same_acc,
                          "same_choices": same_choice})

    table = sweep_table(again, markdown=True)
    why = sweep_safe_text(again)
    md = [
        "# Safe mode in a sweep",
        "",
        "Command: `OMP_NUM_THREADS=1 python benchmarks/safe_sweep.py` "
        f"(--iterations {args.iterations}); mnist -> uci-digits, LeNet 3x24x24, L = 20%, "
        "source 300, DANN with `safe: true`, eps x seed = 3 x 3 points, 1 worker.",
        "",
        "## (a) The sweep table",
        "",
        table,
        "",
        why.replace("\n- ", "\n\n- "),
        "",
        "## (b) What safe mode costs the driver",
        "",
        "| | seconds | / training seconds |",
        "|---|---|---|",
        f"| training, 12 runs (sum of the store's run times) | {train_s:.1f} | 1 |",
        f"| 9 decisions from the stored predictions | {decide_s:.2f} | "
        f"{decide_s / train_s:.4f} |",
        f"| `--resume` of the whole sweep (decisions reused) | {resume_s:.2f} | "
        f"{resume_s / train_s:.4f} |",
        "",
        f"Sweep wall time {wall:.1f} s. Ratios within this one run.",
        "",
        "## (c) The same cells through `run --safe` (run_experiment, resumed: no training)",
        "",
        "| eps | same safe accuracies | same choices |",
        "|---|---|---|",
        *(f"| {a['eps']} | {a['same_accuracy']} | {a['same_choices']} |" for a in agree),
        "",
    ]
    payload = {"iterations": args.iterations, "train_seconds": train_s,
               "decide_seconds": decide_s, "resume_seconds": resume_s, "wall_seconds": wall,
               "agree": agree,
               "cells": [{k: v for k, v in c.items() if k != "result"} for c in again.cells]}
    write_result("safe_sweep", "\n".join(md), json.dumps(payload, indent=2, default=str))


if __name__ == "__main__":
    main()
