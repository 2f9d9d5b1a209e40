"""``TransferTask``: a :class:`~.spec.TaskSpec` made real (the protocol of Wang et al., 1.5).

The spec holds and validates the settings; the task loads the domains and draws the splits
(lazily, once). Splits live in :mod:`.splits`, batching in :mod:`.batching`.

Construction, all seeded by ``seed``:

1. both domains are converted to the task's :class:`InputSpec`, and their label spaces are
   checked (equal class names, or an explicit ``label_map``);
2. the source is perturbed with ε_x / ε_y (:mod:`.perturb`), masks kept;
3. the target is split, stratified by class, into a training pool and a test split
   (``test_fraction``, default 50%);
   The clean source is compared with the test split (:mod:`.checks`): near-duplicates warn,
   or are dropped with ``overlap="drop"``; one domain dark and the other light gets a
   polarity hint;
4. ``labeled_percent`` (L%) of the pool is labeled (stratified, at least one per class when
   L > 0), or exactly ``labeled_per_class`` per class; when rounding makes the realised L
   differ from the asked one, or the validation split comes out empty, the task warns
   (:attr:`TransferTask.notes`); the rest of the pool is the unlabeled target
   (``unlabeled="rest"``, the default);
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
from .catalog import PREFIXES, load_domain
from .checks import near_duplicates, polarity_hint
from .domain import Domain, InputSpec
from .perturb import Perturbation, perturb_source
from .spec import TaskSpec
from .splits import Split, TrainData, stratified_split


def label_mismatch(src: Domain, tgt: Domain) -> str:
    """The class-mismatch error, with the shape of a label map in Python, YAML and CLI
    syntax (source classes on the left; ``<target>`` stands for the target class each one
    is, which only the user knows)."""
    first = list(src.classes)[:3]
    more = len(src.classes) > 3
    py = "{" + ", ".join(f"{s!r}: '<target>'" for s in first) + (", ..." if more else "") + "}"
    yml = "\n".join(f'        "{s}": "<target>"' for s in first) + \
        ("\n        ..." if more else "")
    cli = ",".join(f"{s}=<target>" for s in first) + (",..." if more else "")
    return (
        f"source {src.name!r} has {src.num_classes} classes {list(src.classes)[:12]} "
        f"and target {tgt.name!r} has {tgt.num_classes} classes {list(tgt.classes)[:12]}; they "
        f"must share the label space. Map source classes to target classes (unmapped source "
        f"classes are dropped):\n  Python: label_map={py}\n  YAML:\n    task:\n      "
        f"label_map:\n{yml}\n  CLI: --label-map {cli!s}  (or --label-map FILE.yaml holding the "
        f"mapping)"
    )


def per_class(labels: torch.Tensor, count: int, generator: torch.Generator,
              num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(chosen, rest): ``count`` random positions of each class (all of a smaller class)."""
    chosen, rest = [], []
    for c in range(num_classes):
        idx = torch.nonzero(labels == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=generator)]
        chosen.append(idx[:count])
        rest.append(idx[count:])
    return torch.cat(chosen).sort().values, torch.cat(rest).sort().values


@dataclasses.dataclass(frozen=True)
class TargetSplits:
    """Target-domain indices of the protocol's splits (steps 3-5 of the module docstring)."""

    test: torch.Tensor
    train: torch.Tensor  # the labeled target that trains
    val: torch.Tensor
    unlabeled: torch.Tensor
    labeled_count: int  # train + val
    pool_count: int

    @property
    def effective_labeled_percent(self) -> float:
        return 100.0 * self.labeled_count / max(1, self.pool_count)


def draw_target_splits(spec: TaskSpec, labels: torch.Tensor, num_classes: int,
                       target_name: str) -> TargetSplits:
    """Test / labeled / validation / unlabeled indices of a target with ``labels``, drawn from
    ``spec``'s seed. The one implementation of the split protocol: in-memory and streamed
    tasks both call it, so the same folder gives the same splits either way."""
    k = num_classes
    g = make_generator(derive_seed(spec.seed, "split"))
    test_idx, pool_idx = stratified_split(labels, spec.test_fraction, g, k)
    if len(test_idx) == 0 or len(pool_idx) == 0:
        need = _images_per_class(spec.test_fraction)
        counts = torch.bincount(labels, minlength=k).tolist()
        raise DataError(
            f"target {target_name!r} ({len(labels)} images, {min(counts)} to {max(counts)} per "
            f"class) leaves the {'test' if len(test_idx) == 0 else 'training'} split empty "
            f"at test_fraction={spec.test_fraction:g}: a class needs at least {need} images "
            f"(one for the test split, one labeled for training) and {need + 1} or more "
            "for a validation image too. Add images to the target, or change "
            "test_fraction.")
    if spec.labeled_per_class is not None:
        lab_pos, unl_pos = per_class(labels[pool_idx], spec.labeled_per_class, g, k)
    else:
        lab_pos, unl_pos = stratified_split(
            labels[pool_idx], spec.labeled_percent / 100.0, g, k, min_per_class=1
        )
    lab_idx, unl_idx = pool_idx[lab_pos], pool_idx[unl_pos]
    val_pos, tr_pos = stratified_split(labels[lab_idx], spec.val_fraction, g, k, keep_one=True)
    val_idx, tr_idx = lab_idx[val_pos], lab_idx[tr_pos]
    if spec.unlabeled == "pool":
        unl_idx = torch.cat([unl_idx, tr_idx])
    return TargetSplits(test_idx, tr_idx, val_idx, unl_idx, len(lab_idx), len(pool_idx))


def subsample_source(labels: torch.Tensor, spec: TaskSpec, num_classes: int) -> torch.Tensor | None:
    """Sorted positions of the ``source_size`` source samples kept (stratified), or None when
    the whole source is kept."""
    size = spec.source_size
    if size is None or size >= len(labels):
        return None
    if size < num_classes:
        raise DataError(f"source_size={size} is below the number of classes "
                        f"({num_classes}); give at least one sample per class.")
    g = make_generator(derive_seed(spec.seed, "source_size"))
    keep, _ = stratified_split(labels, size / len(labels), g, num_classes, total=size)
    return keep.sort().values


def label_mapping(src: Any, tgt: Any, label_map: dict[str, str] | None) -> torch.Tensor | None:
    """Source class index -> target class index (-1: dropped), or None when the two label
    spaces are the same. ``src`` / ``tgt`` have ``name``, ``classes`` and ``num_classes``."""
    if label_map is None:
        if tuple(src.classes) != tuple(tgt.classes):
            raise DataError(label_mismatch(src, tgt))
        return None
    bad_src = sorted(set(label_map) - set(src.classes))
    bad_tgt = sorted(set(label_map.values()) - set(tgt.classes))
    if bad_src or bad_tgt:
        raise DataError(
            f"label_map names unknown classes: source {bad_src} (valid: "
            f"{list(src.classes)}), target {bad_tgt} (valid: {list(tgt.classes)})."
        )
    mapping = torch.full((src.num_classes,), -1, dtype=torch.long)
    for s_name, t_name in label_map.items():
        mapping[list(src.classes).index(s_name)] = list(tgt.classes).index(t_name)
    return mapping


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
        if self.labeled_per_class is not None:
            lab = f"{self.labeled_per_class}/class"
        else:
            lab = f"{self.labeled_percent:g}%"
        if "_built" in self.__dict__:  # once drawn, say what L% became
            eff = self.effective_labeled_percent
            if self.labeled_per_class is not None or abs(eff - self.labeled_percent) >= 0.05:
                lab += f" (effective {eff:.1f}%)"
        return (
            f"TransferTask({self.source_name} -> {self.target_name}, eps_x={self.eps_x}, "
            f"eps_y={self.eps_y}, L={lab}, seed={self.seed})"
        )

    # ------------------------------------------------------------------ construction
    @functools.cached_property
    def _built(self) -> dict[str, Any]:
        src = load_domain(self.task_spec.source, size=self.spec.size, **self.source_options)
        tgt = load_domain(self.task_spec.target, size=self.spec.size, **self.target_options)
        src, tgt = src.convert(self.spec), tgt.convert(self.spec)
        src = self._align_labels(src, tgt)
        keep = subsample_source(src.labels, self.task_spec, src.num_classes)
        if keep is not None:
            src = src.subset(keep)
        k = tgt.num_classes
        splits = draw_target_splits(self.task_spec, tgt.labels, k, tgt.name)
        notes: list[str] = []
        src = self._check_overlap(src, tgt, splits.test, notes)
        hint = polarity_hint(src.images, tgt.images)
        if hint:
            notes.append(hint)
        notes += self._label_notes(splits.labeled_count, splits.pool_count, len(splits.val), k)
        g = make_generator(derive_seed(self.seed, "perturb"))
        pert = perturb_source(
            src.images, src.labels, tgt.num_classes, self.eps_x, self.eps_y, g,
            label_noise=self.label_noise, corruptions=self.corruptions,
        )
        for note in notes:
            warnings.warn(note, stacklevel=2)
        all_src = torch.arange(len(src))

        def take(d: Domain, idx: torch.Tensor, name: str, labeled: bool = True) -> Split:
            idx = idx.sort().values
            return Split(name, d.images[idx], d.labels[idx] if labeled else None, idx)

        return {
            "source_domain": src, "target_domain": tgt, "perturbation": pert,
            "source": Split("source", pert.images, pert.labels, all_src),
            "target_labeled": take(tgt, splits.train, "target_labeled"),
            "target_unlabeled": take(tgt, splits.unlabeled, "target_unlabeled", labeled=False),
            "target_val": take(tgt, splits.val, "target_val"),
            "target_test": take(tgt, splits.test, "target_test"), "notes": notes,
            "effective_labeled_percent": splits.effective_labeled_percent,
        }

    def _check_overlap(self, src: Domain, tgt: Domain, test_idx: torch.Tensor,
                       notes: list[str]) -> Domain:
        """Near-duplicates of target test images in the source: warn, or drop them."""
        mode = self.overlap
        user = any(not isinstance(n, str) or n.startswith(PREFIXES)
                   for n in (self.task_spec.source, self.task_spec.target))
        if mode == "off" or (mode == "auto" and not user):
            return src
        test = tgt.images[test_idx.sort().values]
        found = near_duplicates(src.images, test)
        if found.num_target == 0:
            return src

        def name(d: Domain, i: int) -> str:
            files = d.meta.get("files")
            return f"{files[i]}" if isinstance(files, list) and i < len(files) else f"#{i}"

        test_sorted = test_idx.sort().values
        ex = "; ".join(f"source {name(src, i)} ~ target {name(tgt, int(test_sorted[j]))} "
                       f"({sim:.3f})" for i, j, sim in found.examples(3))
        what = (f"{found.num_target} of {len(test)} target test images have a near-duplicate "
                f"in the source ({found.num_source} source images, cosine similarity >= "
                f"{found.threshold} on 16x16 grey thumbnails), e.g. {ex}")
        if mode == "drop":
            keep = torch.nonzero(~found.source_mask).flatten()
            if len(keep) == 0:
                raise DataError(f"{what}; dropping them leaves no source image.")
            notes.append(f"{what}; dropped from the source (overlap='drop').")
            return src.subset(keep)
        notes.append(f"{what}. The test accuracy then measures memory, not transfer; pass "
                     f"overlap='drop' (CLI: --overlap drop) to remove them from the source.")
        return src

    def _label_notes(self, labeled: int, pool: int, val: int, k: int) -> list[str]:
        """Say what a tiny target does to L% and to model selection."""
        notes = []
        eff = 100.0 * labeled / max(1, pool)
        asked = self.labeled_percent
        if self.labeled_per_class is None and labeled and \
                abs(eff - asked) > max(0.5, 0.25 * asked):
            notes.append(f"labeled_percent={asked:g}% of a pool of {pool} target images gives "
                         f"{labeled} labeled images ({eff:.1f}% effective: at least one per "
                         f"class, rounded per class); choose an exact count with "
                         f"labeled_per_class (CLI: --labeled-per-class).")
        if labeled and val == 0 and self.val_fraction > 0:
            notes.append(f"the validation split is empty ({labeled} labeled target images for "
                         f"{k} classes, and at least one per class stays for training), so "
                         f"model selection falls back to the last iterate. Label more "
                         f"(labeled_per_class=2 with val_fraction=0.5 keeps one per class for "
                         f"each), or set val_fraction=0 to select the last iterate knowingly.")
        return notes

    @property
    def notes(self) -> list[str]:
        """What the task warned about when it was built (effective L, empty validation,
        near-duplicates, polarity)."""
        return list(self._built["notes"])

    @property
    def effective_labeled_percent(self) -> float:
        """The labeled share of the target pool after rounding per class (L% as realised)."""
        return float(self._built["effective_labeled_percent"])

    def _align_labels(self, src: Domain, tgt: Domain) -> Domain:
        mapping = label_mapping(src, tgt, self.label_map)
        if mapping is None:
            return src
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

    def pool_labels(self, indices: torch.Tensor) -> torch.Tensor:
        """The held-back labels of *unlabeled-pool* samples (target-domain indices): the oracle
        of active learning. Any other index (test, validation, already labeled) is refused:
        the test split's labels never reach training."""
        b = self._built
        idx = torch.as_tensor(indices, dtype=torch.long).flatten()
        pool = b["target_unlabeled"].indices
        bad = idx[~torch.isin(idx, pool)]
        if len(bad):
            raise DataError(f"pool_labels gives labels of the unlabeled target pool only; "
                            f"indices {bad[:5].tolist()} are not in it (test, validation or "
                            "already labeled samples).")
        return b["target_domain"].labels[idx].clone()

    def summary(self) -> dict[str, Any]:
        b = self._built
        return {
            "source": len(b["source"]), "target_labeled": len(b["target_labeled"]),
            "target_unlabeled": len(b["target_unlabeled"]), "target_val": len(b["target_val"]),
            "target_test": len(b["target_test"]), "classes": self.num_classes,
            "labeled_percent_effective": round(b["effective_labeled_percent"], 2),
            "x_corrupted": int(b["perturbation"].x_mask.sum()),
            "y_corrupted": int(b["perturbation"].label_flipped.sum()),
        }




def _images_per_class(test_fraction: float) -> int:
    """The fewest images of a class that give it a test image and a training image."""
    n = 2
    while n < 1000 and not (1 <= round(test_fraction * n) <= n - 1):
        n += 1
    return n
