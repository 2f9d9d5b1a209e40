"""Module criticality: rewinding one module to its initial value, and the criticality measure
of Chatterji, Neyshabur and Sedghi (ICLR 2020). Methods reference section 4.6.

For a trained model theta^F with initial value theta^0 (the pre-trained start for a fine-tuned
model, the random initialisation for one trained from scratch), and one module i::

    theta_i^alpha = (1 - alpha) theta_i^0 + alpha theta_i^F,   every other module at theta^F

- **rewinding** (alpha = 0): the accuracy drop when module i goes back to its start;
- the **criticality measure**::

      mu_i = min over (alpha, sigma > 0) of alpha^2 ||theta_i^F - theta_i^0||_F^2 / sigma^2
             s.t.  E_{u ~ N(0, sigma^2 I)} [ Err(theta_i^alpha + u, theta_{-i}^F) ] <= eps

  evaluated on an (alpha, sigma) grid. A module that can be rewound all the way (alpha = 0
  meets the threshold) has mu = 0; a module that tolerates neither rewinding nor noise has a
  large mu (inf when no grid cell with sigma > 0 meets the threshold). Network criticality is
  the sum over modules.

Choices the reference marks UNVERIFIED, documented here: the error is the classification
error (%) on the split given (Chatterji et al. use the training loss; pass the training split);
eps = the trained model's own error + ``margin`` points (5); sigma is relative to each module's
scale, sigma = s * ||theta_i^F|| / sqrt(numel) for s in ``sigmas``; the noise is added to the
module's parameters (not to batch-norm running statistics); ``samples`` noise draws per cell.
Cost: per module, |alphas| x (1 + samples x (|sigmas| - 1)) evaluation passes (sigma = 0 needs
one), each one batched pass over the split.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..data import InputSpec, Split
from ..engine import Trainer
from ..errors import ConfigError
from ..utils import make_generator
from .state import (
    check_same_architecture,
    clone_state,
    evaluate,
    load_tensors,
    resolve_modules,
    working_copy,
)

ALPHAS = tuple(i / 10 for i in range(11))
SIGMAS = (0.0, 0.01, 0.03, 0.1, 0.3)


def rewind(model: nn.Module, initial: Mapping[str, torch.Tensor], module: str, *,
           granularity: str = "blocks", alpha: float = 0.0) -> nn.Module:
    """A copy of ``model`` with ``module`` moved back to ``(1-alpha) theta^0 + alpha theta^F``
    (``alpha = 0``: exactly its initial tensors, buffers included); nothing else changes."""
    import copy

    check_same_architecture(model, initial, "the model and its initial state")
    keys = resolve_modules(model, [module], granularity)[module]
    out = copy.deepcopy(model)
    state = model.state_dict()
    with torch.no_grad():
        vals = {}
        for k in keys:
            init = initial[k].to(state[k].device)
            if alpha == 0.0 or not state[k].is_floating_point():
                vals[k] = init.clone()
            else:
                vals[k] = torch.lerp(init.to(state[k].dtype), state[k], float(alpha))
        load_tensors(out, vals)
    return out


@dataclass
class CriticalityResult:
    """Errors over the (module, alpha, sigma) grid, the rewinding drops and mu per module.

    ``error[m][i][j]`` is the mean error (%) with module ``m`` at ``alphas[i]`` and noise
    ``sigmas[j]``; ``alpha = 1, sigma = 0`` is the trained model itself.
    """

    modules: list[str]
    alphas: list[float]
    sigmas: list[float]
    error: dict[str, list[list[float]]]
    base_error: float
    threshold: float
    delta_norm: dict[str, float]
    scale: dict[str, float]
    label: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rewind_error(self) -> dict[str, float]:
        """Error with the module rewound to its initial value (alpha = 0, no noise)."""
        return {m: self.error[m][0][0] for m in self.modules}

    @property
    def rewind_drop(self) -> dict[str, float]:
        """Accuracy points lost by rewinding each module (> 0: the module matters)."""
        return {m: e - self.base_error for m, e in self.rewind_error.items()}

    @property
    def mu(self) -> dict[str, float]:
        """Chatterji et al.'s criticality per module on the grid (0: not critical)."""
        out = {}
        for m in self.modules:
            best = math.inf
            for i, a in enumerate(self.alphas):
                for j, s in enumerate(self.sigmas):
                    if self.error[m][i][j] > self.threshold:
                        continue
                    if a == 0.0:
                        best = 0.0
                    elif s > 0:
                        sig = s * self.scale[m]
                        best = min(best, a * a * self.delta_norm[m] ** 2 / sig**2)
            out[m] = best
        return out

    @property
    def network_criticality(self) -> float:
        return sum(self.mu.values())

    @property
    def min_alpha(self) -> dict[str, float]:
        """The smallest alpha whose noise-free error meets the threshold (1.0 at worst)."""
        return {m: next((a for i, a in enumerate(self.alphas)
                         if self.error[m][i][0] <= self.threshold), math.inf)
                for m in self.modules}

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "modules": self.modules, "alphas": self.alphas,
                "sigmas": self.sigmas, "error": self.error, "base_error": self.base_error,
                "threshold": self.threshold, "rewind_drop": self.rewind_drop,
                "mu": {m: (v if math.isfinite(v) else None) for m, v in self.mu.items()},
                "min_alpha": self.min_alpha, "delta_norm": self.delta_norm}


@torch.no_grad()
def module_criticality(model: nn.Module, initial: Mapping[str, torch.Tensor], split: Split,
                       spec: InputSpec, *, modules: Sequence[str] | None = None,
                       granularity: str = "blocks", alphas: Sequence[float] = ALPHAS,
                       sigmas: Sequence[float] = SIGMAS, samples: int = 3,
                       margin: float = 5.0, bn_data: Split | None = None, seed: int = 0,
                       trainer: Trainer | None = None, label: str = "") -> CriticalityResult:
    """Error of ``model`` on ``split`` over the (module, alpha, sigma) grid (see module doc).

    ``bn_data`` re-estimates batch-norm statistics at every changed cell (one more pass each).
    """
    alphas = sorted(float(a) for a in alphas)
    sigmas = sorted(float(s) for s in sigmas)
    if not alphas or alphas[0] < 0 or alphas[-1] > 1:
        raise ConfigError(f"alphas must lie in [0, 1], got {alphas}.")
    if not sigmas or sigmas[0] < 0:
        raise ConfigError(f"sigmas must be >= 0 (relative noise scales), got {sigmas}.")
    if sigmas[0] != 0.0:
        sigmas = [0.0, *sigmas]
    if int(samples) < 1:
        raise ConfigError(f"samples must be >= 1, got {samples}.")
    check_same_architecture(model, initial, "the model and its initial state")
    trainer = trainer or Trainer(progress=False)
    keys = resolve_modules(model, modules, granularity)
    work = working_copy(model, trainer)
    dev = trainer.device
    final = {k: v.to(dev) for k, v in clone_state(model).items()}
    init = {k: v.to(dev) for k, v in initial.items()}
    learned = {k for k, _ in model.named_parameters()}
    gen = make_generator(seed, dev if dev.type == "cuda" else "cpu")
    base = evaluate(work, split, spec, trainer).accuracy
    base_error = 100.0 - base
    threshold = base_error + float(margin)
    error: dict[str, list[list[float]]] = {}
    delta_norm, scale = {}, {}
    for m, ks in keys.items():
        params = [k for k in ks if k in learned]
        numel = sum(final[k].numel() for k in params)
        delta_norm[m] = math.sqrt(sum(float((final[k] - init[k]).double().pow(2).sum())
                                      for k in params))
        scale[m] = math.sqrt(sum(float(final[k].double().pow(2).sum()) for k in params)
                             / max(numel, 1))
        grid = []
        for a in alphas:
            moved = {k: (torch.lerp(init[k], final[k], a) if final[k].is_floating_point()
                         else (init[k] if a < 1 else final[k])) for k in ks}
            row = []
            for s in sigmas:
                if a == 1.0 and s == 0.0:
                    row.append(base_error)
                    continue
                draws = 1 if s == 0.0 else int(samples)
                errs = []
                for _ in range(draws):
                    vals = dict(moved)
                    if s > 0:
                        for k in params:
                            noise = torch.randn(vals[k].shape, generator=gen,
                                                device=gen.device).to(dev)
                            vals[k] = vals[k] + noise * (s * scale[m])
                    load_tensors(work, vals)
                    errs.append(100.0 - evaluate(work, split, spec, trainer, bn_data).accuracy)
                row.append(sum(errs) / len(errs))
            grid.append(row)
        load_tensors(work, {k: final[k] for k in ks})  # the next module starts from theta^F
        error[m] = grid
    return CriticalityResult(list(keys), alphas, sigmas, error, base_error, threshold,
                             delta_norm, scale, label)


@torch.no_grad()
def rewind_drops(model: nn.Module, initial: Mapping[str, torch.Tensor], split: Split,
                 spec: InputSpec, *, modules: Sequence[str] | None = None,
                 granularity: str = "blocks", bn_data: Split | None = None,
                 trainer: Trainer | None = None) -> dict[str, float]:
    """Accuracy points lost on ``split`` when each module alone is rewound (one pass each)."""
    res = module_criticality(model, initial, split, spec, modules=modules,
                             granularity=granularity, alphas=(0.0, 1.0), sigmas=(0.0,),
                             bn_data=bn_data, trainer=trainer)
    return res.rewind_drop
