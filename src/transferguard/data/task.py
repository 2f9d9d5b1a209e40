"""``TransferTask``: a :class:`~.spec.TaskSpec` made real (the protocol of Wang et al., 1.5).

The spec holds and validates the settings; the task loads the domains and draws the splits
(lazily, once). Splits live in :mod:`.splits`, batching in :mod:`.batching`.

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

import dataclasses
import functools
import warnings
from typing import Any

import torch

from ..errors import DataError
from ..utils import derive_seed, make_generator
from .catalog import load_domain
from .domain import Domain, InputSpec
from .perturb import Perturbation, perturb_source
from .spec import TaskSpec
from .splits import Split, TrainData, stratified_split


class TransferTask:
    """Source + target + protocol. See the module docstring for the construction.

    ``TransferTask(source, target, **settings)`` takes the fields of :class:`TaskSpec`
    (``eps``, ``eps_x``, ``eps_y``, ``labeled_percent``, ``spec`` ...);
    ``TransferTask.from_spec(spec)`` takes a spec. ``source`` / ``target`` are domain names
    (see :func:`list_domains`) or :class:`Domain` objects. ``label_map`` maps source class
    names to target class names when they differ; unmapped source classes are dropped.
    """

    def __init__(self, source: str | Domain, target: str | Domain, **settings: Any) -> None:
        valid = {f.name for f in dataclasses.fields(TaskSpec)} - {"source", "target"}
        bad = sorted(set(settings) - valid)
        if bad:
            raise DataError(f"unknown task settings {bad}; valid: {sorted(valid)}.")
        self._init(TaskSpec(source, target, **settings))

    @classmethod
    def from_spec(cls, spec: TaskSpec) -> TransferTask:
        task = cls.__new__(cls)
        task._init(spec)
        return task

    def _init(self, spec: TaskSpec, warn: bool = True) -> None:
        self.task_spec = spec
        if warn and spec.source_name == spec.target_name and \
                spec.source_options == spec.target_options:
            warnings.warn(f"source and target are the same domain ({spec.source_name!r}): the "
                          "source then contains the target's test images, so the accuracy is "
                          "not a transfer result. Use two domains (or a different split of one "
                          "through its options).", stacklevel=3)

    # ------------------------------------------------------------------ the settings
    def __getattr__(self, name: str) -> Any:
        # the spec's fields read as the task's own (task.eps_x, task.labeled_percent, ...)
        if name != "task_spec" and "task_spec" in self.__dict__ and \
                hasattr(self.task_spec, name):
            return getattr(self.task_spec, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @property
    def spec(self) -> InputSpec:
        return self.task_spec.spec

    def config(self) -> dict[str, Any]:
        """Everything that defines the task, as plain values (hashed by the run store)."""
        return self.task_spec.config()

    def with_seed(self, seed: int) -> TransferTask:
        """The same protocol with other draws (perturbation and splits)."""
        task = TransferTask.__new__(TransferTask)
        task._init(self.task_spec.with_seed(seed), warn=False)
        return task

    def __repr__(self) -> str:
        return (
            f"TransferTask({self.source_name} -> {self.target_name}, eps_x={self.eps_x}, "
            f"eps_y={self.eps_y}, L={self.labeled_percent:g}%, seed={self.seed})"
        )

    # ------------------------------------------------------------------ construction
    @functools.cached_property
    def _built(self) -> dict[str, Any]:
        src = load_domain(self.task_spec.source, size=self.spec.size, **self.source_options)
        tgt = load_domain(self.task_spec.target, size=self.spec.size, **self.target_options)
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
        if len(test_idx) == 0 or len(pool_idx) == 0:
            need = _images_per_class(self.test_fraction)
            counts = torch.bincount(tgt.labels, minlength=k).tolist()
            raise DataError(
                f"target {tgt.name!r} ({len(tgt)} images, {min(counts)} to {max(counts)} per "
                f"class) leaves the {'test' if len(test_idx) == 0 else 'training'} split empty "
                f"at test_fraction={self.test_fraction:g}: a class needs at least {need} images "
                f"(one for the test split, one labeled for training) and {need + 1} or more "
                "for a validation image too. Add images to the target, or change "
                "test_fraction.")
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




def _images_per_class(test_fraction: float) -> int:
    """The fewest images of a class that give it a test image and a training image."""
    n = 2
    while n < 1000 and not (1 <= round(test_fraction * n) <= n - 1):
        n += 1
    return n
