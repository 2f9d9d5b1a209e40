"""Engine: the one training loop (``Trainer``), its configuration, evaluation, checkpoints,
callbacks and schedules."""

from .callbacks import Callback
from .config import OPTIMIZERS, TrainerConfig
from .evaluation import evaluate
from .schedules import SCHEDULES, lr_factor, ramp
from .trainer import GradientCombiner, TrainableMethod, Trainer
from .types import EvalResult, FitResult, RunResult, StepOutput

__all__ = [
    "OPTIMIZERS",
    "SCHEDULES",
    "Callback",
    "EvalResult",
    "FitResult",
    "GradientCombiner",
    "RunResult",
    "StepOutput",
    "TrainableMethod",
    "Trainer",
    "TrainerConfig",
    "evaluate",
    "lr_factor",
    "ramp",
]
