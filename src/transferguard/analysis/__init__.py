"""Analysis: measuring transfer (NTG) and, later, explaining what was transferred."""

from .cutpoint import CutPointResult, cut_point_sweep
from .harmful import HarmfulSourceReport, auroc, harmful_source_report
from .impact import ImpactResult, layer_names, neuron_impact, resolve_layer
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
    "ImpactResult",
    "NTGResult",
    "auroc",
    "confidence_interval",
    "cut_point_sweep",
    "harmful_source_report",
    "layer_names",
    "negative_transfer_gap",
    "neuron_impact",
    "resolve_layer",
]
