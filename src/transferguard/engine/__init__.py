"""Engine: the one training loop (``Trainer``), its schedules and records."""

from .schedules import SCHEDULES, lr_factor, ramp
from .trainer import Trainer, TrainerConfig
from .types import EvalResult, FitResult, RunResult, StepOutput

__all__ = [
    "SCHEDULES",
    "EvalResult",
    "FitResult",
    "RunResult",
    "StepOutput",
    "Trainer",
    "TrainerConfig",
    "lr_factor",
    "ramp",
]
