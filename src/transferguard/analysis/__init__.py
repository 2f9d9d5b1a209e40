"""Analysis: measuring transfer (NTG) and, later, explaining what was transferred."""

from .ntg import (
    INCONCLUSIVE,
    NEGATIVE,
    POSITIVE,
    NTGResult,
    confidence_interval,
    negative_transfer_gap,
)

__all__ = [
    "INCONCLUSIVE",
    "NEGATIVE",
    "POSITIVE",
    "NTGResult",
    "confidence_interval",
    "negative_transfer_gap",
]
