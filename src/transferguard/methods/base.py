"""``Method``: one transfer algorithm, run by the :class:`~transferguard.engine.Trainer`.

A method owns its modules (the F/C model plus extras such as a discriminator), its loss for
one step, and its **target-only twin** A_T, the same algorithm with the source removed
(methods reference section 1.1), which the negative transfer gap compares against.

Conventions (scikit-learn's): the constructor stores hyper-parameters only; everything built
for a run ends in ``_`` (``model_``, ``discriminator_``). ``get_params`` / ``clone`` rebuild a
method from its hyper-parameters, which is also what the run store hashes.

The default twin runs the same code on a *source-free* view of the data
(:meth:`TrainData.without_source`): the labeled target takes the source's place (feeds the
classifier and the source side of any discriminator), exactly the DANN_T of Wang et al.
Methods where that is not the right baseline override :meth:`twin`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeVar

import torch
import torch.nn.functional as F
from torch import nn

from ..data import Batch, TrainData
from ..engine.types import StepOutput
from ..errors import ConfigError
from ..models import TransferModel, create_model
from ..registry import Registry

LABELED_STREAMS = ("source", "target_labeled")
#: parameters a label never spells out (the twin has its ``_T``; options are a mapping)
LABEL_SKIP = ("source_free", "model_options")


def _short(value: Any) -> str:
    """A parameter value as a label shows it: numbers in %g, paths by their file name."""
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str) and ("/" in value or "\\" in value):
        return value.replace("\\", "/").rsplit("/", 1)[-1]
    return str(value)


class Method:
    """Base class; subclasses set ``streams_used`` and implement ``training_step``."""

    name: ClassVar[str] = "method"
    #: the TrainData splits this method draws batches from
    streams_used: ClassVar[tuple[str, ...]] = ("source",)
    #: whether the method composes a source weighter (its ``gate`` option)
    accepts_weighter: ClassVar[bool] = False
    #: optimisation stages, each with its own optimiser (empty: one optimiser); a method
    #: with stages tags its param groups with ``"stage"`` and implements ``stage_step``
    stages: ClassVar[tuple[str, ...]] = ()

    def __init__(self, model: str = "lenet", model_options: Mapping[str, Any] | None = None,
                 source_free: bool = False) -> None:
        self.model = model
        self.model_options = dict(model_options or {})
        self.source_free = bool(source_free)

    # ------------------------------------------------------------------ parameters
    @classmethod
    def param_names(cls) -> list[str]:
        names: list[str] = []
        for klass in cls.__mro__:
            if klass is object or "__init__" not in klass.__dict__:
                continue
            for p in inspect.signature(klass.__init__).parameters.values():
                if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) \
                        and p.name not in names:
                    names.append(p.name)
        return names

    def get_params(self) -> dict[str, Any]:
        return {n: getattr(self, n) for n in self.param_names()}

    def clone(self, **overrides: Any) -> Method:
        """A fresh, untrained copy with the same hyper-parameters (and ``overrides``)."""
        params = self.get_params()
        bad = sorted(set(overrides) - set(params))
        if bad:
            raise ConfigError(f"{self.name} has no parameters {bad}; it has {sorted(params)}.")
        params.update(overrides)
        return type(self)(**params)

    def twin(self) -> Method:
        """The target-only twin A_T: the same algorithm with the source removed."""
        return self.clone(source_free=True)

    @property
    def has_weighter(self) -> bool:
        """Whether a source weighter is switched on (its ``source_scores`` then exist)."""
        return False

    @classmethod
    def default_params(cls) -> dict[str, Any]:
        """The constructor defaults (the most derived class's default wins)."""
        out: dict[str, Any] = {}
        for klass in cls.__mro__:
            if klass is object or "__init__" not in klass.__dict__:
                continue
            for p in inspect.signature(klass.__init__).parameters.values():
                if p.default is not p.empty:
                    out.setdefault(p.name, p.default)
        return out

    def param_text(self, skip: tuple[str, ...] = ()) -> str:
        """``(alpha=1, alpha_decay=0.99)``: the hyper-parameters that differ from their
        defaults, so that two runs of one method with other settings read apart in tables.
        ``source_free`` (the ``_T`` suffix), ``model_options`` and what the label already
        says (``skip``) are left out."""
        defaults = self.default_params()
        changed = [(k, v) for k, v in self.get_params().items()
                   if k not in LABEL_SKIP + skip and k in defaults and v != defaults[k]
                   and not (defaults[k] is None and v in ({}, [], ()))]
        return "(" + ", ".join(f"{k}={_short(v)}" for k, v in changed) + ")" if changed else ""

    @property
    def label(self) -> str:
        """Display name: ``dann``, ``dann+gate``, ``dann_T``, ``l2sp(alpha=1)`` ..."""
        base = self.name + self.param_text()
        return f"{base}_T" if self.source_free else base

    def __repr__(self) -> str:
        changed = {k: v for k, v in self.get_params().items() if k != "model_options" or v}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in changed.items())})"

    # ------------------------------------------------------------------ lifecycle
    def setup(self, data: TrainData, trainer: Any) -> None:
        """Build the model and the method's extra modules for ``data`` (called by fit)."""
        self.spec_ = data.spec
        self.num_classes_ = data.num_classes
        self.model_ = self.build_model(data)
        self.extra_modules_: dict[str, nn.Module] = {}
        self.build(data, trainer)

    def build_model(self, data: TrainData) -> TransferModel:
        return create_model(self.model, data.num_classes, data.spec.channels, data.spec.size,
                            **self.model_options)

    def build(self, data: TrainData, trainer: Any) -> None:
        """Hook: create extra modules (store them in ``self.extra_modules_``)."""

    def prepare(self, data: TrainData, trainer: Any) -> None:
        """Hook: earlier stages (source pre-training ...), run through ``trainer.fit``."""

    def streams(self) -> tuple[str, ...]:
        return self.streams_used

    def can_train(self, data: TrainData) -> str | None:
        """``None`` when training can run, else the reason it can not (no labels at all)."""
        labeled = [s for s in self.streams() if s in LABELED_STREAMS]
        if labeled and all(len(getattr(data, s)) == 0 for s in labeled):
            return (f"{self.label}: no labeled samples in {labeled}; the model stays at its "
                    "initialisation (chance-level baseline).")
        return None

    def modules(self) -> dict[str, nn.Module]:
        return {"model": self.model_, **self.extra_modules_}

    def set_train_mode(self) -> None:
        """Put the modules in training mode before a step (frozen parts may stay in eval)."""
        for m in self.modules().values():
            m.train()

    def param_groups(self) -> list[dict[str, Any]]:
        return [{"params": list(m.parameters())} for m in self.modules().values()]

    def training_step(self, batches: Mapping[str, Batch], progress: float) -> StepOutput:
        raise NotImplementedError

    def stage_step(self, stage: str, batches: Mapping[str, Batch],
                   progress: float) -> StepOutput:
        """The loss of one stage of a multi-stage step (see ``stages``)."""
        raise NotImplementedError(f"{self.name} declares no stages; the Trainer calls "
                                  "training_step instead.")

    @property
    def gradient_combiner(self) -> Any:
        """A rule that replaces ``loss.backward()`` (DTNH), or None."""
        return None

    # ------------------------------------------------------------------ shared pieces
    def labeled_batches(self, batches: Mapping[str, Batch]) -> list[Batch]:
        return [batches[s] for s in LABELED_STREAMS if s in batches]


def supervised_loss(model: TransferModel, batches: list[Batch]) -> tuple[torch.Tensor, dict]:
    """Sum over streams of the mean cross-entropy (one forward over the concatenation)."""
    x = torch.cat([b.x for b in batches])
    logits = model(x)
    loss = logits.new_zeros(())
    logs = {}
    start = 0
    for b in batches:
        part = F.cross_entropy(logits[start : start + len(b.x)].float(), b.y)
        loss = loss + part
        start += len(b.x)
    logs["ce"] = loss.detach()
    return loss, logs


METHODS: Registry[type[Method]] = Registry("method")
M = TypeVar("M", bound=type[Method])


def register_method(name: str, description: str = "") -> Callable[[M], M]:
    """Class decorator: register a :class:`Method` subclass under ``name``."""

    return METHODS.register_class(name, description)


def list_methods() -> list[str]:
    return METHODS.names()


def create_method(name: str, **params: Any) -> Method:
    """Build a registered method; unknown parameters stop with the list of valid ones."""
    cls = METHODS.get(name)
    valid = cls.param_names()
    bad = sorted(set(params) - set(valid))
    if bad:
        raise ConfigError(f"method {name!r} has no parameters {bad}; valid: {valid}.")
    return cls(**params)
