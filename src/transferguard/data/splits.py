"""Splits: in-memory slices of a domain, what training may see, and stratified drawing."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import torch

from ..errors import DataError
from .domain import InputSpec


@dataclass(frozen=True, eq=False)
class Split:
    """An in-memory slice of one domain: uint8 images, labels (None when unlabeled), and the
    indices of its samples in the (converted) domain they came from."""

    name: str
    images: torch.Tensor
    labels: torch.Tensor | None
    indices: torch.Tensor

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __repr__(self) -> str:
        kind = "labeled" if self.labels is not None else "unlabeled"
        return f"Split({self.name!r}, n={len(self)}, {kind})"

    @property
    def labeled(self) -> bool:
        return self.labels is not None

    def class_counts(self, num_classes: int) -> torch.Tensor:
        if self.labels is None:
            raise DataError(f"split {self.name!r} is unlabeled; it has no class counts.")
        return torch.bincount(self.labels, minlength=num_classes)

    def unlabeled(self, name: str | None = None) -> Split:
        return Split(name or self.name, self.images, None, self.indices)


@dataclass(frozen=True, eq=False)
class TrainData:
    """What training and model selection may see: never the test split.

    ``source_free`` views (:meth:`without_source`) are how target-only twins run: the
    labeled target takes the source's place and no source sample is present.
    """

    source: Split
    target_labeled: Split
    target_unlabeled: Split
    target_val: Split
    spec: InputSpec
    classes: tuple[str, ...]
    source_free: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def without_source(self) -> TrainData:
        """The data of A(∅, T): the labeled target plays the source's role, T_L is empty."""
        empty = _empty_split("target_labeled", self.target_labeled)
        return replace(self, source=self.target_labeled, target_labeled=empty, source_free=True)

    def only_source(self) -> TrainData:
        """The source alone (for pre-training a network on it)."""
        empty_l = _empty_split("target_labeled", self.target_labeled)
        empty_u = _empty_split("target_unlabeled", self.target_unlabeled)
        empty_v = _empty_split("target_val", self.target_val)
        return replace(self, target_labeled=empty_l, target_unlabeled=empty_u, target_val=empty_v)


def _empty_split(name: str, like: Split) -> Split:
    if hasattr(like, "empty"):  # a split streamed from disk (streaming.py)
        return like.empty(name)
    labels = torch.empty(0, dtype=torch.long) if like.labels is not None else None
    return Split(name, like.images[:0], labels, like.indices[:0])


def stratified_split(
    labels: torch.Tensor,
    fraction: float,
    generator: torch.Generator,
    num_classes: int,
    *,
    min_per_class: int = 0,
    keep_one: bool = False,
    total: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Split positions ``0..len(labels)-1`` into (chosen, rest), stratified by class.

    Each class contributes ``round(fraction * n_c)`` chosen samples; at least
    ``min_per_class`` when ``fraction > 0``; with ``keep_one`` at least one sample of each
    class stays in the rest. With ``total``, exactly ``total`` samples are chosen: each class
    gets floor(fraction * n_c) and the remainder goes to the largest fractional parts (the
    largest-remainder method), so a requested size is honoured. Both outputs are sorted.
    """
    counts = torch.bincount(labels, minlength=num_classes)[:num_classes].tolist()
    exact: dict[int, int] = {}
    if total is not None:
        shares = [fraction * n for n in counts]
        exact = {c: int(x) for c, x in enumerate(shares)}
        left = total - sum(exact.values())
        by_remainder = sorted((c for c in range(num_classes) if counts[c] > exact[c]),
                              key=lambda c: (exact[c] - shares[c], c))
        for c in by_remainder[:max(left, 0)]:
            exact[c] += 1
    chosen, rest = [], []
    for c in range(num_classes):
        idx = torch.nonzero(labels == c).flatten()
        n = len(idx)
        if n == 0:
            continue
        idx = idx[torch.randperm(n, generator=generator)]
        k = exact[c] if total is not None else round(fraction * n)
        if fraction > 0 and total is None:
            k = max(k, min_per_class)
        if keep_one:
            k = min(k, n - 1)
        k = min(max(k, 0), n)
        chosen.append(idx[:k])
        rest.append(idx[k:])
    return _sorted_cat(chosen), _sorted_cat(rest)


def _sorted_cat(parts: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat(parts).sort().values if parts else torch.empty(0, dtype=torch.long)
