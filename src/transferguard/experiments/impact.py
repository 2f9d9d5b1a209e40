"""What the ``impact`` command does: the neuron impact of a source network on a target.

The source network (given, or pre-trained once and cached under ``OUT/pretrained``) gets a
target head fitted on the labeled target and the impact of every unit is computed on the
labeled target and its validation split, exactly as :class:`prune_transfer` does before it
prunes (the method's own ``prepare`` runs, so the numbers are the ones it acts on).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..analysis import ImpactResult
from ..data import TransferTask
from ..engine import Trainer
from ..errors import DataError
from ..methods import create_method
from .config import ExperimentConfig
from .pretrain import pretrained_checkpoint


@dataclass
class ImpactFound:
    """The impact of every unit, the units ``prune_transfer`` would remove, and the model
    (with its target head, before pruning) for pictures of its units."""

    task: TransferTask
    impact: ImpactResult
    pruned: dict[str, torch.Tensor]
    model: Any


def analyse_impact(cfg: ExperimentConfig, out: str | Path, *, pretrained: str | None = None,
                   pretrain_iterations: int | None = None, seed: int = 0,
                   **prune_params: Any) -> ImpactFound:
    """Impact of the source network of ``cfg``'s task (seed ``seed``) on its target."""
    task = cfg.task.build(seed=seed)
    trainer = Trainer(cfg.trainer, seed=seed)
    model = cfg.methods[0].get("model", "lenet")
    model_options = cfg.methods[0].get("model_options")
    path = pretrained or pretrained_checkpoint(task, trainer, Path(out) / "pretrained",
                                               model=model, model_options=model_options,
                                               iterations=pretrain_iterations)
    m = create_method("prune_transfer", model=model, model_options=model_options,
                      pretrained=path, **prune_params)
    data = task.train_data()
    m.setup(data, trainer)
    m.prepare(data, trainer)
    for handle in m.hooks_:  # the network as it was, for pictures of its units
        handle.remove()
    if m.impact_ is None:
        raise DataError("the target has no labeled samples (L = 0); neuron impact needs "
                        "labeled target data: give --labeled > 0.")
    return ImpactFound(task, m.impact_, m.pruned_, m.model_)
