"""One run identity: what makes two trainings the same run.

Three places need it and must agree: the Trainer names and checks its training checkpoints
by it, the run store keys a finished run by it (``--resume`` reuses a result only for the
same identity), and pre-training caches a source network by it. Each used to hash its own
list of ignored trainer fields; they differed, so a run could be "the same" for one and not
for another. :func:`run_identity` is the single definition, :func:`identity_digest` the single
hash.

An identity has three parts: the method (its registered name and every hyper-parameter,
``get_params()``), the trainer (every :class:`~transferguard.engine.TrainerConfig` field that
can change the numbers, plus ``device_type: cuda`` on a GPU, where bf16 autocast gives other
numbers than the CPU), and what it trains on (the task's description for the run store and
the pre-training cache, the content fingerprint of the splits for checkpoints).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from typing import Any

#: TrainerConfig fields that change how a run is shown, where it is saved or how fast it is
#: evaluated, never its result
NON_SEMANTIC_TRAINER = ("progress", "log_every", "checkpoint_dir", "checkpoint_every", "device",
                        "eval_batch_size", "flush_denormal")


def trainer_identity(config: Any) -> dict[str, Any]:
    """The fields of a TrainerConfig (a dataclass) that can change a run's numbers."""
    from .utils import resolve_device

    fields = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config)
    ident = {k: v for k, v in fields.items() if k not in NON_SEMANTIC_TRAINER}
    if resolve_device(fields.get("device", "auto")).type == "cuda":
        ident["device_type"] = "cuda"
    return ident


def method_identity(method: Any) -> dict[str, Any]:
    """A method's registered name and hyper-parameters (a mapping passes through)."""
    if isinstance(method, Mapping):
        return dict(method)
    return {"name": method.name, **method.get_params()}


def run_identity(method: Any, trainer: Any, *, task: Mapping[str, Any] | None = None,
                 data: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The identity of training ``method`` with ``trainer`` (a TrainerConfig) on ``task``
    (a task description) or ``data`` (split fingerprints)."""
    ident: dict[str, Any] = {"method": method_identity(method),
                             "trainer": trainer_identity(trainer)}
    if task is not None:
        ident["task"] = dict(task)
    if data is not None:
        ident["data"] = dict(data)
    return ident


def canonical_json(identity: Mapping[str, Any]) -> str:
    return json.dumps(identity, sort_keys=True, default=str)


def identity_digest(identity: Mapping[str, Any], length: int | None = None) -> str:
    """SHA-256 of the canonical JSON of an identity (``length`` hex digits, or all 64)."""
    digest = hashlib.sha256(canonical_json(identity).encode()).hexdigest()
    return digest[:length] if length else digest
