"""Analysis: measuring transfer (NTG) and, later, explaining what was transferred."""

from .cutpoint import CutPointResult, cut_point_sweep
from .detection import DetectionScores, detection_scores
from .harmful import HarmfulSourceReport, auroc, harmful_source_report
from .ntg import (
    INCONCLUSIVE,
    NEGATIVE,
    POSITIVE,
    NTGResult,
    confidence_interval,
    negative_transfer_gap,
)
from .safe import SafeChoice, SafeResult, safe

__all__ = [
    "INCONCLUSIVE",
    "NEGATIVE",
    "POSITIVE",
    "CutPointResult",
    "DetectionScores",
    "HarmfulSourceReport",
    "NTGResult",
    "SafeChoice",
    "SafeResult",
    "auroc",
    "confidence_interval",
    "cut_point_sweep",
    "detection_scores",
    "harmful_source_report",
    "negative_transfer_gap",
    "safe",
]
