"""Experiment configs: YAML (``yaml.safe_load``) validated into dataclasses.

A config names a task, one or more methods, the trainer and the seeds::

    name: mnist-to-uci
    task: {source: mnist, target: uci-digits, eps: 0.7, labeled_percent: 30, input_size: 28}
    method: {name: dann, trade_off: 1.0}      # or `methods:` with a list of them
                                              # safe: true -> also safe mode around it
    trainer: {iterations: 1000, batch_size: 32, lr: 0.01}
    seeds: [0, 1, 2]
    ntg: true                                 # also train each method's twin and report NTG
    loggers: {tensorboard: tb, mlflow: mlruns}  # optional; folders inside the output dir

Unknown keys stop with the list of valid ones; values of the wrong kind stop with the key's
path, the value and the expected type; unknown method or model names, method parameters (their
type from the constructor's hints, and no negative or non-finite weights, rates or counts),
the device, whether the model takes the task's input size, the ``pretrained`` files and the
experiment ``name`` (one safe path component: it names the output directory) are all checked
before anything trains or is recorded.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import json
import math
import os
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..analysis.safe import SafeMode
from ..data import TaskSpec
from ..engine import TrainerConfig
from ..errors import ConfigError
from ..methods import METHODS, Method, create_method
from ..models import MODELS
from ..typed import check_value, from_mapping
from ..utils import check_seeds, resolve_device

#: an experiment name: one path component of letters, digits, ``.``, ``_``, ``-``
NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,99}")
#: model options the task sets (from its input spec and classes), never a method
TASK_MODEL_OPTIONS = ("num_classes", "in_channels", "input_size")
#: strings YAML 1.2 readers take for booleans but ``yaml.safe_load`` keeps quoted
_BOOL_WORDS = ("yes", "no", "on", "off", "true", "false", "y", "n")
#: (model, options, channels, size) that :func:`check_model_input` has already run
_MODEL_INPUT_OK: set[str] = set()


def check_name(name: str) -> str:
    """An experiment name is one safe path component (it names ``runs/NAME`` and the
    summary files): ``/abs/path`` or ``../x`` would write outside the output directory."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name) or name in (".", ".."):
        raise ConfigError(f"name {name!r} is not a plain name: use letters, digits, '.', '_' "
                          "and '-' only (no '/' or '..'), at most 100 characters; choose the "
                          "directory with `output:` or --out instead.")
    return name


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

    def build_safe(self) -> list[SafeMode | None]:
        """Each method's safe-mode rule (``safe:`` in its mapping), or None."""
        return [safe_from_spec(m.get("safe"), f"methods[{i}].safe")
                for i, m in enumerate(self.methods)]

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["task"] = self.task.to_dict()
        return out


def safe_from_spec(value: Any, where: str = "method.safe") -> SafeMode | None:
    """``safe: true`` (the default rule), ``safe: false``/absent (none), or a mapping of
    :class:`~transferguard.analysis.SafeMode` options (alpha, blend, weights, correction)."""
    if value is None or value is False:
        return None
    if value is True:
        return SafeMode()
    if isinstance(value, str) and value.lower() in _BOOL_WORDS:
        raise ConfigError(f"{where}: {value!r} is a quoted string; write safe: true or "
                          "safe: false without quotes.")
    if not isinstance(value, dict):
        raise ConfigError(f"{where} is true, false or a mapping of options (alpha, blend, "
                          f"weights, correction), got {value!r}.")
    valid = ("alpha", "blend", "weights", "correction")
    bad = sorted(set(value) - set(valid))
    if bad:
        raise ConfigError(f"{where}: unknown option(s) {bad}; valid: {list(valid)}.")
    if "weights" in value and not isinstance(value["weights"], list):
        raise ConfigError(f"{where}.weights is a list of method weights in (0, 1], got "
                          f"{value['weights']!r}.")
    alpha = value.get("alpha", 0.05)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)):
        raise ConfigError(f"{where}.alpha is a number in (0, 1), got {alpha!r}.")
    try:
        return SafeMode(**value).validate()
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def method_from_spec(spec: dict[str, Any], where: str = "method") -> Method:
    params = dict(spec)
    safe_from_spec(params.pop("safe", None), f"{where}.safe")
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
    if isinstance(params.get("gate"), str) and params["gate"].lower() in _BOOL_WORDS:
        raise ConfigError(f"{where}.gate: {params['gate']!r} is a quoted string; write gate: "
                          f"true or gate: false without quotes, or name a source weighter.")
    _check_params(METHODS.get(name), params, where)
    reserved = sorted(set(params.get("model_options") or {}) & set(TASK_MODEL_OPTIONS))
    if reserved:
        raise ConfigError(f"{where}.model_options: {reserved} come from the task (its classes, "
                          "task.channels and task.input_size); set them there, not here.")
    try:
        method = create_method(name, **params)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    _check_options(MODELS.get(model), method.model_options, f"{where}.model_options",
                   skip=TASK_MODEL_OPTIONS)
    pretrained = params.get("pretrained")
    if pretrained and not Path(str(pretrained)).expanduser().is_file():
        raise ConfigError(f"{where}.pretrained: no file {pretrained}; give the path of a "
                          "checkpoint, or leave it out to pre-train on the source.")
    if method.accepts_weighter:
        from ..methods.reweighting.weighter import weighter_class, weighter_options

        valid = weighter_options(weighter_class(method.gate))
        bad = sorted(set(method.gate_options) - set(valid))
        if bad:
            raise ConfigError(f"{where}.gate_options: unknown option(s) {bad}; valid: "
                              f"{sorted(valid)}.")
    return method


def _check_params(cls: type, params: dict[str, Any], where: str) -> None:
    """Each method parameter against the constructor's type hint; numbers finite, and not
    negative where the default is a non-negative number (weights, rates, counts)."""
    hints: dict[str, Any] = {}
    defaults: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        if klass is object or "__init__" not in klass.__dict__:
            continue
        with contextlib.suppress(Exception):  # an unresolvable hint: check the others
            hints.update(typing.get_type_hints(klass.__init__))
        for p in inspect.signature(klass.__init__).parameters.values():
            defaults[p.name] = p.default
    for key, value in params.items():
        path = f"{where}.{key}"
        if key in hints and key not in ("model_options", "gate_options"):
            check_value(value, hints[key], path)  # raises ConfigError; the value is kept as is
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if not math.isfinite(value):
            raise ConfigError(f"{path} must be a finite number, got {value!r}.")
        d = defaults.get(key)
        if (isinstance(d, (int, float)) and not isinstance(d, bool) and d >= 0 and value < 0) \
                or (key.endswith("iterations") and value < 1):
            low = "1" if key.endswith("iterations") else "0"
            raise ConfigError(f"{path} must be >= {low}, got {value!r} (default {d!r}).")


def check_model_input(model: str, options: dict[str, Any], spec: Any, where: str) -> None:
    """Build the model once for the task's input and run a tiny batch through it, so that an
    input too small for it stops here, not after a run is recorded."""
    import torch

    from ..models import create_model

    opts = {k: v for k, v in options.items() if k != "weights"}  # no file read for a check
    seen = json.dumps([model, opts, spec.channels, spec.size], sort_keys=True, default=str)
    if seen in _MODEL_INPUT_OK:  # a sweep checks one model for hundreds of points
        return
    try:
        net = create_model(model, 2, spec.channels, spec.size, **opts)
        net.eval()
        with torch.no_grad():
            net(torch.zeros(2, spec.channels, spec.size, spec.size))
    except ConfigError:
        raise
    except Exception as exc:  # whatever the model says, said as a config error
        raise ConfigError(f"{where}: model {model!r} does not take {spec.channels}x{spec.size}"
                          f"x{spec.size} inputs ({exc}); change task.input_size "
                          "(--input-size) or the model.") from None
    _MODEL_INPUT_OK.add(seen)


def check_device(device: str, where: str = "trainer.device") -> None:
    """The device exists here (``cuda`` without a GPU stops now, not mid-run)."""
    import torch

    try:
        dev = resolve_device(device)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {device!r} is not a device ({exc}); use auto, cpu, cuda, "
                          "cuda:N or mps.") from None
    if dev.type == "cuda" and (not torch.cuda.is_available() or
                               (dev.index or 0) >= torch.cuda.device_count()):
        raise ConfigError(f"{where}: {device!r} asked for, but this machine has "
                          f"{torch.cuda.device_count()} CUDA device(s); use auto or cpu.")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"{where}: 'mps' asked for, but MPS is not available; use auto or cpu.")


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
    if p.is_dir():
        raise ConfigError(f"{p} is a directory; give the path of a YAML config file.")
    if not p.is_file():
        raise ConfigError(f"config file {p} does not exist.")
    try:
        text = p.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{p} is not a text file (not UTF-8); give a YAML config.") from None
    if "\x00" in text:
        raise ConfigError(f"{p} is a binary file; give a YAML config.")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p} is not valid YAML: {exc}") from None
    if data is None:
        raise ConfigError(f"{p} is empty; a config names at least a task and a method (see "
                          "docs/guide.md), or run `transferguard demo`.")
    try:
        return config_from_dict(data)
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
    check_name(cfg.name)
    check_device(cfg.trainer.device)
    cfg.build_methods()  # checks method names, models and parameters now, not mid-sweep
    if any(r is not None for r in cfg.build_safe()) and not cfg.ntg:
        raise ConfigError("safe mode chooses between a method and its twin, which only an NTG "
                          "run trains: set ntg: true (or drop safe).")
    from ..engine.loggers import LOGGERS

    bad = sorted(set(cfg.loggers) - set(LOGGERS))
    if bad:
        raise ConfigError(f"loggers: unknown logger(s) {bad}; valid: {list(LOGGERS)}.")
    for i, m in enumerate(cfg.methods):
        check_model_input(m.get("model", "lenet"), dict(m.get("model_options") or {}),
                          cfg.task.spec, f"methods[{i}]")
    return cfg
