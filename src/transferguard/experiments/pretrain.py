"""Source networks pre-trained by the toolkit, cached as checkpoints.

Fine-tuning benchmarks compare many methods on one pre-trained source network per seed;
:func:`pretrained_checkpoint` trains it once (``Trainer.fit`` on the source alone), writes it
atomically under ``out_dir`` with a name that encodes everything that defines it, and
returns the path on later calls.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import torch

from ..data import TransferTask
from ..engine import Trainer
from ..methods import pretrain_source
from ..utils import atomic_save


def pretrained_checkpoint(task: TransferTask, trainer: Trainer, out_dir: str | Path, *,
                          model: str = "lenet", model_options: dict | None = None,
                          iterations: int | None = None, aux_weight: float = 0.0,
                          partition_seed: int = 0) -> str:
    """Path of the source network for (task source, seed, model, recipe); trained if absent."""
    cfg = task.config()
    ident = {k: cfg[k] for k in ("source", "eps_x", "eps_y", "label_noise", "corruptions",
                                 "source_size", "source_options", "spec", "seed")}
    if task.label_map is not None:  # a mapped source is another source network
        ident.update(label_map=task.label_map, classes=list(task.classes))
    tcfg = {k: v for k, v in dataclasses.asdict(trainer.config).items()
            if k not in ("progress", "log_every", "checkpoint_dir", "device")}
    ident.update(model=model, model_options=model_options or {}, iterations=iterations,
                 aux_weight=aux_weight, partition_seed=partition_seed, trainer=tcfg,
                 recipe=2)  # 2: pre-training on a seed derived from the run's (not the same)
    digest = hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode())
    path = Path(out_dir) / f"{task.source_name}-seed{task.seed}-{digest.hexdigest()[:10]}.pt"
    if not path.exists():
        state = pretrain_source(task.train_data(), trainer.with_options(seed=task.seed), model,
                                model_options, iterations, aux_weight, partition_seed)
        atomic_save(path, lambda fh: torch.save(state, fh))
    return str(path)
