"""``TransferTask``: source + target + the perturbation protocol of Wang et al. (section 1.5).

Construction, all seeded by ``seed``:

1. both domains are converted to the task's :class:`InputSpec`, and their label spaces are
   checked (equal class names, or an explicit ``label_map``);
2. the source is perturbed with ε_x / ε_y (:mod:`.perturb`), masks kept;
3. the target is split, stratified by class, into a training pool and a test split
   (``test_fraction``, default 50%);
4. ``labeled_percent`` (L%) of the pool is labeled (stratified, at least one per class when
   L > 0); the rest of the pool is the unlabeled target (``unlabeled="rest"``, the default);
   ``unlabeled="pool"`` uses the whole pool but the validation split, labels stripped, as
   the unlabeled target (the reading of the methods reference, section 1.5);
5. a validation split is drawn from the labeled target only (``val_fraction`` of it, never
   the last labeled example of a class), for model selection.

Training code receives :meth:`TransferTask.train_data`, a :class:`TrainData` that holds the
source, labeled, unlabeled and validation splits and *no* reference to the test split. The
test split is reached only through :meth:`TransferTask.test_split`, which the Trainer calls
once, after training and selection are over.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from ..errors import DataError
from ..utils import derive_seed, make_generator
from .catalog import load_domain
from .domain import Domain, InputSpec
from .perturb import CORRUPTIONS, Perturbation, check_rate, perturb_source


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
    labels = torch.empty(0, dtype=torch.long) if like.labels is not None else None
    return Split(name, like.images[:0], labels, like.indices[:0])


class TransferTask:
    """Source + target + protocol. See the module docstring for the construction.

    ``source`` / ``target`` are domain names (see :func:`list_domains`) or :class:`Domain`
    objects. ``eps`` sets ε_x = ε_y (the paper's tables); ``eps_x`` / ``eps_y`` set them apart.
    ``label_map`` maps source class names to target class names when they differ; unmapped
    source classes are dropped.
    """

    def __init__(
        self,
        source: str | Domain,
        target: str | Domain,
        *,
        eps: float | None = None,
        eps_x: float | None = None,
        eps_y: float | None = None,
        labeled_percent: float = 10.0,
        val_fraction: float = 0.2,
        test_fraction: float = 0.5,
        seed: int = 0,
        spec: InputSpec | None = None,
        label_map: Mapping[str, str] | None = None,
        label_noise: str = "uniform",
        corruptions: tuple[str, ...] = CORRUPTIONS,
        source_size: int | None = None,
        source_options: Mapping[str, Any] | None = None,
        target_options: Mapping[str, Any] | None = None,
        unlabeled: str = "rest",
    ) -> None:
        if eps is not None and (eps_x is not None or eps_y is not None):
            raise DataError("give either eps (sets eps_x = eps_y) or eps_x / eps_y, not both.")
        base = 0.0 if eps is None else eps
        self.eps_x = check_rate("eps_x", base if eps_x is None else eps_x)
        self.eps_y = check_rate("eps_y", base if eps_y is None else eps_y)
        try:
            lp = float(labeled_percent)
        except (TypeError, ValueError):
            lp = -1.0
        if not 0.0 <= lp <= 100.0:
            raise DataError(
                f"labeled_percent is L% of the target pool and must lie in [0, 100], "
                f"got {labeled_percent!r} (for 10% labeled, pass 10)."
            )
        if not 0.0 <= float(val_fraction) < 1.0:
            raise DataError(f"val_fraction must lie in [0, 1), got {val_fraction!r}.")
        if not 0.0 < float(test_fraction) < 1.0:
            raise DataError(f"test_fraction must lie in (0, 1): without a test split there is "
                            f"no accuracy to report; got {test_fraction!r} (default 0.5).")
        if unlabeled not in ("rest", "pool"):
            raise DataError(f"unlabeled must be 'rest' (the pool minus the labeled samples) or "
                            f"'pool' (the whole pool minus validation), got {unlabeled!r}.")
        self.unlabeled = unlabeled
        if source_size is not None and int(source_size) < 1:
            raise DataError(f"source_size must be a positive number of samples, got {source_size}.")
        self.source_name = source if isinstance(source, str) else source.name
        self.target_name = target if isinstance(target, str) else target.name
        self._source_in, self._target_in = source, target
        if self.source_name == self.target_name and source_options == target_options:
            warnings.warn(f"source and target are the same domain ({self.source_name!r}): the "
                          "source then contains the target's test images, so the accuracy is "
                          "not a transfer result. Use two domains (or a different split of one "
                          "through its options).", stacklevel=2)
        self.labeled_percent = lp
        self.val_fraction, self.test_fraction = float(val_fraction), float(test_fraction)
        self.seed = int(seed)
        self.spec = spec or InputSpec()
        self.label_map = dict(label_map) if label_map else None
        self.label_noise = label_noise
        self.corruptions = tuple(corruptions)
        self.source_size = int(source_size) if source_size is not None else None
        self.source_options = dict(source_options or {})
        self.target_options = dict(target_options or {})

    # ------------------------------------------------------------------ identity
    def config(self) -> dict[str, Any]:
        """Everything that defines the task, as plain values (hashed by the run store)."""
        return {
            "source": self.source_name, "target": self.target_name,
            "eps_x": self.eps_x, "eps_y": self.eps_y, "labeled_percent": self.labeled_percent,
            "val_fraction": self.val_fraction, "test_fraction": self.test_fraction,
            "seed": self.seed, "spec": [self.spec.channels, self.spec.size,
                                        list(self.spec.mean), list(self.spec.std)],
            "label_map": self.label_map, "label_noise": self.label_noise,
            "corruptions": list(self.corruptions), "source_size": self.source_size,
            "source_options": self.source_options, "target_options": self.target_options,
            # only when not the default, so that records made before the option stay valid
            **({"unlabeled": self.unlabeled} if self.unlabeled != "rest" else {}),
        }

    def with_seed(self, seed: int) -> TransferTask:
        """The same protocol with other draws (perturbation and splits)."""
        clone = TransferTask.__new__(TransferTask)
        clone.__dict__.update({k: v for k, v in self.__dict__.items() if k != "_built"})
        clone.seed = int(seed)
        return clone

    def __repr__(self) -> str:
        return (
            f"TransferTask({self.source_name} -> {self.target_name}, eps_x={self.eps_x}, "
            f"eps_y={self.eps_y}, L={self.labeled_percent:g}%, seed={self.seed})"
        )

    # ------------------------------------------------------------------ construction
    @functools.cached_property
    def _built(self) -> dict[str, Any]:
        src = load_domain(self._source_in, size=self.spec.size, **self.source_options)
        tgt = load_domain(self._target_in, size=self.spec.size, **self.target_options)
        src, tgt = src.convert(self.spec), tgt.convert(self.spec)
        src = self._align_labels(src, tgt)
        if self.source_size is not None and self.source_size < len(src):
            if self.source_size < src.num_classes:
                raise DataError(f"source_size={self.source_size} is below the number of classes "
                                f"({src.num_classes}); give at least one sample per class.")
            g = make_generator(derive_seed(self.seed, "source_size"))
            keep, _ = stratified_split(src.labels, self.source_size / len(src), g, src.num_classes,
                                       total=self.source_size)
            src = src.subset(keep.sort().values)
        g = make_generator(derive_seed(self.seed, "perturb"))
        pert = perturb_source(
            src.images, src.labels, tgt.num_classes, self.eps_x, self.eps_y, g,
            label_noise=self.label_noise, corruptions=self.corruptions,
        )
        k = tgt.num_classes
        g = make_generator(derive_seed(self.seed, "split"))
        test_idx, pool_idx = stratified_split(tgt.labels, self.test_fraction, g, k)
        lab_pos, unl_pos = stratified_split(
            tgt.labels[pool_idx], self.labeled_percent / 100.0, g, k, min_per_class=1
        )
        lab_idx, unl_idx = pool_idx[lab_pos], pool_idx[unl_pos]
        val_pos, tr_pos = stratified_split(
            tgt.labels[lab_idx], self.val_fraction, g, k, keep_one=True
        )
        val_idx, tr_idx = lab_idx[val_pos], lab_idx[tr_pos]
        if self.unlabeled == "pool":
            unl_idx = torch.cat([unl_idx, tr_idx])
        all_src = torch.arange(len(src))

        def take(d: Domain, idx: torch.Tensor, name: str, labeled: bool = True) -> Split:
            idx = idx.sort().values
            return Split(name, d.images[idx], d.labels[idx] if labeled else None, idx)

        return {
            "source_domain": src, "target_domain": tgt, "perturbation": pert,
            "source": Split("source", pert.images, pert.labels, all_src),
            "target_labeled": take(tgt, tr_idx, "target_labeled"),
            "target_unlabeled": take(tgt, unl_idx, "target_unlabeled", labeled=False),
            "target_val": take(tgt, val_idx, "target_val"),
            "target_test": take(tgt, test_idx, "target_test"),
        }

    def _align_labels(self, src: Domain, tgt: Domain) -> Domain:
        if self.label_map is None:
            if src.classes != tgt.classes:
                raise DataError(
                    f"source {src.name!r} has {src.num_classes} classes {list(src.classes)[:12]} "
                    f"and target {tgt.name!r} has {tgt.num_classes} classes "
                    f"{list(tgt.classes)[:12]}; they must share the label space. Pass "
                    "label_map={source_class: target_class} to map them (unmapped source "
                    "classes are dropped)."
                )
            return src
        bad_src = sorted(set(self.label_map) - set(src.classes))
        bad_tgt = sorted(set(self.label_map.values()) - set(tgt.classes))
        if bad_src or bad_tgt:
            raise DataError(
                f"label_map names unknown classes: source {bad_src} (valid: "
                f"{list(src.classes)}), target {bad_tgt} (valid: {list(tgt.classes)})."
            )
        mapping = torch.full((src.num_classes,), -1, dtype=torch.long)
        for s_name, t_name in self.label_map.items():
            mapping[src.classes.index(s_name)] = tgt.classes.index(t_name)
        keep = mapping[src.labels] >= 0
        return src.relabel(tgt.classes, mapping.clamp(min=0), keep)

    # ------------------------------------------------------------------ public views
    @property
    def classes(self) -> tuple[str, ...]:
        return self._built["target_domain"].classes

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def perturbation(self) -> Perturbation:
        """The source perturbation, with its ε_x / ε_y masks (for harmful-sample scoring)."""
        return self._built["perturbation"]

    def train_data(self) -> TrainData:
        """The splits training and model selection may use (no test split inside)."""
        b = self._built
        return TrainData(
            b["source"], b["target_labeled"], b["target_unlabeled"], b["target_val"],
            self.spec, self.classes,
        )

    def test_split(self) -> Split:
        """The held-out target test split: for the final evaluation only."""
        return self._built["target_test"]

    def summary(self) -> dict[str, Any]:
        b = self._built
        return {
            "source": len(b["source"]), "target_labeled": len(b["target_labeled"]),
            "target_unlabeled": len(b["target_unlabeled"]), "target_val": len(b["target_val"]),
            "target_test": len(b["target_test"]), "classes": self.num_classes,
            "x_corrupted": int(b["perturbation"].x_mask.sum()),
            "y_corrupted": int(b["perturbation"].label_flipped.sum()),
        }


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
