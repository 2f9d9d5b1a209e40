"""Sanity checks of a source/target pair: near-duplicates and inverted polarity.

**Near-duplicates.** A source that holds copies of the target's test images (the same
digits re-saved, resized, re-encoded) makes the test accuracy a memory test, not a transfer
result, and equal file names do not reveal it. :func:`near_duplicates` embeds every image
cheaply (grey, resized to 16 x 16 with antialiasing, centred and scaled to unit length) and
compares all pairs by cosine similarity, in chunks (a matrix product: 10k x 2.5k pairs take
well under a second on one core). A pair at or above ``threshold`` is a near-duplicate.

The default 0.98 was set on the built-in digits (measured with a throw-away script, numbers
stated here so they can be checked): an MNIST digit resized to 20 px, JPEG-compressed
(quality 75) and dimmed (x0.8 + 30) keeps a similarity of at least 0.979 to its original
(1% below 0.986); the closest *different* image is 0.95 between ``syndigits`` and
``mnist`` and 0.87 between ``uci-digits`` and ``mnist``. Within MNIST itself plain "1"s are
that alike: about 1% of the digits of one half of ``mnist`` have a neighbour above 0.98 in
the other half. A handful of flags on a same-style pair is therefore expected; a large share
of the target test split is the overlap this check exists for.

**Polarity.** Digits are white on black in MNIST-like sets and dark on white when scanned
or drawn with a pen; a model trained on one barely reads the other. :func:`polarity_hint`
compares mean intensities: one domain dark (mean below 0.35) and the other light (above
0.65) is the pattern of inverted polarity.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

#: cosine similarity in the 16x16 embedding at and above which two images are near-duplicates
DUPLICATE_THRESHOLD = 0.98
EMBED_SIZE = 16
DARK, LIGHT = 0.35, 0.65


def embed(images: torch.Tensor, size: int = EMBED_SIZE, chunk: int = 4096) -> torch.Tensor:
    """uint8 (N, C, H, W) -> float (N, size*size): grey, resized, centred, unit length
    (invariant to brightness and contrast changes, so a re-saved copy still matches)."""
    out = []
    for start in range(0, len(images), chunk):
        x = images[start:start + chunk].float().mean(1, keepdim=True)
        if x.shape[-2:] != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                              antialias=True)
        x = x.flatten(1)
        x = x - x.mean(1, keepdim=True)
        out.append(x / x.norm(dim=1, keepdim=True).clamp_min(1e-6))
    return torch.cat(out) if out else torch.empty(0, size * size)


@dataclass(frozen=True)
class Overlap:
    """Near-duplicates between a source (rows) and a target split (columns).

    ``source_nearest[j]`` / ``target_similarity[j]``: the closest source image of target
    image j and its similarity; ``source_similarity[i]``: the closest target similarity of
    source image i. Indices are positions in the arrays given to :func:`near_duplicates`.
    """

    source_similarity: torch.Tensor
    target_similarity: torch.Tensor
    source_nearest: torch.Tensor
    threshold: float

    @property
    def source_mask(self) -> torch.Tensor:
        """Source images with a near-duplicate in the target split (what ``drop`` removes)."""
        return self.source_similarity >= self.threshold

    @property
    def target_mask(self) -> torch.Tensor:
        return self.target_similarity >= self.threshold

    @property
    def num_source(self) -> int:
        return int(self.source_mask.sum())

    @property
    def num_target(self) -> int:
        return int(self.target_mask.sum())

    def examples(self, k: int = 3) -> list[tuple[int, int, float]]:
        """Up to ``k`` (source index, target index, similarity), most similar first."""
        hits = torch.nonzero(self.target_mask).flatten()
        order = self.target_similarity[hits].argsort(descending=True)[:k]
        return [(int(self.source_nearest[j]), int(j), float(self.target_similarity[j]))
                for j in hits[order]]


def near_duplicates(source: torch.Tensor, target: torch.Tensor,
                    threshold: float = DUPLICATE_THRESHOLD, chunk: int = 2048) -> Overlap:
    """Compare every source image with every target image (see the module docstring)."""
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must lie in (0, 1], got {threshold}.")
    s, t = embed(source), embed(target)
    src_best = torch.full((len(s),), -1.0)
    tgt_best = torch.full((len(t),), -1.0)
    tgt_arg = torch.zeros(len(t), dtype=torch.long)
    for start in range(0, len(s), chunk):
        sim = s[start:start + chunk] @ t.T
        if sim.numel() == 0:
            continue
        src_best[start:start + chunk] = sim.max(1).values
        best, arg = sim.max(0)
        better = best > tgt_best
        tgt_best = torch.where(better, best, tgt_best)
        tgt_arg = torch.where(better, arg + start, tgt_arg)
    return Overlap(src_best, tgt_best, tgt_arg, float(threshold))


def mean_intensity(images: torch.Tensor) -> float:
    """Mean pixel value in [0, 1] (on at most 2000 images: it is a hint, not a statistic)."""
    step = max(1, len(images) // 2000)
    return float(images[::step].float().mean() / 255.0)


def polarity_hint(source: torch.Tensor, target: torch.Tensor) -> str | None:
    """A sentence when one domain is dark and the other light (inverted polarity), else None."""
    ms, mt = mean_intensity(source), mean_intensity(target)
    dark_light = (ms < DARK and mt > LIGHT) or (ms > LIGHT and mt < DARK)
    if not dark_light:
        return None
    return (f"the source's mean intensity is {ms:.2f} and the target's {mt:.2f} (0 black, 1 "
            f"white): one looks like light strokes on a dark background and the other like "
            f"dark strokes on a light one. If the target is inverted relative to the source, "
            f"invert it (folder domains: target_options invert=true; CLI: --invert-target).")
