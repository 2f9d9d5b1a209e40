"""Source perturbation of Wang et al. (CVPR 2019), methods reference section 1.5.

Independently for every *source* sample:

- with probability ε_x the image is corrupted by a sequence of noise operations strong enough
  to change what a classifier sees (the marginal shift P(X));
- with probability ε_y the label is replaced by a random label (the conditional shift P(Y|X)).

How the new label is drawn (``label_noise``): ``"uniform"`` (the paper's random label, any of
the K classes), ``"flip"`` (uniform over the K − 1 other classes), and two *asymmetric*
kinds, where every wrong label of a class goes to the same other class: ``"pairflip"`` (the
next class in a fixed, seeded cyclic order of the classes: Co-teaching's "pair flipping") and
``"permute"`` (a seeded derangement σ of the classes, y -> σ(y), which may have several
cycles). Uniform noise keeps the true class the plurality up to ε_y = (K − 1)/K; with the
asymmetric kinds the wrong class is the *majority* of its images as soon as ε_y > 0.5, which
is what makes source-only label-error detection fail and transfer hurt.

The target is never perturbed. The Bernoulli draws are kept as masks (``x_mask``, ``y_mask``)
so that harmful-sample detectors can be scored against the truth later.

The image corruption is a documented, configurable choice (the paper's exact list is
unverified, reference section 12). Every corrupted image gets, in this order:

1. ``rotate``: a rotation by an angle drawn uniformly from ±[45°, 180°] (never a small one),
   with bilinear resampling and black fill;
2. ``flip``: a horizontal flip with probability 1/2, then a vertical flip with probability 1/2;
3. ``salt_pepper``: a fraction ``salt_pepper`` (default 0.2) of the pixels set to 0 or 255.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import DataError

CORRUPTIONS = ("rotate", "flip", "salt_pepper")
LABEL_NOISE = ("uniform", "flip", "pairflip", "permute")


@dataclass(frozen=True)
class Perturbation:
    """What was done to the source: perturbed data plus the masks of what was drawn.

    ``y_mask`` marks labels that were *resampled*; with ``label_noise="uniform"`` about one in
    K of those keeps its label by chance, so ``label_flipped`` (the labels that are really
    wrong) is the ground truth for harmful-sample detection.
    """

    images: torch.Tensor
    labels: torch.Tensor
    clean_labels: torch.Tensor
    x_mask: torch.Tensor
    y_mask: torch.Tensor

    @property
    def label_flipped(self) -> torch.Tensor:
        return self.labels != self.clean_labels


def check_rate(name: str, value: float) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise DataError(f"{name} must be a number in [0, 1], got {value!r}.") from None
    if not 0.0 <= v <= 1.0 or math.isnan(v):
        raise DataError(f"{name} must lie in [0, 1] (a per-sample probability), got {value!r}.")
    return v


def perturb_source(
    images: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    eps_x: float,
    eps_y: float,
    generator: torch.Generator,
    *,
    label_noise: str = "uniform",
    corruptions: tuple[str, ...] = CORRUPTIONS,
    salt_pepper: float = 0.2,
) -> Perturbation:
    """Apply ε_x / ε_y noise to uint8 images (N, C, H, W) and int labels (N,).

    ``label_noise="uniform"`` draws the new label uniformly from all K classes (the paper's
    "random label"); ``"flip"`` draws it from the K-1 *other* classes, so every resampled label
    is wrong. ``"pairflip"`` and ``"permute"`` map every masked label through one class map
    drawn from ``generator`` (:func:`noise_class_map`); the map has no fixed point, so every
    masked label is wrong too.

    The settings are validated where they are made (:class:`~.spec.TaskSpec`); this function
    applies them.
    """
    n = images.shape[0]
    x_mask = torch.rand(n, generator=generator) < eps_x
    y_mask = torch.rand(n, generator=generator) < eps_y
    new_images = images.clone()
    idx = torch.nonzero(x_mask).flatten()
    if idx.numel():
        new_images[idx] = corrupt_images(images[idx], generator, corruptions, salt_pepper)
    new_labels = noisy_labels(labels, y_mask, num_classes, label_noise, generator)
    return Perturbation(new_images, new_labels, labels.clone(), x_mask, y_mask)


def noisy_labels(labels: torch.Tensor, y_mask: torch.Tensor, num_classes: int,
                 label_noise: str, generator: torch.Generator) -> torch.Tensor:
    """``labels`` with the ``y_mask``-ed ones redrawn by ``label_noise`` (see the module
    docstring); the one place the label noise kinds are implemented, for in-memory and
    streamed sources alike."""
    new_labels = labels.clone()
    k = int(y_mask.sum())
    if k and num_classes > 1:
        if label_noise == "uniform":
            drawn = torch.randint(0, num_classes, (k,), generator=generator)
        elif label_noise in ("pairflip", "permute"):
            drawn = noise_class_map(num_classes, label_noise, generator)[labels[y_mask]]
        elif label_noise == "flip":
            offset = torch.randint(1, num_classes, (k,), generator=generator)
            drawn = (labels[y_mask] + offset) % num_classes
        else:
            raise DataError(f"label_noise must be one of {LABEL_NOISE}, got {label_noise!r}.")
        new_labels[y_mask] = drawn
    return new_labels


def perturb_labels(labels: torch.Tensor, num_classes: int, eps_x: float, eps_y: float,
                   generator: torch.Generator, *, label_noise: str = "uniform") -> Perturbation:
    """The ε_x / ε_y draws of :func:`perturb_source` without the pixels: the corruption mask
    and the noisy labels, for a source whose images are decoded (and corrupted) later.

    The returned :class:`Perturbation` holds an empty image tensor of shape (N, 0, 0, 0). The
    masks are drawn as in :func:`perturb_source`; the redrawn labels can differ from an
    in-memory source's when ε_x > 0, since that one corrupts its pixels (consuming the
    generator) before it draws labels.
    """
    n = len(labels)
    x_mask = torch.rand(n, generator=generator) < eps_x
    y_mask = torch.rand(n, generator=generator) < eps_y
    new_labels = noisy_labels(labels, y_mask, num_classes, label_noise, generator)
    empty = torch.empty((n, 0, 0, 0), dtype=torch.uint8)
    return Perturbation(empty, new_labels, labels.clone(), x_mask, y_mask)


def noise_class_map(num_classes: int, kind: str, generator: torch.Generator) -> torch.Tensor:
    """The class map of asymmetric label noise: ``m[c]`` is the wrong label of class c.

    ``"pairflip"``: the classes in a seeded random order o_0, ..., o_{K-1}; o_i -> o_{i+1}
    (cyclically), one K-cycle. ``"permute"``: a uniformly drawn derangement (a permutation
    with no fixed point, drawn by rejection: about e ≈ 2.7 draws on average).
    """
    if num_classes < 2:
        return torch.zeros(num_classes, dtype=torch.long)
    if kind == "pairflip":
        order = torch.randperm(num_classes, generator=generator)
        m = torch.empty(num_classes, dtype=torch.long)
        m[order] = order.roll(-1)
        return m
    if kind == "permute":
        ar = torch.arange(num_classes)
        while True:
            m = torch.randperm(num_classes, generator=generator)
            if not bool((m == ar).any()):
                return m
    raise DataError(f"no class map for label_noise={kind!r}; asymmetric kinds are "
                    "'pairflip' and 'permute'.")


def corrupt_images(
    images: torch.Tensor,
    generator: torch.Generator,
    corruptions: tuple[str, ...] = CORRUPTIONS,
    salt_pepper: float = 0.2,
) -> torch.Tensor:
    """Corrupt every image of a uint8 batch (vectorised; see the module docstring)."""
    x = images.float()
    n = x.shape[0]
    if "rotate" in corruptions:
        sign = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
        angle = sign * (45.0 + 135.0 * torch.rand(n, generator=generator)) * math.pi / 180.0
        cos, sin = torch.cos(angle), torch.sin(angle)
        theta = torch.zeros(n, 2, 3)
        theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1] = cos, -sin, sin, cos
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if "flip" in corruptions:
        h = torch.rand(n, generator=generator) < 0.5
        v = torch.rand(n, generator=generator) < 0.5
        x[h] = x[h].flip(-1)
        x[v] = x[v].flip(-2)
    if "salt_pepper" in corruptions and salt_pepper > 0:
        noise = torch.rand(n, 1, *x.shape[2:], generator=generator)
        salt = torch.rand(n, 1, *x.shape[2:], generator=generator) < 0.5
        hit = (noise < salt_pepper).expand_as(x)
        value = torch.where(salt, 255.0, 0.0).expand_as(x)
        x = torch.where(hit, value, x)
    return x.round_().clamp_(0, 255).to(torch.uint8)
