"""Fine-tuning defences on the built-in digits: L2-SP, DELTA, KD, BSS with and without DTNH,
from an appropriate and an inappropriate source network; the cut point; binary auxiliary
pre-training; the step-time cost of DTNH.

    python benchmarks/finetune_tables.py [--part table|cutpoint|aux|timing|all] [--seeds 0 1 2]

- Table: on syndigits -> mnist, with a LeNet pre-trained by the toolkit on the source (one
  network per seed): finetune, L2-SP, L2-SP+DTNH, DELTA, DELTA+DTNH, KD, KD+DTNH, BSS at
  L% in {5, 10, 30}; accuracy and NTG against the same recipe from scratch (``finetune_T``),
  mean over seeds. Twice: from the clean source network, and from an *inappropriate* one
  (pre-trained on the source perturbed with ε = 0.9), where the DTNH paper says its rule
  helps most. An ablation row gives L2-SP with DTNH's coefficient decay but no projection.
- Cut point (Yosinski et al.): k = 0..3 LeNet blocks transferred, frozen or fine-tuned, at
  L = 10%; plot in docs/images/cutpoint.png.
- Binary auxiliary pre-training: B in {0, 0.1, 0.25, 0.5} x 3 random class partitions x the
  seeds, then fine-tuning at L = 10%.
- Timing: seconds per step of each regulariser with DTNH over without, interleaved.

Runs are recorded in runs/bench-finetune/runs.sqlite (a rerun resumes); pre-trained source
networks are cached in runs/bench-finetune/pretrained/.
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
from transferguard.analysis import cut_point_sweep
from transferguard.experiments import Runner, RunStore, pretrained_checkpoint
from transferguard.report.plots import cutpoint_plot
from transferguard.report.tables import cutpoint_table

sys.path.insert(0, str(Path(__file__).parent))
from _common import RESULTS, provenance, write_result

SPEC = tg.InputSpec(3, 24)
ITERATIONS = 600
PRETRAIN_ITERATIONS = 1000
PAIR = ("syndigits", "mnist")
LABELED = (5, 10, 30)
# L2-SP's default α became 0.1 after these tables were run (benchmarks/l2sp_alpha.py); they
# keep α = 0.01 so that the committed figures stay reproducible
L2SP_ALPHA = {"alpha": 0.01}
METHODS = (
    ("finetune", {}), ("l2sp", L2SP_ALPHA), ("l2sp", {**L2SP_ALPHA, "dtnh": True}), ("delta", {}),
    ("delta", {"dtnh": True}), ("kd", {}), ("kd", {"dtnh": True}), ("bss", {}),
)
# DTNH decays α by 0.99 per epoch (the authors' code) and the plain regularisers do not: these
# controls have the decay without the projection, so that DTNH's gain can be told from the decay's
ABLATION = (("l2sp", {**L2SP_ALPHA, "alpha_decay": 0.99}), ("delta", {"alpha_decay": 0.99}),
            ("kd", {"alpha_decay": 0.99}))
DECAY = " (decay 0.99, no DTNH)"


def source_path(out: Path, trainer: tg.Trainer, eps: float, seed: int, **aux: float) -> str:
    task = tg.TransferTask(*PAIR, eps=eps, labeled_percent=10, spec=SPEC, seed=seed)
    return pretrained_checkpoint(task, trainer, out / "pretrained",
                                 iterations=PRETRAIN_ITERATIONS, **aux)


def fmt(r: tg.NTGResult) -> str:
    return f"{r.mean_accuracy:.1f} ({r.ntg:+.1f})"


def label(name: str, params: dict) -> str:
    return tg.create_method(name, **params).label


def key(name: str, params: dict) -> str:
    """The row's key: method, +dtnh, decay (labels now spell every parameter out)."""
    return name + ("+dtnh" if params.get("dtnh") else "") + \
        (DECAY if "alpha_decay" in params else "")


def table(runner: Runner, trainer: tg.Trainer, out: Path, seeds: list[int]
          ) -> tuple[list[str], dict]:
    lines, raw = [], {}
    dtnh_vs_plain = []
    dtnh_vs_decay: list[float] = []
    for title, eps in (("appropriate source (clean syndigits)", 0.0),
                       ("inappropriate source (syndigits with ε = 0.9)", 0.9)):
        paths = {s: source_path(out, trainer, eps, s) for s in seeds}
        lines += [f"### {title}: accuracy (NTG vs finetune_T)", "",
                  "| method | " + " | ".join(f"L={L}%" for L in LABELED) + " | avg |",
                  "|---|" + "---:|" * (len(LABELED) + 1)]
        results: dict[str, list[tg.NTGResult]] = {}
        for name, params in (*METHODS, *ABLATION):
            row = []
            for L in LABELED:
                task = tg.TransferTask(*PAIR, labeled_percent=L, spec=SPEC)
                accs, twins = [], []
                for s in seeds:
                    m = tg.create_method(name, pretrained=paths[s], **params)
                    accs.append(runner(m, task.with_seed(s), s).test_accuracy)
                    twins.append(runner(m.twin(), task.with_seed(s), s).test_accuracy)
                r = tg.NTGResult(label(name, params), "finetune_T", list(seeds), accs, twins)
                row.append(r)
                raw[f"{eps}-{L}-{r.method}" + ("-decay" if "alpha_decay" in params else "")] = \
                    r.to_dict()
                print(f"  eps={eps} L={L} {r.method:12s} {fmt(r)}", flush=True)
            results[key(name, params)] = row
            shown = label(name, {k: v for k, v in params.items() if k != "alpha_decay"}) + \
                (DECAY if "alpha_decay" in params else "")
            avg = statistics.fmean(r.mean_accuracy for r in row)
            lines.append(f"| {shown} | " + " | ".join(fmt(r) for r in row) + f" | {avg:.1f} |")
        for base in ("l2sp", "delta", "kd"):
            for plain, dt, decay in zip(results[base], results[f"{base}+dtnh"],
                                        results[base + DECAY]):
                dtnh_vs_plain.append((title, base, dt.mean_accuracy - plain.mean_accuracy))
                dtnh_vs_decay.append(dt.mean_accuracy - decay.mean_accuracy)
        lines.append("")
    wins = sum(d > 0 for *_, d in dtnh_vs_plain)
    losses = [(t, b, d) for t, b, d in dtnh_vs_plain if d < 0]
    lines.append(f"DTNH against its plain regulariser (same source, L and seeds): better in "
                 f"{wins} of {len(dtnh_vs_plain)} cells, mean difference "
                 f"{statistics.fmean(d for *_, d in dtnh_vs_plain):+.2f} points; "
                 f"lost in {len(losses)} cells"
                 + (": " + "; ".join(f"{b} ({t.split(' (')[0]}) {d:+.2f}" for t, b, d in losses)
                    if losses else "") + ".")
    lines.append(f"DTNH against the same regulariser with the same decay and no projection: "
                 f"better in {sum(d > 0 for d in dtnh_vs_decay)} of {len(dtnh_vs_decay)} "
                 f"cells, mean difference {statistics.fmean(dtnh_vs_decay):+.2f} points.")
    return lines, raw


def cutpoint(runner: Runner, trainer: tg.Trainer, out: Path, seeds: list[int]
             ) -> tuple[list[str], dict]:
    task = tg.TransferTask(*PAIR, labeled_percent=10, spec=SPEC)
    res = cut_point_sweep(task, lambda s: source_path(out, trainer, 0.0, s), seeds=seeds,
                          run=runner)
    img = RESULTS.parent / "images" / "cutpoint.png"
    cutpoint_plot(res, img, f"{PAIR[0]} -> {PAIR[1]}, L = 10%, {len(seeds)} seeds")
    print(cutpoint_table(res), flush=True)
    return ["### Cut point (Yosinski et al.): syndigits -> mnist, L = 10%", "",
            cutpoint_table(res, markdown=True), "",
            "![cut point](../images/cutpoint.png)"], res.to_dict()


def aux(runner: Runner, trainer: tg.Trainer, out: Path, seeds: list[int]
        ) -> tuple[list[str], dict]:
    task = tg.TransferTask(*PAIR, labeled_percent=10, spec=SPEC)
    lines = ["### Binary auxiliary pre-training, then fine-tuning at L = 10%", "",
             "| B | partitions | runs | target accuracy (mean ± sd) | vs B = 0 |",
             "|---:|---:|---:|---:|---:|"]
    raw: dict = {}
    base = None
    for weight in (0.0, 0.1, 0.25, 0.5):
        parts = [0] if weight == 0 else [0, 1, 2]
        accs = []
        for part in parts:
            for s in seeds:
                path = source_path(out, trainer, 0.0, s, aux_weight=weight, partition_seed=part)
                m = tg.create_method("finetune", pretrained=path)
                accs.append(runner(m, task.with_seed(s), s).test_accuracy)
        mean, sd = statistics.fmean(accs), statistics.stdev(accs) if len(accs) > 1 else 0.0
        base = mean if base is None else base
        raw[str(weight)] = accs
        lines.append(f"| {weight} | {len(parts)} | {len(accs)} | {mean:.1f} ± {sd:.1f} | "
                     f"{mean - base:+.1f} |")
        print(f"  aux B={weight}: {mean:.1f} ± {sd:.1f}", flush=True)
    return lines, raw


def timing(trainer: tg.Trainer, out: Path, repeats: int = 5, steps: int = 200) -> list[str]:
    path = source_path(out, trainer, 0.0, 0)
    task = tg.TransferTask(*PAIR, labeled_percent=30, spec=SPEC)
    data = task.train_data()
    lines = ["### Step time of DTNH", "", "| regulariser | plain (ms/step) | +DTNH (ms/step) | "
             "ratio |", "|---|---:|---:|---:|"]
    for name in ("l2sp", "kd", "delta", "bss"):
        times: dict[bool, list[float]] = {False: [], True: []}
        for r in range(repeats):
            for dt in (False, True):
                tr = tg.Trainer(iterations=steps, batch_size=32, progress=False, select="last",
                                seed=r, log_every=steps)
                m = tg.create_method(name, pretrained=path, dtnh=dt, alpha_decay=1.0)
                times[dt].append(tr.fit(m, data).loop_seconds / steps)
        plain, dtnh = statistics.median(times[False]), statistics.median(times[True])
        lines.append(f"| {name} | {plain * 1000:.1f} | {dtnh * 1000:.1f} | "
                     f"**{dtnh / plain:.2f}** |")
        print(f"  timing {name}: {dtnh / plain:.2f}", flush=True)
    lines.append(f"\nMedian of {repeats} interleaved runs of {steps} steps, batch 32, "
                 f"{torch.get_num_threads()} threads; the training loop only (DELTA's one-off "
                 "channel attention is not counted).")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--part", default="all", choices=["table", "cutpoint", "aux", "timing", "all"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", default="runs/bench-finetune")
    args = ap.parse_args()
    out = Path(args.out)
    trainer = tg.Trainer(iterations=ITERATIONS, batch_size=32, progress=False)
    runner = Runner(RunStore(out), trainer, "finetune-tables", resume=True)
    t0 = time.perf_counter()
    sections: list[str] = []
    raw: dict = {}
    parts = ["table", "cutpoint", "aux", "timing"] if args.part == "all" else [args.part]
    for part in parts:
        if part == "timing":
            sections += timing(trainer, out) + [""]
            continue
        fn = {"table": table, "cutpoint": cutpoint, "aux": aux}[part]
        lines, r = fn(runner, trainer, out, args.seeds)
        sections += lines + [""]
        raw[part] = r
    cmd = "python benchmarks/finetune_tables.py " + " ".join(sys.argv[1:])
    head = ["# Fine-tuning defences on the built-in digits", "", f"Command: `{cmd.strip()}`", "",
            f"LeNet at {SPEC.channels}x{SPEC.size}x{SPEC.size}; source networks pre-trained by "
            f"the toolkit for {PRETRAIN_ITERATIONS} iterations on {PAIR[0]} (one per seed); "
            f"fine-tuning {ITERATIONS} iterations, batch 32, SGD 0.01 with the DANN schedule, "
            "backbone learning rate x0.1; regulariser defaults (α = β = 0.01; BSS η = 0.001, "
            "k = 1); seeds "
            f"{args.seeds}. Each cell: mean target test accuracy (NTG = acc(finetune_T) − acc, "
            "points; > 0 is negative transfer). Model selection on the labeled-target "
            "validation split. "
            + provenance(runner.trained, runner.reused, time.perf_counter() - t0), ""]
    name = "finetune_tables" if args.part == "all" else f"finetune_{args.part}"
    write_result(name, "\n".join(head + sections), json.dumps(raw, indent=1, default=str))


if __name__ == "__main__":
    main()
