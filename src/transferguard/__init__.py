"""transferguard: measure, explain and prevent negative transfer.

The public API in one place::

    import transferguard as tg
    task = tg.TransferTask("mnist", "uci-digits", eps=0.7, labeled_percent=30)
    result = tg.negative_transfer_gap(task, "dann", seeds=[0, 1, 2])
    print(result.ntg, result.interval, result.verdict)
"""

from ._version import __version__
from .analysis import (
    HarmfulSourceReport,
    NTGResult,
    SafeMode,
    confidence_interval,
    harmful_source_report,
    negative_transfer_gap,
    safe,
)
from .data import (
    Domain,
    InputSpec,
    TaskSpec,
    TransferTask,
    describe_domains,
    list_domains,
    load_domain,
    register_domain,
)
from .engine import Trainer, TrainerConfig
from .errors import (
    CheckpointError,
    ConfigError,
    DataError,
    TrainingDivergedError,
    TransferGuardError,
    UnknownNameError,
)
from .experiments import DiagnoseResult, RunStore, diagnose, load_config, run_experiment
from .methods import (
    Method,
    SourceWeighter,
    create_method,
    list_methods,
    list_weighters,
    register_method,
    register_weighter,
)
from .models import TransferModel, create_model, list_models, register_model

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DataError",
    "DiagnoseResult",
    "Domain",
    "HarmfulSourceReport",
    "InputSpec",
    "Method",
    "NTGResult",
    "RunStore",
    "SafeMode",
    "SourceWeighter",
    "TaskSpec",
    "Trainer",
    "TrainerConfig",
    "TrainingDivergedError",
    "TransferGuardError",
    "TransferModel",
    "TransferTask",
    "UnknownNameError",
    "__version__",
    "confidence_interval",
    "create_method",
    "create_model",
    "describe_domains",
    "diagnose",
    "harmful_source_report",
    "list_domains",
    "list_methods",
    "list_models",
    "list_weighters",
    "load_config",
    "load_domain",
    "negative_transfer_gap",
    "register_domain",
    "register_method",
    "register_model",
    "register_weighter",
    "run_experiment",
    "safe",
]
