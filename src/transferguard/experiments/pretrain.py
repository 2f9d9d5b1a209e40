"""Source networks pre-trained by the toolkit, cached as checkpoints.

Fine-tuning benchmarks compare many methods on one pre-trained source network per seed;
:func:`pretrained_checkpoint` trains it once (``Trainer.fit`` on the source alone), writes it
atomically under ``out_dir`` with a name that encodes everything that defines it (a
``folder:`` source by the digest of its contents), and returns the path on later calls. The
runner gives every fine-tuning method of an experiment the network from here, so methods that
share a source share one pre-training. The file name is one safe path component whatever the
domain string holds (``folder:/a/b`` or ``../x`` never leave ``out_dir``).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path

import torch

from ..data import TransferTask
from ..engine import Trainer
from ..identity import identity_digest, run_identity
from ..methods import pretrain_source
from ..utils import atomic_save
from .store import path_digest


def safe_component(text: str, limit: int = 60) -> str:
    """``text`` as one file-name component: anything but letters, digits, ``.``, ``_`` and
    ``-`` becomes ``_``; no leading dots; never empty."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", text).lstrip(".")[:limit]
    return safe or "domain"


def pretrained_checkpoint(task: TransferTask, trainer: Trainer, out_dir: str | Path, *,
                          model: str = "lenet", model_options: dict | None = None,
                          iterations: int | None = None, aux_weight: float = 0.0,
                          partition_seed: int = 0, seed: int | None = None) -> str:
    """Path of the source network for (task source, seed, model, recipe); trained if absent.

    ``seed`` is the run's seed when it is not the task's (tasks not resplit per seed): the
    network is then the one that run would pre-train itself."""
    cfg = task.config()
    source = {k: cfg[k] for k in ("source", "eps_x", "eps_y", "label_noise", "corruptions",
                                  "source_size", "source_options", "spec", "seed")}
    if task.label_map is not None:  # a mapped source is another source network
        source.update(label_map=task.label_map, classes=list(task.classes))
    if str(source["source"]).startswith("folder:"):
        source["content"] = path_digest(str(source["source"]).split(":", 1)[1])
    # recipe 2: pre-training on a seed derived from the run's (not the same)
    recipe = {"name": "pretrain_source", "model": model, "model_options": model_options or {},
              "iterations": iterations, "aux_weight": aux_weight,
              "partition_seed": partition_seed, "recipe": 2}
    seed = task.seed if seed is None else int(seed)
    if seed != task.seed:
        recipe["trainer_seed"] = seed
    digest = identity_digest(run_identity(recipe, trainer.config, task=source), 10)
    path = Path(out_dir) / f"{safe_component(task.source_name)}-seed{task.seed}-{digest}.pt"
    if not path.exists():
        # several processes of a sweep may need this network at once: one trains it, the
        # others wait on the lock and then read the file it wrote (atomically)
        with _file_lock(path.with_name(f".{path.name}.lock")):
            if not path.exists():
                state = pretrain_source(task.train_data(), trainer.with_options(seed=seed),
                                        model, model_options, iterations, aux_weight,
                                        partition_seed)
                atomic_save(path, lambda fh: torch.save(state, fh))
    return str(path)


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``path`` (created), held until the block ends. The kernel
    drops it when its process dies, even by SIGKILL, so a killed trainer never blocks the
    next one. Without ``fcntl`` (Windows) there is no lock: the write stays atomic, and two
    processes may then both train the network (same bytes, no corrupt file)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
