"""Prune what hurts the target: neuron impact, prune-and-retrain, the cut point and the
cross-domain matrix on the built-in digits.

    python benchmarks/pruning.py [--part table|timing|matrix|all] [--sources clean inappropriate]

- Table: syndigits -> mnist, LeNet pre-trained by the toolkit on the source (one network per
  seed), from a clean source network and from an *inappropriate* one (pre-trained on the
  source perturbed with ε = 0.9, which shows negative transfer under plain fine-tuning), at
  L = 10% and 30%, 3 seeds: plain fine-tuning, prune-and-retrain (remove: the target-harmful
  units structurally removed; dropout: Domain Guided Dropout), the control that fits the
  probe head and prunes nothing, L2-SP, the cut point chosen on validation (Yosinski sweep,
  k = 1..3 frozen / fine-tuned; k = 0 is finetune_T), and scratch (finetune_T). Accuracy and
  NTG = acc(finetune_T) − acc with its 95% interval; the units pruned and the parameters and
  multiply-adds before and after structural removal; the harmful share per layer against
  depth with the cut point it suggests, beside the measured sweep (docs/images/pruning_*.png).
- Timing: impact of every unit of LeNet (exact and Taylor) on 500 labeled target images
  against one evaluation pass of the same images, interleaved, medians.
- Matrix: train on each built-in domain, test on every one (3 seeds).

Runs are recorded in runs/bench-pruning/runs.sqlite (a rerun resumes): the table parts can run
in two processes (``--sources clean`` and ``--sources inappropriate``), then ``--part all``
writes the page from the store.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path

import torch

import transferguard as tg
from transferguard.analysis import CutPointResult, ImpactResult, cut_point_sweep, neuron_impact
from transferguard.data import Split
from transferguard.experiments import Runner, RunStore, pretrained_checkpoint, run_matrix
from transferguard.report import interval_text
from transferguard.report.matrix import TITLES, matrix_table
from transferguard.report.plots import impact_depth_plot, matrix_heatmap

sys.path.insert(0, str(Path(__file__).parent))
from _common import RESULTS, provenance, write_result

torch.set_num_threads(1)
SPEC = tg.InputSpec(3, 24)
ITERATIONS = 400
PRETRAIN_ITERATIONS = 1000
PAIR = ("syndigits", "mnist")
LABELED = (10, 30)
SOURCES = {"clean": 0.0, "inappropriate": 0.9}
PRUNE = {
    "prune-remove": {"mode": "remove", "structural": True},
    "prune-dropout": {"mode": "dropout"},
    "probe + fine-tune, nothing pruned (control)": {"rule": "fraction", "fraction": 0.0},
}
CUT = "cut point chosen on validation"
DOMAINS = ("mnist", "mnist-m", "syndigits", "uci-digits")
IMAGES = RESULTS.parent / "images"


def source_path(out: Path, trainer: tg.Trainer, eps: float, seed: int) -> str:
    task = tg.TransferTask(*PAIR, eps=eps, labeled_percent=10, spec=SPEC, seed=seed)
    return pretrained_checkpoint(task, trainer, out / "pretrained",
                                 iterations=PRETRAIN_ITERATIONS)


class Bench:
    """The run store, the Runner and a stored runner for pruning (which keeps its extras)."""

    def __init__(self, out: Path, trainer: tg.Trainer) -> None:
        self.out, self.trainer = out, trainer
        self.store = RunStore(out)
        self.runner = Runner(self.store, trainer, "pruning", resume=True)

    def prune(self, method: tg.Method, task: tg.TransferTask, seed: int) -> tg.engine.RunResult:
        tr = self.trainer.with_options(seed=seed)

        def train() -> dict:
            res = tr.run(method, task)
            res.extra.update(pruned=method.pruned_counts(), impact=method.impact_.to_dict(),
                             cost_before=method.cost_before_, cost_after=method.cost_after_)
            return res.metrics()

        config = {"bench": "pruning", "method": {"name": method.name, **method.get_params()},
                  "task": task.config(), "trainer": dataclasses.asdict(tr.config)}
        metrics, reused = self.store.run(config, train,
                                         experiment="pruning", label=method.label, resume=True)
        self.runner.reused += reused
        self.runner.trained += not reused
        return tg.engine.RunResult(**metrics)


def ntg(label: str, seeds: list[int], accs: list[float], twins: list[float]) -> tg.NTGResult:
    return tg.NTGResult(label, "finetune_T", list(seeds), accs, twins)


def table_part(bench: Bench, sources: list[str], seeds: list[int]) -> tuple[list[str], dict]:
    lines, raw = [], {}
    for source in sources:
        eps = SOURCES[source]
        paths = {s: source_path(bench.out, bench.trainer, eps, s) for s in seeds}
        per_l: dict[int, dict[str, tg.NTGResult]] = {}
        extras: dict[int, list[dict]] = {}
        cuts = {}
        for L in LABELED:
            task = tg.TransferTask(*PAIR, labeled_percent=L, spec=SPEC)
            rows: dict[str, tg.NTGResult] = {}
            twins = [bench.runner(tg.create_method("finetune").twin(), task.with_seed(s),
                                  s).test_accuracy for s in seeds]
            for name, params in (("finetune", {}), ("l2sp", {})):
                accs = [bench.runner(tg.create_method(name, pretrained=paths[s], **params),
                                     task.with_seed(s), s).test_accuracy for s in seeds]
                rows[name] = ntg(name, seeds, accs, twins)
            for label, params in PRUNE.items():
                accs, ex = [], []
                for s in seeds:
                    m = tg.create_method("prune_transfer", pretrained=paths[s], **params)
                    r = bench.prune(m, task.with_seed(s), s)
                    accs.append(r.test_accuracy)
                    ex.append(r.extra)
                rows[label] = ntg(label, seeds, accs, twins)
                if label == "prune-remove":
                    extras[L] = ex

            def cut_run(m: tg.Method, t: tg.TransferTask, s: int) -> tg.engine.RunResult:
                if m.blocks == 0:  # k = 0 is training from scratch: the finetune_T runs
                    return bench.runner(tg.create_method("finetune").twin(), t, s)
                return bench.runner(m, t, s)

            cut = cut_point_sweep(task, paths.__getitem__, seeds=seeds, run=cut_run)
            cuts[L] = cut
            k, mode, _ = cut.best
            chosen = twins if k == 0 else cut.accuracy[mode][k]
            rows[CUT] = ntg("cut", seeds, list(chosen), twins)
            rows[CUT].choice = "scratch" if k == 0 else f"k={k} {mode}"
            rows["scratch (finetune_T)"] = ntg("scratch", seeds, twins, twins)
            per_l[L] = rows
            for label, r in rows.items():
                print(f"  {source} L={L} {label:45s} {r.mean_accuracy:.1f} "
                      f"({interval_text(r)})", flush=True)
        raw[source] = {"ntg": {L: {k: v.to_dict() for k, v in rows.items()}
                               for L, rows in per_l.items()},
                       "extras": extras, "cut": {L: c.to_dict() for L, c in cuts.items()}}
        lines += source_section(source, eps, per_l, extras, cuts)
    return lines, raw


def source_section(source: str, eps: float, per_l: dict, extras: dict, cuts: dict) -> list[str]:
    title = ("clean source network (syndigits)" if eps == 0 else
             f"inappropriate source network (syndigits with ε = {eps})")
    lines = [f"### From the {title}: accuracy, NTG [95% CI]", "",
             "| method | " + " | ".join(f"L={L}% acc | NTG [95% CI]" for L in per_l) + " |",
             "|---|" + "---:|---|" * len(per_l)]
    for label in next(iter(per_l.values())):
        cells = []
        for rows in per_l.values():
            r = rows[label]
            choice = f" ({r.choice})" if label == CUT else ""
            cells += [f"{r.mean_accuracy:.1f}{choice}", interval_text(r)]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", "Units removed by prune-remove (impact < 0, at most half a layer; mean over "
              "seeds) and the cost of the structurally pruned LeNet:", "",
              "| L% | conv1 | conv2 | fc | parameters before → after | multiply-adds before → "
              "after |", "|---:|---:|---:|---:|---:|---:|"]
    for L, ex in extras.items():
        counts = {n: statistics.fmean(e["pruned"][n][0] for e in ex) for n in ("conv1", "conv2",
                                                                              "fc")}
        tot = {n: ex[0]["pruned"][n][1] for n in counts}
        pb = statistics.fmean(e["cost_before"]["params"] for e in ex)
        pa = statistics.fmean(e["cost_after"]["params"] for e in ex)
        mb = statistics.fmean(e["cost_before"]["macs"] for e in ex)
        ma = statistics.fmean(e["cost_after"]["macs"] for e in ex)
        lines.append(f"| {L} | " + " | ".join(f"{counts[n]:.1f} / {tot[n]}" for n in counts)
                     + f" | {pb:,.0f} → {pa:,.0f} ({pa / pb:.2f}x) | {mb:,.0f} → {ma:,.0f} "
                       f"({ma / mb:.2f}x) |")
    lines.append("")
    return lines


def depth_figures(raw: dict) -> list[str]:
    lines = []
    for L in LABELED:
        impacts = {}
        for source in SOURCES:
            ex = raw.get(source, {}).get("extras", {}).get(L)
            if ex:
                impacts[source] = [ImpactResult.from_dict(e["impact"]) for e in ex]
        if not impacts:
            continue
        cut_d = raw.get("inappropriate", raw.get("clean"))["cut"][L]
        cut = CutPointResult(cut_d["blocks"], cut_d["seeds"], cut_d["scratch"],
                                         {m: {int(k): v for k, v in d.items()}
                                          for m, d in cut_d["accuracy"].items()},
                                         cut_d["scratch_val"],
                                         {m: {int(k): v for k, v in d.items()}
                                          for m, d in cut_d["val_accuracy"].items()})
        path = IMAGES / f"pruning_depth_L{L}.png"
        which = "inappropriate" if "inappropriate" in raw else "clean"
        impact_depth_plot(impacts, path, cut=cut, title=f"syndigits -> mnist, L = {L}%; "
                          f"right: measured sweep from the {which} source")
        rows = ["| source | " + " | ".join(impacts[next(iter(impacts))][0].layers)
                + " | suggested cut | measured cut (validation) |",
                "|---|" + "---:|" * (len(impacts[next(iter(impacts))][0].layers) + 2)]
        for source, res in impacts.items():
            share = {n: statistics.fmean(r.harmful_share()[n] for r in res) * 100
                     for n in res[0].layers}
            sug = [r.suggested_cut() for r in res]
            c = raw[source]["cut"][L]["cut_point"]
            rows.append(f"| {source} | " + " | ".join(f"{v:.0f}%" for v in share.values())
                        + f" | {sug} | k={c} |")
        lines += [f"### Harmful units per layer and the cut point, L = {L}%", "",
                  "Share of units with negative impact (mean over seeds); the suggested cut is "
                  "the number of leading blocks with at most 50% harmful units (one per seed).",
                  "", *rows, "", f"![harmful share vs depth](../images/{path.name})", ""]
    return lines


def claim(raw: dict) -> list[str]:
    out = ["### The claim", ""]
    bad = raw.get("inappropriate", {}).get("ntg", {})
    good = raw.get("clean", {}).get("ntg", {})
    for L in LABELED:
        if L in bad:
            ft = bad[L]["finetune"]
            for label in ("prune-remove", "prune-dropout"):
                r = bad[L][label]
                out.append(f"- inappropriate source, L = {L}%: fine-tuning NTG {ft['ntg']:+.2f}; "
                           f"{label} NTG {r['ntg']:+.2f} → "
                           + ("**NTG ≤ 0: holds**" if r["ntg"] <= 0 else "**NTG > 0: does not "
                                                                         "hold**"))
        if L in good:
            ft = statistics.fmean(good[L]["finetune"]["accuracy"])
            for label in ("prune-remove", "prune-dropout"):
                d = ft - statistics.fmean(good[L][label]["accuracy"])
                out.append(f"- clean source, L = {L}%: {label} costs {d:+.2f} points against "
                           "fine-tuning → " + ("**≤ 0.5: holds**" if d <= 0.5 else
                                               "**> 0.5: does not hold**"))
    return out + [""]


def timing_part(out: Path, trainer: tg.Trainer, repeats: int = 5) -> tuple[list[str], dict]:
    path = source_path(out, trainer, 0.0, 0)
    task = tg.TransferTask(*PAIR, labeled_percent=30, spec=SPEC, seed=0)
    lab = task.train_data().target_labeled
    split = Split("target_labeled", lab.images[:500], lab.labels[:500], lab.indices[:500])
    model = tg.create_model("lenet", 10, 3, SPEC.size)
    model.load_state_dict(torch.load(path, weights_only=True))
    times: dict[str, list[float]] = {"eval": [], "exact": [], "taylor": []}
    checks = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        trainer.evaluate(model, split, SPEC)
        times["eval"].append(time.perf_counter() - t0)
        for est in ("exact", "taylor"):
            t0 = time.perf_counter()
            r = neuron_impact(model, split, SPEC, estimator=est)
            times[est].append(time.perf_counter() - t0)
            if est == "taylor":
                checks.append(r.check)
            else:
                units, forwards = sum(r.units(n) for n in r.layers), r.forwards
    med = {k: statistics.median(v) for k, v in times.items()}
    c = checks[-1]
    lines = ["### Impact-analysis time", "",
             f"Every unit of LeNet ({units} units: conv1, conv2, fc and the 10 logits of the head)"
             f" on 500 labeled target images (mnist, {SPEC.channels}x{SPEC.size}x{SPEC.size}), "
             f"{torch.get_num_threads()} thread, "
             f"median of {repeats} interleaved repeats:", "",
             "| what | seconds | × one evaluation pass |", "|---|---:|---:|",
             f"| one evaluation pass (500 images) | {med['eval']:.3f} | 1 |",
             f"| exact impact ({forwards} batched forwards) | {med['exact']:.2f} | "
             f"**{med['exact'] / med['eval']:.0f}** |",
             f"| Taylor estimate + exact check of {c['units']} units | {med['taylor']:.2f} | "
             f"**{med['taylor'] / med['eval']:.0f}** |", "",
             f"Taylor against exact on the checked units: Spearman {c['spearman']:.2f}, sign "
             f"agreement {c['sign_agreement']:.2f}, largest error {c['max_abs_error']:.4f} "
             f"(mean |exact impact| {c['exact_scale']:.4f}).", ""]
    return lines, {"median_seconds": med, "check": c, "units": units}


def units_part(out: Path, trainer: tg.Trainer) -> tuple[list[str], dict]:
    """Top-activating target images of the most harmful and most helpful units of the
    inappropriate source network (seed 0, L = 10%), as the method sees them."""
    from transferguard.analysis import top_activating
    from transferguard.report.plots import unit_grid

    path = source_path(out, trainer, SOURCES["inappropriate"], 0)
    task = tg.TransferTask(*PAIR, labeled_percent=10, spec=SPEC, seed=0)
    data = task.train_data()
    m = tg.create_method("prune_transfer", pretrained=path)
    tr = trainer.with_options(seed=0)
    m.setup(data, tr)
    m.prepare(data, tr)
    for h in m.hooks_:  # look at the network before pruning
        h.remove()
    imp = m.impact_
    pics = []
    for layer in ("conv2", "fc"):
        order = torch.argsort(imp.impact[layer]).tolist()
        pics += top_activating(m.model_, layer, order[:3] + order[-1:], data.target_unlabeled,
                               SPEC, k=10, impact=imp)
    img = IMAGES / "pruning_units.png"
    unit_grid(pics, img, "inappropriate source network, mnist target images: the 3 most "
                         "harmful units and the most helpful one of conv2 and fc")
    return (["### What the harmful units respond to", "",
             "Top-activating unlabeled target images of the three most harmful units (most "
             "negative impact) and the most helpful unit of conv2 and of fc, for the "
             "inappropriate source network (seed 0) with its target head (L = 10%); each image "
             "is titled with the unit's activation.", "",
             "![unit pictures](../images/pruning_units.png)", ""],
            {"units": [(p.layer, p.unit, p.impact) for p in pics]})


def matrix_part(out: Path, trainer: tg.Trainer, seeds: list[int]) -> tuple[list[str], dict]:
    res = run_matrix(list(DOMAINS), out / "matrix", spec=SPEC, trainer=trainer, seeds=seeds,
                     resume=True, echo=print)
    img = IMAGES / "matrix.png"
    matrix_heatmap(res, img, ("raw", "row", "column"),
                   f"LeNet, {ITERATIONS} iterations, mean of seeds {seeds}")
    lines = ["### Cross-domain matrix of the built-in domains", "",
             "Each model trained on the labeled half of one domain (selection on a validation "
             "part of it), tested on the held-out half of every domain.", ""]
    for view in ("raw", "row", "column"):
        lines += [f"**{TITLES[view]}**", "", matrix_table(res, view, markdown=True), ""]
    lines += ["![cross-domain matrix](../images/matrix.png)", ""]
    return lines, res.to_dict()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--part", default="all",
                    choices=["table", "timing", "units", "matrix", "all"])
    ap.add_argument("--sources", nargs="+", default=list(SOURCES), choices=list(SOURCES))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", default="runs/bench-pruning")
    args = ap.parse_args()
    out = Path(args.out)
    trainer = tg.Trainer(iterations=ITERATIONS, batch_size=32, progress=False)
    bench = Bench(out, trainer)
    t0 = time.perf_counter()
    sections: list[str] = []
    raw: dict = {}
    if args.part in ("table", "all"):
        lines, r = table_part(bench, args.sources, args.seeds)
        raw["table"] = r
        sections += claim(r) + lines + depth_figures(r)
    if args.part in ("timing", "all"):
        lines, r = timing_part(out, trainer)
        sections += lines
        raw["timing"] = r
    if args.part in ("units", "all"):
        lines, r = units_part(out, trainer)
        sections += lines
        raw["units"] = r
    if args.part in ("matrix", "all"):
        lines, r = matrix_part(out, trainer, args.seeds)
        sections += lines
        raw["matrix"] = r
    cmd = "python benchmarks/pruning.py " + " ".join(sys.argv[1:])
    head = ["# Pruning the target-harmful units, the cut point and the cross-domain matrix", "",
            f"Command: `{cmd.strip()}`", "",
            f"LeNet at {SPEC.channels}x{SPEC.size}x{SPEC.size}; source networks pre-trained by "
            f"the toolkit for {PRETRAIN_ITERATIONS} iterations on {PAIR[0]} (one per seed); "
            f"fine-tuning {ITERATIONS} iterations on {PAIR[1]}, batch 32, SGD 0.01 with the DANN "
            "schedule, backbone learning rate x0.1; prune_transfer defaults (head probe for a "
            "quarter of the iterations, impact on the labeled target and its validation split, "
            "rule impact < 0, at most half of a layer); seeds "
            f"{args.seeds}. NTG = acc(finetune_T) − acc in points (> 0: negative transfer), "
            "mean and 95% Student-t interval over seeds. Model selection on the labeled-target "
            "validation split; the test split only reports. "
            + provenance(bench.runner.trained, bench.runner.reused, time.perf_counter() - t0)
            + (" The table runs were trained by `--part table --sources clean` and `--sources "
               "inappropriate` in two parallel processes, the matrix by `--part matrix`; this "
               "invocation resumed them from the store." if bench.runner.reused else ""), ""]
    name = "pruning" if args.part == "all" and len(args.sources) == len(SOURCES) else \
        f"pruning_{args.part}_{'_'.join(args.sources)}"
    write_result(name, "\n".join(head + sections), json.dumps(raw, indent=1, default=str))


if __name__ == "__main__":
    main()
