"""The domain cache: a built domain written once as ``.npz`` (atomically), read back after.

Built-in generators and user loaders (``folder:``, ``torchvision:``) both go through
:func:`cached_domain`; it lives apart from the catalog so that the loaders do not import
the catalog that dispatches to them.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ..utils import atomic_save, cache_dir
from .domain import Domain


def cache_key(name: str, params: dict[str, Any]) -> str:
    blob = json.dumps(params, sort_keys=True, default=str)
    return f"{name}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


def cached_domain(name: str, params: dict[str, Any], build: Callable[[], Domain]) -> Domain:
    """Return the cached domain for (name, params), building and caching it on a miss.

    A cache file that can not be read (truncated by a full disk, another version) is rebuilt
    rather than trusted.
    """
    path = cache_dir() / "domains" / f"{cache_key(name, params)}.npz"
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as z:
                return Domain(
                    str(z["name"]), torch.from_numpy(z["images"]), torch.from_numpy(z["labels"]),
                    tuple(str(c) for c in z["classes"]), str(z["description"]),
                    {**(json.loads(str(z["meta"])) if "meta" in z.files else {}),
                     "cache": str(path)},
                )
        except Exception:  # corrupt or stale cache: rebuild it below
            path.unlink(missing_ok=True)
    domain = build()

    def write(fh: io.BufferedWriter) -> None:
        np.savez(
            fh, name=np.array(domain.name), images=domain.images.numpy(),
            labels=domain.labels.numpy(), classes=np.array(domain.classes),
            description=np.array(domain.description),
            meta=np.array(json.dumps(domain.meta, default=str)),
        )

    atomic_save(path, write)  # type: ignore[arg-type]
    return domain
