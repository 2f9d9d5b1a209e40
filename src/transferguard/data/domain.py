"""``Domain`` (a labeled image set) and ``InputSpec`` (the shape every model input takes).

A domain keeps its images as a ``uint8`` tensor of shape (N, C, H, W) at its *native* shape.
Pairing two domains means converting both to one :class:`InputSpec` explicitly
(:meth:`Domain.convert`): resize, replicate or merge channels. Normalisation to floats is done
per batch on the device (:meth:`InputSpec.normalize`), so a domain costs one byte per pixel in
memory and batches are drawn by indexing, with no per-sample Python work.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ..errors import DataError

_LUMA = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class InputSpec:
    """The input every model of a task sees: ``channels`` x ``size`` x ``size`` floats.

    ``mean``/``std`` normalise ``[0, 1]`` pixels. The default maps them to ``[-1, 1]``;
    :meth:`imagenet` gives the statistics torchvision's pretrained weights expect.
    """

    channels: int = 3
    size: int = 32
    mean: tuple[float, ...] = (0.5,)
    std: tuple[float, ...] = (0.5,)

    def __post_init__(self) -> None:
        if self.channels not in (1, 3):
            raise DataError(f"InputSpec.channels must be 1 or 3, got {self.channels}.")
        if int(self.size) < 8:
            raise DataError(f"InputSpec.size must be at least 8 pixels, got {self.size}.")
        for name in ("mean", "std"):
            value = tuple(float(v) for v in getattr(self, name))
            if len(value) == 1:
                value = value * self.channels
            if len(value) != self.channels:
                raise DataError(
                    f"InputSpec.{name} has {len(value)} entries for {self.channels} channels; "
                    f"give one value per channel."
                )
            object.__setattr__(self, name, value)
        if any(s <= 0 for s in self.std):
            raise DataError("InputSpec.std must be positive.")

    @classmethod
    def imagenet(cls, size: int = 224) -> InputSpec:
        """The normalisation of torchvision's ImageNet weights."""
        return cls(3, size, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.channels, self.size, self.size)

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (B, C, H, W) -> normalised float32 on the same device."""
        x = images.float().div_(255.0)
        mean = torch.tensor(self.mean, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(1, -1, 1, 1)
        return x.sub_(mean).div_(std)


@dataclass(frozen=True, eq=False)
class Domain:
    """A labeled image set: ``uint8`` images (N, C, H, W), int64 labels, class names."""

    name: str
    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]
    description: str = ""
    meta: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        imgs, labels = self.images, self.labels
        if not isinstance(imgs, torch.Tensor) or imgs.dtype != torch.uint8 or imgs.dim() != 4:
            raise DataError(
                f"domain {self.name!r}: images must be a uint8 tensor of shape (N, C, H, W), "
                f"got {getattr(imgs, 'dtype', type(imgs))} with shape "
                f"{tuple(getattr(imgs, 'shape', ()))}."
            )
        if imgs.shape[0] == 0:
            raise DataError(f"domain {self.name!r} is empty: it has no images.")
        if imgs.shape[1] not in (1, 3):
            raise DataError(
                f"domain {self.name!r}: images have {imgs.shape[1]} channels; "
                "only 1 (grey) or 3 (RGB) are supported."
            )
        if labels.dim() != 1 or labels.shape[0] != imgs.shape[0]:
            raise DataError(
                f"domain {self.name!r}: {imgs.shape[0]} images but labels of shape "
                f"{tuple(labels.shape)}; give one integer label per image."
            )
        object.__setattr__(self, "labels", labels.long())
        object.__setattr__(self, "classes", tuple(str(c) for c in self.classes))
        if len(set(self.classes)) != len(self.classes):
            raise DataError(f"domain {self.name!r}: class names repeat: {self.classes}.")
        lo, hi = int(self.labels.min()), int(self.labels.max())
        if lo < 0 or hi >= len(self.classes):
            raise DataError(
                f"domain {self.name!r}: labels span [{lo}, {hi}] but there are "
                f"{len(self.classes)} classes; labels must lie in [0, {len(self.classes) - 1}]."
            )

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __repr__(self) -> str:
        c, h, w = self.shape
        k = self.num_classes
        return f"Domain({self.name!r}, n={len(self)}, shape={c}x{h}x{w}, classes={k})"

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.images.shape[1:])  # type: ignore[return-value]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def class_counts(self) -> torch.Tensor:
        return torch.bincount(self.labels, minlength=self.num_classes)

    def subset(self, indices: torch.Tensor | Sequence[int], name: str | None = None) -> Domain:
        idx = torch.as_tensor(indices, dtype=torch.long)
        return Domain(
            name or self.name, self.images[idx], self.labels[idx], self.classes,
            self.description, dict(self.meta),
        )

    def convert(self, spec: InputSpec, chunk: int = 2048) -> Domain:
        """Return this domain at ``spec``'s channels and size (still uint8).

        Grey -> RGB replicates the channel; RGB -> grey uses ITU-R 601 luma. Resizing is
        bilinear with antialiasing, so shrinking a large photo does not alias.
        """
        c, h, w = self.shape
        if (c, h, w) == spec.shape:
            return self
        out = torch.empty((len(self), *spec.shape), dtype=torch.uint8)
        for start in range(0, len(self), chunk):
            x = self.images[start : start + chunk].float()
            if (h, w) != (spec.size, spec.size):
                x = F.interpolate(
                    x, size=(spec.size, spec.size), mode="bilinear",
                    align_corners=False, antialias=True,
                )
            if c == 1 and spec.channels == 3:
                x = x.expand(-1, 3, -1, -1)
            elif c == 3 and spec.channels == 1:
                luma = torch.tensor(_LUMA).view(1, 3, 1, 1)
                x = (x * luma).sum(1, keepdim=True)
            out[start : start + chunk] = x.round().clamp_(0, 255).to(torch.uint8)
        meta = dict(self.meta, converted_from=f"{c}x{h}x{w}")
        return Domain(self.name, out, self.labels, self.classes, self.description, meta)

    def relabel(self, classes: Sequence[str], mapping: torch.Tensor, keep: torch.Tensor) -> Domain:
        """Keep samples where ``keep`` is true and map label i to ``mapping[i]``."""
        idx = torch.nonzero(keep, as_tuple=False).flatten()
        if idx.numel() == 0:
            raise DataError(
                f"domain {self.name!r}: the label map keeps no samples; map at least one "
                f"of its classes {list(self.classes)}."
            )
        return Domain(
            self.name, self.images[idx], mapping[self.labels[idx]], tuple(classes),
            self.description, dict(self.meta),
        )
