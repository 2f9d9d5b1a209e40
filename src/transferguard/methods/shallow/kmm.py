"""Kernel Mean Matching (Huang, Gretton, Borgwardt, Schölkopf, Smola, NIPS 2006): source
weights β that make the weighted source mean match the target mean in a kernel space; a
shallow baseline of Wang et al.'s Table 2 (methods reference section 1.7).

    min_β  ½ βᵀ K β − κᵀ β,   κ_i = (n_s / n_t) Σ_j k(x_i, x'_j)
    s.t.   0 ≤ β_i ≤ B,   |Σ_i β_i − n_s| ≤ n_s ε

(½‖(1/n_s)Σ β_i φ(x_i) − (1/n_t)Σ_j φ(x'_j)‖² times n_s², up to a constant.) Defaults:
B = 1000 and ε = (√n_s − 1)/√n_s, the values of Huang et al.'s experiments and of the common
implementations; the rbf bandwidth by the median heuristic.

**Solver** (ours): accelerated projected gradient (FISTA with step 1/λ_max(K) and an
objective-based restart, so the objective of the returned iterate is the lowest seen). The
projection onto the box ∩ slab {0 ≤ β ≤ B, lo ≤ Σβ ≤ hi} is exact: clip(v − τ, 0, B), with τ
= 0 when the clipped sum already lies in [lo, hi], else found by bisection on the monotone
sum. Tested against SciPy's SLSQP on small problems and on the known answer β = 1 when the
source sample *is* the target sample.

**Memory.** K is n_s x n_s (8 n_s² bytes). Sources larger than ``max_source`` (3000: 72 MB)
are split into a seeded random partition of near-equal chunks and each chunk is matched to
the whole target on its own (ensemble KMM, Miao, Liao, Feng 2015): each chunk's weighted mean
matches the target mean, hence so does their union's, and every source sample gets a weight
without extrapolation. The target enters only through κ, computed in blocks.

Why not skada's ``KMMReweightAdapter`` (BSD-3): it builds the full n_s x n_s kernel with no
chunking or guard and pulls in POT and pandas; the QP itself is small enough to own.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ...data import Batch, TrainData
from ...engine import StepOutput
from ...errors import ConfigError, DataError
from ..base import register_method
from .base import ShallowMethod
from .kernels import as_matrix, check_kernel, check_kernel_memory, kernel, median_gamma


class KMM:
    """``KMM().fit(Xs, Xt).weights_``: one weight per source sample (scikit-learn style).

    Fitted attributes: ``weights_`` (n_s,), ``gamma_``, ``n_chunks_``, ``objective_`` (the
    QP objective per chunk), ``n_iter_`` (solver iterations per chunk).
    """

    def __init__(self, kernel: str = "rbf", gamma: float | None = None, B: float = 1000.0,
                 eps: float | None = None, max_source: int = 3000, tol: float = 1e-7,
                 max_iter: int = 2000, memory_limit_mb: float = 2048.0,
                 random_state: int = 0) -> None:
        self.kernel = kernel
        self.gamma = gamma
        self.B = B
        self.eps = eps
        self.max_source = max_source
        self.tol = tol
        self.max_iter = max_iter
        self.memory_limit_mb = memory_limit_mb
        self.random_state = random_state

    def fit(self, Xs: object, Xt: object) -> KMM:
        check_kernel(self.kernel)
        if not self.B >= 1:
            raise ConfigError(f"B (the upper bound of a weight) must be >= 1 so that β = 1 is "
                              f"feasible, got {self.B}.")
        if self.eps is not None and not 0 <= self.eps < 1:
            raise ConfigError(f"eps must lie in [0, 1) or be None, got {self.eps}.")
        if int(self.max_source) < 2:
            raise ConfigError(f"max_source must be >= 2, got {self.max_source}.")
        xs, xt = as_matrix(Xs, "Xs"), as_matrix(Xt, "Xt")
        if xs.shape[1] != xt.shape[1]:
            raise DataError(f"source and target features differ in dimension ({xs.shape[1]} "
                            f"vs {xt.shape[1]}); extract both with the same feature map.")
        ns = len(xs)
        n_chunks = math.ceil(ns / int(self.max_source))
        size = math.ceil(ns / n_chunks)
        check_kernel_memory(size, 2, self.memory_limit_mb, "KMM",
                            "lower max_source (the source is then matched in chunks of that "
                            "size) or raise memory_limit_mb.")
        rng = np.random.default_rng(self.random_state)
        gamma = self.gamma
        if gamma is None and self.kernel == "rbf":
            gamma = median_gamma(np.concatenate([xs, xt]), self.random_state)
        order = rng.permutation(ns) if n_chunks > 1 else np.arange(ns)
        weights = np.empty(ns)
        self.objective_, self.n_iter_ = [], []
        for c in range(n_chunks):
            idx = order[c * size : (c + 1) * size]
            w, obj, it = self._fit_chunk(xs[idx], xt, gamma)
            weights[idx] = w
            self.objective_.append(obj)
            self.n_iter_.append(it)
        self.weights_ = weights
        self.gamma_ = None if gamma is None else float(gamma)
        self.n_chunks_ = n_chunks
        return self

    def _fit_chunk(self, xs: np.ndarray, xt: np.ndarray, gamma: float | None
                   ) -> tuple[np.ndarray, float, int]:
        n = len(xs)
        k = kernel(xs, xs, self.kernel, gamma)
        kappa = np.zeros(n)
        for start in range(0, len(xt), 2048):
            kappa += kernel(xs, xt[start : start + 2048], self.kernel, gamma).sum(1)
        kappa *= n / len(xt)
        eps = self.eps if self.eps is not None else (math.sqrt(n) - 1) / math.sqrt(n)
        return solve_kmm(k, kappa, float(self.B), n * (1 - eps), n * (1 + eps), self.tol,
                         int(self.max_iter))


def kmm_objective(k: np.ndarray, kappa: np.ndarray, beta: np.ndarray) -> float:
    return float(0.5 * beta @ k @ beta - kappa @ beta)


def project_box_slab(v: np.ndarray, upper: float, lo: float, hi: float) -> np.ndarray:
    """Euclidean projection onto {0 ≤ β ≤ upper, lo ≤ Σβ ≤ hi} (assumed non-empty)."""
    w = np.clip(v, 0.0, upper)
    s = w.sum()
    if lo <= s <= hi:
        return w
    target = lo if s < lo else hi
    # Σ clip(v − τ, 0, upper) decreases in τ from n·upper (τ ≤ min v − upper) to 0 (τ ≥ max v)
    a, b = float(v.min()) - upper, float(v.max())
    for _ in range(200):
        mid = 0.5 * (a + b)
        if np.clip(v - mid, 0.0, upper).sum() > target:
            a = mid
        else:
            b = mid
        if b - a <= 1e-13 * max(1.0, abs(a)):
            break
    return np.clip(v - 0.5 * (a + b), 0.0, upper)


def solve_kmm(k: np.ndarray, kappa: np.ndarray, upper: float, lo: float, hi: float,
              tol: float = 1e-7, max_iter: int = 2000) -> tuple[np.ndarray, float, int]:
    """FISTA with restart on the KMM QP; returns (β, objective, iterations)."""
    from scipy.linalg import eigh

    n = len(kappa)
    lmax = float(eigh(k, eigvals_only=True, subset_by_index=[n - 1, n - 1])[0])
    step = 1.0 / max(lmax, 1e-12)
    beta = project_box_slab(np.ones(n), upper, lo, hi)
    obj = kmm_objective(k, kappa, beta)
    y, t = beta.copy(), 1.0
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007
        new = project_box_slab(y - step * (k @ y - kappa), upper, lo, hi)
        new_obj = kmm_objective(k, kappa, new)
        if new_obj > obj:  # restart the momentum from the best iterate
            y, t = beta.copy(), 1.0
            continue
        change = np.linalg.norm(new - beta)
        t_new = 0.5 * (1 + math.sqrt(1 + 4 * t * t))
        y = new + ((t - 1) / t_new) * (new - beta)
        beta, obj, t = new, new_obj, t_new
        if change <= tol * max(1.0, np.linalg.norm(beta)):
            break
    return beta, obj, it


@register_method("kmm", "kernel mean matching source weights on fixed features + a linear "
                 "classifier")
class KMMMethod(ShallowMethod):
    """KMM as a transfer method: a weighted linear classifier on fixed features.

    L = E_S[β̃(x_s) ℓ(C(φ(x_s)), y_s)] + E_{T_L}[ℓ(C(φ(x_l)), y_l)], β̃ = β / mean(β) so that
    the source term keeps its scale; β matched on the standardised features against the
    target pool (labeled + unlabeled). Twin: C on φ(x), labeled target only.
    """

    def __init__(self, model: str = "lenet", model_options: Mapping[str, Any] | None = None,
                 source_free: bool = False, features: str = "pixels",
                 pretrained: str | None = None, kernel: str = "rbf",
                 gamma: float | None = None, B: float = 1000.0, eps: float | None = None,
                 max_source: int = 3000, memory_limit_mb: float = 2048.0) -> None:
        super().__init__(model, model_options, source_free, features, pretrained)
        self.kernel = kernel
        self.gamma = gamma
        self.B = B
        self.eps = eps
        self.max_source = max_source
        self.memory_limit_mb = memory_limit_mb

    def fit_weights(self, data: TrainData) -> None:
        kmm = KMM(self.kernel, self.gamma, self.B, self.eps, self.max_source,
                  memory_limit_mb=self.memory_limit_mb, random_state=self.seed_)
        kmm.fit(self.standardized(self.features_["source"]),
                self.standardized(self.target_pool()))
        beta = torch.as_tensor(kmm.weights_, dtype=torch.float32)
        beta = beta / beta.mean().clamp(min=1e-12)
        lookup = torch.ones(int(data.source.indices.max()) + 1)
        lookup[data.source.indices] = beta
        self.kmm_ = kmm
        self.weight_lookup_ = lookup

    def source_weights(self) -> torch.Tensor:
        """β̃ for every source sample, indexed by its position in the source domain."""
        if not hasattr(self, "weight_lookup_"):
            raise ConfigError(f"{self.label} has no source weights (not fitted, or the twin).")
        return self.weight_lookup_

    def training_step(self, batches: Mapping[str, Batch], progress: float) -> StepOutput:
        src = batches["source"]
        logits = self.model_(src.x)
        per_sample = F.cross_entropy(logits.float(), src.y, reduction="none")
        if self.source_free:
            loss = per_sample.mean()
        else:
            w = self.weight_lookup_.to(src.index.device)[src.index]
            loss = (w * per_sample).mean()
        logs = {"ce_src": loss.detach()}
        lab = batches.get("target_labeled")
        if lab is not None:
            ce_lab = F.cross_entropy(self.model_(lab.x).float(), lab.y)
            loss = loss + ce_lab
            logs["ce_lab"] = ce_lab.detach()
        return StepOutput(loss, logs)
