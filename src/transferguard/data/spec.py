"""``TaskSpec``: the one validated description of a transfer task (protocol of section 1.5).

Every rule about a task's settings lives here, checked once when the spec is made, whether it
comes from Python (``TransferTask(...)`` builds one from its keywords), from a YAML config
(:meth:`TaskSpec.from_mapping`) or from command-line flags (which build the YAML mapping).
The spec is frozen, the way :class:`~transferguard.engine.TrainerConfig` describes the loop:
a task with other draws is ``dataclasses.replace(spec, seed=s)``.
"""

from __future__ import annotations

import dataclasses
import typing
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError, DataError
from ..typed import check_value
from .catalog import DOMAINS, PREFIXES
from .domain import Domain, InputSpec
from .perturb import CORRUPTIONS, LABEL_NOISE, check_rate

UNLABELED = ("rest", "pool")
#: what a task does about source images that nearly duplicate target test images
#: ("auto": check and warn when a side is user data; "warn": always check; "drop": check and
#: remove them from the source; "off": no check)
OVERLAP = ("auto", "warn", "drop", "off")
NORMALIZATIONS = ("default", "imagenet")
#: keys a YAML ``task:`` section may hold besides the fields (they build ``spec``)
INPUT_KEYS = {"channels": int, "input_size": int, "normalization": str}


@dataclass(frozen=True, eq=False)
class TaskSpec:
    """Source + target + protocol. ``eps`` sets ε_x = ε_y (the paper's tables) and is
    resolved into them; ``eps_x`` / ``eps_y`` set them apart. See :class:`TransferTask` for
    what each field does to the splits."""

    source: str | Domain = "mnist"
    target: str | Domain = "uci-digits"
    eps: float | None = None
    eps_x: float | None = None
    eps_y: float | None = None
    labeled_percent: float = 10.0
    val_fraction: float = 0.2
    test_fraction: float = 0.5
    seed: int = 0
    spec: InputSpec = field(default_factory=InputSpec)
    label_map: Mapping[str, str] | None = None
    label_noise: str = "uniform"
    corruptions: tuple[str, ...] = CORRUPTIONS
    source_size: int | None = None
    source_options: Mapping[str, Any] = field(default_factory=dict)
    target_options: Mapping[str, Any] = field(default_factory=dict)
    unlabeled: str = "rest"
    #: stream folder: domains from disk with these LoaderOptions (None: load in memory)
    stream: dict[str, Any] | None = None
    labeled_per_class: int | None = None
    overlap: str = "auto"

    def __post_init__(self) -> None:
        put = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731  (frozen)
        for name in ("source", "target"):
            value = getattr(self, name)
            if isinstance(value, str) and not value.startswith(PREFIXES) and value not in DOMAINS:
                raise DataError(f"{name}: unknown domain {value!r}; built-ins are "
                                f"{DOMAINS.names()}, or use torchvision:NAME / folder:PATH.")
            if not isinstance(value, (str, Domain)):
                raise DataError(f"{name} must be a domain name or a Domain, got {value!r}.")
        if self.eps is not None and (self.eps_x is not None or self.eps_y is not None):
            raise DataError("give either eps (sets eps_x = eps_y) or eps_x / eps_y, not both.")
        base = 0.0 if self.eps is None else check_rate("eps", self.eps)
        put("eps_x", check_rate("eps_x", base if self.eps_x is None else self.eps_x))
        put("eps_y", check_rate("eps_y", base if self.eps_y is None else self.eps_y))
        put("eps", None)
        try:
            lp = float(self.labeled_percent)
        except (TypeError, ValueError):
            lp = -1.0
        if isinstance(self.labeled_percent, bool) or not 0.0 <= lp <= 100.0:
            raise DataError(f"labeled_percent is L% of the target pool and must lie in [0, 100], "
                            f"got {self.labeled_percent!r} (for 10% labeled, pass 10).")
        put("labeled_percent", lp)
        if 0.0 < lp < 1.0 and self.labeled_per_class is None:
            warnings.warn(f"labeled_percent={lp:g} is read as {lp:g}% of the target pool, not "
                          f"as a fraction; for {lp * 100:g}% labeled pass {lp * 100:g}.",
                          stacklevel=3)
        if self.labeled_per_class is not None:
            if isinstance(self.labeled_per_class, bool) or int(self.labeled_per_class) < 1:
                raise DataError(f"labeled_per_class must be a positive number of labeled "
                                f"target images per class, got {self.labeled_per_class!r}.")
            put("labeled_per_class", int(self.labeled_per_class))
        if self.overlap not in OVERLAP:
            raise DataError(f"overlap must be one of {OVERLAP}, got {self.overlap!r}.")
        if not 0.0 <= float(self.val_fraction) < 1.0:
            raise DataError(f"val_fraction must lie in [0, 1), got {self.val_fraction!r}.")
        if not 0.0 < float(self.test_fraction) < 1.0:
            raise DataError(f"test_fraction must lie in (0, 1): without a test split there is "
                            f"no accuracy to report; got {self.test_fraction!r} (default 0.5).")
        put("val_fraction", float(self.val_fraction))
        put("test_fraction", float(self.test_fraction))
        put("seed", int(self.seed))
        if not isinstance(self.spec, InputSpec):
            raise DataError(f"spec must be an InputSpec, got {self.spec!r}.")
        if self.unlabeled not in UNLABELED:
            raise DataError(f"unlabeled must be 'rest' (the pool minus the labeled samples) or "
                            f"'pool' (the whole pool minus validation), got {self.unlabeled!r}.")
        if self.label_noise not in LABEL_NOISE:
            raise DataError(f"label_noise must be one of {LABEL_NOISE}, got "
                            f"{self.label_noise!r}.")
        unknown = sorted(set(self.corruptions) - set(CORRUPTIONS))
        if unknown:
            raise DataError(f"unknown corruptions {unknown}; valid: {list(CORRUPTIONS)}.")
        put("corruptions", tuple(self.corruptions))
        if self.eps_x > 0 and not self.corruptions:
            raise DataError(f"eps_x={self.eps_x} asks for corrupted images, but corruptions is "
                            f"empty; name at least one of {CORRUPTIONS}, or set eps_x=0.")
        if self.source_size is not None and int(self.source_size) < 1:
            raise DataError(f"source_size must be a positive number of samples, got "
                            f"{self.source_size}.")
        put("label_map", dict(self.label_map) if self.label_map else None)
        put("source_options", dict(self.source_options or {}))
        put("target_options", dict(self.target_options or {}))
        if self.stream is not None:
            put("stream", dict(self.stream))
            self.loader_options()  # unknown or bad options stop here
            if not all(isinstance(n, str) and n.startswith("folder:")
                       for n in (self.source, self.target)):
                raise DataError("stream: streaming reads image folders from disk; source and "
                                "target must both be folder:PATH (drop stream to load the "
                                "domains in memory).")

    def loader_options(self) -> Any:
        """The :class:`~transferguard.data.LoaderOptions` of ``stream`` (None: in memory)."""
        if self.stream is None:
            return None
        from .streaming import LoaderOptions

        valid = [f.name for f in dataclasses.fields(LoaderOptions)]
        bad = sorted(set(self.stream) - set(valid))
        if bad:
            raise DataError(f"stream: unknown options {bad}; valid: {valid}.")
        return LoaderOptions(**self.stream)

    # ------------------------------------------------------------------ names
    @property
    def source_name(self) -> str:
        return self.source if isinstance(self.source, str) else self.source.name

    @property
    def target_name(self) -> str:
        return self.target if isinstance(self.target, str) else self.target.name

    def with_seed(self, seed: int) -> TaskSpec:
        return dataclasses.replace(self, seed=int(seed))

    def build(self, seed: int | None = None) -> Any:
        """The :class:`TransferTask` of this spec (with ``seed`` when given); a
        :class:`~transferguard.data.StreamingTask` when ``stream`` is set."""
        from .streaming import StreamingTask
        from .task import TransferTask

        cls = TransferTask if self.stream is None else StreamingTask
        return cls.from_spec(self if seed is None else self.with_seed(seed))

    # ------------------------------------------------------------------ identity
    def config(self) -> dict[str, Any]:
        """Everything that defines the task, as plain values (hashed by the run store)."""
        s = self.spec
        return {
            "source": self.source_name, "target": self.target_name,
            "eps_x": self.eps_x, "eps_y": self.eps_y, "labeled_percent": self.labeled_percent,
            "val_fraction": self.val_fraction, "test_fraction": self.test_fraction,
            "seed": self.seed, "spec": [s.channels, s.size, list(s.mean), list(s.std)],
            "label_map": self.label_map, "label_noise": self.label_noise,
            "corruptions": list(self.corruptions), "source_size": self.source_size,
            "source_options": self.source_options, "target_options": self.target_options,
            # only when not the default, so that records made before the option stay valid
            **({"unlabeled": self.unlabeled} if self.unlabeled != "rest" else {}),
            # streamed: the augmentation changes the numbers (the workers and cache do not)
            **({"stream": self.loader_options().identity()} if self.stream is not None else {}),
            **({"labeled_per_class": self.labeled_per_class}
               if self.labeled_per_class is not None else {}),
            # "drop" changes the source; the other values only warn
            **({"overlap": "drop"} if self.overlap == "drop" else {}),
        }

    def to_dict(self) -> dict[str, Any]:
        """The YAML form (``from_mapping`` reads it back)."""
        s = self.spec
        out = {k: v for k, v in self.config().items() if k not in ("spec", "seed")}
        out.update(channels=s.channels, input_size=s.size,
                   normalization="imagenet" if s == InputSpec.imagenet(s.size) else "default")
        out.setdefault("unlabeled", self.unlabeled)
        out["overlap"] = self.overlap
        out["corruptions"] = list(self.corruptions)
        if self.stream is not None:
            out["stream"] = dict(self.stream)
        return out

    @classmethod
    def from_mapping(cls, data: Any, where: str = "task") -> TaskSpec:
        """A spec from a YAML ``task:`` mapping: ``channels``, ``input_size`` and
        ``normalization`` build the input spec; every other key is a field."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where} must be a mapping, got {data!r}.")
        hints = typing.get_type_hints(cls)
        valid = ({f.name for f in dataclasses.fields(cls)} - {"spec", "seed"}) | set(INPUT_KEYS)
        unknown = sorted(set(data) - valid)
        if unknown:
            raise ConfigError(f"unknown key(s) {unknown} in {where}; valid keys: "
                              f"{sorted(valid)}.")
        kwargs: dict[str, Any] = {}
        inputs = {"channels": 3, "input_size": 32, "normalization": "default"}
        for key, value in data.items():
            path = f"{where}.{key}"
            if key in INPUT_KEYS:
                inputs[key] = check_value(value, INPUT_KEYS[key], path)
            elif key in ("source", "target"):
                kwargs[key] = check_value(value, str, path)
            elif key == "corruptions":
                kwargs[key] = tuple(check_value(value, list[str], path))
            else:
                kwargs[key] = check_value(value, hints[key], path)
        if inputs["normalization"] not in NORMALIZATIONS:
            raise ConfigError(f"{where}.normalization must be 'default' ([-1, 1]) or "
                              f"'imagenet', got {inputs['normalization']!r}.")
        try:
            if inputs["normalization"] == "imagenet":
                if inputs["channels"] != 3:
                    raise ConfigError(f"{where}.normalization 'imagenet' needs channels: 3.")
                kwargs["spec"] = InputSpec.imagenet(inputs["input_size"])
            else:
                kwargs["spec"] = InputSpec(inputs["channels"], inputs["input_size"])
            return cls(**kwargs)
        except DataError as exc:
            text = str(exc)
            first = text.split(" ", 1)[0].rstrip(":")
            sep = "." if first in valid or first == "eps" else ": "
            raise ConfigError(f"{where}{sep}{text}") from None
