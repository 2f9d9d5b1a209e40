"""Table 2 analogue with gradient-similarity gating (issue 10, item 6): every single-step DA
method of Wang et al.'s Table 2 plain and with ``combine="gradsim"``, side by side at the same
budget.

    OMP_NUM_THREADS=1 python benchmarks/gradsim_table2.py --pair syndigits:mnist &
    OMP_NUM_THREADS=1 python benchmarks/gradsim_table2.py --pair mnist:uci-digits
    python benchmarks/gradsim_table2.py --report

The protocol of ``wang_rest.py --part table2 --iterations 200`` (ε = 0.7, L = 10%, LeNet at
3x24x24, batch 32 per stream, 200 iterations, seeds 0-2, selection on the labeled target's
validation split) and its run store (``runs/bench-wang-rest``), so the twins it trained there
(DANN_T, DAN_T, ...) are reused. ADDA and GTA train in stages and take no gradient combiner;
they are left out. Each ``--pair`` invocation writes its own json
(``docs/results/gradsim_table2_S-T.json``); ``--report`` merges them into
``docs/results/gradsim_table2.md``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

import transferguard as tg
from transferguard.experiments import Runner, RunStore

sys.path.insert(0, str(Path(__file__).parent))
from _common import RESULTS, provenance, write_result
from transferguard.report.tables import interval_text
from wang_rest import PAIRS, SPEC, as_result, table_row

METHODS = ("dann", "dan", "dcoral", "cdan", "pada")
ITERATIONS = 200
SEEDS = [0, 1, 2]
STORE = Path(__file__).resolve().parent.parent / "runs" / "bench-wang-rest"
VARIANTS = {"": {}, "+gradsim": {"combine": "gradsim"}}


def part_path(s: str, t: str) -> Path:
    return RESULTS / f"gradsim_table2_{s}-{t}.json"


def compute(s: str, t: str) -> None:
    torch.set_num_threads(1)
    trainer = tg.Trainer(iterations=ITERATIONS, batch_size=32, progress=False)
    runner = Runner(RunStore(STORE), trainer, "gradsim-table2", resume=True)
    task = tg.TransferTask(s, t, eps=0.7, labeled_percent=10, spec=SPEC)
    entries, t0 = {}, time.perf_counter()
    for m in METHODS:
        for suffix, options in VARIANTS.items():
            r = tg.negative_transfer_gap(task, tg.create_method(m, **options), SEEDS,
                                         run=runner)
            entries[f"{m.upper()}{suffix}"] = r.to_dict()
            print(f"{s}->{t} {m.upper()}{suffix}: {interval_text(r)}", flush=True)
    path = part_path(s, t)
    path.write_text(json.dumps({"entries": entries, "trained": runner.trained,
                                "reused": runner.reused,
                                "seconds": time.perf_counter() - t0}, indent=1))
    print(f"written: {path}")


def report() -> None:
    parts = {(s, t): json.loads(part_path(s, t).read_text()) for s, t in PAIRS
             if part_path(s, t).exists()}
    rows = [f"{m.upper()}{suffix}" for m in METHODS for suffix in VARIANTS]
    header = "| method | " + " | ".join(f"{s} -> {t}" for s, t in PAIRS) + " | avg |"
    lines = ["# Table 2 analogue with gradient-similarity gating", "",
             "Commands (one process per pair, then the merge):", "",
             "    OMP_NUM_THREADS=1 python benchmarks/gradsim_table2.py --pair syndigits:mnist",
             "    OMP_NUM_THREADS=1 python benchmarks/gradsim_table2.py --pair mnist:uci-digits",
             "    python benchmarks/gradsim_table2.py --report", "",
             f"ε = 0.7, L = 10%, LeNet at 3x24x24, {ITERATIONS} iterations, seeds {SEEDS}; "
             "each method and its `+gradsim` row share the twin (the source-free method). "
             "Accuracy (NTG = acc(twin) − acc, points; > 0 is negative transfer). ADDA and "
             "GTA train in stages and take no gradient combiner.", "",
             header, "|---|" + "---:|" * (len(PAIRS) + 1)]
    results = {row: [as_result(parts[p]["entries"][row]) if p in parts else None
                     for p in PAIRS] for row in rows}
    for row in rows:
        line = table_row(row, results[row])
        if line:
            lines.append(line)
    lines += ["", "| method | pair | accuracy | twin (A_T) | NTG [95% interval] | verdict |",
              "|---|---|---:|---:|---|---|"]
    for row in rows:
        for (s, t), r in zip(PAIRS, results[row]):
            if r is not None:
                lines.append(f"| {row} | {s} -> {t} | {r.mean_accuracy:.1f} | "
                             f"{r.mean_twin_accuracy:.1f} ({r.twin}) | {interval_text(r)} | "
                             f"{r.verdict} |")
    gains = [results[f"{m.upper()}+gradsim"][i].ntg - results[m.upper()][i].ntg
             for m in METHODS for i in range(len(PAIRS))
             if results[m.upper()][i] is not None and results[f"{m.upper()}+gradsim"][i]]
    closed = [(m, i) for m in METHODS for i in range(len(PAIRS))
              if results[m.upper()][i] is not None and results[m.upper()][i].ntg > 0
              and results[f"{m.upper()}+gradsim"][i] is not None]
    if gains:
        lines += ["", f"Mean change of NTG with gradsim over the {len(gains)} (method, pair) "
                  f"cells: {statistics.fmean(gains):+.2f} points (< 0: less negative "
                  f"transfer). Cells where the plain method has NTG > 0: {len(closed)}; "
                  "gradsim brings NTG <= 0 in "
                  f"{sum(results[f'{m.upper()}+gradsim'][i].ntg <= 0 for m, i in closed)} "
                  "of them."]
    lines += [""] + [f"{s} -> {t}: " + provenance(v["trained"], v["reused"], v["seconds"])
                     for (s, t), v in parts.items()]
    write_result("gradsim_table2", "\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pair", default=None, help="SOURCE:TARGET, one of the table's pairs")
    ap.add_argument("--report", action="store_true", help="merge the pairs' json into the page")
    args = ap.parse_args()
    if args.pair:
        s, _, t = args.pair.partition(":")
        if (s, t) not in PAIRS:
            raise SystemExit(f"--pair must be one of {[f'{a}:{b}' for a, b in PAIRS]}")
        compute(s, t)
    if args.report or not args.pair:
        report()


if __name__ == "__main__":
    main()
