"""The ``Trainer``: the one training loop every method runs in.

A reader should understand training in one sitting, so here it is in order:

1. seed everything (one seed, one result on CPU);
2. ``method.setup(data, trainer)`` builds the model and any extra modules;
   ``method.prepare(data, trainer)`` runs earlier stages (e.g. source pre-training) by calling
   :meth:`Trainer.fit` again: methods never write their own loop;
3. one stream per split the method uses (:func:`~transferguard.data.open_stream`: batches
   by indexing in memory, or a DataLoader for a split streamed from disk);
4. for ``iterations`` steps: set the scheduled learning rate, draw a batch from each stream,
   ``out = method.training_step(batches, progress)``, stop on a NaN/inf loss, backward
   (or the method's ``gradient_combiner``, e.g. DTNH), optimiser step. A method with
   several optimisers (GAN-style alternating updates) declares ``stages``; each stage then
   gets ``method.stage_step(stage, batches, progress)``, its own backward and its own step;
5. every ``eval_every`` steps and at the end, accuracy on the target *validation* split; the
   best state is kept for model selection (last state when there is no validation split);
   callbacks (:mod:`.callbacks`) see every history row and evaluation point;
6. :meth:`Trainer.run` evaluates on the test split, once, after all of that.

Evaluation is in :mod:`.evaluation`, checkpoint files in :mod:`.checkpoint`, the knobs in
:mod:`.config`.

Defaults are the DA literature's (SGD, momentum 0.9, lr 0.01, the DANN schedule
lr_p = lr_0 (1 + 10p)^-0.75). channels_last is on by default (it speeds convolutions up on
CUDA and, by about 1.4x for the digits LeNet, on CPU too); on CUDA bf16 autocast is on, and
the loop never waits on the GPU per step: the finite-loss check stays on the device and is
read at log and evaluation steps (on the CPU it is read every step, where it costs nothing).
"""

from __future__ import annotations

import copy
import dataclasses
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import torch
from torch import nn

from ..data import Split, TrainData, TransferTask, open_stream
from ..errors import CheckpointError, ConfigError, TrainingDivergedError
from ..identity import canonical_json, identity_digest, run_identity
from ..utils import atomic_save, derive_seed, resolve_device, seed_everything
from . import checkpoint as ckpt_io
from .callbacks import call
from .config import TrainerConfig
from .evaluation import evaluate as evaluate_split
from .schedules import lr_factor
from .types import EvalResult, FitResult, RunResult, StepOutput

__all__ = ["GradientCombiner", "TrainableMethod", "Trainer", "TrainerConfig"]


@runtime_checkable
class GradientCombiner(Protocol):
    """Replaces ``loss.backward()``: writes the gradients the optimiser steps on (DTNH)."""

    def backward(self, out: StepOutput, method: Any) -> None: ...
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@runtime_checkable
class TrainableMethod(Protocol):
    """What the Trainer needs from a method (see :class:`transferguard.methods.Method`)."""

    name: str
    source_free: bool
    model_: nn.Module  # the F/C model that predicts (built by setup)
    #: names of the optimisation stages (empty: one optimiser, ``training_step``)
    stages: ClassVar[tuple[str, ...]]

    @property
    def label(self) -> str: ...
    @property
    def gradient_combiner(self) -> GradientCombiner | None: ...
    def get_params(self) -> dict[str, Any]: ...
    def setup(self, data: TrainData, trainer: Trainer) -> None: ...
    def prepare(self, data: TrainData, trainer: Trainer) -> None: ...
    def streams(self) -> tuple[str, ...]: ...
    def can_train(self, data: TrainData) -> str | None: ...
    def set_train_mode(self) -> None: ...
    def modules(self) -> dict[str, nn.Module]: ...
    def param_groups(self) -> list[dict[str, Any]]: ...
    def training_step(self, batches: Mapping[str, Any], progress: float) -> StepOutput: ...
    def stage_step(self, stage: str, batches: Mapping[str, Any],
                   progress: float) -> StepOutput: ...


class Trainer:
    """Runs methods. ``Trainer(iterations=500, lr=0.01)`` or ``Trainer(TrainerConfig(...))``;
    ``callbacks=[...]`` observe every fit (see :mod:`.callbacks`)."""

    def __init__(self, config: TrainerConfig | None = None, *,
                 callbacks: Sequence[Any] = (), **overrides: Any) -> None:
        cfg = copy.deepcopy(config) if config is not None else TrainerConfig()
        valid = {f.name for f in dataclasses.fields(TrainerConfig)}
        bad = sorted(set(overrides) - valid)
        if bad:
            raise ConfigError(f"unknown trainer options {bad}; valid options: {sorted(valid)}.")
        cfg = dataclasses.replace(cfg, **overrides)
        cfg.validate()
        self.config = cfg
        self.callbacks = list(callbacks)
        self.device = resolve_device(cfg.device)

    def with_options(self, **overrides: Any) -> Trainer:
        return Trainer(self.config, callbacks=self.callbacks, **overrides)

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
            name: open_stream(getattr(data, name), cfg.batch_size, data.spec,
                              derive_seed(cfg.seed, "stream", name), self.device)
            for name in method.streams() if len(getattr(data, name)) > 0
        }
        stages = tuple(method.stages)
        optimizers = self._optimizers(method.param_groups(), stages)
        history: list[dict[str, float]] = []
        best = {"acc": -1.0, "step": None, "state": None}
        start = 0
        combiner = method.gradient_combiner
        identity, ckpt = "", None
        if cfg.checkpoint_dir:
            ident = run_identity(method, cfg, data=data_fingerprint(data))
            identity = canonical_json(ident)
            ckpt = Path(cfg.checkpoint_dir) / f"{method.label}-{identity_digest(ident, 12)}.pt"
        if resume and ckpt is not None and ckpt.exists():
            start = ckpt_io.load_training_state(ckpt, identity, modules, optimizers, streams,
                                                best, history, combiner, self._cuda)
        has_val = len(data.target_val) > 0 and cfg.select == "val"
        bar = self._progress_bar(method.name, start)
        # on CUDA the finite check stays on the device (no sync per step) and is read at log
        # and evaluation steps; first_bad holds the first step whose loss was not finite
        first_bad = torch.full((), -1, dtype=torch.long, device=self.device)
        t_loop = time.perf_counter()
        for step in range(start, cfg.iterations):
            p = step / cfg.iterations
            factor = lr_factor(cfg.schedule, p)
            for opt in optimizers.values():
                for group in opt.param_groups:
                    group["lr"] = group["initial_lr"] * factor
            batches = {name: self._layout(s.next()) for name, s in streams.items()}
            method.set_train_mode()
            done = step + 1
            for stage, opt in optimizers.items():
                with self._autocast():
                    out = method.training_step(batches, p) if not stages else \
                        method.stage_step(stage, batches, p)
                if self._cuda:
                    bad = ~torch.isfinite(out.loss.detach())
                    first_bad = torch.where(bad & (first_bad < 0), step, first_bad)
                elif not torch.isfinite(out.loss.detach()):
                    self._diverged(method, step, factor, out, opt)
                opt.zero_grad(set_to_none=True)
                if combiner is not None:
                    combiner.backward(out, method)
                else:
                    out.loss.backward()
                if cfg.max_grad_norm:
                    params = [q for g in opt.param_groups for q in g["params"]]
                    nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
                opt.step()
            log_now = done % cfg.log_every == 0 or done == cfg.iterations
            eval_now = done % cfg.eval_every == 0 or done == cfg.iterations
            if self._cuda and (log_now or eval_now) and int(first_bad) >= 0:
                self._diverged(method, int(first_bad), factor, out, opt)
            row: dict[str, float] | None = None
            if log_now:
                row = {"step": float(done), "lr": cfg.lr * factor, **self._floats(out.logs)}
                row["loss"] = float(out.loss.detach())
            if eval_now and (has_val or self.callbacks):
                row = row if row is not None else {"step": float(done)}
                if has_val:
                    row["val_acc"] = self._track_best(method, data, done, best)
                for extra in call(self.callbacks, "on_eval", self, method, data, done):
                    row.update(extra or {})
            if row is not None and (log_now or has_val or len(row) > 1):
                history.append(row)
                call(self.callbacks, "on_log", self, method, done, row)
                if bar is not None and log_now:
                    bar.set_postfix({k: f"{v:.3g}" for k, v in row.items() if k != "step"})
            if ckpt is not None and cfg.checkpoint_every and done % cfg.checkpoint_every == 0:
                ckpt_io.save_training_state(ckpt, identity, done, modules, optimizers, streams,
                                            best, history, combiner, self._cuda)
            if bar is not None:
                bar.update(1)
        loop_seconds = time.perf_counter() - t_loop
        if bar is not None:
            bar.close()
        if ckpt is not None:
            ckpt_io.save_training_state(ckpt, identity, cfg.iterations, modules, optimizers,
                                        streams, best, history, combiner, self._cuda)
        if not has_val:
            best["step"] = cfg.iterations
        elif restore_best and best["state"] is not None:
            self.load_state(method, best["state"])
        result = FitResult(
            method.name, cfg.iterations, trained=True, best_step=best["step"],
            val_accuracy=best["acc"] if has_val else None, history=history,
            seconds=time.perf_counter() - t0, best_state=best["state"] if has_val else None,
            loop_seconds=loop_seconds,
        )
        call(self.callbacks, "on_fit_end", self, method, result)
        return result

    def run(self, method: TrainableMethod, task: TransferTask, *,
            resume: bool = False) -> RunResult:
        """Fit on the task's training data, then evaluate once on its test split.

        Reports the validation-selected state (``test_accuracy``) and the last iterate
        (``test_accuracy_last``, a selection rule that uses no labels) side by side.
        ``resume`` continues from the training checkpoint in ``checkpoint_dir`` if any.
        """
        fit = self.fit(method, task.train_data(), restore_best=False, resume=resume)
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

    def evaluate(self, model: nn.Module, split: Split, spec: Any) -> EvalResult:
        """Accuracy (%) and mean cross-entropy of ``model`` on a labeled split."""
        return evaluate_split(model, split, spec, device=self.device,
                              batch_size=self.config.eval_batch_size, layout=self._layout,
                              autocast=self._autocast)

    # ------------------------------------------------------------------ state
    def state_of(self, method: TrainableMethod) -> dict[str, Any]:
        return ckpt_io.state_of(method.modules())

    def load_state(self, method: TrainableMethod, state: Mapping[str, Any]) -> None:
        for name, m in method.modules().items():
            m.load_state_dict(state[name])

    def save_checkpoint(self, method: TrainableMethod, path: str | Path) -> None:
        """Write the method's modules atomically (a crash leaves the old file or none)."""
        state = self.state_of(method)
        atomic_save(path, lambda fh: torch.save(state, fh))

    def load_checkpoint(self, method: TrainableMethod, path: str | Path) -> None:
        """Load a checkpoint written by :meth:`save_checkpoint` (``weights_only=True``)."""
        state = ckpt_io.read_checkpoint(path)
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

    def _diverged(self, method: TrainableMethod, step: int, factor: float, out: StepOutput,
                  opt: torch.optim.Optimizer) -> None:
        # the effective rate of every parameter group (base x schedule x the group's
        # multiplier, e.g. backbone_lr_mult), not only the base rate the user typed
        groups = "; ".join(
            f"group {i}: lr {g['lr']:.3g} (x{g['initial_lr'] / self.config.lr:.3g})"
            for i, g in enumerate(opt.param_groups))
        raise TrainingDivergedError(
            f"{method.name}: the loss became {float(out.loss.detach())} at step {step + 1} of "
            f"{self.config.iterations}, at effective learning rates {groups} (base lr "
            f"{self.config.lr:g} x schedule {factor:.3g} x each group's multiplier); lower "
            f"the learning rate (--lr), clip gradients (max_grad_norm) or check the inputs "
            f"for NaNs. Loss parts: {self._floats(out.logs)}"
        )

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

    def _optimizers(self, groups: list[dict[str, Any]], stages: tuple[str, ...]
                    ) -> dict[str, torch.optim.Optimizer]:
        """One optimiser, or one per stage (param groups tagged ``"stage"``)."""
        if not stages:
            return {"main": self._optimizer(groups)}
        unknown = sorted({str(g.get("stage")) for g in groups} - set(stages))
        if unknown:
            raise ConfigError(f"param groups name stages {unknown} that the method does not "
                              f"declare (stages = {stages}); tag every group with one of them.")
        return {s: self._optimizer([g for g in groups if g.get("stage") == s], s)
                for s in stages}

    def _optimizer(self, groups: list[dict[str, Any]], stage: str = "") -> torch.optim.Optimizer:
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
            where = f" in stage {stage!r}" if stage else ""
            raise ConfigError(f"the method has no trainable parameters{where}.")
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


def data_fingerprint(data: TrainData) -> dict[str, Any]:
    """The content of every split, not only its size: two tasks that differ only in ε, the
    label noise or the source domain have equal sizes and indices."""
    return {name: ckpt_io.split_fingerprint(getattr(data, name)) for name in
            ("source", "target_labeled", "target_unlabeled", "target_val")}
