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
    ax.set_xlabel("blocks transferred from the source (k)")
    ax.set_ylabel("target test accuracy (%)")
    if title:
        ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    save_figure(fig, path)
