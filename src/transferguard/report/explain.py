"""Plots and the Markdown summary of :func:`transferguard.experiments.explain`.

One figure per analysis (interpolation curves, a CKA matrix, parameter distances, a module x
alpha criticality heat-map, accuracy against the pre-training checkpoint, accuracy against
the block size) and ``summary.md`` that states each of the paper's five findings with its
numbers. Everything is written atomically (:func:`report.plots.save_figure`).
"""

from __future__ import annotations

import json
import math
import os
import statistics
from pathlib import Path
from typing import Any

from ..utils import atomic_write, format_table
from .plots import _pyplot, save_figure

KIND_STYLE = {"P-T/P-T": "C0", "RI-T/RI-T": "C3", "P-T/RI-T": "C2", "P/P-T": "C1"}


def _ms(v: list[float]) -> tuple[float, float]:
    v = [x for x in v if x is not None and math.isfinite(x)]
    if not v:
        return math.nan, math.nan
    return statistics.fmean(v), (statistics.stdev(v) if len(v) > 1 else 0.0)


def interpolation_plot(result: Any, path: str | os.PathLike[str], title: str = "") -> None:
    """Test accuracy along the linear path for each kind of pair (thin: each pair)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 3.4))
    for kind, curves in result.interpolation.items():
        c = KIND_STYLE.get(kind)
        for r in curves:
            ax.plot(r.lambdas, r.accuracy, color=c, alpha=0.25, lw=0.8)
        mean = [statistics.fmean(r.accuracy[i] for r in curves)
                for i in range(len(curves[0].lambdas))]
        b, _ = _ms([r.barrier for r in curves])
        ax.plot(curves[0].lambdas, mean, "o-", ms=3, color=c, label=f"{kind} (B={b:.1f})")
    ax.set_xlabel("λ (model 1 → model 2)")
    ax.set_ylabel("target test accuracy (%)")
    ax.set_title(title or "linear interpolation", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    save_figure(fig, path)


def cka_plot(result: Any, path: str | os.PathLike[str], title: str = "") -> None:
    """Left: mean linear CKA per (pair kind, block). Right: block x block CKA of the first
    P-T/P-T and RI-T/RI-T pairs."""
    plt = _pyplot()
    kinds = list(result.cka)
    blocks = result.blocks
    full = [(k, result.cka[k][0]) for k in ("P-T/P-T", "RI-T/RI-T") if result.cka.get(k)]
    fig, axes = plt.subplots(1, 1 + len(full), figsize=(3.6 * (1 + len(full)), 3.2),
                             squeeze=False)
    ax = axes[0][0]
    mat = [[result.mean_cka(k)[b] for b in blocks] for k in kinds]
    im = ax.imshow(mat, vmin=0, vmax=1, cmap="viridis")
    ax.set_xticks(range(len(blocks)), blocks, fontsize=7)
    ax.set_yticks(range(len(kinds)), kinds, fontsize=7)
    for i, row in enumerate(mat):
        for j, v in enumerate(row):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if v < 0.6 else "black")
    ax.set_title("mean CKA per block", fontsize=8)
    for ax, (kind, r) in zip(axes[0][1:], full):
        ax.imshow(r.matrix, vmin=0, vmax=1, cmap="viridis")
        ax.set_xticks(range(len(r.blocks_b)), r.blocks_b, fontsize=7)
        ax.set_yticks(range(len(r.blocks_a)), r.blocks_a, fontsize=7)
        ax.set_xlabel("model 2", fontsize=7)
        ax.set_ylabel("model 1", fontsize=7)
        ax.set_title(f"{kind}: block x block", fontsize=8)
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8)
    if title:
        fig.suptitle(title, fontsize=9)
    save_figure(fig, path)


def distance_plot(result: Any, path: str | os.PathLike[str], title: str = "") -> None:
    """l2 distance per module for each kind of pair (mean over pairs)."""
    plt = _pyplot()
    kinds = list(result.distance)
    mods = result.distance[kinds[0]][0].modules
    fig, ax = plt.subplots(figsize=(5.2, 3.2))
    w = 0.8 / len(kinds)
    for i, k in enumerate(kinds):
        per, _ = result.mean_distance(k)
        ax.bar([j + i * w for j in range(len(mods))], [per[m] for m in mods], w, label=k)
    ax.set_xticks([j + 0.4 - w / 2 for j in range(len(mods))], mods)
    ax.set_ylabel("‖θ₁ − θ₂‖₂")
    ax.set_title(title or "parameter distance per module", fontsize=9)
    ax.legend(fontsize=7)
    save_figure(fig, path)


def criticality_plot(result: Any, path: str | os.PathLike[str], title: str = "") -> None:
    """Module x alpha heat-maps of the error (no noise), P-T and RI-T (mean over seeds),
    with the rewinding drop and median mu of each module in the labels."""
    plt = _pyplot()
    kinds = [k for k in ("P-T", "RI-T") if result.criticality.get(k)]
    fig, axes = plt.subplots(1, len(kinds), figsize=(4.4 * len(kinds), 3.0), squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        rs = result.criticality[kind]
        mods, alphas = rs[0].modules, rs[0].alphas
        mat = [[statistics.fmean(r.error[m][i][0] for r in rs) for i in range(len(alphas))]
               for m in mods]
        im = ax.imshow(mat, aspect="auto", cmap="magma_r", vmin=0, vmax=100)
        mu = result.median_mu(kind)
        ax.set_yticks(range(len(mods)), [f"{m} (μ={_fmt_mu(mu[m])})" for m in mods],
                      fontsize=7)
        ax.set_xticks(range(len(alphas)), [f"{a:.1f}" for a in alphas], fontsize=6)
        ax.set_xlabel("α (0 = rewound to the start, 1 = trained)", fontsize=7)
        ax.set_title(f"{kind}: training error (%)", fontsize=8)
        fig.colorbar(im, ax=ax, shrink=0.8)
    if title:
        fig.suptitle(title, fontsize=9)
    save_figure(fig, path)


def _fmt_mu(v: float) -> str:
    if not math.isfinite(v):
        return "inf"
    return "0" if v == 0 else f"{v:.2g}"


def checkpoint_plot(result: Any, path: str | os.PathLike[str], title: str = "") -> None:
    """Target accuracy after fine-tuning from each pre-training step (mean ± sd), the
    from-scratch line, and the snapshot's barrier to the final source network."""
    plt = _pyplot()
    ck = result.checkpoints
    fig, ax = plt.subplots(figsize=(5.2, 3.4))
    ms = [_ms(ck.accuracy[s]) for s in ck.steps]
    ax.errorbar(ck.steps, [m for m, _ in ms], yerr=[s for _, s in ms], fmt="o-", capsize=3,
                label="fine-tuned from the checkpoint")
    sm, _ = _ms(ck.scratch)
    ax.axhline(sm, color="grey", ls="--", lw=1, label="from scratch")
    ax.set_xlabel("pre-training step of the source checkpoint")
    ax.set_ylabel("target test accuracy (%)")
    if ck.source_barrier:
        ax2 = ax.twinx()
        ax2.plot(ck.steps, [ck.source_barrier[s] for s in ck.steps], "s:", color="C1",
                 label="barrier to the final source network (source data)")
        ax2.set_ylabel("barrier (error points)", color="C1")
        ax2.legend(fontsize=7, loc="lower right")
    ax.legend(fontsize=7, loc="center right")
    ax.set_title(title or "which checkpoint to start from", fontsize=9)
    ax.grid(alpha=0.3)
    save_figure(fig, path)


def shuffle_plot(result: Any, path: str | os.PathLike[str], title: str = "") -> None:
    """Target accuracy of P-T and RI-T against the block size (log scale; the rightmost
    point is the unshuffled image)."""
    plt = _pyplot()
    sh = result.shuffle
    fig, ax = plt.subplots(figsize=(5.2, 3.4))
    sizes = [sh.block_size(k) for k in sh.grids]
    for name, d, st in (("fine-tuned (P-T)", sh.pretrained, "o-"),
                        ("from scratch (RI-T)", sh.scratch, "s-")):
        ms = [_ms(d[k]) for k in sh.grids]
        ax.errorbar(sizes, [m for m, _ in ms], yerr=[s for _, s in ms], fmt=st, capsize=3,
                    label=name)
    ax.set_xscale("log", base=2)
    ax.set_xticks(sizes, [str(s) for s in sizes])
    ax.set_xlabel("block size (pixels; the largest = unshuffled)")
    ax.set_ylabel("target test accuracy (%)")
    ax.set_title(title or f"block shuffling ({sh.mode})", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    save_figure(fig, path)


PLOTS = {"interpolation": ("interpolation", interpolation_plot),
         "cka": ("cka", cka_plot), "distance": ("distance", distance_plot),
         "criticality": ("criticality", criticality_plot),
         "checkpoints": ("checkpoints", checkpoint_plot), "shuffle": ("shuffle", shuffle_plot)}


def write_plots(result: Any, out_dir: str | os.PathLike[str], prefix: str = "",
                title: str = "") -> dict[str, str]:
    """Every plot the result has data for, as ``OUT/PREFIXname.png``; ``{name: path}``."""
    out = Path(out_dir)
    written = {}
    for name, (attr, fn) in PLOTS.items():
        data = getattr(result, attr)
        if not data:
            continue
        path = out / f"{prefix}{name}.png"
        fn(result, path, title)
        written[name] = str(path)
    return written


def _f(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return "n/a" if not math.isfinite(v) else f"{v:.3g}" if abs(v) < 1 else f"{v:.2f}"
    return "n/a" if v is None else str(v)


def findings_table(result: Any, markdown: bool = True) -> str:
    rows = []
    for f in result.findings():
        verdict = {True: "holds", False: "does not hold", None: "n/a"}[f["holds"]]
        nums = "; ".join(f"{k} {_f(v)}" for k, v in f["numbers"].items())
        rows.append([f["finding"], verdict, nums])
    return format_table(rows, ["finding (Neyshabur et al.)", "here", "numbers"], markdown)


def explain_markdown(result: Any, images: dict[str, str] | None = None,
                     image_dir: str | os.PathLike[str] | None = None, level: int = 2) -> str:
    """The Markdown summary: accuracies, the five findings, and one table per analysis."""
    from ..analysis.ntg import confidence_interval

    h = "#" * level
    images = images or {}
    lines = [f"{h} {result.task}", ""]
    pt, ri = _ms(result.accuracy["P-T"]), _ms(result.accuracy["RI-T"])
    lines += [f"Target test accuracy: fine-tuned from the source network (P-T) "
              f"{pt[0]:.1f} ± {pt[1]:.1f}, from scratch (RI-T) {ri[0]:.1f} ± {ri[1]:.1f} "
              f"(mean ± sd over seeds {result.seeds}); transfer "
              f"{'helps' if pt[0] > ri[0] else 'hurts'} here by {abs(pt[0] - ri[0]):.1f} "
              "points.", "", f"{h}# The five findings", "", findings_table(result), ""]

    def img(name: str) -> None:
        if name in images:
            p = Path(images[name])
            rel = os.path.relpath(p, image_dir) if image_dir else p.name
            lines.extend([f"![{name}]({rel})", ""])

    if result.interpolation:
        rows = []
        for kind, curves in result.interpolation.items():
            m, lo, hi = confidence_interval([c.barrier for c in curves])
            lm, _ = _ms([c.loss_barrier for c in curves])
            a0 = _ms([c.accuracy[0] for c in curves])[0]
            a1 = _ms([c.accuracy[-1] for c in curves])[0]
            mid = _ms([c.accuracy[len(c.lambdas) // 2] for c in curves])[0]
            ci = "" if math.isnan(lo) else f"[{lo:.2f}, {hi:.2f}]"
            rows.append([kind, len(curves), m, ci, lm, a0, mid, a1])
        lines += [f"{h}# Loss basins (linear interpolation, {len(curves[0].lambdas)} points)",
                  "", "Error barrier: Frankle et al.'s, the largest excess of the error over the "
                  "straight line between the endpoints' errors (points; 95% interval over the "
                  "pairs, which share models and are not independent). P/P-T runs from the "
                  "fine-tuning start (pre-trained F, fresh head) to the fine-tuned model.", "",
                  format_table(rows, ["pair", "pairs", "error barrier (points)", "95% CI",
                                          "loss barrier", "acc λ=0", "acc λ=0.5",
                                          "acc λ=1"],
                                   True), ""]
        img("interpolation")
    if result.cka:
        rows = [[k, *[result.mean_cka(k)[b] for b in result.blocks]] for k in result.cka]
        lines += [f"{h}# Feature similarity (linear CKA on the target test images)", "",
                  format_table([[r[0], *[f"{v:.3f}" for v in r[1:]]] for r in rows],
                               ["pair", *result.blocks], True), ""]
        img("cka")
    if result.distance:
        kinds = list(result.distance)
        mods = result.distance[kinds[0]][0].modules
        rows = []
        for k in kinds:
            per, tot = result.mean_distance(k)
            rows.append([k, *[f"{per[m]:.2f}" for m in mods], f"{tot:.2f}"])
        lines += [f"{h}# Parameter distance (l2, mean over pairs)", "",
                  format_table(rows, ["pair", *mods, "all"], True), ""]
        img("distance")
    if result.criticality:
        rows = []
        for kind, rs in result.criticality.items():
            drop = result.mean_rewind_drop(kind)
            mu = result.median_mu(kind)
            test = {m: statistics.fmean(r.extra.get("test_rewind_drop", {}).get(m, math.nan)
                                        for r in rs) for m in rs[0].modules}
            for m in rs[0].modules:
                ma = _ms([r.min_alpha[m] for r in rs])[0]
                rows.append([kind, m, f"{test[m]:.1f}", f"{drop[m]:.1f}", _fmt_mu(mu[m]),
                             _f(ma)])
        lines += [f"{h}# Module criticality", "",
                  "Rewinding drop: accuracy points lost when the module alone goes back to its "
                  "start (pre-trained weights and the fresh head for P-T, the random "
                  "initialisation for RI-T), on the test split and on the labeled training "
                  "split; μ: Chatterji et al.'s measure on the training split (median over "
                  "seeds; 0 = rewinding costs less than the threshold); min α: the smallest "
                  "interpolation toward the trained value within the threshold.", "",
                  format_table(rows, ["model", "module", "drop (test)", "drop (train)", "μ",
                                      "min α"], True), ""]
        img("criticality")
    ck = result.checkpoints
    if ck is not None:
        rows = [[s, *_ms(ck.accuracy[s]), ck.source_accuracy.get(s, math.nan),
                 ck.source_barrier.get(s, math.nan),
                 _ms(ck.finetuned_barrier.get(s, []))[0]] for s in ck.steps]
        sm, ss = _ms(ck.scratch)
        lines += [f"{h}# Which checkpoint to start from", "",
                  format_table(rows, ["pre-training step", "target acc", "sd",
                                      "source acc", "barrier to final (source)",
                                      "barrier P-T/P-T (target)"], True), "",
                  f"From scratch: {sm:.1f} ± {ss:.1f}. The earliest checkpoint within "
                  f"{ck.tolerance:g} point of the final one: step {ck.earliest_as_good}. "
                  "Final-basin entry, read from the barrier between two fine-tunings started "
                  f"from the same checkpoint (≤ {ck.tolerance:g} point from then on): "
                  + (f"step {ck.basin_entry}." if ck.basin_entry is not None else
                     "never (not even from the final checkpoint).")
                  + " The barrier of each checkpoint's own path to the final source network "
                  "(on the source data) is reported too; a path from a worse checkpoint to "
                  "the final one is typically monotone, so it stays near 0 and does not "
                  "locate the entry.", ""]
        img("checkpoints")
    sh = result.shuffle
    if sh is not None:
        rows = []
        for k in sh.grids:
            a, b = _ms(sh.pretrained[k]), _ms(sh.scratch[k])
            rows.append([k, sh.block_size(k), f"{a[0]:.1f} ± {a[1]:.1f}",
                         f"{b[0]:.1f} ± {b[1]:.1f}", f"{_ms(sh.benefit(k))[0]:+.1f}"])
        lines += [f"{h}# Block shuffling ({sh.mode} permutations)", "",
                  format_table(rows, ["k (blocks per side)", "block size", "P-T acc",
                                      "RI-T acc", "benefit of P"], True), ""]
        img("shuffle")
    secs = ", ".join(f"{k} {v:.0f} s" for k, v in result.seconds.items())
    lines += [f"Time: {secs}.", ""]
    return "\n".join(lines)


def write_explain_report(result: Any, out_dir: str | os.PathLike[str]) -> Path:
    """Plots, ``summary.md`` and ``explain.json`` in ``out_dir``; returns the summary path."""
    out = Path(out_dir)
    images = write_plots(result, out)
    md = "# What is being transferred\n\n" + explain_markdown(result, images, out)
    path = out / "summary.md"
    with atomic_write(path, "w") as fh:
        fh.write(md)
    with atomic_write(out / "explain.json", "w") as fh:
        json.dump(result.to_dict(), fh, indent=1)
    return path
