"""Figures: sample grids of domains, and (later) curves and heat-maps of experiments.

matplotlib runs with the non-interactive Agg backend, so plotting works on machines with no
screen; every figure is written atomically.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence

import numpy as np
import torch

from ..data.domain import Domain
from ..utils import atomic_save


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def finish_curves(fig, ax, path: str | os.PathLike[str], xlabel: str, ylabel: str,
                  title: str = "") -> None:
    """The common end of a curve plot: axis labels, optional title, legend, grid, save."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    save_figure(fig, path)


def save_figure(fig, path: str | os.PathLike[str], dpi: int = 120) -> None:
    """Save a matplotlib figure atomically (format from the suffix) and close it."""
    buf = io.BytesIO()
    fmt = os.fspath(path).rsplit(".", 1)[-1]
    fig.savefig(buf, format=fmt, dpi=dpi, bbox_inches="tight")
    _pyplot().close(fig)
    atomic_save(path, lambda fh: fh.write(buf.getvalue()))


def grid_image(domain: Domain, per_class: int = 8, seed: int = 0) -> np.ndarray:
    """A (classes*H, per_class*W, 3) uint8 mosaic: one row per class."""
    g = torch.Generator().manual_seed(seed)
    _, h, w = domain.shape
    rows = []
    for k in range(domain.num_classes):
        idx = torch.nonzero(domain.labels == k).flatten()
        pick = idx[torch.randperm(len(idx), generator=g)[:per_class]]
        tiles = domain.images[pick]
        if tiles.shape[1] == 1:
            tiles = tiles.expand(-1, 3, -1, -1)
        row = torch.zeros(3, h, per_class * w, dtype=torch.uint8)
        for j, t in enumerate(tiles):
            row[:, :, j * w : (j + 1) * w] = t
        rows.append(row)
    return torch.cat(rows, dim=1).permute(1, 2, 0).numpy()


def sample_grid(
    domains: Sequence[Domain], path: str | os.PathLike[str], per_class: int = 8, seed: int = 0
) -> None:
    """Save one mosaic per domain side by side (rows are classes, named on the left)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(domains), figsize=(2.4 * len(domains), 3.2), squeeze=False)
    for ax, d in zip(axes[0], domains):
        mosaic = grid_image(d, per_class, seed)
        ax.imshow(mosaic, interpolation="nearest")
        c, h, w = d.shape
        ax.set_title(f"{d.name}\n{len(d)} images, {c}x{h}x{w}", fontsize=8)
        ax.set_yticks([h * (k + 0.5) for k in range(d.num_classes)])
        ax.set_yticklabels(d.classes, fontsize=6)
        ax.set_xticks([])
    save_figure(fig, path)


def harmful_grid(task, report, path: str | os.PathLike[str], n: int = 32) -> None:
    """The ``n`` source samples with the lowest gate weight, each titled with its observed
    label, its clean label and ω (red when the label is really wrong)."""
    plt = _pyplot()
    source = task.train_data().source
    items = report.most_harmful[:n]
    cols = 8
    rows = max(1, (len(items) + cols - 1) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.2, rows * 1.45), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, item in zip(axes.flat, items):
        img = source.images[item["index"]]
        img = img.expand(3, -1, -1) if img.shape[0] == 1 else img
        ax.imshow(img.permute(1, 2, 0).numpy(), interpolation="nearest")
        colour = "red" if item["label_wrong"] else "black"
        ax.set_title(f"{item['label']}→{item['clean_label']} ω={item['weight']:.2f}",
                     fontsize=6, color=colour)
    save_figure(fig, path)


def cutpoint_plot(result, path: str | os.PathLike[str], title: str = "") -> None:
    """Target accuracy against the number of transferred blocks k, frozen and fine-tuned,
    with the from-scratch baseline (mean ± sd over seeds)."""
    import statistics

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 3.4))
    ks = list(range(len(result.blocks) + 1))
    base = statistics.fmean(result.scratch)
    ax.axhline(base, color="grey", ls="--", lw=1, label="from scratch (k=0)")
    for mode, style in (("frozen", "o-"), ("finetuned", "s-")):
        per_k = result.accuracy.get(mode)
        if not per_k:
            continue
        means = [base] + [statistics.fmean(per_k[k]) for k in ks[1:]]
        sds = [0.0] + [statistics.stdev(per_k[k]) if len(per_k[k]) > 1 else 0.0
                       for k in ks[1:]]
        ax.errorbar(ks, means, yerr=sds, fmt=style, capsize=3, label=mode)
    ax.set_xticks(ks)
    ax.set_xticklabels(["0"] + [f"{k}\n{b}" for k, b in zip(ks[1:], result.blocks)],
                       fontsize=7)
    finish_curves(fig, ax, path, "blocks transferred from the source (k)",
                  "target test accuracy (%)", title)


def matrix_heatmap(result, path: str | os.PathLike[str], views: Sequence[str] = ("raw", "row"),
                   title: str = "") -> None:
    """The cross-domain matrix as annotated heatmaps, one panel per view (raw accuracy,
    row- or column-relative change); rows are training domains, columns test domains."""
    plt = _pyplot()
    n = len(result.domains)
    fig, axes = plt.subplots(1, len(views), figsize=((1.1 * n + 2.2) * len(views), 1.0 * n + 1.4),
                             squeeze=False)
    for p, (ax, view) in enumerate(zip(axes[0], views)):
        values = np.array(result.view(view), dtype=float)
        if view == "raw":
            im = ax.imshow(values, cmap="viridis", vmin=0, vmax=100)
            text = [[f"{v:.1f}" for v in row] for row in values]
            label = "accuracy (%)"
        else:
            lim = max(1.0, float(np.nanmax(np.abs(values))))
            dark = np.abs(values) > 0.6 * lim
            im = ax.imshow(values, cmap="RdBu", vmin=-lim, vmax=lim)
            text = [["0%" if i == j else f"{v:+.0f}%" for j, v in enumerate(row)]
                    for i, row in enumerate(values)]
            label = f"{view}-relative change (%)"
        for i in range(n):
            for j in range(n):
                light = values[i, j] < 60 if view == "raw" else dark[i, j]
                ax.text(j, i, text[i][j], ha="center", va="center", fontsize=7,
                        color="white" if light else "black")
        ax.set_xticks(range(n))
        ax.set_xticklabels(result.domains, rotation=30, ha="right", fontsize=7)
        ax.set_yticks(range(n))
        ax.set_yticklabels(result.domains if p == 0 else [], fontsize=7)
        ax.set_xlabel("tested on", fontsize=8)
        if p == 0:
            ax.set_ylabel("trained on", fontsize=8)
        ax.set_title(label, fontsize=8)
        bar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
        bar.ax.tick_params(labelsize=6)
    if title:
        fig.suptitle(title, fontsize=9)
    save_figure(fig, path)


def impact_depth_plot(impacts, path: str | os.PathLike[str], cut=None, title: str = "",
                      level: float = 0.5, z: float = 0.0) -> None:
    """Share of target-harmful units per layer against depth (one line per labelled
    :class:`ImpactResult`, e.g. per source network), with the cut point each suggests; beside
    it, the measured cut-point sweep when ``cut`` (a CutPointResult) is given."""
    plt = _pyplot()
    if not isinstance(impacts, dict):
        impacts = {"": impacts}
    panels = 2 if cut is not None else 1
    fig, axes = plt.subplots(1, panels, figsize=(5.0 * panels, 3.4), squeeze=False)
    ax = axes[0][0]
    layers: list[str] = []
    for i, (name, res) in enumerate(impacts.items()):
        results = res if isinstance(res, list) else [res]
        layers = list(results[0].layers)
        shares = np.array([[r.harmful_share(z=z)[n] * 100 for n in layers] for r in results])
        mean = shares.mean(0)
        sd = shares.std(0, ddof=1) if len(results) > 1 else np.zeros_like(mean)
        line = ax.errorbar(range(1, len(layers) + 1), mean, yerr=sd, fmt="o-", capsize=3,
                           label=name or None)
        k = round(float(np.mean([r.suggested_cut(level=level, z=z) for r in results])))
        ax.axvline(k + 0.5 + 0.04 * i, color=line[0].get_color(), ls=":", lw=1.2)
        ax.annotate(f"cut k={k}", (k + 0.55 + 0.04 * i, 5 + 8 * i), fontsize=7,
                    color=line[0].get_color())
    ax.axhline(level * 100, color="grey", ls="--", lw=0.8)
    ax.set_xticks(range(1, len(layers) + 1))
    ax.set_xticklabels(layers, fontsize=7)
    ax.set_ylim(0, 100)
    ax.set_xlabel("layer (depth)")
    ax.set_ylabel("target-harmful units (%)")
    ax.set_title("impact: harmful share per layer", fontsize=9)
    if any(impacts):
        ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    if cut is not None:
        import statistics

        ax2 = axes[0][1]
        ks = list(range(len(cut.blocks) + 1))
        base = statistics.fmean(cut.scratch)
        ax2.axhline(base, color="grey", ls="--", lw=1, label="from scratch (k=0)")
        for mode, style in (("frozen", "o-"), ("finetuned", "s-")):
            per_k = cut.accuracy.get(mode)
            if per_k:
                ax2.plot(ks, [base] + [statistics.fmean(per_k[k]) for k in ks[1:]], style,
                         label=mode)
        if cut.cut_point is not None:
            ax2.axvline(cut.cut_point + 0.5, color="black", ls=":", lw=1.2)
            ax2.annotate(f"measured cut k={cut.cut_point}", (cut.cut_point + 0.55, base),
                         fontsize=7)
        ax2.set_xticks(ks)
        ax2.set_xticklabels(["0"] + [f"{k}\n{b}" for k, b in zip(ks[1:], cut.blocks)],
                            fontsize=7)
        ax2.set_xlabel("blocks transferred (k)")
        ax2.set_ylabel("target test accuracy (%)")
        ax2.set_title("measured cut-point sweep", fontsize=9)
        ax2.legend(fontsize=7)
        ax2.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=9)
    save_figure(fig, path)


def unit_grid(pictures, path: str | os.PathLike[str], title: str = "") -> None:
    """Top-activating images of one or more units (:func:`top_activating` results): one row
    per unit, titled with its layer, index and impact when known."""
    plt = _pyplot()
    rows = pictures if isinstance(pictures, list) else [pictures]
    cols = max(len(p.indices) for p in rows)
    fig, axes = plt.subplots(len(rows), cols, figsize=(cols * 0.9, len(rows) * 1.1 + 0.3),
                             squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for r, pic in enumerate(rows):
        for c, img in enumerate(pic.images):
            img = img.expand(3, -1, -1) if img.shape[0] == 1 else img
            axes[r][c].imshow(img.permute(1, 2, 0).numpy(), interpolation="nearest")
            axes[r][c].set_title(f"{pic.values[c]:.2f}", fontsize=5)
        axes[r][0].text(-0.1, 0.5, pic.caption(), transform=axes[r][0].transAxes, ha="right",
                        va="center", fontsize=6)
    if title:
        fig.suptitle(title, fontsize=8)
    save_figure(fig, path)


def active_curves(result, path: str | os.PathLike[str], title: str = "") -> None:
    """Test accuracy of the transfer model against the labels queried, one line per query
    strategy, with the 95% interval over seeds as a band."""
    import math

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 3.4))
    for s in result.strategies():
        c = result.curve(s)
        x = [p["queried"] for p in c]
        mean = [p["mean"] for p in c]
        ax.plot(x, mean, "o-", ms=3, label=s)
        if all(not math.isnan(p["low"]) for p in c):
            ax.fill_between(x, [p["low"] for p in c], [p["high"] for p in c], alpha=0.15)
    finish_curves(fig, ax, path, "target labels queried", "target test accuracy (%)", title)
