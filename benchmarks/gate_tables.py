"""Wang et al. (CVPR 2019) Tables 1 and 2 on the built-in digits, harmful-sample detection,
and the gate's step-time overhead.

    python benchmarks/gate_tables.py [--part table1|table2|overhead|all] [--seeds 0 1 2]

- Table 1 analogue: DANN vs DANN+gate on syndigits -> mnist (the closest built-in analogue of
  the paper's SVHN -> MNIST) for ε = ε_x = ε_y in {0, 0.3, 0.7, 0.9} and L% in {0, 10, 30, 50};
  each cell "accuracy (NTG)" with NTG = acc(DANN_T) − acc(method), mean over seeds.
- Table 2 analogue at ε = 0.7, L = 10%: every DA method with and without the gate on two
  pairs; the mean gain of the gate, Δ = acc(gate) − acc(plain).
- Harmful-sample detection: the AUROC of the gate's weights (and of its two factors, and of
  the small-loss baseline) against the corruption masks at ε in {0.3, 0.7}, from the Table 1
  gate runs (recorded with each run).
- Ablation: the paper-pure gate (``posterior=False``) next to the default on the noisiest
  cells.
- Overhead: seconds per step of DANN+gate over DANN, measured in one run, interleaved.

Every training is recorded in runs/bench-gate/runs.sqlite; a rerun resumes (finished runs
are skipped). The target-only twin never reads the source, so one DANN_T per (L, seed)
serves every ε. Results go to docs/results/gate_tables.md.
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
from _common import provenance, write_result

SPEC = tg.InputSpec(3, 24)
ITERATIONS = 600
EPS = (0.0, 0.3, 0.7, 0.9)
LABELED = (0, 10, 30, 50)
TABLE1_PAIR = ("syndigits", "mnist")
TABLE2_PAIRS = (("syndigits", "mnist"), ("mnist", "uci-digits"))
TABLE2_METHODS = ("dann", "dan", "dcoral", "adda", "cdan", "pada")
GATE_OPTIONS: dict = {}


def ntg_cell(runner: Runner, source: str, target: str, eps: float, labeled: float,
             method: str, gate: bool, seeds: list[int]) -> tg.NTGResult:
    task = tg.TransferTask(source, target, eps=eps, labeled_percent=labeled, spec=SPEC)
    m = tg.create_method(method, gate=gate, gate_options=GATE_OPTIONS if gate else {})
    return tg.negative_transfer_gap(task, m, seeds, run=runner)


def fmt(r: tg.NTGResult) -> str:
    flag = "*" if any(r.collapsed) else ""
    return f"{r.mean_accuracy:.1f} ({r.ntg:+.1f}){flag}"


def table1(runner: Runner, seeds: list[int]) -> tuple[list[str], dict]:
    s, t = TABLE1_PAIR
    rows, raw = [], {}
    header = "| L% | method | " + " | ".join(f"ε={e}" for e in EPS) + " | avg | avg NTG |"
    lines = [f"### Table 1 analogue: {s} -> {t}, accuracy (NTG)", "", header,
             "|---|---|" + "---:|" * (len(EPS) + 2)]
    for labeled in LABELED:
        for gate in (False, True):
            cells = []
            for eps in EPS:
                r = ntg_cell(runner, s, t, eps, labeled, "dann", gate, seeds)
                cells.append(r)
                raw[f"L{labeled}-eps{eps}-{r.method}"] = r.to_dict()
                print(f"  L={labeled:>2} eps={eps} {r.method:10s} {fmt(r)}", flush=True)
            avg_acc = statistics.fmean(c.mean_accuracy for c in cells)
            avg_ntg = statistics.fmean(c.ntg for c in cells)
            name = "DANN_gate" if gate else "DANN"
            lines.append(f"| {labeled} | {name} | " + " | ".join(fmt(c) for c in cells)
                         + f" | {avg_acc:.1f} | {avg_ntg:+.1f} |")
            rows.append((labeled, gate, cells))
    # the gate's effect where DANN shows negative transfer
    pos = [(p, g) for (lp, gp, p), (lg, gg, g) in zip(rows[0::2], rows[1::2])
           for p, g in zip(p, g) if p.ntg > 0]
    lines += ["", "`*`: at least one seed collapsed (one predicted class or chance accuracy).",
              ""]
    if pos:
        gain = statistics.fmean(g.mean_accuracy - p.mean_accuracy for p, g in pos)
        fixed = sum(g.ntg <= 0 for _, g in pos)
        lines.append(f"Cells where DANN shows negative transfer (NTG > 0): {len(pos)}; "
                     f"the gate brings NTG to <= 0 in {fixed} of them; mean gain of the gate "
                     f"there: {gain:+.1f} points.")
    else:
        lines.append("DANN shows no positive NTG in this grid.")
    all_gain = statistics.fmean(g.mean_accuracy - p.mean_accuracy
                                for (_, _, pc), (_, _, gc) in zip(rows[0::2], rows[1::2])
                                for p, g in zip(pc, gc))
    lines.append(f"Mean gain of the gate over all {len(EPS) * len(LABELED)} cells: "
                 f"{all_gain:+.1f} points.")
    return lines, raw


def ablation(runner: Runner, seeds: list[int]) -> list[str]:
    """The paper-pure gate (D without the classifier's posterior) on the noisiest cells."""
    s, t = TABLE1_PAIR
    lines = ["### Ablation: the gate without the posterior input (the paper's D)", "",
             "| cell | DANN | gate (default) | gate, posterior=False |", "|---|---:|---:|---:|"]
    for eps, labeled in ((0.7, 30), (0.9, 30), (0.7, 50), (0.9, 50)):
        task = tg.TransferTask(s, t, eps=eps, labeled_percent=labeled, spec=SPEC)
        cells = [tg.negative_transfer_gap(task, m, seeds, run=runner) for m in (
            tg.create_method("dann"), tg.create_method("dann", gate=True),
            tg.create_method("dann", gate=True, gate_options={"posterior": False}))]
        lines.append(f"| ε={eps}, L={labeled}% | " + " | ".join(fmt(c) for c in cells) + " |")
        print(f"  ablation eps={eps} L={labeled}: " + ", ".join(fmt(c) for c in cells),
              flush=True)
    return lines


def detection(store: RunStore) -> list[str]:
    keys = ("label_auroc", "conditional_label_auroc", "small_loss_label_auroc",
            "image_auroc", "marginal_image_auroc", "label_precision_at_rate")
    lines = ["### Harmful-sample detection (Table 1 gate runs, L in {10, 30, 50}, all seeds)",
             "", "| ε | wrong labels: AUROC of ω | conditional ratio | small-loss baseline | "
             "corrupted images: AUROC of ω | marginal ratio | precision of ω at the "
             "corruption rate | runs |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for eps in (0.3, 0.7):
        vals: dict[str, list[float]] = {k: [] for k in keys}
        n = 0
        for rec in store.records(status="finished"):
            task, method, m = rec.config["task"], rec.config["method"], rec.metrics or {}
            if (method.get("name") == "dann" and method.get("gate")
                    and not method.get("gate_options") and task.get("eps_x") == eps
                    and task.get("source") == TABLE1_PAIR[0]
                    and task.get("labeled_percent", 0) > 0 and "harmful" in m.get("extra", {})):
                n += 1
                for k in keys:
                    v = m["extra"]["harmful"].get(k)
                    if v is not None:
                        vals[k].append(v)
        cells = [f"{statistics.fmean(vals[k]):.3f}" if vals[k] else "n/a" for k in keys]
        lines.append(f"| {eps} | " + " | ".join(cells) + f" | {n} |")
    return lines


def table2(runner: Runner, seeds: list[int]) -> tuple[list[str], dict]:
    raw = {}
    header = "| method | " + " | ".join(f"{s} -> {t}" for s, t in TABLE2_PAIRS) + " | avg |"
    lines = ["### Table 2 analogue: ε = 0.7, L = 10%, accuracy (NTG)", "", header,
             "|---|" + "---:|" * (len(TABLE2_PAIRS) + 1)]
    gains = {p: [] for p in TABLE2_PAIRS}
    for method in TABLE2_METHODS:
        per_gate = {}
        for gate in (False, True):
            cells = [ntg_cell(runner, s, t, 0.7, 10, method, gate, seeds)
                     for s, t in TABLE2_PAIRS]
            per_gate[gate] = cells
            for (s, t), r in zip(TABLE2_PAIRS, cells):
                raw[f"{s}-{t}-{r.method}"] = r.to_dict()
                print(f"  {s}->{t} {r.method:12s} {fmt(r)}", flush=True)
            avg = statistics.fmean(c.mean_accuracy for c in cells)
            avg_ntg = statistics.fmean(c.ntg for c in cells)
            name = method.upper() + ("_gate" if gate else "")
            lines.append(f"| {name} | " + " | ".join(fmt(c) for c in cells)
                         + f" | {avg:.1f} ({avg_ntg:+.1f}) |")
        for p, plain, gated in zip(TABLE2_PAIRS, per_gate[False], per_gate[True]):
            gains[p].append(gated.mean_accuracy - plain.mean_accuracy)
    mean_gain = [statistics.fmean(gains[p]) for p in TABLE2_PAIRS]
    lines.append("| Δ gate (mean) | " + " | ".join(f"{g:+.1f}" for g in mean_gain)
                 + f" | {statistics.fmean(mean_gain):+.1f} |")
    return lines, raw


def overhead(repeats: int = 3, iterations: int = 200) -> list[str]:
    task = tg.TransferTask(*TABLE1_PAIR, eps=0.7, labeled_percent=10, spec=SPEC)
    data = task.train_data()
    times: dict[bool, list[float]] = {False: [], True: []}
    for r in range(repeats):
        for gate in (False, True):
            tr = tg.Trainer(iterations=iterations, batch_size=32, progress=False,
                            select="last", seed=r, log_every=iterations)
            m = tg.create_method("dann", gate=gate, gate_options=GATE_OPTIONS if gate else {})
            times[gate].append(tr.fit(m, data).loop_seconds / iterations)
    plain, gated = statistics.median(times[False]), statistics.median(times[True])
    return ["### Step time of the gate", "",
            f"DANN {plain * 1000:.1f} ms/step, DANN+gate {gated * 1000:.1f} ms/step: ratio "
            f"**{gated / plain:.2f}** (median of {repeats} interleaved runs of {iterations} "
            f"steps, batch 32 per stream, {torch.get_num_threads()} threads; LeNet features are "
            "100-d, so the 1024-wide gate discriminator is a visible share of a step)."]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--part", default="all", choices=["table1", "table2", "overhead", "all"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", default="runs/bench-gate")
    args = ap.parse_args()
    store = RunStore(args.out)
    trainer = tg.Trainer(iterations=ITERATIONS, batch_size=32, progress=False)
    runner = Runner(store, trainer, "gate-tables", resume=True)
    t0 = time.perf_counter()
    sections: list[str] = []
    raw: dict = {}
    if args.part in ("table1", "all"):
        lines, r = table1(runner, args.seeds)
        sections += lines + [""] + detection(store) + [""] + ablation(runner, args.seeds) + [""]
        raw["table1"] = r
    if args.part in ("table2", "all"):
        lines, r = table2(runner, args.seeds)
        sections += lines + [""]
        raw["table2"] = r
    if args.part in ("overhead", "all"):
        sections += overhead() + [""]
    cmd = "python benchmarks/gate_tables.py " + " ".join(sys.argv[1:])
    head = ["# The discriminator gate on the built-in digits", "",
            f"Command: `{cmd.strip()}`", "",
            f"LeNet at {SPEC.channels}x{SPEC.size}x{SPEC.size}, {ITERATIONS} iterations, batch 32 "
            "per stream, SGD 0.01 with the DANN schedule, seeds "
            f"{args.seeds}; gate options {GATE_OPTIONS or 'defaults'}. Each cell: mean test "
            "accuracy over seeds (NTG = acc(twin) − acc(method), in points; > 0 is negative "
            "transfer). Model selection on the labeled-target validation split. "
            + provenance(runner.trained, runner.reused, time.perf_counter() - t0), ""]
    name = "gate_tables" if args.part == "all" else f"gate_{args.part}"
    write_result(name, "\n".join(head + sections), json.dumps(raw, indent=1, default=str))


if __name__ == "__main__":
    main()
