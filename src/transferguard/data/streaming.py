"""Image folders that do not fit in memory: splits that stay on disk, streamed by a DataLoader.

The built-in domains live in memory as uint8 tensors and are batched by indexing
(:class:`~transferguard.data.BatchStream`). Office-31 / Office-Home at 224 px for a ResNet-50
do not: 15,500 Office-Home images are 2.3 GB as uint8 at 224 px, and the standard recipe
augments every draw anyway. :class:`StreamingTask` runs the same protocol (section 1.5 of the
methods reference: ε_x / ε_y on the source, stratified test / labeled / unlabeled /
validation splits of the target, the same seeds and so the same split indices as
:class:`~transferguard.data.TransferTask` on the same folders) but keeps only file names and
labels in memory. Its splits are :class:`FileSplit` objects; the Trainer draws from them
through the two functions of the seam, :func:`open_stream` and :func:`eval_batches`, which
fall back to the in-memory fast path for an ordinary :class:`~transferguard.data.Split`.

Streaming, in order:

1. a seeded *batch sampler* yields, per batch, (position, sample seed) pairs: consecutive
   random permutations (every sample once per epoch), each draw with a seed of its own, so
   the crops and flips are the same whatever the number of workers, and a checkpoint
   resumes the stream exactly (its state is the number of batches consumed);
2. ``num_workers`` processes decode the images. With ``cache=True`` (the default) each image
   is decoded once and stored, resized so its shorter side is ``size / 0.875`` (256 for 224),
   as a JPEG under :func:`transferguard.utils.cache_dir`; later epochs decode the small file
   (a full-size Office-Home photo is up to 6,000 px wide);
3. training draws get the standard ImageNet augmentation: a random resized crop (scale
   0.08-1, aspect ratio 3/4-4/3) to ``size`` and a horizontal flip with probability 1/2;
   evaluation draws get resize (shorter side ``size / 0.875``) and a centre crop. A source
   image chosen by ε_x is corrupted after the crop, with a generator of its own (the same
   corruption every epoch, as in the in-memory path, but not the same draws);
4. batches leave the workers as uint8 (a quarter of the bytes of floats), in pinned memory
   when the device is CUDA, and are normalised on the device, as in the fast path.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import random
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DataError
from ..utils import cache_dir, derive_seed, make_generator
from .batching import Batch, BatchStream, iterate_batches
from .domain import InputSpec
from .perturb import CORRUPTIONS, corrupt_images, perturb_labels
from .splits import Split
from .task import TransferTask, draw_target_splits, label_mapping, subsample_source
from .user import IMAGE_SUFFIXES

#: the eval resize of the ImageNet recipe: shorter side size / 0.875 (256 for 224), then crop
CROP_FRACTION = 0.875


@dataclass(frozen=True)
class LoaderOptions:
    """How a :class:`StreamingTask` streams its images (no effect on which images or labels).

    ``num_workers=None`` takes ``min(8, cpu count)``; ``pin_memory=None`` pins when the
    device is CUDA. ``augment=False`` gives training draws the evaluation transform.
    ``cache=False`` decodes the original file at every draw.
    """

    num_workers: int | None = None
    prefetch_factor: int = 4
    pin_memory: bool | None = None
    augment: bool = True
    cache: bool = True
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)

    def __post_init__(self) -> None:
        for name in ("scale", "ratio"):  # YAML gives lists
            value = getattr(self, name)
            if len(value) != 2:
                raise DataError(f"{name} must be a (low, high) pair, got {value!r}.")
            object.__setattr__(self, name, (float(value[0]), float(value[1])))
        if self.num_workers is not None and int(self.num_workers) < 0:
            raise DataError(f"num_workers must be >= 0 (0 decodes in the training process), "
                            f"got {self.num_workers}.")
        if int(self.prefetch_factor) < 1:
            raise DataError(f"prefetch_factor must be >= 1, got {self.prefetch_factor}.")
        lo, hi = self.scale
        if not 0 < lo <= hi <= 1:
            raise DataError(f"scale must satisfy 0 < low <= high <= 1, got {self.scale}.")
        if not 0 < self.ratio[0] <= self.ratio[1]:
            raise DataError(f"ratio must satisfy 0 < low <= high, got {self.ratio}.")

    @property
    def workers(self) -> int:
        if self.num_workers is not None:
            return int(self.num_workers)
        return min(8, os.cpu_count() or 1)

    def identity(self) -> dict[str, Any]:
        """What changes the numbers a run gives (workers, pinning and the cache do not)."""
        return {"augment": self.augment, "scale": list(self.scale), "ratio": list(self.ratio)}


# --------------------------------------------------------------------------------------------
# the folder index: file names and labels, no pixels
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class FolderIndex:
    """``PATH/<class>/<image>`` as file paths, modification times, labels and class names."""

    name: str
    root: Path
    files: tuple[str, ...]
    mtimes: tuple[int, ...]
    labels: torch.Tensor
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.files)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @classmethod
    def scan(cls, path: str | os.PathLike[str]) -> FolderIndex:
        """Index a folder (the layout and the errors of ``folder:`` domains)."""
        root = Path(path).expanduser()
        if not root.is_dir():
            raise DataError(
                f"folder domain {str(root)!r} does not exist or is not a folder; give a path "
                "laid out as PATH/<class>/<image>.jpg (e.g. office31/amazon/images)."
            )
        files: list[str] = []
        mtimes: list[int] = []
        labels: list[int] = []
        classes: list[str] = []
        for d in sorted(p for p in root.iterdir() if p.is_dir()):
            imgs = sorted(p for p in d.rglob("*")
                          if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if not imgs:
                continue
            for p in imgs:
                files.append(str(p))
                mtimes.append(p.stat().st_mtime_ns)
                labels.append(len(classes))
            classes.append(d.name)
        if not files:
            raise DataError(
                f"no images found in folder {str(root)!r}; expected PATH/<class>/<image> with "
                f"suffixes {sorted(IMAGE_SUFFIXES)}."
            )
        from .user import file_order  # the in-memory folder domain's canonical order

        order = file_order(files)
        files = [files[i] for i in order]
        mtimes = [mtimes[i] for i in order]
        labels = [labels[i] for i in order]
        return cls(f"folder:{root.name}", root.resolve(), tuple(files), tuple(mtimes),
                   torch.tensor(labels, dtype=torch.long), tuple(classes))


# --------------------------------------------------------------------------------------------
# FileSplit: a split whose pixels stay on disk
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class FileSplit:
    """A split of image files: what :class:`~transferguard.data.Split` is, without pixels.

    ``files`` are the paths of its samples, ``indices`` their positions in the domain they
    came from (for the source: in the perturbed source, as the gate's scores expect),
    ``corrupt`` marks the ε_x-corrupted samples. ``spec`` and ``options`` say how to decode.
    """

    name: str
    files: tuple[str, ...]
    mtimes: tuple[int, ...]
    labels: torch.Tensor | None
    indices: torch.Tensor
    spec: InputSpec
    options: LoaderOptions = field(default_factory=LoaderOptions)
    corrupt: torch.Tensor | None = None
    corrupt_seed: int = 0
    corruptions: tuple[str, ...] = CORRUPTIONS

    def __len__(self) -> int:
        return len(self.files)

    def __repr__(self) -> str:
        kind = "labeled" if self.labels is not None else "unlabeled"
        return f"FileSplit({self.name!r}, n={len(self)}, {kind}, streamed from disk)"

    @property
    def labeled(self) -> bool:
        return self.labels is not None

    @property
    def images(self) -> torch.Tensor:
        raise DataError(
            f"split {self.name!r} streams its {len(self)} images from disk and holds no image "
            "tensor; draw batches with open_stream / eval_batches (the Trainer does), or load "
            "the folder in memory with TransferTask when it fits."
        )

    def class_counts(self, num_classes: int) -> torch.Tensor:
        if self.labels is None:
            raise DataError(f"split {self.name!r} is unlabeled; it has no class counts.")
        return torch.bincount(self.labels, minlength=num_classes)

    def unlabeled(self, name: str | None = None) -> FileSplit:
        return replace(self, name=name or self.name, labels=None)

    def empty(self, name: str) -> FileSplit:
        """The same kind of split with no samples (what a source-free twin leaves empty)."""
        labels = self.labels[:0] if self.labels is not None else None
        corrupt = self.corrupt[:0] if self.corrupt is not None else None
        return replace(self, name=name, files=(), mtimes=(), labels=labels,
                       indices=self.indices[:0], corrupt=corrupt)

    def fingerprint(self) -> list[Any]:
        """Size and a digest of the files, their times, labels and corruption marks."""
        h = hashlib.sha256()
        for f, m in zip(self.files, self.mtimes):
            h.update(f"{f}\0{m}\0".encode())
        for t in (self.indices, self.labels, self.corrupt):
            if t is not None:
                h.update(t.detach().cpu().contiguous().numpy().tobytes())
        h.update(repr((self.spec, self.options.identity(), self.corrupt_seed)).encode())
        return [len(self), h.hexdigest()[:16]]

    def dataset(self, train: bool) -> FolderDataset:
        return FolderDataset(self, train=train and self.options.augment)


def _split_from(index: FolderIndex, positions: torch.Tensor, name: str, spec: InputSpec,
                options: LoaderOptions, labels: torch.Tensor | None, **kw: Any) -> FileSplit:
    pos = positions.tolist()
    return FileSplit(name, tuple(index.files[i] for i in pos), tuple(index.mtimes[i] for i in pos),
                     labels, positions.clone(), spec, options, **kw)


# --------------------------------------------------------------------------------------------
# decoding: the data set the workers run
# --------------------------------------------------------------------------------------------


def _cache_root(side: int) -> Path:
    return cache_dir() / "resized" / f"short{side}"


def _cache_path(root: Path, file: str, mtime: int) -> Path:
    digest = hashlib.sha256(f"{file}\0{mtime}".encode()).hexdigest()
    return root / digest[:2] / f"{digest[2:24]}.jpg"


def random_resized_crop_box(width: int, height: int, rng: random.Random,
                            scale: Sequence[float] = (0.08, 1.0),
                            ratio: Sequence[float] = (3 / 4, 4 / 3)) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of an Inception-style random crop (torchvision's rule:
    ten tries at a random area fraction and log-uniform aspect ratio, then a centre crop at
    the nearest allowed ratio)."""
    area = width * height
    log_lo, log_hi = np.log(ratio[0]), np.log(ratio[1])
    for _ in range(10):
        target = area * rng.uniform(scale[0], scale[1])
        aspect = float(np.exp(rng.uniform(log_lo, log_hi)))
        w = round((target * aspect) ** 0.5)
        h = round((target / aspect) ** 0.5)
        if 0 < w <= width and 0 < h <= height:
            left = rng.randint(0, width - w)
            top = rng.randint(0, height - h)
            return left, top, left + w, top + h
    in_ratio = width / height
    if in_ratio < ratio[0]:
        w, h = width, round(width / ratio[0])
    elif in_ratio > ratio[1]:
        h, w = height, round(height * ratio[1])
    else:
        w, h = width, height
    left, top = (width - w) // 2, (height - h) // 2
    return left, top, left + w, top + h


def center_crop_box(width: int, height: int, size: int) -> tuple[float, float, float, float]:
    """The region that resize(shorter side = size / 0.875) + centre crop(size) keeps."""
    side = min(width, height) * CROP_FRACTION
    left, top = (width - side) / 2, (height - side) / 2
    return left, top, left + side, top + side


class FolderDataset(torch.utils.data.Dataset):
    """Item ``(position, seed)`` -> (uint8 image (C, S, S), label or -1, domain index)."""

    def __init__(self, split: FileSplit, train: bool) -> None:
        self.split, self.train = split, train
        self.size = split.spec.size
        self.side = round(self.size / CROP_FRACTION)
        self.mode = "L" if split.spec.channels == 1 else "RGB"
        self.cache = _cache_root(self.side) if split.options.cache else None

    def __len__(self) -> int:
        return len(self.split)

    def _open(self, pos: int):
        from PIL import Image

        file, mtime = self.split.files[pos], self.split.mtimes[pos]
        cached = _cache_path(self.cache, file, mtime) if self.cache is not None else None
        if cached is not None:
            try:
                with Image.open(cached) as im:
                    im.load()
                    return im.convert(self.mode)
            except (FileNotFoundError, OSError):
                pass  # not cached yet (or a torn file from a killed run): decode the original
        try:
            with Image.open(file) as im:
                im.draft("RGB", (self.side, self.side))  # JPEG: decode at a reduced scale
                im = im.convert("RGB")
                w, h = im.size
                if min(w, h) > self.side:
                    k = self.side / min(w, h)
                    im = im.resize((max(1, round(w * k)), max(1, round(h * k))),
                                   Image.BILINEAR, reducing_gap=3.0)
        except OSError as exc:
            raise DataError(f"could not read image {file}: {exc}; remove or fix it.") from exc
        if cached is not None:
            # decode what was cached, so the first epoch sees the pixels later epochs see
            im = _write_jpeg(im, cached)
        return im.convert(self.mode)

    def __getitem__(self, item: tuple[int, int | None]) -> tuple[torch.Tensor, int, int]:
        from PIL import Image

        pos, seed = item
        im = self._open(pos)
        w, h = im.size
        flip = False
        if self.train:
            rng = random.Random(seed)
            opts = self.split.options
            box: tuple[float, ...] = random_resized_crop_box(w, h, rng, opts.scale, opts.ratio)
            flip = rng.random() < 0.5
        else:
            box = center_crop_box(w, h, self.size)
        im = im.resize((self.size, self.size), Image.BILINEAR, box=box)
        if flip:
            im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        a = np.asarray(im, dtype=np.uint8)
        x = torch.from_numpy((a[None] if a.ndim == 2 else a.transpose(2, 0, 1)).copy())
        corrupt = self.split.corrupt
        if corrupt is not None and bool(corrupt[pos]):
            index = int(self.split.indices[pos])
            g = make_generator(derive_seed(self.split.corrupt_seed, "corrupt", index))
            x = corrupt_images(x[None], g, self.split.corruptions)[0]
        labels = self.split.labels
        y = int(labels[pos]) if labels is not None else -1
        return x.contiguous(), y, int(self.split.indices[pos])


def _write_jpeg(im: Any, path: Path) -> Any:
    """Encode ``im`` as the cached JPEG, write it atomically (workers that race on one file
    each rename a whole file into place) and return the image decoded from those bytes."""
    from PIL import Image

    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=90)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(buf.getvalue())
            os.replace(tmp, path)
        except OSError:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError:
        pass  # a full or read-only disk costs the cache, not the run
    buf.seek(0)
    with Image.open(buf) as decoded:
        decoded.load()
        return decoded.copy()


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)  # the workers are the parallelism; no oversubscription


# --------------------------------------------------------------------------------------------
# samplers and streams
# --------------------------------------------------------------------------------------------


class EndlessBatches(torch.utils.data.Sampler):
    """Batches of (position, seed): consecutive seeded permutations, from ``start`` samples on.

    Epoch e is ``randperm(n)`` under ``derive_seed(seed, "epoch", e)`` and draw j of it has
    the seed ``derive_seed(seed, e, j)``: the sequence is a pure function of the seed, so a
    stream resumes at any point by skipping (no image is decoded while skipping).
    """

    def __init__(self, n: int, batch_size: int, seed: int, start: int = 0) -> None:
        self.n, self.batch_size, self.seed, self.start = n, batch_size, seed, start

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        epoch, pos = divmod(self.start, self.n)
        perm = self._perm(epoch)
        batch: list[tuple[int, int]] = []
        while True:
            if pos >= self.n:
                epoch, pos = epoch + 1, 0
                perm = self._perm(epoch)
            batch.append((perm[pos], derive_seed(self.seed, epoch, pos)))
            pos += 1
            if len(batch) == self.batch_size:
                yield batch
                batch = []

    def _perm(self, epoch: int) -> list[int]:
        g = make_generator(derive_seed(self.seed, "epoch", epoch))
        return torch.randperm(self.n, generator=g).tolist()


def _loader(split: FileSplit, batch_sampler: Any, device: torch.device, train: bool,
            batches: int | None = None) -> torch.utils.data.DataLoader:
    """A DataLoader over ``split``; a worker decodes whole batches, so a finite loader of
    ``batches`` batches gets at most that many workers (none for one batch: starting a
    process would only add its start-up time)."""
    opts = split.options
    workers = opts.workers
    if batches is not None:
        workers = 0 if batches <= 1 else min(workers, batches)
    pin = opts.pin_memory if opts.pin_memory is not None else device.type == "cuda"
    extra: dict[str, Any] = {}
    if workers > 0:
        extra = {"prefetch_factor": opts.prefetch_factor, "worker_init_fn": _worker_init}
    return torch.utils.data.DataLoader(
        split.dataset(train), batch_sampler=batch_sampler, num_workers=workers,
        pin_memory=pin and torch.cuda.is_available(), **extra,
    )


def _to_batch(item: Sequence[torch.Tensor], spec: InputSpec, device: torch.device,
              labeled: bool) -> Batch:
    x, y, idx = item
    x = spec.normalize(x.to(device, non_blocking=True))
    return Batch(x, y.to(device, non_blocking=True) if labeled else None, idx.to(device))


class LoaderStream:
    """:class:`~transferguard.data.BatchStream`'s interface over a DataLoader of files.

    Endless, augmented (``train=True``) batches; ``state_dict`` is the number of batches
    consumed, which is all a resume needs (see :class:`EndlessBatches`).
    """

    def __init__(self, split: FileSplit, batch_size: int, spec: InputSpec, seed: int,
                 device: torch.device | str = "cpu", train: bool = True) -> None:
        if len(split) == 0:
            raise DataError(f"split {split.name!r} is empty; no batches can be drawn from it.")
        self.split, self.batch_size, self.spec = split, int(batch_size), spec
        self.seed, self.device, self.train = int(seed), torch.device(device), train
        self.consumed = 0
        self._it: Iterator[Any] | None = None

    def __len__(self) -> int:
        return len(self.split)

    def next(self) -> Batch:
        if self._it is None:
            sampler = EndlessBatches(len(self.split), self.batch_size, self.seed,
                                     start=self.consumed * self.batch_size)
            self._it = iter(_loader(self.split, sampler, self.device, self.train))
        item = next(self._it)
        self.consumed += 1
        return _to_batch(item, self.spec, self.device, self.split.labeled)

    def close(self) -> None:
        """Stop the workers now (they also stop when the stream is garbage-collected)."""
        self._it = None

    def state_dict(self) -> dict[str, Any]:
        return {"consumed": self.consumed}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.consumed = int(state["consumed"])
        self._it = None


# --------------------------------------------------------------------------------------------
# the seam: what the Trainer calls, for either kind of split
# --------------------------------------------------------------------------------------------


def open_stream(split: Split | FileSplit, batch_size: int, spec: InputSpec, seed: int,
                device: torch.device | str = "cpu") -> BatchStream | LoaderStream:
    """Endless training batches: indexing in memory for a Split, a DataLoader for files."""
    if isinstance(split, FileSplit):
        return LoaderStream(split, batch_size, spec, seed, device)
    return BatchStream(split, batch_size, spec, seed, device)


def eval_batches(split: Split | FileSplit, spec: InputSpec, batch_size: int,
                 device: torch.device | str) -> Iterator[Batch]:
    """Ordered, finite, un-augmented batches over a split (for evaluation and scoring)."""
    if not isinstance(split, FileSplit):
        yield from iterate_batches(split, spec, batch_size, device)
        return
    device = torch.device(device)
    order = [(i, None) for i in range(len(split))]
    batches = [order[s : s + batch_size] for s in range(0, len(order), batch_size)]
    for item in _loader(split, batches, device, train=False, batches=len(batches)):
        yield _to_batch(item, spec, device, split.labeled)


# --------------------------------------------------------------------------------------------
# the task
# --------------------------------------------------------------------------------------------


class StreamingTask(TransferTask):
    """:class:`~transferguard.data.TransferTask` over image folders that stay on disk.

    ``source`` and ``target`` are ``folder:PATH`` names (or ``pathlib.Path`` objects). The
    protocol, its arguments and its split indices are those of ``TransferTask`` on the same folders;
    ``loader`` (:class:`LoaderOptions`) sets the workers, the augmentation and the cache.
    Use ``spec=InputSpec.imagenet(224)`` for torchvision's pretrained backbones.
    """

    def __init__(self, source: str, target: str, *, loader: LoaderOptions | None = None,
                 **kwargs: Any) -> None:
        if kwargs.get("source_options") or kwargs.get("target_options"):
            raise DataError("StreamingTask reads folders as they are; source_options / "
                            "target_options do not apply (the size comes from spec).")
        source, target = _folder_name(source, "source"), _folder_name(target, "target")
        stream = dataclasses.asdict(loader or LoaderOptions())
        super().__init__(source, target, stream=stream, **kwargs)

    @property
    def loader(self) -> LoaderOptions:
        return self.task_spec.loader_options()

    def with_seed(self, seed: int) -> StreamingTask:
        task = StreamingTask.__new__(StreamingTask)
        task._init(self.task_spec.with_seed(seed), warn=False)
        return task

    def __repr__(self) -> str:
        return "Streaming" + super().__repr__()

    @cached_property
    def _built(self) -> dict[str, Any]:  # type: ignore[override]
        src = FolderIndex.scan(self.source_name.split(":", 1)[1])
        tgt = FolderIndex.scan(self.target_name.split(":", 1)[1])
        src_pos, src_labels = self._aligned(src, tgt)
        keep = subsample_source(src_labels, self.task_spec, tgt.num_classes)
        if keep is not None:
            src_pos, src_labels = src_pos[keep], src_labels[keep]
        g = make_generator(derive_seed(self.seed, "perturb"))
        pert = perturb_labels(src_labels, tgt.num_classes, self.eps_x, self.eps_y, g,
                              label_noise=self.label_noise)
        splits = draw_target_splits(self.task_spec, tgt.labels, tgt.num_classes, tgt.name)
        spec, opts = self.spec, self.loader
        source = FileSplit(
            "source", tuple(src.files[i] for i in src_pos.tolist()),
            tuple(src.mtimes[i] for i in src_pos.tolist()), pert.labels,
            torch.arange(len(src_pos)), spec, opts, corrupt=pert.x_mask,
            corrupt_seed=derive_seed(self.seed, "perturb-images"), corruptions=self.corruptions,
        )

        def take(idx: torch.Tensor, name: str, labeled: bool = True) -> FileSplit:
            idx = idx.sort().values
            return _split_from(tgt, idx, name, spec, opts, tgt.labels[idx] if labeled else None)

        return {
            "source_domain": src, "target_domain": tgt, "perturbation": pert,
            "source": source,
            "target_labeled": take(splits.train, "target_labeled"),
            "target_unlabeled": take(splits.unlabeled, "target_unlabeled", labeled=False),
            "target_val": take(splits.val, "target_val"),
            "target_test": take(splits.test, "target_test"),
            "notes": self._label_notes(splits.labeled_count, splits.pool_count, len(splits.val),
                                       tgt.num_classes),
            "effective_labeled_percent": splits.effective_labeled_percent,
        }

    def _aligned(self, src: FolderIndex, tgt: FolderIndex) -> tuple[torch.Tensor, torch.Tensor]:
        """Positions of the source files kept and their labels in the target's label space."""
        everything = torch.arange(len(src))
        mapping = label_mapping(src, tgt, self.label_map)
        if mapping is None:
            return everything, src.labels
        keep = torch.nonzero(mapping[src.labels] >= 0).flatten()
        return everything[keep], mapping[src.labels[keep]]


def _folder_name(name: Any, role: str) -> str:
    if isinstance(name, os.PathLike):
        return f"folder:{os.fspath(name)}"
    if isinstance(name, str) and name.startswith("folder:"):
        return name
    raise DataError(f"StreamingTask streams image folders; the {role} {name!r} is not one. "
                    "Give 'folder:PATH' (PATH/<class>/<image>), or use TransferTask for "
                    "built-in and torchvision domains (they fit in memory).")
