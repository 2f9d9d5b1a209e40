"""The domain registry: ``list_domains``, ``load_domain``, ``register_domain``.

Built-in domains are registered by name. Two prefixes reach user data:

- ``torchvision:NAME`` (for example ``torchvision:USPS``) wraps a torchvision data set under
  ``root``; it downloads only when ``download=True`` is given explicitly;
- ``folder:PATH`` reads an image-folder tree ``PATH/<class>/<image>`` (Office-31,
  Office-Home and most "domain" collections ship in this layout).

Generated and decoded domains are cached as ``.npz`` under :func:`transferguard.utils.cache_dir`
and written atomically, so a second load takes a fraction of a second.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import DataError
from ..registry import Registry
from .domain import Domain

Loader = Callable[..., Domain]

DOMAINS: Registry[Loader] = Registry("domain")
PREFIXES = ("torchvision:", "folder:")


def register_domain(name: str, description: str = "") -> Callable[[Loader], Loader]:
    """Decorator: register a function ``(**options) -> Domain`` under ``name``."""
    return DOMAINS.register(name, description)


def list_domains() -> list[str]:
    """Names of the registered domains (the built-ins ship with the package, offline)."""
    return DOMAINS.names()


def load_domain(name: str | Domain, **options: Any) -> Domain:
    """Load a domain by name; a :class:`Domain` is returned as it is.

    ``options`` go to the loader: ``seed`` and ``num_samples`` for generated domains,
    ``root``/``download``/``train`` for ``torchvision:``, ``size`` for ``folder:``.
    """
    if isinstance(name, Domain):
        return name
    if not isinstance(name, str) or not name:
        raise DataError(f"a domain name must be a non-empty string, got {name!r}.")
    if name.startswith("torchvision:"):
        from .user import load_torchvision

        return load_torchvision(name.split(":", 1)[1], **options)
    if name.startswith("folder:"):
        from .user import load_folder

        return load_folder(name.split(":", 1)[1], **options)
    loader = DOMAINS.get(name)
    return loader(**options)


@dataclass(frozen=True)
class DomainInfo:
    name: str
    size: int
    shape: tuple[int, int, int]
    num_classes: int
    min_class: int
    max_class: int
    load_seconds: float
    description: str
    classes: tuple[str, ...] = ()
    counts: tuple[int, ...] = ()
    mean_intensity: float = 0.0


def describe_domain(name: str | Domain, **options: Any) -> tuple[DomainInfo, Domain]:
    """Load one domain (any name ``load_domain`` takes, with its options) and describe it:
    size, shape, classes, per-class counts, mean intensity, load time. The domain comes back
    too, so a caller that draws it does not load it twice."""
    t0 = time.perf_counter()
    d = load_domain(name, **options)
    dt = time.perf_counter() - t0
    counts = d.class_counts()
    label = name if isinstance(name, str) else d.name
    desc = DOMAINS.entry(label).description if label in DOMAINS else d.description
    step = max(1, len(d) // 2000)
    info = DomainInfo(label, len(d), d.shape, d.num_classes, int(counts.min()),
                      int(counts.max()), dt, desc, d.classes, tuple(int(c) for c in counts),
                      float(d.images[::step].float().mean() / 255.0))
    return info, d


def describe_domains(names: list[str] | None = None, **options: Any) -> list[DomainInfo]:
    """Load each domain and report its size, shape, class balance and load time."""
    return [describe_domain(name, **options)[0] for name in names or list_domains()]
