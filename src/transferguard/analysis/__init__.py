"""Analysis: measuring transfer (NTG) and, later, explaining what was transferred."""

from .active import STRATEGIES as ACTIVE_STRATEGIES
from .active import QueryInputs, disagreement, select_batch
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
from .ntpredict import NTPredictor, a_distance, grouped_predictions
from .transferability import (
    TransferabilityScores,
    extract_outputs,
    h_score,
    leep,
    logme,
    nce,
    shrinkage_h_score,
    transferability_scores,
)
from .units import UnitPictures, top_activating, unit_activations
from .validators import (
    Validator,
    ValidatorCallback,
    collect_outputs,
    create_validator,
    list_validators,
    select_checkpoints,
    selection_summary,
)

__all__ = [
    "ACTIVE_STRATEGIES",
    "INCONCLUSIVE",
    "NEGATIVE",
    "POSITIVE",
    "CrossDomainMatrix",
    "CutPointResult",
    "HarmfulSourceReport",
    "ImpactResult",
    "NTGResult",
    "NTPredictor",
    "QueryInputs",
    "TransferabilityScores",
    "UnitPictures",
    "Validator",
    "ValidatorCallback",
    "a_distance",
    "auroc",
    "collect_outputs",
    "confidence_interval",
    "create_validator",
    "cross_domain_matrix",
    "cut_point_sweep",
    "disagreement",
    "extract_outputs",
    "grouped_predictions",
    "h_score",
    "harmful_source_report",
    "layer_names",
    "leep",
    "list_validators",
    "logme",
    "nce",
    "negative_transfer_gap",
    "neuron_impact",
    "resolve_layer",
    "select_batch",
    "select_checkpoints",
    "selection_summary",
    "shrinkage_h_score",
    "top_activating",
    "transferability_scores",
    "unit_activations",
]
