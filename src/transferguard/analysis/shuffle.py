"""Block shuffling: feature reuse against low-level statistics. Methods reference section 4.2.

Every image is cut into a k x k grid of blocks of size (size/k) x (size/k) pixels, and the
blocks are permuted. k = 1 is the unshuffled image; k = size permutes single pixels (all
channels of a pixel move together), which keeps the colour statistics and destroys every
spatial feature. Fine-tuning from a pre-trained source network and training from scratch on
the shuffled target, for several k, separates the part of transfer that reuses features
(gone when blocks are small) from the part that comes from low-level statistics (left).

Two permutation modes:

- ``"per_image"`` (the default, the issue's reading): every image gets its own permutation,
  drawn from ``seed`` and the image's index in its domain, so the same image is shuffled the
  same way in every split and every run, and nothing spatial is shared between images;
- ``"shared"`` (the authors' code: one fixed permutation, ``seed``, for all training and
  test images): a fixed re-arrangement that a network trained on it can learn.

The multiset of pixel values of every image is preserved exactly (a permutation of blocks).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from ..data import Domain, TransferTask, load_domain
from ..errors import DataError
from ..utils import derive_seed, make_generator

MODES = ("per_image", "shared")


def valid_grids(size: int) -> list[int]:
    """Every k that divides ``size`` (the grids an image of that size can be cut into)."""
    return [k for k in range(1, int(size) + 1) if size % k == 0]


def block_permutations(n: int, k: int, seed: int, mode: str = "per_image",
                       indices: torch.Tensor | None = None) -> torch.Tensor:
    """(n, k*k) long tensor: the block order of each image.

    ``per_image``: row i is drawn from (seed, indices[i]) alone, so it does not depend on
    which other images are shuffled with it.
    """
    if mode not in MODES:
        raise DataError(f"mode must be one of {MODES}, got {mode!r}.")
    if mode == "shared":
        perm = torch.randperm(k * k, generator=make_generator(derive_seed(seed, "shuffle", k)))
        return perm.expand(n, -1).clone()
    idx = torch.arange(n) if indices is None else indices.long().cpu()
    # one uniform key per (image, block) from a counter-based hash of (seed, k, image, block):
    # the sort order is a uniformly random permutation that depends on the image alone
    base = derive_seed(seed, "shuffle", k)
    blocks = torch.arange(k * k, dtype=torch.int64)
    x = (idx.view(-1, 1) * (k * k) + blocks.view(1, -1)) ^ (base & 0x7FFFFFFFFFFF)
    x = _mix64(x)
    return torch.argsort(x, dim=1, stable=True)


def _mix64(x: torch.Tensor) -> torch.Tensor:
    """A 64-bit integer mixer (splitmix64's finaliser; wrap-around arithmetic)."""
    x = x + 0x1E3779B97F4A7C15
    x = (x ^ (x >> 30)) * -0x40A7B892E31B1A47  # 0xBF58476D1CE4E5B9 as a signed int64
    x = (x ^ (x >> 27)) * -0x6B2FB644ECCEEE15  # 0x94D049BB133111EB
    return x ^ (x >> 31)


def block_shuffle(images: torch.Tensor, k: int, seed: int = 0, mode: str = "per_image",
                  indices: torch.Tensor | None = None) -> torch.Tensor:
    """Permute the k x k blocks of every image of an (N, C, H, W) tensor (any dtype).

    ``k`` must divide the height and the width; the error lists the values that do.
    """
    if images.dim() != 4:
        raise DataError(f"block_shuffle needs an (N, C, H, W) tensor, got shape "
                        f"{tuple(images.shape)}.")
    n, c, h, w = images.shape
    if not isinstance(k, int) or k < 1:
        raise DataError(f"k (blocks per side) must be a positive integer, got {k!r}.")
    if h % k or w % k:
        ok = [g for g in valid_grids(h) if w % g == 0]
        raise DataError(f"k = {k} blocks per side does not divide the {h}x{w} image; choose "
                        f"one of {ok} (k = 1 leaves the image as it is, k = {ok[-1]} shuffles "
                        "single pixels), or change the input size.")
    if k == 1 or n == 0:
        return images.clone()
    bh, bw = h // k, w // k
    perm = block_permutations(n, k, seed, mode, indices).to(images.device)
    blocks = images.reshape(n, c, k, bh, k, bw).permute(0, 2, 4, 1, 3, 5).reshape(
        n, k * k, c, bh, bw)
    blocks = torch.gather(blocks, 1, perm.view(n, k * k, 1, 1, 1).expand_as(blocks))
    return blocks.reshape(n, k, k, c, bh, bw).permute(0, 3, 1, 4, 2, 5).reshape(n, c, h, w)


def shuffled_domain(domain: Domain, k: int, seed: int = 0, mode: str = "per_image") -> Domain:
    """The domain with every image block-shuffled (labels and classes unchanged)."""
    images = block_shuffle(domain.images, k, seed, mode)
    return Domain(f"{domain.name}~shuffle{k}-{mode}", images, domain.labels, domain.classes,
                  f"{domain.description} (block-shuffled, k={k}, {mode})",
                  {**domain.meta, "shuffle": {"k": k, "seed": seed, "mode": mode}})


def shuffled_task(task: TransferTask, k: int, seed: int | None = None,
                  mode: str = "per_image") -> TransferTask:
    """The same task (protocol, seed, splits) with the *target* block-shuffled.

    Training, validation and test images are all shuffled, each image by its own permutation
    (``per_image``) or all by one (``shared``); the split indices are those of the original
    task, because the splits depend on the labels and the seed only. The source is untouched:
    the source network is pre-trained on natural images, as in the paper.
    """
    spec = task.spec
    if spec.size % k:
        raise DataError(f"k = {k} blocks per side does not divide the task's input size "
                        f"{spec.size}; choose one of {valid_grids(spec.size)}.")
    target = load_domain(getattr(task, "_target_in", task.target_name), size=spec.size,
                         **task.target_options).convert(spec)
    s = task.seed if seed is None else seed
    return TransferTask(
        getattr(task, "_source_in", task.source_name), shuffled_domain(target, k, s, mode),
        eps_x=task.eps_x, eps_y=task.eps_y, labeled_percent=task.labeled_percent,
        val_fraction=task.val_fraction, test_fraction=task.test_fraction, seed=task.seed,
        spec=spec, label_map=task.label_map, label_noise=task.label_noise,
        corruptions=task.corruptions, source_size=task.source_size,
        source_options=task.source_options, unlabeled=task.unlabeled,
    )


@dataclass
class ShuffleResult:
    """Target test accuracy of fine-tuning (P-T) and training from scratch (RI-T) per k."""

    size: int
    grids: list[int]
    seeds: list[int]
    pretrained: dict[int, list[float]]
    scratch: dict[int, list[float]]
    mode: str = "per_image"
    label: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def block_size(self, k: int) -> int:
        return self.size // k

    def benefit(self, k: int) -> list[float]:
        """acc(P-T) - acc(RI-T) per seed at grid k (points)."""
        return [a - b for a, b in zip(self.pretrained[k], self.scratch[k])]

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "size": self.size, "mode": self.mode,
                "grids": self.grids, "seeds": self.seeds,
                "pretrained": {str(k): v for k, v in self.pretrained.items()},
                "scratch": {str(k): v for k, v in self.scratch.items()},
                "benefit": {str(k): self.benefit(k) for k in self.grids}}
