"""Analysis: measuring transfer (NTG) and explaining what was transferred (the cut point;
feature similarity, parameter distance, loss basins, module criticality, checkpoints and block
shuffling of Neyshabur et al., methods reference section 4)."""

from .active import STRATEGIES as ACTIVE_STRATEGIES
from .active import QueryInputs, disagreement, select_batch
from .basins import BarrierSummary, InterpolationResult, interpolate, summarize_barriers
from .checkpoints import CheckpointResult, checkpoint_sweep, pretrain_with_snapshots
from .criticality import CriticalityResult, module_criticality, rewind, rewind_drops
from .cutpoint import CutPointResult, cut_point_sweep
from .detection import DetectionScores, detection_scores
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
from .representation import (
    CKAResult,
    DistanceResult,
    block_outputs,
    cka,
    feature_similarity,
    linear_cka,
    parameter_distance,
    rbf_cka,
)
from .safe import SafeChoice, SafeMode, SafeResult, SplitPredictions, predict_splits, safe, safe_ntg
from .shuffle import (
    ShuffleResult,
    block_permutations,
    block_shuffle,
    shuffled_domain,
    shuffled_task,
    valid_grids,
)
from .state import check_same_architecture, module_prefixes, recording_init
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
    "BarrierSummary",
    "CKAResult",
    "CheckpointResult",
    "CriticalityResult",
    "CrossDomainMatrix",
    "CutPointResult",
    "DetectionScores",
    "DistanceResult",
    "HarmfulSourceReport",
    "ImpactResult",
    "InterpolationResult",
    "NTGResult",
    "NTPredictor",
    "QueryInputs",
    "SafeChoice",
    "SafeMode",
    "SafeResult",
    "ShuffleResult",
    "SplitPredictions",
    "TransferabilityScores",
    "UnitPictures",
    "Validator",
    "ValidatorCallback",
    "a_distance",
    "auroc",
    "block_outputs",
    "block_permutations",
    "block_shuffle",
    "check_same_architecture",
    "checkpoint_sweep",
    "cka",
    "collect_outputs",
    "confidence_interval",
    "create_validator",
    "cross_domain_matrix",
    "cut_point_sweep",
    "detection_scores",
    "disagreement",
    "extract_outputs",
    "feature_similarity",
    "grouped_predictions",
    "h_score",
    "harmful_source_report",
    "interpolate",
    "layer_names",
    "leep",
    "linear_cka",
    "list_validators",
    "logme",
    "module_criticality",
    "module_prefixes",
    "nce",
    "negative_transfer_gap",
    "neuron_impact",
    "parameter_distance",
    "predict_splits",
    "pretrain_with_snapshots",
    "rbf_cka",
    "recording_init",
    "resolve_layer",
    "rewind",
    "rewind_drops",
    "safe",
    "safe_ntg",
    "select_batch",
    "select_checkpoints",
    "selection_summary",
    "shrinkage_h_score",
    "shuffled_domain",
    "shuffled_task",
    "summarize_barriers",
    "top_activating",
    "transferability_scores",
    "unit_activations",
    "valid_grids",
]
