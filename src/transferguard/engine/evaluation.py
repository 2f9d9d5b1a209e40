"""Evaluation: accuracy, loss and the signs of a collapsed model, batched over a split."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..data import Split, eval_batches
from ..errors import ConfigError
from .types import EvalResult


@torch.no_grad()
def evaluate(model: nn.Module, split: Split, spec: Any, *, device: torch.device,
             batch_size: int = 512, layout: Callable[[Any], Any] = lambda b: b,
             autocast: Callable[[], AbstractContextManager] | None = None) -> EvalResult:
    """Accuracy (%), mean cross-entropy and per-class figures of ``model`` on a labeled split.

    Counts stay on the device and are read once at the end (no host sync per batch).
    """
    if split.labels is None:
        raise ConfigError(f"split {split.name!r} is unlabeled; accuracy needs labels.")
    was_training = model.training
    model.eval()
    k = int(getattr(model, "num_classes", 0)) or int(split.labels.max()) + 1
    correct = torch.zeros(k, device=device)
    total = torch.zeros(k, device=device)
    pred_counts = torch.zeros(k, device=device)
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    for batch in eval_batches(split, spec, batch_size, device):
        batch = layout(batch)
        with autocast() if autocast is not None else torch.autocast("cpu", enabled=False):
            logits = model(batch.x)
        logits = logits.float()
        loss_sum += F.cross_entropy(logits, batch.y, reduction="sum").double()
        pred = logits.argmax(1)
        y = batch.y
        total += torch.bincount(y, minlength=k)[:k].float()
        correct += torch.bincount(y[pred == y], minlength=k)[:k].float()
        pred_counts += torch.bincount(pred, minlength=k)[:k].float()
    model.train(was_training)
    correct, total, pred_counts = correct.cpu(), total.cpu(), pred_counts.cpu()
    n = int(total.sum())
    per_class = (correct / total.clamp(min=1) * 100).tolist()
    return EvalResult(float(correct.sum() / max(n, 1) * 100), float(loss_sum) / max(n, 1), n,
                      per_class, [int(c) for c in pred_counts])
