"""The ``Trainer``: the one training loop every method runs in.

A reader should understand training in one sitting, so here it is in order:

1. seed everything (one seed, one result on CPU);
2. ``method.setup(data, trainer)`` builds the model and any extra modules;
   ``method.prepare(data, trainer)`` runs earlier stages (e.g. source pre-training) by calling
   :meth:`Trainer.fit` again: methods never write their own loop;
3. one :class:`BatchStream` per split the method uses, drawing batches by indexing;
4. for ``iterations`` steps: set the scheduled learning rate, draw a batch from each stream,
   ``out = method.training_step(batches, progress)``, stop on a NaN/inf loss, backward
   (or the method's gradient combiner, e.g. DTNH), optimiser step;
5. every ``eval_every`` steps and at the end, accuracy on the target *validation* split; the
   best state is kept for model selection (last state when there is no validation split);
6. :meth:`Trainer.run` evaluates on the test split, once, after all of that.

Defaults are the DA literature's (SGD, momentum 0.9, lr 0.01, the DANN schedule
lr_p = lr_0 (1 + 10p)^-0.75). channels_last is on by default (it speeds convolutions up on
CUDA and, by about 1.4x for the digits LeNet, on CPU too); on CUDA bf16 autocast is on.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import nn

from ..data.task import BatchStream, Split, TrainData, TransferTask, iterate_batches
from ..errors import CheckpointError, ConfigError, TrainingDivergedError
from ..utils import atomic_save, derive_seed, resolve_device, seed_everything
from .schedules import SCHEDULES, lr_factor
from .types import EvalResult, FitResult, RunResult, StepOutput

OPTIMIZERS = ("sgd", "adam", "adamw")


@runtime_checkable
class TrainableMethod(Protocol):
    """What the Trainer needs from a method (see :class:`transferguard.methods.Method`)."""

    name: str
    source_free: bool
    model_: nn.Module  # the F/C model that predicts (built by setup)

    def setup(self, data: TrainData, trainer: Trainer) -> None: ...
    def prepare(self, data: TrainData, trainer: Trainer) -> None: ...
    def streams(self) -> tuple[str, ...]: ...
    def can_train(self, data: TrainData) -> str | None: ...
    def set_train_mode(self) -> None: ...
    def modules(self) -> dict[str, nn.Module]: ...
    def param_groups(self) -> list[dict[str, Any]]: ...
    def training_step(self, batches: Mapping[str, Any], progress: float) -> StepOutput: ...


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


class Trainer:
    """Runs methods. ``Trainer(iterations=500, lr=0.01)`` or ``Trainer(TrainerConfig(...))``."""

    def __init__(self, config: TrainerConfig | None = None, **overrides: Any) -> None:
        cfg = copy.deepcopy(config) if config is not None else TrainerConfig()
        valid = {f.name for f in dataclasses.fields(TrainerConfig)}
        bad = sorted(set(overrides) - valid)
        if bad:
            raise ConfigError(f"unknown trainer options {bad}; valid options: {sorted(valid)}.")
        cfg = dataclasses.replace(cfg, **overrides)
        cfg.validate()
        self.config = cfg
        self.device = resolve_device(cfg.device)

    def with_options(self, **overrides: Any) -> Trainer:
        return Trainer(self.config, **overrides)

    @property
    def seed(self) -> int:
        return self.config.seed

    # ------------------------------------------------------------------ training
    def fit(self, method: TrainableMethod, data: TrainData, *, restore_best: bool = True,
            resume: bool = False) -> FitResult:
        """Train ``method`` on ``data`` (which holds no test split) and select a state."""
        cfg = self.config
        t0 = time.perf_counter()
        seed_everything(cfg.seed)
        if cfg.flush_denormal and self.device.type == "cpu":
            # tiny (denormal) floats make CPU arithmetic far slower late in training
            torch.set_flush_denormal(True)
        if method.source_free and not data.source_free:
            data = data.without_source()
        method.setup(data, self)
        method.prepare(data, self)
        modules = method.modules()
        for m in modules.values():
            m.to(self.device)
            if cfg.channels_last:  # faster convolutions on CUDA and on CPU (oneDNN)
                m.to(memory_format=torch.channels_last)
        reason = method.can_train(data)
        if reason:
            return FitResult(method.name, 0, trained=False, note=reason,
                             seconds=time.perf_counter() - t0)
        streams = {
            name: BatchStream(getattr(data, name), cfg.batch_size, data.spec,
                              derive_seed(cfg.seed, "stream", name), self.device)
            for name in method.streams() if len(getattr(data, name)) > 0
        }
        optimizer = self._optimizer(method.param_groups())
        history: list[dict[str, float]] = []
        best = {"acc": -1.0, "step": None, "state": None}
        start = 0
        identity = self._identity(method, data) if cfg.checkpoint_dir else ""
        ckpt = None
        if cfg.checkpoint_dir:
            digest = hashlib.sha256(identity.encode()).hexdigest()[:12]
            ckpt = Path(cfg.checkpoint_dir) / f"{method.label}-{digest}.pt"
        if resume and ckpt is not None and ckpt.exists():
            start = self._load_training_state(ckpt, identity, method, modules, optimizer,
                                              streams, best, history)
        has_val = len(data.target_val) > 0 and cfg.select == "val"
        combiner = getattr(method, "gradient_combiner", None)
        bar = self._progress_bar(method.name, start)
        t_loop = time.perf_counter()
        for step in range(start, cfg.iterations):
            p = step / cfg.iterations
            factor = lr_factor(cfg.schedule, p)
            for group in optimizer.param_groups:
                group["lr"] = group["initial_lr"] * factor
            batches = {name: self._layout(s.next()) for name, s in streams.items()}
            method.set_train_mode()
            with self._autocast():
                out = method.training_step(batches, p)
            if not torch.isfinite(out.loss.detach()):
                raise TrainingDivergedError(
                    f"{method.name}: the loss became {float(out.loss.detach())} at step "
                    f"{step + 1} of "
                    f"{cfg.iterations} (lr {cfg.lr * factor:.3g}); lower the learning rate "
                    f"(--lr), clip gradients (max_grad_norm) or check the inputs for NaNs. "
                    f"Loss parts: {self._floats(out.logs)}"
                )
            optimizer.zero_grad(set_to_none=True)
            if combiner is not None:
                combiner.backward(out, method)
            else:
                out.loss.backward()
            if cfg.max_grad_norm:
                params = [q for g in optimizer.param_groups for q in g["params"]]
                nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
            optimizer.step()
            done = step + 1
            if done % cfg.log_every == 0 or done == cfg.iterations:
                row = {"step": float(done), "lr": cfg.lr * factor, **self._floats(out.logs)}
                row["loss"] = float(out.loss.detach())
                if has_val and (done % cfg.eval_every == 0 or done == cfg.iterations):
                    row["val_acc"] = self._track_best(method, data, done, best)
                history.append(row)
                if bar is not None:
                    bar.set_postfix({k: f"{v:.3g}" for k, v in row.items() if k != "step"})
            elif has_val and done % cfg.eval_every == 0:
                history.append({"step": float(done),
                                "val_acc": self._track_best(method, data, done, best)})
            if ckpt is not None and cfg.checkpoint_every and done % cfg.checkpoint_every == 0:
                self._save_training_state(ckpt, identity, done, method, modules, optimizer,
                                          streams, best, history)
            if bar is not None:
                bar.update(1)
        loop_seconds = time.perf_counter() - t_loop
        if bar is not None:
            bar.close()
        if ckpt is not None:
            self._save_training_state(ckpt, identity, cfg.iterations, method, modules,
                                      optimizer, streams, best, history)
        if not has_val:
            best["step"] = cfg.iterations
        elif restore_best and best["state"] is not None:
            self.load_state(method, best["state"])
        return FitResult(
            method.name, cfg.iterations, trained=True, best_step=best["step"],
            val_accuracy=best["acc"] if has_val else None, history=history,
            seconds=time.perf_counter() - t0, best_state=best["state"] if has_val else None,
            loop_seconds=loop_seconds,
        )

    def run(self, method: TrainableMethod, task: TransferTask) -> RunResult:
        """Fit on the task's training data, then evaluate once on its test split.

        Reports the validation-selected state (``test_accuracy``) and the last iterate
        (``test_accuracy_last``, a selection rule that uses no labels) side by side.
        """
        fit = self.fit(method, task.train_data(), restore_best=False)
        test = task.test_split()
        last = self.evaluate(method.model_, test, task.spec)
        chosen = last
        if fit.best_state is not None and fit.best_step != fit.iterations:
            self.load_state(method, fit.best_state)
            chosen = self.evaluate(method.model_, test, task.spec)
        return RunResult(
            method=method.name, seed=self.seed, test_accuracy=chosen.accuracy,
            test_accuracy_last=last.accuracy, val_accuracy=fit.val_accuracy,
            best_step=fit.best_step, collapsed=chosen.collapsed,
            majority_fraction=chosen.majority_fraction, trained=fit.trained,
            seconds=fit.seconds, iterations=fit.iterations, note=fit.note, history=fit.history,
        )

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def evaluate(self, model: nn.Module, split: Split, spec: Any) -> EvalResult:
        """Accuracy (%) and mean cross-entropy of ``model`` on a labeled split."""
        if split.labels is None:
            raise ConfigError(f"split {split.name!r} is unlabeled; accuracy needs labels.")
        was_training = model.training
        model.eval()
        k = int(getattr(model, "num_classes", 0)) or int(split.labels.max()) + 1
        correct = torch.zeros(k)
        total = torch.zeros(k)
        pred_counts = torch.zeros(k)
        loss_sum = 0.0
        for batch in iterate_batches(split, spec, self.config.eval_batch_size, self.device):
            batch = self._layout(batch)
            with self._autocast():
                logits = model(batch.x)
            logits = logits.float()
            loss_sum += float(F.cross_entropy(logits, batch.y, reduction="sum"))
            pred = logits.argmax(1)
            y = batch.y
            total += torch.bincount(y.cpu(), minlength=k)[:k].float()
            correct += torch.bincount(y[pred == y].cpu(), minlength=k)[:k].float()
            pred_counts += torch.bincount(pred.cpu(), minlength=k)[:k].float()
        model.train(was_training)
        n = int(total.sum())
        per_class = (correct / total.clamp(min=1) * 100).tolist()
        return EvalResult(float(correct.sum() / max(n, 1) * 100), loss_sum / max(n, 1), n,
                          per_class, [int(c) for c in pred_counts])

    # ------------------------------------------------------------------ state
    def state_of(self, method: TrainableMethod) -> dict[str, Any]:
        return {name: {k: v.detach().clone() for k, v in m.state_dict().items()}
                for name, m in method.modules().items()}

    def load_state(self, method: TrainableMethod, state: Mapping[str, Any]) -> None:
        for name, m in method.modules().items():
            m.load_state_dict(state[name])

    def save_checkpoint(self, method: TrainableMethod, path: str | Path) -> None:
        """Write the method's modules atomically (a crash leaves the old file or none)."""
        state = self.state_of(method)
        atomic_save(path, lambda fh: torch.save(state, fh))

    def load_checkpoint(self, method: TrainableMethod, path: str | Path) -> None:
        """Load a checkpoint written by :meth:`save_checkpoint` (``weights_only=True``)."""
        state = _read_checkpoint(path)
        try:
            self.load_state(method, state)
        except (KeyError, RuntimeError) as exc:
            raise CheckpointError(
                f"checkpoint {path} does not match method {method.name!r}: {exc}; it was "
                "written for another method or model."
            ) from exc

    def _track_best(self, method: TrainableMethod, data: TrainData, step: int,
                    best: dict[str, Any]) -> float:
        acc = self.evaluate(method.model_, data.target_val, data.spec).accuracy
        if acc >= best["acc"]:  # ties go to the later state
            best.update(acc=acc, step=step, state=self.state_of(method))
        return acc

    def _identity(self, method: TrainableMethod, data: TrainData) -> str:
        """What makes a training run this one: method, loop settings, seed and the data."""
        cfg = dataclasses.asdict(self.config)
        for k in ("progress", "log_every", "checkpoint_dir", "checkpoint_every", "device",
                  "eval_batch_size"):
            cfg.pop(k)
        # the content of every split, not only its size: two tasks that differ only in ε,
        # the label noise or the source domain have equal sizes and indices
        splits = {name: _fingerprint(s) for name, s in (
            ("source", data.source), ("target_labeled", data.target_labeled),
            ("target_unlabeled", data.target_unlabeled), ("target_val", data.target_val))}
        params = method.get_params() if hasattr(method, "get_params") else {}
        return json.dumps({"method": method.name, "params": params, "trainer": cfg,
                           "splits": splits}, sort_keys=True, default=str)

    def _save_training_state(self, path: Path, identity: str, step: int,
                             method: TrainableMethod, modules: dict[str, nn.Module],
                             optimizer: torch.optim.Optimizer, streams: dict[str, BatchStream],
                             best: dict[str, Any], history: list[dict[str, float]]) -> None:
        combiner = getattr(method, "gradient_combiner", None)
        state = {
            "identity": identity, "step": step,
            "modules": {k: m.state_dict() for k, m in modules.items()},
            "optimizer": optimizer.state_dict(),
            "streams": {k: s.state_dict() for k, s in streams.items()},
            "best": best, "history": history, "rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if self._cuda else [],
            "combiner": combiner.state_dict() if hasattr(combiner, "state_dict") else {},
        }
        atomic_save(path, lambda fh: torch.save(state, fh))

    def _load_training_state(self, path: Path, identity: str, method: TrainableMethod,
                             modules: dict[str, nn.Module], optimizer: torch.optim.Optimizer,
                             streams: dict[str, BatchStream], best: dict[str, Any],
                             history: list[dict[str, float]]) -> int:
        state = _read_checkpoint(path)
        if state.get("identity") != identity:
            raise CheckpointError(
                f"training checkpoint {path} belongs to another run (other method, settings, "
                "seed or data); delete it or use another checkpoint_dir."
            )
        try:
            for k, m in modules.items():
                m.load_state_dict(state["modules"][k])
            optimizer.load_state_dict(state["optimizer"])
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
        if self._cuda and state["cuda_rng"]:
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        combiner = getattr(method, "gradient_combiner", None)
        if state["combiner"] and hasattr(combiner, "load_state_dict"):
            combiner.load_state_dict(state["combiner"])
        return int(state["step"])

    # ------------------------------------------------------------------ helpers
    @property
    def _cuda(self) -> bool:
        return self.device.type == "cuda"

    def _layout(self, batch: Any) -> Any:
        if self.config.channels_last and batch.x.dim() == 4:
            x = batch.x.contiguous(memory_format=torch.channels_last)
            return dataclasses.replace(batch, x=x)
        return batch

    def _autocast(self):
        if self._cuda and self.config.amp:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return torch.autocast("cpu", enabled=False)

    def _optimizer(self, groups: list[dict[str, Any]]) -> torch.optim.Optimizer:
        cfg = self.config
        built = []
        for g in groups:
            params = [p for p in g["params"] if p.requires_grad]
            if not params:
                continue
            lr = cfg.lr * float(g.get("lr_mult", 1.0))
            built.append({"params": params, "lr": lr, "initial_lr": lr,
                          "weight_decay": float(g.get("weight_decay", cfg.weight_decay))})
        if not built:
            raise ConfigError("the method has no trainable parameters.")
        if cfg.optimizer == "sgd":
            return torch.optim.SGD(built, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov)
        if cfg.optimizer == "adam":
            return torch.optim.Adam(built, lr=cfg.lr)
        return torch.optim.AdamW(built, lr=cfg.lr)

    def _progress_bar(self, name: str, start: int):
        show = self.config.progress
        if show is None:
            show = sys.stderr.isatty()
        if not show:
            return None
        from tqdm.auto import tqdm

        return tqdm(total=self.config.iterations, initial=start, desc=name, leave=False,
                    dynamic_ncols=True)

    @staticmethod
    def _floats(logs: Mapping[str, Any]) -> dict[str, float]:
        return {k: float(v.detach()) if isinstance(v, torch.Tensor) else float(v)
                for k, v in logs.items()}


def _read_checkpoint(path: str | Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} does not exist.") from None
    except Exception as exc:
        raise CheckpointError(
            f"checkpoint {path} is corrupt or not a transferguard checkpoint ({exc}); "
            "delete it and train again."
        ) from exc


def _fingerprint(split: Split) -> list[Any]:
    """Size and a digest of a split's indices, labels and pixels (what checkpoints are for)."""
    h = hashlib.sha256()
    for t in (split.indices, split.labels, split.images):
        if t is not None:
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return [len(split), h.hexdigest()[:16]]
