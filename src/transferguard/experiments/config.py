"""Experiment configs: YAML (``yaml.safe_load``) validated into dataclasses.

A config names a task, one or more methods, the trainer and the seeds::

    name: mnist-to-uci
    task: {source: mnist, target: uci-digits, eps: 0.7, labeled_percent: 30, input_size: 28}
    method: {name: dann, trade_off: 1.0}      # or `methods:` with a list of them
    trainer: {iterations: 1000, batch_size: 32, lr: 0.01}
    seeds: [0, 1, 2]
    ntg: true                                 # also train each method's twin and report NTG
    loggers: {tensorboard: tb, mlflow: mlruns}  # optional; folders inside the output dir

Unknown keys stop with the list of valid ones; values of the wrong kind stop with the key's
path, the value and the expected type; unknown method or model names and method parameters
are checked before anything trains.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..data import TaskSpec
from ..engine import TrainerConfig
from ..errors import ConfigError
from ..methods import METHODS, Method, create_method
from ..models import MODELS
from ..typed import from_mapping
from ..utils import check_seeds


@dataclass
class ExperimentConfig:
    name: str = "experiment"
    task: TaskSpec = field(default_factory=TaskSpec)
    methods: list[dict[str, Any]] = field(default_factory=lambda: [{"name": "dann"}])
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    ntg: bool = True
    resplit: bool = True
    output: str | None = None
    #: metrics to trackers: {tensorboard: DIR, mlflow: DIR_OR_URI} (engine/loggers.py)
    loggers: dict[str, str] = field(default_factory=dict)

    def build_methods(self) -> list[Method]:
        return [method_from_spec(m, f"methods[{i}]") for i, m in enumerate(self.methods)]

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["task"] = self.task.to_dict()
        return out


def method_from_spec(spec: dict[str, Any], where: str = "method") -> Method:
    params = dict(spec)
    name = params.pop("name", None)
    if not name:
        raise ConfigError(f"{where} needs a name; known methods: {METHODS.names()}.")
    if name not in METHODS:
        raise ConfigError(f"{where}.name: unknown method {name!r}; known methods: "
                          f"{METHODS.names()}.")
    model = params.get("model", "lenet")
    if model not in MODELS:
        raise ConfigError(f"{where}.model: unknown model {model!r}; known models: "
                          f"{MODELS.names()}.")
    try:
        method = create_method(name, **params)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    _check_options(MODELS.get(model), method.model_options, f"{where}.model_options",
                   skip=("num_classes", "in_channels", "input_size"))
    if method.accepts_weighter:
        from ..methods.reweighting.weighter import weighter_class, weighter_options

        valid = weighter_options(weighter_class(method.gate))
        bad = sorted(set(method.gate_options) - set(valid))
        if bad:
            raise ConfigError(f"{where}.gate_options: unknown option(s) {bad}; valid: "
                              f"{sorted(valid)}.")
    return method


def _check_options(fn: Any, options: dict[str, Any], where: str, skip: tuple[str, ...]) -> None:
    import inspect

    valid = sorted(set(inspect.signature(fn).parameters) - set(skip))
    bad = sorted(set(options) - set(valid))
    if bad:
        raise ConfigError(f"{where}: unknown option(s) {bad}; valid: {valid}.")


# --------------------------------------------------------------------------------------------
# loading and validation
# --------------------------------------------------------------------------------------------


def load_config(path: str | os.PathLike[str]) -> ExperimentConfig:
    """Read and validate a YAML experiment config."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {p} does not exist.")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p} is not valid YAML: {exc}") from None
    try:
        return config_from_dict(data or {})
    except ConfigError as exc:
        raise ConfigError(f"{p}: {exc}") from None


def config_from_dict(data: dict[str, Any]) -> ExperimentConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"a config is a mapping of keys to values, got {type(data).__name__}.")
    data = dict(data)
    if "method" in data:
        if "methods" in data:
            raise ConfigError("give `method` (one) or `methods` (a list), not both.")
        data["methods"] = [data.pop("method")]
    methods = data.get("methods")
    if methods is not None:
        if not isinstance(methods, list) or not methods:
            raise ConfigError("methods must be a non-empty list of method names or mappings.")
        data["methods"] = [{"name": m} if isinstance(m, str) else m for m in methods]
        for i, m in enumerate(data["methods"]):
            if not isinstance(m, dict):
                raise ConfigError(f"methods[{i}] must be a name or a mapping, got {m!r}.")
    cfg = from_mapping(ExperimentConfig, data, "", special={"task": TaskSpec.from_mapping})
    try:
        cfg.trainer.validate()
    except ConfigError as exc:
        raise ConfigError(f"trainer.{exc}") from None
    try:
        check_seeds(cfg.seeds)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    cfg.build_methods()  # checks method names, models and parameters now, not mid-sweep
    from ..engine.loggers import LOGGERS

    bad = sorted(set(cfg.loggers) - set(LOGGERS))
    if bad:
        raise ConfigError(f"loggers: unknown logger(s) {bad}; valid: {list(LOGGERS)}.")
    return cfg
