"""``TrainerConfig``: every knob of the training loop, validated in one place."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import ConfigError
from .schedules import SCHEDULES

OPTIMIZERS = ("sgd", "adam", "adamw")


@dataclass
class TrainerConfig:
    """Every knob of the loop. ``batch_size`` is per stream (a DANN step sees 3 batches)."""

    iterations: int = 1000
    batch_size: int = 32
    optimizer: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = False
    schedule: str = "dann"
    eval_every: int = 100
    select: str = "val"
    eval_batch_size: int = 512
    device: str = "auto"
    amp: bool = True
    channels_last: bool = True
    seed: int = 0
    progress: bool | None = None
    log_every: int = 50
    checkpoint_dir: str | None = None
    checkpoint_every: int = 0
    max_grad_norm: float | None = None
    flush_denormal: bool = True

    def validate(self) -> None:
        def need(cond: bool, msg: str) -> None:
            if not cond:
                raise ConfigError(msg)

        need(self.iterations >= 1, f"iterations must be >= 1, got {self.iterations}.")
        need(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}.")
        need(self.optimizer in OPTIMIZERS,
             f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}.")
        need(self.schedule in SCHEDULES,
             f"schedule must be one of {SCHEDULES}, got {self.schedule!r}.")
        need(self.lr > 0 and math.isfinite(self.lr), f"lr must be positive, got {self.lr}.")
        need(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}.")
        need(self.select in ("val", "last"),
             f"select must be 'val' (best validation accuracy) or 'last', got {self.select!r}.")
        need(self.eval_every >= 1, f"eval_every must be >= 1, got {self.eval_every}.")
        need(self.log_every >= 1, f"log_every must be >= 1, got {self.log_every}.")
        need(self.eval_batch_size >= 1,
             f"eval_batch_size must be >= 1, got {self.eval_batch_size}.")
        need(self.checkpoint_every >= 0,
             f"checkpoint_every must be >= 0 (0: only at the end), got {self.checkpoint_every}.")
        need(0 <= self.momentum < 1, f"momentum must lie in [0, 1), got {self.momentum}.")
        need(self.max_grad_norm is None or self.max_grad_norm > 0,
             f"max_grad_norm must be positive or null, got {self.max_grad_norm}.")
