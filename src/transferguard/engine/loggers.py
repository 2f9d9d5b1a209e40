"""Metrics to the trackers people already use: TensorBoard and MLflow (a local file store).

Both are Trainer callbacks (``Trainer(..., callbacks=[TensorBoardLogger("tb")])``):

- ``on_log(trainer, method, step, row)``: every history row the Trainer writes (training
  loss and its parts, learning rate, validation accuracy) becomes scalars at ``step``;
- ``on_eval(...)``: nothing to add (returns ``None``);
- ``on_fit_end(trainer, method, result)``: the selected step and validation accuracy, the
  trainer settings and the method's hyper-parameters, then the run is closed.

One fit is one run: ``<label>-seed<seed>-<time>`` for TensorBoard, an MLflow run named
``<label> seed <seed>`` in the experiment ``experiment``. Nested fits (a method that
pre-trains a source network through the Trainer) get runs of their own. The trackers are
optional extras (``pip install transferguard[tensorboard]`` / ``[mlflow]``) imported when a
logger is created, so a missing one fails at once with the command that installs it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import time
from pathlib import Path
from typing import Any

from ..errors import ConfigError


def _require(module: str, extra: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(f"this logger needs the optional dependency {extra!r} ({exc}); "
                          f"install it with: pip install 'transferguard[{extra}]'.") from None


def _run_name(trainer: Any, method: Any) -> str:
    return f"{getattr(method, 'label', type(method).__name__)}-seed{getattr(trainer, 'seed', 0)}"


def _finite(value: Any) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _params(trainer: Any, method: Any) -> dict[str, str]:
    """Trainer settings and method hyper-parameters as flat strings (trackers take text)."""
    out: dict[str, str] = {}
    cfg = getattr(trainer, "config", None)
    if dataclasses.is_dataclass(cfg):
        out.update({f"trainer.{k}": str(v) for k, v in dataclasses.asdict(cfg).items()})
    if hasattr(method, "get_params"):
        out["method.name"] = str(getattr(method, "name", ""))
        out.update({f"method.{k}": json.dumps(v, default=str) if isinstance(v, (dict, list))
                    else str(v) for k, v in method.get_params().items()})
    return {k: v[:500] for k, v in out.items()}


class TensorBoardLogger:
    """Scalars to TensorBoard event files under ``log_dir`` (view: ``tensorboard --logdir``)."""

    def __init__(self, log_dir: str | os.PathLike[str] = "runs/tensorboard",
                 flush_secs: int = 30) -> None:
        self.log_dir = log_dir
        self.flush_secs = flush_secs
        self._tb = _require("torch.utils.tensorboard", "tensorboard")
        self._writers: dict[int, Any] = {}
        self.run_dirs_: list[Path] = []

    def _writer(self, trainer: Any, method: Any) -> Any:
        w = self._writers.get(id(method))
        if w is None:
            stamp = time.strftime("%Y%m%d-%H%M%S") + f"-{time.time_ns() % 10**6:06d}"
            path = Path(self.log_dir) / f"{_run_name(trainer, method)}-{stamp}"
            w = self._tb.SummaryWriter(log_dir=str(path), flush_secs=self.flush_secs)
            self._writers[id(method)] = w
            self.run_dirs_.append(path)
        return w

    def on_log(self, trainer: Any, method: Any, step: int, row: dict[str, float]) -> None:
        w = self._writer(trainer, method)
        for key, value in row.items():
            v = _finite(value)
            if key != "step" and v is not None:
                w.add_scalar(key, v, int(step))

    def on_eval(self, trainer: Any, method: Any, data: Any, step: int) -> None:
        return None

    def on_fit_end(self, trainer: Any, method: Any, result: Any) -> None:
        w = self._writer(trainer, method)
        step = int(getattr(result, "iterations", 0) or 0)
        for key in ("val_accuracy", "best_step"):
            v = _finite(getattr(result, key, None))
            if v is not None:
                w.add_scalar(f"final/{key}", v, step)
        params = _params(trainer, method)
        w.add_text("config", "\n".join(f"    {k} = {v}" for k, v in sorted(params.items())))
        w.close()
        self._writers.pop(id(method), None)


_MLFLOW_KEY = re.compile(r"[^A-Za-z0-9_\-. /]")


class MLflowLogger:
    """Metrics, parameters and tags to MLflow; by default a local file store (``mlruns``).

    ``tracking_uri`` is a folder (MLflow's file store, which MLflow 3 keeps in maintenance
    mode behind ``MLFLOW_ALLOW_FILE_STORE``: giving a folder sets it) or any MLflow URI, e.g.
    ``sqlite:///runs/mlflow.db`` for its database store (needs SQLAlchemy). View with
    ``mlflow ui --backend-store-uri URI`` (the full ``mlflow`` package). The client
    API is used rather than MLflow's global "active run", so nested fits and several
    loggers never mix their runs.
    """

    def __init__(self, tracking_uri: str | os.PathLike[str] = "mlruns",
                 experiment: str = "transferguard") -> None:
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        tracking = _require("mlflow.tracking", "mlflow")
        uri = str(tracking_uri)
        if "://" not in uri and not uri.startswith("file:"):
            Path(uri).mkdir(parents=True, exist_ok=True)
            uri = Path(uri).resolve().as_uri()
        if uri.startswith("file:"):
            # MLflow 3 keeps the file store in maintenance mode behind this opt-in; a folder
            # given here is that explicit choice (sqlite:///PATH/mlflow.db is the other)
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self._entities = _require("mlflow.entities", "mlflow")
        self.client_ = tracking.MlflowClient(tracking_uri=uri)
        found = self.client_.get_experiment_by_name(experiment)
        self.experiment_id_ = (found.experiment_id if found is not None
                               else self.client_.create_experiment(experiment))
        self._runs: dict[int, str] = {}
        self.run_ids_: list[str] = []

    def _run(self, trainer: Any, method: Any) -> str:
        run_id = self._runs.get(id(method))
        if run_id is None:
            name = _run_name(trainer, method).replace("-seed", " seed ")
            run = self.client_.create_run(self.experiment_id_, run_name=name,
                                          tags={"transferguard.method": str(method.name)
                                                if hasattr(method, "name") else name})
            run_id = run.info.run_id
            self._runs[id(method)] = run_id
            self.run_ids_.append(run_id)
            params = [self._entities.Param(k, v) for k, v in _params(trainer, method).items()]
            for start in range(0, len(params), 100):  # MLflow's batch limit
                self.client_.log_batch(run_id, params=params[start : start + 100])
        return run_id

    def on_log(self, trainer: Any, method: Any, step: int, row: dict[str, float]) -> None:
        run_id = self._run(trainer, method)
        now = int(time.time() * 1000)
        metrics = [self._entities.Metric(_MLFLOW_KEY.sub("_", k), v, now, int(step))
                   for k, v in ((k, _finite(v)) for k, v in row.items())
                   if k != "step" and v is not None]
        if metrics:
            self.client_.log_batch(run_id, metrics=metrics)

    def on_eval(self, trainer: Any, method: Any, data: Any, step: int) -> None:
        return None

    def on_fit_end(self, trainer: Any, method: Any, result: Any) -> None:
        run_id = self._run(trainer, method)
        step = int(getattr(result, "iterations", 0) or 0)
        for key in ("val_accuracy", "best_step"):
            v = _finite(getattr(result, key, None))
            if v is not None:
                self.client_.log_metric(run_id, f"final.{key}", v, step=step)
        self.client_.set_terminated(run_id, "FINISHED")
        self._runs.pop(id(method), None)


#: the loggers a config's ``loggers:`` mapping (or the CLI flags) can switch on
LOGGERS = ("tensorboard", "mlflow")


def make_loggers(settings: dict[str, Any] | None = None, *,
                 base: str | os.PathLike[str] | None = None,
                 experiment: str = "transferguard") -> list[Any]:
    """Loggers from ``{tensorboard: DIR, mlflow: DIR_OR_URI}`` (a config's ``loggers:``, or
    the CLI's ``--tensorboard`` / ``--mlflow``); empty when nothing is set. A relative
    folder is taken inside ``base`` (the run's output directory) when given."""
    settings = {k: v for k, v in (settings or {}).items() if v}
    bad = sorted(set(settings) - set(LOGGERS))
    if bad:
        raise ConfigError(f"loggers: unknown logger(s) {bad}; valid: {list(LOGGERS)} "
                          "(each takes a folder, mlflow also any MLflow tracking URI).")

    def where(value: Any) -> str:
        text = str(value)
        if base is None or ":" in text or Path(text).is_absolute():
            return text
        return str(Path(base) / text)

    out: list[Any] = []
    if "tensorboard" in settings:
        out.append(TensorBoardLogger(where(settings["tensorboard"])))
    if "mlflow" in settings:
        out.append(MLflowLogger(where(settings["mlflow"]), experiment))
    return out
