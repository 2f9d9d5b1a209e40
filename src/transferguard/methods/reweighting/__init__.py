"""Source weighters: per-sample source weights any DA method composes (the gate first)."""

from . import gate, kmm  # noqa: F401  (registration)
from .weighter import WEIGHTERS, Features, SourceWeighter, WeighterOutput

__all__ = ["WEIGHTERS", "Features", "SourceWeighter", "WeighterOutput"]
