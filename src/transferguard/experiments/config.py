"""Experiment configs: YAML (``yaml.safe_load``) validated into dataclasses.

A config names a task, one or more methods, the trainer and the seeds::

    name: mnist-to-uci
    task: {source: mnist, target: uci-digits, eps: 0.7, labeled_percent: 30, input_size: 28}
    method: {name: dann, trade_off: 1.0}      # or `methods:` with a list of them
    trainer: {iterations: 1000, batch_size: 32, lr: 0.01}
    seeds: [0, 1, 2]
    ntg: true                                 # also train each method's twin and report NTG

Unknown keys stop with the list of valid ones; values of the wrong kind stop with the key's
path, the value and the expected type; unknown method or model names and method parameters
are checked before anything trains.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..data import InputSpec, TransferTask
from ..data.catalog import DOMAINS, PREFIXES
from ..data.perturb import LABEL_NOISE, check_rate
from ..engine import TrainerConfig
from ..errors import ConfigError, TransferGuardError
from ..methods import METHODS, Method, create_method
from ..models import MODELS


@dataclass
class TaskConfig:
    """The transfer task; see :class:`~transferguard.data.TransferTask` for each field."""

    source: str = "mnist"
    target: str = "uci-digits"
    eps: float | None = None
    eps_x: float | None = None
    eps_y: float | None = None
    labeled_percent: float = 10.0
    val_fraction: float = 0.2
    test_fraction: float = 0.5
    channels: int = 3
    input_size: int = 32
    normalization: str = "default"
    label_map: dict[str, str] | None = None
    label_noise: str = "uniform"
    source_size: int | None = None
    source_options: dict[str, Any] = field(default_factory=dict)
    target_options: dict[str, Any] = field(default_factory=dict)
    unlabeled: str = "rest"

    def validate(self, where: str = "task") -> None:
        for name in ("source", "target"):
            value = getattr(self, name)
            if not value.startswith(PREFIXES) and value not in DOMAINS:
                raise ConfigError(
                    f"{where}.{name}: unknown domain {value!r}; built-ins are "
                    f"{DOMAINS.names()}, or use torchvision:NAME / folder:PATH."
                )
        for name in ("eps", "eps_x", "eps_y"):
            if getattr(self, name) is not None:
                try:
                    check_rate(name, getattr(self, name))
                except TransferGuardError as exc:
                    raise ConfigError(f"{where}.{exc}") from None
        if self.eps is not None and (self.eps_x is not None or self.eps_y is not None):
            raise ConfigError(f"{where}: give eps (sets eps_x = eps_y) or eps_x/eps_y, not both.")
        if not 0 <= self.labeled_percent <= 100:
            raise ConfigError(f"{where}.labeled_percent must lie in [0, 100] (L%), got "
                              f"{self.labeled_percent}.")
        if self.normalization not in ("default", "imagenet"):
            raise ConfigError(f"{where}.normalization must be 'default' ([-1, 1]) or "
                              f"'imagenet', got {self.normalization!r}.")
        if self.unlabeled not in ("rest", "pool"):
            raise ConfigError(f"{where}.unlabeled must be 'rest' or 'pool', got "
                              f"{self.unlabeled!r}.")
        if self.label_noise not in LABEL_NOISE:
            raise ConfigError(f"{where}.label_noise must be one of {LABEL_NOISE}, got "
                              f"{self.label_noise!r}.")

    def spec(self) -> InputSpec:
        if self.normalization == "imagenet":
            if self.channels != 3:
                raise ConfigError("task.normalization 'imagenet' needs channels: 3.")
            return InputSpec.imagenet(self.input_size)
        return InputSpec(self.channels, self.input_size)

    def build(self, seed: int = 0) -> TransferTask:
        return TransferTask(
            self.source, self.target, eps=self.eps, eps_x=self.eps_x, eps_y=self.eps_y,
            labeled_percent=self.labeled_percent, val_fraction=self.val_fraction,
            test_fraction=self.test_fraction, seed=seed, spec=self.spec(),
            label_map=self.label_map, label_noise=self.label_noise,
            source_size=self.source_size, source_options=self.source_options,
            target_options=self.target_options, unlabeled=self.unlabeled,
        )


@dataclass
class ExperimentConfig:
    name: str = "experiment"
    task: TaskConfig = field(default_factory=TaskConfig)
    methods: list[dict[str, Any]] = field(default_factory=lambda: [{"name": "dann"}])
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    ntg: bool = True
    resplit: bool = True
    output: str | None = None

    def build_methods(self) -> list[Method]:
        return [method_from_spec(m, f"methods[{i}]") for i, m in enumerate(self.methods)]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


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
    if getattr(method, "gate_options", None):
        from ..methods.gate import Gate

        _check_options(Gate.__init__, method.gate_options, f"{where}.gate_options",
                       skip=("self", "feature_dim", "num_classes"))
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
    cfg = _from_dict(ExperimentConfig, data, "")
    cfg.task.validate()
    try:
        cfg.trainer.validate()
    except ConfigError as exc:
        raise ConfigError(f"trainer.{exc}") from None
    if not cfg.seeds:
        raise ConfigError("seeds must list at least one seed.")
    if len(set(cfg.seeds)) != len(cfg.seeds):
        raise ConfigError(f"seeds repeat ({cfg.seeds}); a repeated seed repeats a run and "
                          "makes the confidence interval falsely narrow. List distinct seeds.")
    cfg.build_methods()  # checks method names, models and parameters now, not mid-sweep
    return cfg


def _from_dict(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'} must be a mapping, got {data!r}.")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        place = f"in {where}" if where else "at the top level"
        raise ConfigError(f"unknown key(s) {unknown} {place}; valid keys: {sorted(fields)}.")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in data.items():
        path = f"{where}.{name}" if where else name
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            kwargs[name] = _from_dict(hint, value, path)
        else:
            kwargs[name] = _check(value, hint, path)
    return cls(**kwargs)


def _check(value: Any, hint: Any, path: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _check(value, a, path)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{path}: bad value {value!r}.")
    if hint is Any:
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{path} must be a list, got {value!r}.")
        return [_check(v, args[0], f"{path}[{i}]") for i, v in enumerate(value)] if args else value
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path} must be a mapping, got {value!r}.")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path} must be true or false, got {value!r}.")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path} must be an integer, got {value!r}.")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path} must be a number, got {value!r}.")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path} must be a string, got {value!r}.")
        return value
    return value
