"""Source weighters: the slot every domain-adaptation method composes (DESIGN "source weighter").

A *source weighter* gives every source sample of a step a weight ω_i (detached) and may train
itself with a loss of its own (the gate's discriminator, for example). The method then
minimises

    L = E_{T_L}[ℓ] + scale · mean_i(ω_i ℓ(C(F(x_i)), y_i)) + weighter loss [+ alignment]

so a weighter changes *which* source samples teach the classifier, never the rest of the
method. The protocol is small on purpose (skada's weighting estimators are the model): a
weighter is an ``nn.Module`` (its parameters, if any, train with the method, at ``lr_mult``
times the base rate) with

- ``forward(feats) -> WeighterOutput``: weights for ``feats.y_src`` and its own loss, and
  optionally a per-sample source loss that *replaces* ℓ(C(F(x_s)), y_s) (a loss correction
  such as Gold Loss Correction's forward-corrected −log (p C)[ỹ]; ``None``, the default,
  keeps the cross-entropy: every weighter that only re-weights leaves it unset);
- ``score_batch(h, logits, y) -> dict``: per-sample scores for samples outside a step (the
  harmful-source report); ``"weight"`` is required, other keys are the weighter's own;
- ``setup(method, data)``: a hook run once before training (for weights computed up front,
  such as KMM's, looked up with ``feats.index_src``).

Weighters are registered by name (:data:`WEIGHTERS`); a method takes one through its
``gate`` option: ``False`` (uniform weights), ``True`` (the discriminator gate of Wang et al.;
``"paper"`` names it explicitly) or a registered weighter's name, with ``gate_options``
passed to its constructor.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import torch
from torch import nn

from ...errors import ConfigError
from ...registry import Registry


@dataclass
class Features:
    """Features and logits of one step, split by stream (None where a stream is absent)."""

    h_src: torch.Tensor
    y_src: torch.Tensor
    logits_src: torch.Tensor
    h_lab: torch.Tensor | None
    y_lab: torch.Tensor | None
    logits_lab: torch.Tensor | None
    h_unl: torch.Tensor | None
    logits_unl: torch.Tensor | None
    mu: float
    progress: float
    #: indices of the source batch in the source split (for weights computed up front)
    index_src: torch.Tensor | None = None
    #: the step's inputs (for weighters that re-run the model, such as learning to reweight);
    #: None where a method does not pass them
    x_src: torch.Tensor | None = None
    x_lab: torch.Tensor | None = None


@dataclass
class WeighterOutput:
    """ω for the source batch (detached; ``None`` means uniform) and the weighter's loss.

    ``source_loss``: a per-sample source loss (shape ``[B_s]``, with its graph) that replaces
    the cross-entropy ℓ(C(F(x_s)), y_s) in the weighted mean; ``None`` keeps the
    cross-entropy. Only loss corrections set it (``glc``)."""

    weights: torch.Tensor | None
    loss: torch.Tensor | None = None
    logs: dict[str, Any] = field(default_factory=dict)
    source_loss: torch.Tensor | None = None

    def per_sample(self, cross_entropy: torch.Tensor) -> torch.Tensor:
        """The per-sample source loss of the step: ``source_loss`` where set, else the
        cross-entropy the method computed."""
        if self.source_loss is None:
            return cross_entropy
        if self.source_loss.shape != cross_entropy.shape:
            raise ConfigError(f"a weighter's source_loss has shape "
                              f"{tuple(self.source_loss.shape)}; one loss per source sample "
                              f"{tuple(cross_entropy.shape)} is required.")
        return self.source_loss


@torch.no_grad()
def update_class_means(table: torch.Tensor, seen: torch.Tensor, values: torch.Tensor,
                       labels: torch.Tensor, momentum: float) -> None:
    """In place: move ``table[k]`` towards the mean of ``values`` of class k in this batch
    (an EMA with ``momentum``; a class seen for the first time takes its batch mean), for the
    classes present; mark them in ``seen``. The running per-class statistics of the labeled
    target that the prototype and GLC weighters keep."""
    sums = torch.zeros_like(table).index_add_(0, labels, values.to(table.dtype))
    counts = torch.bincount(labels, minlength=table.shape[0]).to(table.dtype)
    present = counts > 0
    means = sums[present] / counts[present, None]
    m = torch.where((present & ~seen)[present], 0.0, momentum)[:, None]
    table[present] = m * table[present] + (1 - m) * means
    seen |= present


class SourceWeighter(nn.Module):
    """Base class. Subclasses set ``name`` (by :func:`register_weighter`) and implement
    :meth:`forward`; the constructor takes ``feature_dim`` and ``num_classes`` first."""

    name: ClassVar[str] = "weighter"
    #: whether it needs unlabeled target batches
    needs_unlabeled: ClassVar[bool] = False
    #: whether its loss contains a marginal domain discriminator that can take the place of
    #: a method's own (the gate's ``nil`` term is DANN's alignment)
    replaces_alignment: ClassVar[bool] = False

    def __init__(self, feature_dim: int, num_classes: int, *, lam: float = 1.0,
                 lr_mult: float = 1.0) -> None:
        super().__init__()
        self.feature_dim, self.num_classes = feature_dim, num_classes
        self.lam = float(lam)  # λ: scale of the weighted source loss
        self.lr_mult = float(lr_mult)

    def setup(self, method: Any, data: Any) -> None:
        """Hook: anything computed once before training."""

    def forward(self, feats: Features) -> WeighterOutput:
        raise NotImplementedError

    def score_batch(self, h: torch.Tensor, logits: torch.Tensor, y: torch.Tensor,
                    index: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Per-sample scores outside training; ``"weight"`` is ω (low = harmful)."""
        raise NotImplementedError

    def source_loss(self, per_sample: torch.Tensor, out: WeighterOutput) -> torch.Tensor:
        """E_S[ℓ], or λ E_S[ω ℓ] (``per_sample`` is already :meth:`WeighterOutput.per_sample`)."""
        if out.weights is None:
            return per_sample.mean()
        return self.lam * (out.weights * per_sample).mean()


class UniformWeights(SourceWeighter):
    """No weighting: ω = 1 for every source sample (what ``gate=False`` means)."""

    name = "uniform"

    def forward(self, feats: Features) -> WeighterOutput:
        return WeighterOutput(None)

    def score_batch(self, h: torch.Tensor, logits: torch.Tensor, y: torch.Tensor,
                    index: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        return {"weight": torch.ones(len(y), device=y.device)}


WEIGHTERS: Registry[type[SourceWeighter]] = Registry("source weighter")
W = TypeVar("W", bound=type[SourceWeighter])


def register_weighter(name: str, description: str = "") -> Callable[[W], W]:
    """Class decorator: register a :class:`SourceWeighter` subclass under ``name``."""

    return WEIGHTERS.register_class(name, description)


def list_weighters() -> list[str]:
    return WEIGHTERS.names()


#: what ``gate=True`` means: the paper's discriminator gate (issue 10's probe found no
#: defence that closes the negative-transfer gap, so the default was not switched)
DEFAULT_GATE = "gate"
#: other names for registered weighters: ``gate="paper"`` names the paper's gate explicitly
ALIASES = {"paper": "gate"}


def weighter_name(gate: bool | str) -> str | None:
    """The weighter a ``gate`` option names: None for False, :data:`DEFAULT_GATE` for True,
    the paper's gate for "paper"."""
    if gate is False or gate is None:
        return None
    if gate is True:
        return DEFAULT_GATE
    if isinstance(gate, str):
        gate = ALIASES.get(gate, gate)
        if gate not in WEIGHTERS:
            WEIGHTERS.get(gate)  # raises with the known names and close matches
        return gate
    raise ConfigError(f"gate must be true, false or the name of a source weighter "
                      f"({WEIGHTERS.names()}), got {gate!r}.")


def weighter_class(gate: bool | str) -> type[SourceWeighter]:
    name = weighter_name(gate)
    return UniformWeights if name is None else WEIGHTERS.get(name)


def weighter_options(cls: type[SourceWeighter]) -> list[str]:
    """The options a weighter takes (its constructor's keyword parameters)."""
    names: list[str] = []
    for klass in cls.__mro__:
        if "__init__" in klass.__dict__:
            for p in inspect.signature(klass.__init__).parameters.values():
                if p.kind is p.KEYWORD_ONLY and p.name not in names:
                    names.append(p.name)
    return names


def create_weighter(gate: bool | str, feature_dim: int, num_classes: int,
                    options: Mapping[str, Any] | None = None) -> SourceWeighter:
    """Build the weighter ``gate`` names, checking ``options`` against its constructor."""
    cls = weighter_class(gate)
    options = dict(options or {})
    bad = sorted(set(options) - set(weighter_options(cls)))
    if bad:
        raise ConfigError(f"unknown gate_options {bad} for the {cls.name!r} weighter; valid: "
                          f"{sorted(weighter_options(cls))}.")
    return cls(feature_dim, num_classes, **options)
