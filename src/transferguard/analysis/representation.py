"""Feature similarity (CKA) and parameter distance between two models, per named module.

Methods reference sections 4.4 and 4.5 (Neyshabur, Sedghi and Zhang, NeurIPS 2020).

**Linear CKA** (Kornblith et al., ICML 2019) of the representations X (n x d1) and Y (n x d2)
of the *same* n inputs, after centring each column::

    CKA(X, Y) = ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F)
              = <K_c, L_c> / (||K_c||_F ||L_c||_F),   K = X X^T, L = Y Y^T, K_c = H K H

The second (Gram) form is what is computed when n < d, the first otherwise (the cheaper of
O(n d^2) and O(n^2 d)); both give the same number. CKA is 1 for a representation with itself
and invariant to orthogonal transforms and isotropic scaling of either side (not to arbitrary
invertible linear maps), which is why it compares networks trained from different starts.

**RBF CKA** replaces the linear Gram matrices by Gaussian kernels
k(x, x') = exp(-||x - x'||^2 / (2 s^2)) with s = ``sigma`` x the median pairwise distance
(Kornblith et al.'s convention; ``sigma`` = 0.8 by default).

Feature maps (B, C, H, W) are flattened per example (``reduce="flatten"``, every position a
feature, Kornblith et al.'s choice) or averaged over positions (``reduce="mean"``); the
paper's choice is not known (reference section 4.4, UNVERIFIED).

**Parameter distance**: ||theta_1 - theta_2||_2 over each module's parameters (batch-norm running
statistics excluded: they are not learned), and over all of them; ``relative`` divides by
||theta_2||_2.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..data import InputSpec, Split, iterate_batches
from ..engine import Trainer
from ..errors import ConfigError, UnknownNameError
from .state import _layout, check_same_architecture, resolve_modules

KERNELS = ("linear", "rbf")
REDUCTIONS = ("flatten", "mean")


# ----------------------------------------------------------------------------- CKA itself
def _centre_gram(k: torch.Tensor) -> torch.Tensor:
    """H K H with H = I - 11^T/n, without forming H."""
    k = k - k.mean(0, keepdim=True)
    return k - k.mean(1, keepdim=True)


def _check_pair(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if x.dim() < 2 or y.dim() < 2:
        raise ConfigError("CKA needs (n, d) representations (one row per example).")
    x, y = x.reshape(len(x), -1).double(), y.reshape(len(y), -1).double()
    if len(x) != len(y):
        raise ConfigError(f"CKA compares representations of the same inputs: got {len(x)} and "
                          f"{len(y)} rows.")
    if len(x) < 2:
        raise ConfigError("CKA needs at least 2 examples.")
    return x, y


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Linear CKA of two (n, d) representations of the same n inputs (float64 inside).

    Returns nan when one side is constant (no variance to compare).
    """
    x, y = _check_pair(x, y)
    x = x - x.mean(0, keepdim=True)
    y = y - y.mean(0, keepdim=True)
    n = len(x)
    if n < max(x.shape[1], y.shape[1]):  # Gram form: O(n^2 d)
        kx, ky = x @ x.T, y @ y.T
        num = (kx * ky).sum()
        den = kx.norm() * ky.norm()
    else:  # feature form: O(n d^2)
        num = (y.T @ x).pow(2).sum()
        den = (x.T @ x).norm() * (y.T @ y).norm()
    return float(num / den) if float(den) > 0 else math.nan


def _rbf_gram(x: torch.Tensor, sigma: float) -> torch.Tensor:
    d2 = torch.cdist(x, x).pow(2)
    med = torch.median(d2[~torch.eye(len(x), dtype=torch.bool)])
    if float(med) <= 0:
        return torch.ones_like(d2)
    return torch.exp(-d2 / (2 * sigma**2 * med))


def rbf_cka(x: torch.Tensor, y: torch.Tensor, sigma: float = 0.8) -> float:
    """CKA with Gaussian kernels, bandwidth ``sigma`` x the median pairwise distance."""
    if sigma <= 0:
        raise ConfigError(f"sigma must be positive (a fraction of the median distance), got "
                          f"{sigma}.")
    x, y = _check_pair(x, y)
    kx, ky = _centre_gram(_rbf_gram(x, sigma)), _centre_gram(_rbf_gram(y, sigma))
    den = kx.norm() * ky.norm()
    return float((kx * ky).sum() / den) if float(den) > 0 else math.nan


def cka(x: torch.Tensor, y: torch.Tensor, kernel: str = "linear", sigma: float = 0.8) -> float:
    if kernel not in KERNELS:
        raise ConfigError(f"kernel must be one of {KERNELS}, got {kernel!r}.")
    return linear_cka(x, y) if kernel == "linear" else rbf_cka(x, y, sigma)


# ----------------------------------------------------------------------------- activations
@torch.no_grad()
def block_outputs(model: nn.Module, split: Split, spec: InputSpec, *,
                  blocks: Sequence[str] | None = None, reduce: str = "flatten",
                  max_samples: int | None = 2500, trainer: Trainer | None = None
                  ) -> dict[str, torch.Tensor]:
    """``{block: (n, d) float32 CPU tensor}``: the output of each named block of F on the
    first ``max_samples`` images of ``split`` (one batched pass, forward hooks; eval mode)."""
    if reduce not in REDUCTIONS:
        raise ConfigError(f"reduce must be one of {REDUCTIONS}, got {reduce!r}.")
    trainer = trainer or Trainer(progress=False)
    names = list(blocks) if blocks is not None else list(model.blocks)
    unknown = [b for b in names if b not in model.blocks]
    if unknown:
        raise UnknownNameError(f"{model.arch} has no block(s) {unknown}; its blocks are "
                               f"{model.blocks}.")
    if max_samples is not None and len(split) > max_samples:
        # evenly spaced, not the first ones: splits are sorted by index, and some domains
        # by class, so a prefix could hold a few classes only
        pick = torch.linspace(0, len(split) - 1, int(max_samples)).round().long()
        split = Split(split.name, split.images[pick],
                      None if split.labels is None else split.labels[pick],
                      split.indices[pick])
    out: dict[str, list[torch.Tensor]] = {b: [] for b in names}

    def hook(name: str):
        def fn(_m: nn.Module, _i: Any, o: torch.Tensor) -> None:
            o = o.float()
            if o.dim() > 2 and reduce == "mean":
                o = o.mean(dim=tuple(range(2, o.dim())))
            out[name].append(o.reshape(len(o), -1).cpu())
        return fn

    handles = [model.backbone.get_submodule(b).register_forward_hook(hook(b)) for b in names]
    was_training = model.training
    model.eval()
    try:
        for batch in iterate_batches(split, spec, trainer.config.eval_batch_size,
                                     trainer.device):
            model.backbone(_layout(batch.x, trainer))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return {b: torch.cat(v) for b, v in out.items()}


@dataclass
class CKAResult:
    """CKA between the blocks of two models on one set of images.

    ``matrix[i][j]`` compares block i of model A with block j of model B (Kornblith et al.'s
    layer-by-layer plot); ``per_block`` is its diagonal, the number the paper tabulates.
    """

    blocks_a: list[str]
    blocks_b: list[str]
    matrix: list[list[float]]
    kernel: str
    n: int
    label: str = ""

    @property
    def per_block(self) -> dict[str, float]:
        return {b: self.matrix[i][self.blocks_b.index(b)] for i, b in enumerate(self.blocks_a)
                if b in self.blocks_b}

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "kernel": self.kernel, "n": self.n,
                "blocks_a": self.blocks_a, "blocks_b": self.blocks_b, "matrix": self.matrix,
                "per_block": self.per_block}


def _centred_linear_gram(x: torch.Tensor) -> torch.Tensor:
    x = x.reshape(len(x), -1).double()
    x = x - x.mean(0, keepdim=True)
    return x @ x.T


def feature_similarity(model_a: nn.Module, model_b: nn.Module, split: Split, spec: InputSpec,
                       *, kernel: str = "linear", sigma: float = 0.8,
                       blocks: Sequence[str] | None = None, cross: bool = True,
                       reduce: str = "flatten", max_samples: int | None = 2500,
                       trainer: Trainer | None = None, label: str = "") -> CKAResult:
    """CKA of every named block of F of ``model_a`` with every block of ``model_b``
    (``cross=False``: only equal names), on the same images of ``split``."""
    if kernel not in KERNELS:
        raise ConfigError(f"kernel must be one of {KERNELS}, got {kernel!r}.")
    check_same_architecture(model_a, model_b)
    kw = dict(blocks=blocks, reduce=reduce, max_samples=max_samples, trainer=trainer)
    fa = block_outputs(model_a, split, spec, **kw)
    fb = block_outputs(model_b, split, spec, **kw)
    names = list(fa)
    if kernel == "linear":  # one centred Gram matrix per block and model, shared by the pairs
        ga = {b: _centred_linear_gram(fa[b]) for b in names}
        gb = {b: _centred_linear_gram(fb[b]) for b in names}

        def sim(a: str, b: str) -> float:
            den = ga[a].norm() * gb[b].norm()
            return float((ga[a] * gb[b]).sum() / den) if float(den) > 0 else math.nan
    else:
        def sim(a: str, b: str) -> float:
            return cka(fa[a], fb[b], kernel, sigma)
    matrix = [[sim(a, b) if cross or i == j else math.nan for j, b in enumerate(names)]
              for i, a in enumerate(names)]
    return CKAResult(names, names, matrix, kernel, len(next(iter(fa.values()))), label)


# ----------------------------------------------------------------------------- distances
@dataclass
class DistanceResult:
    """l2 distances between two models' parameters, per module and in total."""

    modules: list[str]
    distance: dict[str, float]
    norm_b: dict[str, float]
    total: float
    total_norm_b: float
    label: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def relative(self) -> dict[str, float]:
        """||theta_a - theta_b|| / ||theta_b|| per module."""
        return {m: self.distance[m] / self.norm_b[m] if self.norm_b[m] > 0 else math.nan
                for m in self.modules}

    @property
    def total_relative(self) -> float:
        return self.total / self.total_norm_b if self.total_norm_b > 0 else math.nan

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "modules": self.modules, "distance": self.distance,
                "relative": self.relative, "total": self.total,
                "total_relative": self.total_relative}


def _state(m: nn.Module | Mapping[str, torch.Tensor]) -> Mapping[str, torch.Tensor]:
    return m.state_dict() if isinstance(m, nn.Module) else m


def parameter_distance(model_a: nn.Module | Mapping[str, torch.Tensor],
                       model_b: nn.Module | Mapping[str, torch.Tensor], *,
                       modules: Sequence[str] | None = None, granularity: str = "blocks",
                       like: nn.Module | None = None, label: str = "") -> DistanceResult:
    """||theta_a - theta_b||_2 per named module (blocks of F and the head) and over all.

    Either side may be a model or a state dict (e.g. a recorded initial state); ``like``
    names the architecture when both are state dicts.
    """
    ref = like if like is not None else next(
        (m for m in (model_a, model_b) if isinstance(m, nn.Module)), None)
    if ref is None:
        raise ConfigError("parameter_distance needs a model (or like=model) to name modules.")
    check_same_architecture(model_a, model_b)
    check_same_architecture(ref, model_b, "the model and the states")
    sa, sb = _state(model_a), _state(model_b)
    learned = {k for k, _ in ref.named_parameters()}
    keys = resolve_modules(ref, modules, granularity)
    dist, norm = {}, {}
    tot_d = tot_n = 0.0
    for m, ks in keys.items():
        d2 = n2 = 0.0
        for k in ks:
            if k not in learned:
                continue
            a, b = sa[k].detach().double().cpu(), sb[k].detach().double().cpu()
            d2 += float((a - b).pow(2).sum())
            n2 += float(b.pow(2).sum())
        dist[m], norm[m] = math.sqrt(d2), math.sqrt(n2)
        tot_d += d2
        tot_n += n2
    return DistanceResult(list(keys), dist, norm, math.sqrt(tot_d), math.sqrt(tot_n), label)
