"""Checkpoints: weights-only files, written atomically, refused when they belong elsewhere.

Two kinds: a method's modules (:func:`save_modules` / :func:`load_modules`, what fine-tuning
loads) and the full training state (modules, optimisers, batch streams, the best state so far,
history, RNG and gradient-combiner state) that lets an interrupted fit resume exactly. A
training checkpoint carries the run identity (:func:`transferguard.identity.run_identity`
with the content fingerprint of the splits) and is refused for any other run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data import Split
from ..errors import CheckpointError
from ..utils import atomic_save


def state_of(modules: Mapping[str, nn.Module]) -> dict[str, Any]:
    """A detached copy of every module's state (for model selection and saving)."""
    return {name: {k: v.detach().clone() for k, v in m.state_dict().items()}
            for name, m in modules.items()}


def read_checkpoint(path: str | Path) -> Any:
    """``torch.load`` with ``weights_only=True``: a file can hold tensors, never code."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} does not exist.") from None
    except Exception as exc:
        raise CheckpointError(
            f"checkpoint {path} is corrupt or not a transferguard checkpoint "
            f"({load_error_text(exc)}); delete it and train again. Do not load it with "
            "weights_only=False unless you wrote it yourself: unpickling a file you did not "
            "write can run any code."
        ) from None


def load_error_text(exc: BaseException) -> str:
    """What ``torch.load`` said, without its hint that ``weights_only=False`` "will likely
    succeed" (advice that runs the file's code; wrong for an untrusted file)."""
    text = str(exc)
    for line in text.splitlines():
        if "WeightsUnpickler error" in line:
            return line.strip()
    if "weights_only" in text:
        return f"{type(exc).__name__}: it holds objects that are not plain tensors"
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}".rstrip(": ")


def split_fingerprint(split: Split) -> list[Any]:
    """Size and a digest of a split's indices, labels and pixels (what checkpoints are for)."""
    if hasattr(split, "fingerprint"):  # a split streamed from disk digests its files
        return split.fingerprint()
    h = hashlib.sha256()
    for t in (split.indices, split.labels, split.images):
        if t is not None:
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return [len(split), h.hexdigest()[:16]]


def save_training_state(path: Path, identity: str, step: int, modules: Mapping[str, nn.Module],
                        optimizers: Mapping[str, torch.optim.Optimizer],
                        streams: Mapping[str, Any], best: dict[str, Any],
                        history: list[dict[str, float]], combiner: Any, cuda: bool) -> None:
    state = {
        "identity": identity, "step": step,
        "modules": {k: m.state_dict() for k, m in modules.items()},
        "optimizers": {k: o.state_dict() for k, o in optimizers.items()},
        "streams": {k: s.state_dict() for k, s in streams.items()},
        "best": best, "history": history, "rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if cuda else [],
        "combiner": combiner.state_dict() if hasattr(combiner, "state_dict") else {},
    }
    atomic_save(path, lambda fh: torch.save(state, fh))


def load_training_state(path: Path, identity: str, modules: Mapping[str, nn.Module],
                        optimizers: Mapping[str, torch.optim.Optimizer],
                        streams: Mapping[str, Any], best: dict[str, Any],
                        history: list[dict[str, float]], combiner: Any, cuda: bool) -> int:
    """Restore a training state in place; returns the step it was saved at."""
    state = read_checkpoint(path)
    if state.get("identity") != identity:
        raise CheckpointError(
            f"training checkpoint {path} belongs to another run (other method, settings, "
            "seed or data); delete it or use another checkpoint_dir."
        )
    try:
        for k, m in modules.items():
            m.load_state_dict(state["modules"][k])
        for k, o in optimizers.items():
            o.load_state_dict(state["optimizers"][k])
        for k, s in streams.items():
            s.load_state_dict(state["streams"][k])
    except (KeyError, RuntimeError, ValueError) as exc:
        raise CheckpointError(
            f"training checkpoint {path} does not match this run ({exc}); delete it or "
            "run without resume."
        ) from exc
    best.update(state["best"])
    history.extend(state["history"])
    torch.set_rng_state(state["rng"])
    if cuda and state["cuda_rng"]:
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    if state["combiner"] and hasattr(combiner, "load_state_dict"):
        combiner.load_state_dict(state["combiner"])
    return int(state["step"])
