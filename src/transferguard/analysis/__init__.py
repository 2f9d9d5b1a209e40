"""Analysis: measuring transfer (NTG) and, later, explaining what was transferred."""

from .cutpoint import CutPointResult, cut_point_sweep
from .harmful import HarmfulSourceReport, auroc, harmful_source_report
from .impact import ImpactResult, layer_names, neuron_impact, resolve_layer
from .matrix import CrossDomainMatrix, cross_domain_matrix
from .ntg import (
    INCONCLUSIVE,
    NEGATIVE,
    POSITIVE,
    NTGResult,
    confidence_interval,
    negative_transfer_gap,
)
from .units import UnitPictures, top_activating, unit_activations

__all__ = [
    "INCONCLUSIVE",
    "NEGATIVE",
    "POSITIVE",
    "CrossDomainMatrix",
    "CutPointResult",
    "HarmfulSourceReport",
    "ImpactResult",
    "NTGResult",
    "UnitPictures",
    "auroc",
    "confidence_interval",
    "cross_domain_matrix",
    "cut_point_sweep",
    "harmful_source_report",
    "layer_names",
    "negative_transfer_gap",
    "neuron_impact",
    "resolve_layer",
    "top_activating",
    "unit_activations",
]
