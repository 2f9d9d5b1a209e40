"""Scoring a harmful-source detector against the protocol's masks (issue 10).

Three numbers per detector and mask, the ones label-noise papers report side by side:

- AUROC: the probability that a random harmful sample scores above a random clean one
  (0.5 = chance, threshold-free);
- average precision (AP): the area under the precision-recall curve, which, unlike AUROC,
  depends on how rare the harmful samples are (chance = their rate);
- precision at the true rate: of the k highest-scoring samples, k = number of harmful ones,
  the fraction that really are harmful (what a filter that removes exactly k samples keeps
  out; chance = the rate).

A detector's *score* is "higher = more harmful"; a weighter gives weights or a quality
(higher = cleaner), so pass their negatives.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from .harmful import auroc


def average_precision(scores: torch.Tensor, positives: torch.Tensor) -> float | None:
    """Average precision of ``scores`` for boolean ``positives`` (ties broken pessimistically:
    within a tie the negatives come first). ``None`` when there is no positive."""
    scores = scores.double().flatten()
    pos = positives.bool().flatten()
    n_pos = int(pos.sum())
    if n_pos == 0:
        return None
    # sort by score descending; among ties put negatives first (no credit from tie order)
    order = torch.from_numpy(np.lexsort((pos.numpy().astype(int), -scores.numpy())))
    hits = pos[order].double()
    precision = hits.cumsum(0) / torch.arange(1, len(hits) + 1, dtype=torch.double)
    return float((precision * hits).sum() / n_pos)


def precision_at_rate(scores: torch.Tensor, positives: torch.Tensor) -> float | None:
    pos = positives.bool().flatten()
    k = int(pos.sum())
    if k == 0:
        return None
    top = torch.argsort(scores.double().flatten(), descending=True, stable=True)[:k]
    return float(pos[top].double().mean())


@dataclass
class DetectionScores:
    auroc: float | None
    average_precision: float | None
    precision_at_rate: float | None
    rate: float

    def to_dict(self) -> dict[str, float | None]:
        return asdict(self)


def detection_scores(scores: torch.Tensor, positives: torch.Tensor) -> DetectionScores:
    """AUROC, AP and precision at the true rate of ``scores`` (higher = harmful)."""
    if scores.shape != positives.shape:
        raise ValueError(f"scores {tuple(scores.shape)} and mask {tuple(positives.shape)} "
                         "must have the same shape (one score per source sample).")
    return DetectionScores(auroc(scores, positives), average_precision(scores, positives),
                           precision_at_rate(scores, positives),
                           float(positives.float().mean()))
