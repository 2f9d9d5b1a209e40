"""What the "what is being transferred" analyses share: named modules, state arithmetic,
architecture checks, batched evaluation with batch-norm re-estimation, and how a trained
model's *initial* state is recorded.

A **module** is the unit every per-module analysis (parameter distance, rewinding,
criticality) talks about. ``granularity="blocks"`` (the default) gives the named blocks of F
(:attr:`TransferModel.blocks`: ``conv1``, ``conv2``, ``fc`` for LeNet; ``conv1``,
``layer1`` .. ``layer4`` for ResNet) plus ``head`` (C); ``granularity="layers"`` gives every
leaf layer that holds tensors (each convolution, batch norm and linear layer), the finer unit
of Chatterji et al. A module owns every state-dict entry under its prefix: parameters *and*
buffers (batch-norm running statistics), so that rewinding a module restores all of it.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ..data import InputSpec, Split, iterate_batches
from ..engine import EvalResult, Trainer
from ..errors import ConfigError, UnknownNameError

State = dict[str, torch.Tensor]
GRANULARITIES = ("blocks", "layers")


def clone_state(model: nn.Module) -> State:
    """A detached CPU copy of a model's state dict (parameters and buffers)."""
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def module_prefixes(model: nn.Module, granularity: str = "blocks") -> dict[str, str]:
    """``{module name: state-dict prefix}`` in input-to-output order, head last."""
    if granularity not in GRANULARITIES:
        raise ConfigError(f"granularity must be one of {GRANULARITIES}, got {granularity!r}.")
    blocks = getattr(model, "blocks", None)
    if blocks is None or not hasattr(model, "backbone") or not hasattr(model, "head"):
        raise ConfigError(f"{type(model).__name__} is not a TransferModel (F with named blocks "
                          "and a head C); build models with transferguard.create_model.")
    if granularity == "blocks":
        out = {b: f"backbone.{b}." for b in blocks}
        out["head"] = "head."
        return out
    out = {}
    for name, mod in model.named_modules():
        if not name or any(True for _ in mod.children()):
            continue
        if any(True for _ in mod.parameters(recurse=False)) or \
                any(True for _ in mod.buffers(recurse=False)):
            short = name.removeprefix("backbone.")
            out[short] = name + "."
    return out


def resolve_modules(model: nn.Module, modules: Sequence[str] | None,
                    granularity: str = "blocks") -> dict[str, list[str]]:
    """``{module name: [state-dict keys]}`` for the requested modules (all by default).

    An unknown name stops with the list of valid ones.
    """
    prefixes = module_prefixes(model, granularity)
    names = list(prefixes) if modules is None else list(modules)
    unknown = [m for m in names if m not in prefixes]
    if unknown:
        raise UnknownNameError(
            f"{getattr(model, 'arch', type(model).__name__)} has no module(s) {unknown}; its "
            f"modules ({granularity}) are {list(prefixes)}. Use granularity='layers' for single "
            "layers."
        )
    keys = list(model.state_dict())
    out = {m: [k for k in keys if k.startswith(prefixes[m])] for m in names}
    empty = [m for m, ks in out.items() if not ks]
    if empty:
        raise ConfigError(f"modules {empty} hold no tensors; choose modules with parameters.")
    return out


def check_same_architecture(a: nn.Module | Mapping[str, torch.Tensor],
                            b: nn.Module | Mapping[str, torch.Tensor],
                            what: str = "the two models") -> None:
    """Stop unless ``a`` and ``b`` have the same state-dict keys and tensor shapes."""
    arch_a, arch_b = getattr(a, "arch", None), getattr(b, "arch", None)
    if arch_a is not None and arch_b is not None and arch_a != arch_b:
        raise ConfigError(f"{what} have different architectures ({arch_a!r} and {arch_b!r}); "
                          "compare models built by the same create_model call (same name, "
                          "options, input spec and number of classes).")
    sa = a.state_dict() if isinstance(a, nn.Module) else a
    sb = b.state_dict() if isinstance(b, nn.Module) else b
    if list(sa) != list(sb):
        only_a = sorted(set(sa) - set(sb))[:3]
        only_b = sorted(set(sb) - set(sa))[:3]
        raise ConfigError(f"{what} have different architectures: keys only in the first "
                          f"{only_a}, only in the second {only_b}; build both with the same "
                          "create_model call.")
    bad = [k for k in sa if tuple(sa[k].shape) != tuple(sb[k].shape)]
    if bad:
        k = bad[0]
        raise ConfigError(f"{what} have different architectures: {k} has shape "
                          f"{tuple(sa[k].shape)} and {tuple(sb[k].shape)} (different widths, "
                          "input sizes or class counts); build both with the same create_model "
                          "call.")


def has_batch_norm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


@torch.no_grad()
def reestimate_batch_norm(model: nn.Module, split: Split, spec: InputSpec,
                          trainer: Trainer) -> None:
    """Recompute every batch norm's running mean and variance on ``split`` (one pass).

    Weights moved (interpolated, rewound, perturbed) no longer match the running statistics
    the model was trained with; the methods reference (section 4.3) asks to re-estimate them
    on training data at every point. Uses the cumulative average (``momentum=None``).
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns or len(split) == 0:
        return
    saved = [(m, m.momentum) for m in bns]
    was_training = model.training
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    try:
        for batch in iterate_batches(split, spec, trainer.config.eval_batch_size,
                                     trainer.device):
            model(_layout(batch.x, trainer))
    finally:
        for m, mom in saved:
            m.momentum = mom
        model.train(was_training)


def _layout(x: torch.Tensor, trainer: Trainer) -> torch.Tensor:
    if trainer.config.channels_last and x.dim() == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x


def evaluate(model: nn.Module, split: Split, spec: InputSpec, trainer: Trainer,
             bn_data: Split | None = None) -> EvalResult:
    """One batched pass over ``split`` (after a batch-norm re-estimation on ``bn_data``)."""
    if bn_data is not None:
        reestimate_batch_norm(model, bn_data, spec, trainer)
    return trainer.evaluate(model, split, spec)


def working_copy(model: nn.Module, trainer: Trainer) -> nn.Module:
    """A deep copy on the trainer's device in eval mode, for weights to be overwritten."""
    m = copy.deepcopy(model).to(trainer.device)
    if trainer.config.channels_last:
        m = m.to(memory_format=torch.channels_last)
    return m.eval()


@torch.no_grad()
def load_tensors(model: nn.Module, values: Mapping[str, torch.Tensor]) -> None:
    """Copy ``values`` into the model's state tensors in place (no re-allocation)."""
    state = model.state_dict()
    for k, v in values.items():
        state[k].copy_(v)


class _RecordInit:
    """Mixin: after ``prepare`` (pre-trained weights loaded, head re-initialised), keep a copy
    of the model's state as ``init_state_``: the start the module analyses rewind to."""

    def prepare(self, data: Any, trainer: Any) -> None:
        super().prepare(data, trainer)  # type: ignore[misc]
        self.init_state_ = clone_state(self.model_)  # type: ignore[attr-defined]


def recording_init(method: Any) -> Any:
    """A copy of ``method`` that records its initial state (``init_state_``) when trained.

    The copy is the same class with one more base, built from the same hyper-parameters, so
    training runs exactly as the original would (the Trainer's loop, same seed, same draws).
    """
    cls = type(method)
    rec = type(cls.__name__, (_RecordInit, cls), {"__module__": cls.__module__,
                                                 "__qualname__": cls.__qualname__})
    return rec(**method.get_params())
