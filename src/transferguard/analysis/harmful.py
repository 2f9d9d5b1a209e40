"""Harmful source samples: score the gate's weights against the protocol's corruption masks.

After training a gated method, ω(x_s, y_s) = D/(1 − D) estimates P_T(x, y) / P_S(x, y) for
every source sample: a low weight says "this sample does not look like target data", the
signature of a wrong label (ε_y) or a corrupted image (ε_x). Because the perturbation masks
are kept, the ranking can be scored:

- AUROC of −ω for the samples whose label is really wrong (``label_flipped``), for the
  corrupted images (``x_mask``) and for either;
- the two factors of ω apart, from the same discriminator: the nil query estimates
  P_T(x)/P_S(x) (an off-domain image), and the labeled query over the nil one estimates
  P_T(y|x)/P_S(y|x) (a wrong label); each is scored against its own mask;
- the "small-loss" baseline (rank by the classifier's cross-entropy on the observed label),
  so that the gate is compared with the simplest detector rather than with chance;
- precision at the corruption rate: of the k lowest-ω samples, k = number of wrong labels,
  the fraction that really are wrong (1.0 = perfect, the rate itself = random);
- the list of the most harmful samples (lowest ω) with their observed and clean labels.

Used on a user's own source (no masks), the same report lists the samples to inspect first.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from ..data import TransferTask
from ..errors import ConfigError


def auroc(scores: torch.Tensor, positives: torch.Tensor) -> float | None:
    """Area under the ROC curve of ``scores`` for boolean ``positives`` (ties averaged).

    The Mann-Whitney form: the probability that a random positive scores above a random
    negative. ``None`` when one class is absent.
    """
    scores = scores.double().flatten()
    pos = positives.bool().flatten()
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    order = torch.argsort(scores)
    ranks = torch.empty_like(scores)
    ranks[order] = torch.arange(1, len(scores) + 1, dtype=torch.double)
    # average the ranks of tied scores
    uniq, inverse, counts = torch.unique(scores, return_inverse=True, return_counts=True)
    if len(uniq) < len(scores):
        sums = torch.zeros(len(uniq), dtype=torch.double).index_add_(0, inverse, ranks)
        ranks = (sums / counts.double())[inverse]
    u = ranks[pos].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


@dataclass
class HarmfulSourceReport:
    weights: torch.Tensor = field(repr=False)
    label_auroc: float | None
    image_auroc: float | None
    any_auroc: float | None
    label_precision_at_rate: float | None
    label_corruption_rate: float
    image_corruption_rate: float
    most_harmful: list[dict[str, Any]]
    conditional_label_auroc: float | None = None
    marginal_image_auroc: float | None = None
    small_loss_label_auroc: float | None = None

    def metrics(self) -> dict[str, Any]:
        """The scalar scores (what the run store records)."""
        d = asdict(self)
        d.pop("weights")
        d.pop("most_harmful")
        return d


def harmful_source_report(method: Any, task: TransferTask, top: int = 20) -> HarmfulSourceReport:
    """Score a trained gated method's ω against the task's corruption masks."""
    if not method.has_weighter:
        raise ConfigError(f"{method.label} has no per-sample source weights; use a "
                          "domain-adaptation method with gate=True (or gate=NAME).")
    scores = method.source_scores(task.train_data().source)
    w = scores["weight"]
    pert = task.perturbation
    flipped, xmask = pert.label_flipped, pert.x_mask
    if len(w) != len(flipped):
        raise ConfigError(f"the method was trained on {len(w)} source samples but the task "
                          f"has {len(flipped)}; pass the task it was trained on.")
    score = -w  # low weight = harmful
    k = int(flipped.sum())
    precision = None
    if k:
        lowest = torch.argsort(w)[:k]
        precision = float(flipped[lowest].float().mean())
    order = torch.argsort(w)[:top]
    harmful = [{"index": int(i), "weight": float(w[i]), "label": int(pert.labels[i]),
                "clean_label": int(pert.clean_labels[i]), "label_wrong": bool(flipped[i]),
                "image_corrupted": bool(xmask[i])} for i in order]
    factors = "log_marginal" in scores and "log_joint" in scores  # the gate's two queries
    conditional = scores["log_marginal"] - scores["log_joint"] if factors else None
    return HarmfulSourceReport(
        w, auroc(score, flipped), auroc(score, xmask), auroc(score, flipped | xmask), precision,
        float(flipped.float().mean()), float(xmask.float().mean()), harmful,
        conditional_label_auroc=auroc(conditional, flipped) if factors else None,
        marginal_image_auroc=auroc(-scores["log_marginal"], xmask) if factors else None,
        small_loss_label_auroc=auroc(scores["loss"], flipped),
    )
