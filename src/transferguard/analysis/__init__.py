"""Analysis: measuring transfer (NTG) and, later, explaining what was transferred."""

from .cutpoint import CutPointResult, cut_point_sweep
from .harmful import HarmfulSourceReport, auroc, harmful_source_report
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
    "CutPointResult",
    "HarmfulSourceReport",
    "NTGResult",
    "auroc",
    "confidence_interval",
    "cut_point_sweep",
    "harmful_source_report",
    "negative_transfer_gap",
]
