"""Neuron impact: how the *target* loss changes when one unit of the network is silenced.

(It lives in the engine, beside evaluation, because ``prune_transfer`` acts on it and methods
sit below analysis; :mod:`transferguard.analysis.impact` is its public home.)

Methods reference section 5.1 (the neuron impact score of Domain Guided Dropout, Xiao et
al. 2016), extended to every layer as the negative-transfer pruning poster proposes. For a
unit i (a channel of a convolutional block's output, or a neuron of a linear block's
output) of layer l, on n labeled target samples:

    impact_i = (1/n) Σ_s [ ℓ(f(x_s) with unit i set to 0, y_s) − ℓ(f(x_s), y_s) ]

with ℓ the cross-entropy. impact_i > 0: the target loss rises without the unit (it helps
the target); impact_i < 0: the loss falls when the unit is removed, the unit is
**target-harmful**. The per-sample differences also give a standard error, so a rule can
ask for harm beyond noise (``z``).

Estimators:

- ``"exact"`` (the official DGD code's): one forward pass per *group* of silenced units. A
  forward hook at layer l replaces its output a (B, C, ...) by G copies, copy g with unit
  u_g zeroed, so the layers after l run once on a (G·B)-batch; the layers before l run once
  per group, not once per unit. Cost ≈ Σ_l C_l × (the part of the network after l).
- ``"taylor"``: the first-order estimate impact_i ≈ −(1/n) Σ_s Σ_pos a_i ∂ℓ_s/∂a_i from one
  forward and one backward pass; ``check_units`` units drawn at random are then computed
  exactly and the agreement (rank correlation, sign agreement, largest error) is reported in
  ``ImpactResult.check``: the estimate is only as good as that check says.

The model runs in eval mode (batch-norm statistics fixed), on data the caller gives; the
target *test* split must never be passed here (pruning decisions are training decisions).
Layers are the blocks of F (``model.blocks``), ``"head"`` (the class logits of C), or any
module path of the model (``backbone.conv1.0``). Silencing works by batch expansion, so
everything after the layer must treat samples independently (true in eval mode for
feed-forward networks; a skip connection that jumps over the layer is refused with an error).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..data import InputSpec, Split, iterate_batches
from ..errors import ConfigError, DataError, UnknownNameError
from ..models.layers import layer_names, resolve_layer

ESTIMATORS = ("exact", "taylor")
RULES = ("negative", "threshold", "fraction")


def check_fraction(name: str, value: float) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = math.nan
    if not 0.0 <= v <= 1.0:
        raise ConfigError(f"{name} is a fraction of a layer's units and must lie in [0, 1], "
                          f"got {value!r} (for 10%, pass 0.1).")
    return v


@dataclass
class ImpactResult:
    """Per-unit impact (mean change of the target loss when the unit is silenced)."""

    layers: list[str]
    impact: dict[str, torch.Tensor]
    stderr: dict[str, torch.Tensor]
    #: change of accuracy (points) when the unit is silenced (exact estimator only)
    delta_accuracy: dict[str, torch.Tensor]
    base_loss: float
    base_accuracy: float
    n_samples: int
    estimator: str = "exact"
    seconds: float = 0.0
    forwards: int = 0
    #: for the Taylor estimator: agreement with the exact impact on a sample of units
    check: dict[str, Any] | None = None
    depth: dict[str, int] = field(default_factory=dict)

    def units(self, layer: str) -> int:
        return int(self.impact[layer].numel())

    def harmful(self, threshold: float = 0.0, z: float = 0.0) -> dict[str, torch.Tensor]:
        """Boolean mask per layer: impact + z·stderr < threshold (z > 0 asks harm beyond noise)."""
        return {name: (self.impact[name] + z * self.stderr[name]) < threshold
                for name in self.layers}

    def harmful_share(self, threshold: float = 0.0, z: float = 0.0) -> dict[str, float]:
        """Share of each layer's units that are harmful."""
        return {name: float(m.float().mean()) for name, m in self.harmful(threshold, z).items()}

    def select(self, rule: str = "negative", *, threshold: float = 0.0, fraction: float = 0.1,
               z: float = 0.0, max_fraction: float = 1.0,
               layers: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        """The units to prune, as a boolean mask per layer.

        - ``"negative"``: every unit with impact + z·stderr < 0;
        - ``"threshold"``: impact + z·stderr < ``threshold``;
        - ``"fraction"``: the ``fraction`` of each layer's units with the lowest impact.

        ``max_fraction`` caps the share pruned in any layer (the most harmful go first);
        at least one unit of every layer is always kept.
        """
        if rule not in RULES:
            raise ConfigError(f"rule must be one of {RULES}, got {rule!r}.")
        check_fraction("fraction", fraction)
        check_fraction("max_fraction", max_fraction)
        names = list(layers) if layers is not None else self.layers
        unknown = [n for n in names if n not in self.impact]
        if unknown:
            raise UnknownNameError(f"no impact was computed for layers {unknown}; "
                                   f"analysed layers: {self.layers}.")
        out = {}
        for name in names:
            score = self.impact[name] + z * self.stderr[name]
            c = score.numel()
            if rule == "fraction":
                k = math.floor(fraction * c + 1e-9)
                cand = torch.zeros(c, dtype=torch.bool)
                cand[torch.argsort(score)[:k]] = True
            else:
                cand = score < (0.0 if rule == "negative" else threshold)
            cap = min(math.floor(max_fraction * c + 1e-9), c - 1)
            if int(cand.sum()) > cap:
                order = torch.argsort(torch.where(cand, score, torch.full_like(score, math.inf)))
                cand = torch.zeros(c, dtype=torch.bool)
                cand[order[:cap]] = True
            out[name] = cand
        return out

    def normalised(self) -> dict[str, torch.Tensor]:
        """DGD's normalisation per layer: s·log 9 / max s, so sigmoid(max s) = 0.9."""
        out = {}
        for name, s in self.impact.items():
            top = float(s.max())
            out[name] = s * (math.log(9.0) / top) if top > 0 else s.clone()
        return out

    def suggested_cut(self, level: float = 0.5, threshold: float = 0.0, z: float = 0.0,
                      blocks: Sequence[str] | None = None) -> int:
        """The cut point the harm suggests: the number of leading blocks of F whose share of
        harmful units stays at or below ``level`` (transfer those, re-train the rest)."""
        share = self.harmful_share(threshold, z)
        names = list(blocks) if blocks is not None else [n for n in self.layers if n != "head"]
        k = 0
        for name in names:
            if name not in share or share[name] > level:
                break
            k += 1
        return k

    def ranking(self, n: int = 10) -> list[tuple[str, int, float]]:
        """The ``n`` most harmful units over all layers: (layer, unit, impact)."""
        rows = [(name, i, float(v)) for name in self.layers
                for i, v in enumerate(self.impact[name].tolist())]
        return sorted(rows, key=lambda r: r[2])[:n]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ImpactResult:
        """Rebuild a result stored with :meth:`to_dict` (e.g. in the run store)."""
        t = {k: torch.tensor(v) for k, v in d["impact"].items()}
        se = {k: torch.tensor(v) for k, v in d["stderr"].items()}
        return cls(list(d["layers"]), t, se, {}, d["base_loss"], d["base_accuracy"],
                   d["n_samples"], d["estimator"], d["seconds"], d["forwards"], d["check"],
                   {n: i for i, n in enumerate(d["layers"])})

    def to_dict(self) -> dict[str, Any]:
        return {
            "layers": self.layers, "estimator": self.estimator, "n_samples": self.n_samples,
            "base_loss": self.base_loss, "base_accuracy": self.base_accuracy,
            "seconds": self.seconds, "forwards": self.forwards, "check": self.check,
            "impact": {k: v.tolist() for k, v in self.impact.items()},
            "stderr": {k: v.tolist() for k, v in self.stderr.items()},
            "harmful_share": self.harmful_share(),
        }


def neuron_impact(model: nn.Module, split: Split, spec: InputSpec, *,
                  layers: Sequence[str] | None = None, estimator: str = "exact",
                  batch_size: int = 500, max_elements: int = 2 ** 24,
                  check_units: int = 32, seed: int = 0,
                  device: str | torch.device | None = None) -> ImpactResult:
    """Impact of every unit of ``layers`` (default: F's blocks and the head) on ``split``.

    ``split`` must be labeled target data that training may see (the labeled target or its
    validation split), never the test split. ``max_elements`` bounds the size of one
    expanded activation (G copies x batch x unit size), which sets the group size G.
    """
    if estimator not in ESTIMATORS:
        raise ConfigError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}.")
    if split.labels is None:
        raise DataError(f"split {split.name!r} is unlabeled; neuron impact needs labels.")
    if len(split) == 0:
        raise DataError(f"split {split.name!r} is empty; neuron impact needs labeled samples.")
    if split.name == "target_test":
        raise DataError("neuron impact on the target test split would let the test split "
                        "choose what to prune; pass the labeled target or validation split.")
    names = list(layers) if layers is not None else layer_names(model)
    modules = {name: resolve_layer(model, name) for name in names}
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    t0 = time.perf_counter()
    try:
        batches = _Batches(split, spec, batch_size, dev)
        base_loss, base_correct, shapes = _base_pass(model, modules, batches)
        if estimator == "exact":
            todo = {name: torch.arange(shapes[name][0]) for name in names}
            mean, se, dacc, forwards = _exact(model, modules, batches, todo, shapes, base_loss,
                                              base_correct, max_elements)
            check = None
        else:
            mean, se = _taylor(model, modules, batches)
            dacc, forwards = {}, math.ceil(len(split) / batch_size)
            check = _check(model, modules, batches, mean, shapes, base_loss, base_correct,
                           max_elements, check_units, seed)
            forwards += check.pop("forwards")
    finally:
        model.train(was_training)
    n = len(split)
    return ImpactResult(
        names, mean, se, dacc, float(torch.cat(base_loss).mean()),
        float(torch.cat(base_correct).float().mean() * 100), n, estimator,
        time.perf_counter() - t0, forwards, check, {nm: i for i, nm in enumerate(names)})


# --------------------------------------------------------------------------- internals
class _Batches:
    """The split's batches, normalised anew on each pass (not all held in memory at once)."""

    def __init__(self, split: Split, spec: InputSpec, batch_size: int,
                 device: torch.device) -> None:
        self.split, self.spec, self.batch_size, self.device = split, spec, batch_size, device

    def __iter__(self):
        for b in iterate_batches(self.split, self.spec, self.batch_size, self.device):
            yield b.x, b.y


def _unit_view(mask: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """(G, C) mask -> (G, 1, C, 1, ...) to broadcast over (G, B, C, ...)."""
    return mask.view(mask.shape[0], 1, mask.shape[1], *([1] * (out.dim() - 2)))


@torch.no_grad()
def _base_pass(model, modules, batches):
    shapes: dict[str, tuple[int, ...]] = {}
    handles = []
    for name, mod in modules.items():
        def hook(m, i, out, name=name):
            if out.dim() < 2:
                raise ConfigError(f"layer {name!r} outputs shape {tuple(out.shape)}; units "
                                  "need a (batch, units, ...) output.")
            shapes[name] = tuple(out.shape[1:])
        handles.append(mod.register_forward_hook(hook))
    losses, correct = [], []
    try:
        for x, y in batches:
            logits = model(x).float()
            losses.append(F.cross_entropy(logits, y, reduction="none"))
            correct.append(logits.argmax(1) == y)
    finally:
        for h in handles:
            h.remove()
    return losses, correct, shapes


@torch.no_grad()
def _exact(model, modules, batches, todo, shapes, base_loss, base_correct, max_elements):
    """Mean / standard error of Δℓ and Δaccuracy for the units in ``todo`` (layer -> ids)."""
    mean, se, dacc = {}, {}, {}
    forwards = 0
    n = len(batches.split)
    for name, units in todo.items():
        mod = modules[name]
        total = torch.zeros(len(units), dtype=torch.float64)
        total2 = torch.zeros(len(units), dtype=torch.float64)
        hits = torch.zeros(len(units), dtype=torch.float64)
        state: dict[str, Any] = {}
        channels, numel = shapes[name][0], math.prod(shapes[name])

        def hook(m, i, out, state=state):
            masks = state["mask"].to(out.device, out.dtype)
            g = masks.shape[0]
            expanded = out.unsqueeze(0) * _unit_view(masks, out)
            return expanded.reshape(g * out.shape[0], *out.shape[1:])

        handle = mod.register_forward_hook(hook)
        try:
            for (x, y), l0, c0 in zip(batches, base_loss, base_correct):
                group = max(1, min(len(units), max_elements // max(1, x.shape[0] * numel)))
                for start in range(0, len(units), group):
                    ids = units[start : start + group]
                    mask = torch.ones(len(ids), channels)
                    mask[torch.arange(len(ids)), ids] = 0.0
                    state["mask"] = mask
                    logits = model(x).float()
                    if logits.shape[0] != len(ids) * x.shape[0]:
                        raise ConfigError(f"silencing layer {name!r} by batch expansion failed "
                                          "(a connection skips over it?); choose another layer.")
                    loss = F.cross_entropy(logits, y.repeat(len(ids)), reduction="none")
                    d = (loss.view(len(ids), -1) - l0).double().cpu()
                    total[start : start + len(ids)] += d.sum(1)
                    total2[start : start + len(ids)] += d.pow(2).sum(1)
                    right = (logits.argmax(1) == y.repeat(len(ids))).view(len(ids), -1)
                    hits[start : start + len(ids)] += (right.double() - c0.double()).sum(1).cpu()
                    forwards += 1
        finally:
            handle.remove()
        m = total / n
        var = (total2 / n - m.pow(2)).clamp(min=0) * n / max(n - 1, 1)
        mean[name] = m.float()
        se[name] = (var / n).sqrt().float()
        dacc[name] = (hits / n * 100).float()
    return mean, se, dacc, forwards


def _taylor(model, modules, batches):
    """First-order Δℓ per unit and sample: −Σ_pos a · ∂ℓ_s/∂a."""
    sums: dict[str, torch.Tensor] = {}
    sums2: dict[str, torch.Tensor] = {}
    n = 0
    for x, y in batches:
        acts: dict[str, torch.Tensor] = {}
        handles = [mod.register_forward_hook(
            lambda m, i, out, name=name, acts=acts: acts.__setitem__(name, out))
            for name, mod in modules.items()]
        try:
            with torch.enable_grad():
                logits = model(x).float()
                loss = F.cross_entropy(logits, y, reduction="sum")
                names = list(acts)
                grads = torch.autograd.grad(loss, [acts[k] for k in names])
        finally:
            for h in handles:
                h.remove()
        for name, a, g in zip(names, (acts[k] for k in names), grads):
            d = -(a.detach() * g).double()
            d = d.flatten(2).sum(2) if d.dim() > 2 else d  # (B, C)
            sums[name] = sums.get(name, 0) + d.sum(0).cpu()
            sums2[name] = sums2.get(name, 0) + d.pow(2).sum(0).cpu()
        n += len(y)
    mean, se = {}, {}
    for name in modules:
        m = sums[name] / n
        var = (sums2[name] / n - m.pow(2)).clamp(min=0) * n / max(n - 1, 1)
        mean[name], se[name] = m.float(), (var / n).sqrt().float()
    return mean, se


def _check(model, modules, batches, estimate, shapes, base_loss, base_correct, max_elements,
           check_units, seed) -> dict[str, Any]:
    """Exact impact of ``check_units`` random units, compared with the estimate."""
    g = torch.Generator().manual_seed(seed)
    pool = [(name, i) for name in modules for i in range(estimate[name].numel())]
    pick = torch.randperm(len(pool), generator=g)[: max(1, check_units)].tolist()
    todo: dict[str, list[int]] = {}
    for p in pick:
        name, i = pool[p]
        todo.setdefault(name, []).append(i)
    todo_t = {k: torch.tensor(sorted(v)) for k, v in todo.items()}
    exact, _, _, forwards = _exact(model, modules, batches, todo_t, shapes, base_loss,
                                   base_correct, max_elements)
    est = torch.cat([estimate[k][todo_t[k]] for k in todo_t])
    ex = torch.cat([exact[k] for k in todo_t])
    return {"units": len(ex), "spearman": spearman(est, ex),
            "sign_agreement": float(((est < 0) == (ex < 0)).float().mean()),
            "max_abs_error": float((est - ex).abs().max()),
            "exact_scale": float(ex.abs().mean()), "forwards": forwards}


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    """Spearman's rank correlation (no tie correction)."""
    if len(a) < 2:
        return float("nan")
    ra = torch.argsort(torch.argsort(a)).double()
    rb = torch.argsort(torch.argsort(b)).double()
    ra, rb = ra - ra.mean(), rb - rb.mean()
    den = float(ra.norm() * rb.norm())
    return float((ra * rb).sum()) / den if den > 0 else float("nan")
