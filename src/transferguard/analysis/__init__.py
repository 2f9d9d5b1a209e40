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
    "INCONCLUSIVE",
    "NEGATIVE",
    "POSITIVE",
    "CutPointResult",
    "HarmfulSourceReport",
    "NTGResult",
    "NTPredictor",
    "TransferabilityScores",
    "Validator",
    "ValidatorCallback",
    "a_distance",
    "auroc",
    "collect_outputs",
    "confidence_interval",
    "create_validator",
    "cut_point_sweep",
    "extract_outputs",
    "grouped_predictions",
    "h_score",
    "harmful_source_report",
    "leep",
    "list_validators",
    "logme",
    "nce",
    "negative_transfer_gap",
    "select_checkpoints",
    "selection_summary",
    "shrinkage_h_score",
    "transferability_scores",
]
