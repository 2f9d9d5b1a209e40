"""Source weighters: per-sample source weights any DA method composes (the gate first)."""

from . import confident, gate, glc, kmm, l2rw, prototype, smallloss  # noqa: F401  (registration)
from .weighter import WEIGHTERS, Features, SourceWeighter, WeighterOutput

__all__ = ["WEIGHTERS", "Features", "SourceWeighter", "WeighterOutput"]
