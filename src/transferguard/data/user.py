"""User domains: torchvision data sets and image-folder trees.

Nothing here downloads unless the caller passes ``download=True``: a missing data set stops
with a message that names the root it looked in and the flag that fetches it.
"""

from __future__ import annotations

import inspect
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DataError
from ..utils import cache_dir
from .cache import cached_domain
from .domain import Domain

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp"}


def _default_root() -> Path:
    return cache_dir() / "torchvision"


def load_torchvision(
    name: str,
    root: str | os.PathLike[str] | None = None,
    download: bool = False,
    train: bool = True,
    size: int | None = None,
) -> Domain:
    """``torchvision:NAME``: e.g. MNIST, USPS, SVHN, CIFAR10, FashionMNIST.

    ``train`` picks the training split (``split="train"`` for data sets that name splits).
    Images of varying size (rare among these) are resized to ``size``.
    """
    import torchvision.datasets as tvd

    # data set classes only (torchvision.datasets also holds lower-case modules: usps, mnist)
    lookup = {n.lower(): n for n in dir(tvd)
              if not n.startswith("_") and inspect.isclass(getattr(tvd, n))}
    real = lookup.get(name.lower())
    cls = getattr(tvd, real) if real else None
    if cls is None or not inspect.isclass(cls):
        known = "MNIST, FashionMNIST, KMNIST, USPS, SVHN, CIFAR10, STL10"
        raise DataError(
            f"torchvision has no data set {name!r}; use one of its class names, e.g. {known}."
        )
    root = Path(root) if root is not None else _default_root()
    params = inspect.signature(cls.__init__).parameters
    kwargs: dict[str, Any] = {"root": str(root), "download": bool(download)}
    if "train" in params:
        kwargs["train"] = train
    elif "split" in params:
        kwargs["split"] = "train" if train else "test"
    try:
        ds = cls(**kwargs)
    except (RuntimeError, OSError) as exc:  # "Dataset not found ... download=True"
        hint = (
            "pass download=True (CLI: --download) to fetch it, which needs network access"
            if not download
            else "check the network connection and the root folder"
        )
        raise DataError(
            f"torchvision:{real} was not found under {root} ({exc}); {hint}, or point root at "
            f"a folder that already holds it."
        ) from exc
    images, labels = _dataset_arrays(ds, size)
    classes = _class_names(ds, labels)
    split = "train" if train else "test"
    return Domain(
        f"torchvision:{real}", images, labels, classes, f"torchvision {real} ({split})",
        {"root": str(root)},
    )


def _dataset_arrays(ds: Any, size: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    data = getattr(ds, "data", None)
    targets = getattr(ds, "targets", None)
    if targets is None:
        targets = getattr(ds, "labels", None)
    if isinstance(data, (np.ndarray, torch.Tensor)) and targets is not None:
        arr = data.numpy() if isinstance(data, torch.Tensor) else np.asarray(data)
        if arr.ndim == 3:
            arr = arr[:, None]
        elif arr.ndim == 4 and arr.shape[-1] in (1, 3) and arr.shape[1] not in (1, 3):
            arr = arr.transpose(0, 3, 1, 2)
        if arr.dtype != np.uint8:
            arr = np.clip(arr, 0, 255).astype(np.uint8)
        labels = torch.as_tensor(np.asarray(targets), dtype=torch.long)
        return torch.from_numpy(np.ascontiguousarray(arr)), labels
    # generic path: one PIL image at a time
    imgs, labels_list = [], []
    for i in range(len(ds)):
        img, y = ds[i]
        imgs.append(_pil_to_array(img, size))
        labels_list.append(int(y))
    if not imgs:
        raise DataError("the torchvision data set is empty.")
    if len({a.shape[0] for a in imgs}) > 1:  # grey and colour images mixed (e.g. Caltech101)
        imgs = [np.repeat(a, 3, 0) if a.shape[0] == 1 else a for a in imgs]
    return torch.from_numpy(np.stack(imgs)), torch.tensor(labels_list, dtype=torch.long)


def _class_names(ds: Any, labels: torch.Tensor) -> tuple[str, ...]:
    classes = getattr(ds, "classes", None)
    k = int(labels.max()) + 1
    if not classes or len(classes) < k:
        return tuple(str(i) for i in range(k))
    names = [str(c) for c in classes]
    # MNIST-like names "0 - zero" become "0", so digit sets pair with each other by name
    if all(re.match(r"^\d+ - ", c) for c in names):
        names = [c.split(" - ", 1)[0] for c in names]
    return tuple(names)


def _pil_to_array(img: Any, size: int | None) -> np.ndarray:
    from PIL import Image

    if not isinstance(img, Image.Image):
        img = Image.fromarray(np.asarray(img))
    img = img.convert("RGB") if img.mode not in ("L", "RGB") else img
    if size is not None and img.size != (size, size):
        img = img.resize((size, size), Image.BILINEAR)
    arr = np.asarray(img, dtype=np.uint8)
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


#: the default side of a folder domain whose images are larger (the input size ImageNet
#: models take): native size up to this, so a folder of photos does not decode at full size
MAX_DEFAULT_SIZE = 224
#: a folder domain whose decoded cache (images x channels x size x size bytes) exceeds this
#: warns before decoding; ``$TRANSFERGUARD_CACHE_WARN_MB`` changes it
CACHE_WARN_BYTES = 256 * 2**20
_GREY_MODES = {"1", "L", "LA", "I", "I;16", "F"}


def cache_warn_bytes() -> int:
    env = os.environ.get("TRANSFERGUARD_CACHE_WARN_MB")
    try:
        return int(float(env) * 2**20) if env else CACHE_WARN_BYTES
    except ValueError:
        return CACHE_WARN_BYTES


def native_format(paths: list[Path]) -> tuple[int, int]:
    """(size, channels) the images of a folder have: the median of their longer
    sides, capped at :data:`MAX_DEFAULT_SIZE`; 1 channel when every image is grey. Reads
    the headers only (PIL opens lazily)."""
    from PIL import Image

    sides, grey = [], True
    for p in paths:
        try:
            with Image.open(p) as im:
                sides.append(max(im.size))
                grey = grey and im.mode in _GREY_MODES
        except OSError as exc:
            raise DataError(f"could not read image {p}: {exc}; remove or fix it.") from exc
    side = int(np.median(sides))
    return min(side, MAX_DEFAULT_SIZE), 1 if grey else 3


def file_order(paths: list[Path] | list[str]) -> list[int]:
    """A canonical order of image files: by a digest of their bytes. It makes a folder
    domain (its splits, perturbation and batches) the same whatever its files and class
    folders are called, and whatever order the file system lists them in; the in-memory and
    the streamed folder domains use it alike (reading bytes needs no decoding)."""
    import hashlib

    keys = [hashlib.blake2b(Path(p).read_bytes(), digest_size=8).digest() for p in paths]
    return sorted(range(len(keys)), key=keys.__getitem__)


def load_folder(path: str, size: int | None = None, grey: bool | None = None,
                invert: bool = False) -> Domain:
    """``folder:PATH``: ``PATH/<class>/<image>``, class names the sub-folder names.

    ``size`` None (the default) keeps the images' native size when they share one (at most
    :data:`MAX_DEFAULT_SIZE`; images of mixed sizes go to the median of their longer sides,
    capped the same way); a task passes its input size. ``grey`` None keeps the native
    channels (1 when every image is grey, else 3); True / False force grey / RGB.
    ``invert`` stores 255 - pixel (dark strokes on white made white on black).

    Samples are stored in a canonical order (by a digest of their pixels), so results do not
    depend on file or folder names. Decoded images are cached (keyed by the folder, these
    options and the files' names and modification times); a cache larger than
    :func:`cache_warn_bytes` warns before the first decode.
    """
    import warnings

    root = Path(path).expanduser()
    if not root.is_dir():
        raise DataError(
            f"folder domain {str(root)!r} does not exist or is not a folder; give a path "
            "laid out as PATH/<class>/<image>.jpg (e.g. office31/amazon/images)."
        )
    if size is not None and int(size) < 1:
        raise DataError(f"folder domain size must be a positive number of pixels, got {size}.")
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir())
    files: list[tuple[Path, int]] = []
    classes = []
    for d in class_dirs:
        imgs = sorted(
            p for p in d.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        )
        if imgs:
            files.extend((p, len(classes)) for p in imgs)
            classes.append(d.name)
    if not files:
        raise DataError(
            f"no images found in folder {str(root)!r}; expected PATH/<class>/<image> with "
            f"suffixes {sorted(IMAGE_SUFFIXES)}."
        )
    files = [files[i] for i in file_order([p for p, _ in files])]
    fingerprint = [(str(p.relative_to(root)), p.stat().st_mtime_ns) for p, _ in files]
    params = {"root": str(root.resolve()), "size": "native" if size is None else int(size),
              "grey": grey, "invert": bool(invert), "order": "bytes", "files": fingerprint}

    def build() -> Domain:
        from PIL import Image

        side, channels = native_format([p for p, _ in files])
        side = side if size is None else int(size)
        channels = channels if grey is None else (1 if grey else 3)
        nbytes = len(files) * channels * side * side
        if nbytes > cache_warn_bytes():
            warnings.warn(
                f"folder:{root} decodes to {nbytes / 2**20:.0f} MB ({len(files)} images at "
                f"{channels}x{side}x{side}), cached as one file under {cache_dir()}; pass a "
                f"smaller size (folder options: size=..., or the task's input_size) if that "
                f"is more than the models need.", stacklevel=4)
        mode = "L" if channels == 1 else "RGB"
        arr = np.empty((len(files), channels, side, side), dtype=np.uint8)
        for i, (p, _) in enumerate(files):
            try:
                with Image.open(p) as im:
                    im.draft(mode, (side, side))  # fast JPEG downscale
                    im = im.convert(mode)
                    if im.size != (side, side):
                        im = im.resize((side, side), Image.BILINEAR)
                    a = np.asarray(im, dtype=np.uint8)
            except OSError as exc:
                raise DataError(f"could not read image {p}: {exc}; remove or fix it.") from exc
            arr[i] = a[None] if a.ndim == 2 else a.transpose(2, 0, 1)
        if invert:
            arr = 255 - arr
        images = torch.from_numpy(arr)
        labels = torch.tensor([label for _, label in files], dtype=torch.long)
        names = [str(p.relative_to(root)) for p, _ in files]
        return Domain(f"folder:{root.name}", images, labels, tuple(classes),
                      f"image folder {root}", {"files": names})

    return cached_domain(f"folder-{root.name}", params, build)
