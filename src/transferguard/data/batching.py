"""Batches by indexing: in-memory uint8 splits, gathered and normalised on the device.

No per-sample Python work: a batch is one index gather plus one normalisation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import DataError
from ..utils import make_generator
from .domain import InputSpec
from .splits import Split


@dataclass(frozen=True)
class Batch:
    """One mini-batch: normalised float inputs, labels (or None) and domain indices."""

    x: torch.Tensor
    y: torch.Tensor | None
    index: torch.Tensor


class BatchStream:
    """Endless shuffled mini-batches drawn from a split by indexing.

    The split's uint8 images move to ``device`` once; each batch is an index gather plus one
    normalisation. Batches run through consecutive random permutations (every sample once
    per epoch); a split smaller than the batch size yields batches that span epochs.
    """

    def __init__(
        self, split: Split, batch_size: int, spec: InputSpec, seed: int,
        device: torch.device | str = "cpu",
    ) -> None:
        if len(split) == 0:
            raise DataError(f"split {split.name!r} is empty; no batches can be drawn from it.")
        self.split, self.batch_size, self.spec = split, int(batch_size), spec
        self.device = torch.device(device)
        self.images = split.images.to(self.device)
        self.labels = split.labels.to(self.device) if split.labels is not None else None
        self.indices = split.indices.to(self.device)
        self.generator = make_generator(seed)
        self._order = torch.empty(0, dtype=torch.long)
        self._pos = 0

    def __len__(self) -> int:
        return len(self.split)

    def next(self) -> Batch:
        need = self.batch_size
        parts = []
        while need > 0:
            if self._pos >= len(self._order):
                self._order = torch.randperm(len(self.split), generator=self.generator)
                self._pos = 0
            take = self._order[self._pos : self._pos + need]
            self._pos += len(take)
            need -= len(take)
            parts.append(take)
        pos = (parts[0] if len(parts) == 1 else torch.cat(parts)).to(self.device)
        x = self.spec.normalize(self.images[pos])
        y = self.labels[pos] if self.labels is not None else None
        return Batch(x, y, self.indices[pos])

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.generator.get_state(), "order": self._order, "pos": self._pos}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.generator.set_state(state["rng"])
        self._order, self._pos = state["order"], int(state["pos"])


def iterate_batches(split: Split, spec: InputSpec, batch_size: int, device: torch.device | str):
    """Ordered, finite batches over a split (for evaluation)."""
    device = torch.device(device)
    for start in range(0, len(split), batch_size):
        imgs = split.images[start : start + batch_size].to(device)
        labels = split.labels
        y = labels[start : start + batch_size].to(device) if labels is not None else None
        yield Batch(spec.normalize(imgs), y, split.indices[start : start + batch_size])


