"""Transfer Component Analysis (Pan, Tsang, Kwok, Yang, IEEE TNN 2011): a shallow baseline
of Wang et al.'s Table 2 (methods reference section 1.7).

TCA finds a kernel embedding z(x) = Wᵀ k(X, x) in which the source and target marginals are
close in MMD while the data's variance is kept. With K the kernel of the n = n_s + n_t fit
samples, L_ij = 1/n_s² (both source), 1/n_t² (both target), −1/(n_s n_t) (mixed), and the
centring matrix H = I − 11ᵀ/n:

    min_W  tr(Wᵀ K L K W) + μ tr(WᵀW)     s.t.  Wᵀ K H K W = I

whose solution is the m leading eigenvectors of (K L K + μI)⁻¹ K H K. We solve the
equivalent symmetric-definite generalised problem K H K v = λ (K L K + μI) v exactly, using
that K L K = ggᵀ with g = K e, e = [1/n_s, ..., −1/n_t, ...], is rank one: then
B = μI + ggᵀ has the closed-form inverse square root B^{-1/2} = (I − c ĝĝᵀ)/√μ, and the
problem becomes the standard symmetric one for B^{-1/2} K H K B^{-1/2}, solved by Lanczos
(ARPACK, only m eigenpairs and matrix-vector products: seconds at n = 2000 where a dense
generalised ``eigh`` takes many) or densely below 600 samples. W = B^{-1/2} U Λ^{-1/2}, so
the constraint Wᵀ K H K W = I holds (the "orthonormal in the kernel metric" property, tested
with the reference (K L K + μI)⁻¹ K H K).

**Memory.** The problem holds about four n x n float64 matrices (the kernel, K H K, the
right-hand side, the solver's workspace): 4 · 8 n² bytes, 128 MB at the default
``max_samples`` = 2000. Above ``max_samples`` TCA is fitted on a seeded random subsample
(at most half of it from each domain, the rest from the larger one), which is how TCA is run
on large sets in practice; new points are embedded through their kernel with the fit
samples. ``max_samples=None`` fits on everything and is refused with a clear message when
the matrices would exceed ``memory_limit_mb``.

Why not skada's ``TransferComponentAnalysisAdapter`` (BSD-3, scikit-learn style): it builds
the full kernel with no size guard, needs the POT and pandas packages, and solves the
problem with ``numpy.linalg.eigh`` applied to (I + μKLK)⁻¹KHK, a *non-symmetric* matrix
whose upper triangle ``eigh`` ignores, so its components are not the TCA solution in general.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ...data import Batch, TrainData
from ...engine import StepOutput
from ...errors import ConfigError, DataError
from ..base import register_method, supervised_loss
from .base import FixedFeatures, ShallowMethod
from .kernels import (
    as_matrix,
    check_kernel,
    check_kernel_memory,
    kernel,
    median_gamma,
)


class TCA:
    """TCA as a scikit-learn-style transformer: ``TCA(n_components=30).fit(Xs, Xt)``.

    Fitted attributes: ``X_fit_`` (the samples the kernel was built on, source first),
    ``coef_`` (W, n_fit x m), ``eigenvalues_`` (λ of the kept components, descending),
    ``gamma_`` (the rbf bandwidth used), ``n_source_fit_`` / ``n_target_fit_``.
    """

    def __init__(self, n_components: int = 30, mu: float = 1.0, kernel: str = "rbf",
                 gamma: float | None = None, max_samples: int | None = 2000,
                 memory_limit_mb: float = 2048.0, random_state: int = 0) -> None:
        self.n_components = n_components
        self.mu = mu
        self.kernel = kernel
        self.gamma = gamma
        self.max_samples = max_samples
        self.memory_limit_mb = memory_limit_mb
        self.random_state = random_state

    def _validate(self) -> None:
        check_kernel(self.kernel)
        if int(self.n_components) < 1:
            raise ConfigError(f"n_components must be >= 1, got {self.n_components}.")
        if not self.mu > 0:
            raise ConfigError(f"mu (the trade-off of tr(WᵀW)) must be > 0, got {self.mu}.")
        if self.max_samples is not None and int(self.max_samples) < 4:
            raise ConfigError(f"max_samples must be >= 4 or None, got {self.max_samples}.")
        if self.gamma is not None and not self.gamma > 0:
            raise ConfigError(f"gamma must be > 0 or None (median heuristic), got {self.gamma}.")

    def fit(self, Xs: object, Xt: object) -> TCA:
        """Fit the transfer components on source ``Xs`` and target ``Xt`` (no labels)."""
        self._validate()
        xs, xt = as_matrix(Xs, "Xs"), as_matrix(Xt, "Xt")
        if xs.shape[1] != xt.shape[1]:
            raise DataError(f"source and target features differ in dimension ({xs.shape[1]} "
                            f"vs {xt.shape[1]}); extract both with the same feature map.")
        rng = np.random.default_rng(self.random_state)
        xs, xt = _subsample(xs, xt, self.max_samples, rng)
        ns, nt = len(xs), len(xt)
        n = ns + nt
        check_kernel_memory(n, 4, self.memory_limit_mb, "TCA",
                            "pass max_samples (TCA is then fitted on a random subsample of "
                            "that size) or raise memory_limit_mb.")
        x = np.concatenate([xs, xt])
        gamma = self.gamma if self.gamma is not None else median_gamma(x, self.random_state)
        k = kernel(x, x, self.kernel, gamma)
        e = np.concatenate([np.full(ns, 1.0 / ns), np.full(nt, -1.0 / nt)])
        kc = k - k.mean(0, keepdims=True)  # H K (H symmetric and idempotent): K H K = KcᵀKc
        m = min(int(self.n_components), n - 1)
        vals, vecs = _leading_generalized(kc, k @ e, float(self.mu), m, self.random_state)
        order = np.argsort(vals)[::-1]
        vals, vecs = vals[order], vecs[:, order]
        keep = vals > max(vals[0], 0.0) * 1e-10
        if not keep.any():
            raise DataError("TCA found no component with positive variance (the kernel is "
                            "constant on these samples); check the features or gamma.")
        vals, vecs = vals[keep], vecs[:, keep]
        self.X_fit_ = x
        self.coef_ = vecs / np.sqrt(vals)  # Wᵀ K H K W = I
        self.eigenvalues_ = vals
        self.gamma_ = float(gamma)
        self.n_source_fit_, self.n_target_fit_ = ns, nt
        return self

    def transform(self, X: object) -> np.ndarray:
        """z(x) = Wᵀ k(X_fit, x) for every row of ``X``."""
        if not hasattr(self, "coef_"):
            raise ConfigError("this TCA is not fitted yet; call fit(Xs, Xt) first.")
        x = as_matrix(X, "X")
        if x.shape[1] != self.X_fit_.shape[1]:
            raise DataError(f"X has {x.shape[1]} features, TCA was fitted on "
                            f"{self.X_fit_.shape[1]}.")
        return kernel(x, self.X_fit_, self.kernel, self.gamma_) @ self.coef_

    def mmd(self, Xs: object, Xt: object) -> float:
        """Squared distance of the embedded means, ‖mean z(Xs) − mean z(Xt)‖²."""
        d = self.transform(Xs).mean(0) - self.transform(Xt).mean(0)
        return float(d @ d)


def _leading_generalized(kc: np.ndarray, g: np.ndarray, mu: float, m: int, seed: int
                         ) -> tuple[np.ndarray, np.ndarray]:
    """The m leading (λ, v) of KcᵀKc v = λ (ggᵀ + μI) v, with vᵀ(ggᵀ + μI)v = 1."""
    n = len(g)
    gg = float(g @ g)
    ghat = g / np.sqrt(gg) if gg > 0 else g
    c = 1.0 - 1.0 / np.sqrt(1.0 + gg / mu)

    def b_isqrt(v: np.ndarray) -> np.ndarray:  # (I − c ĝĝᵀ) v / √μ, for vectors or matrices
        return (v - c * np.outer(ghat, ghat @ v).reshape(v.shape)) / np.sqrt(mu)

    if n < 600 or m >= n // 3:
        kb = kc @ b_isqrt(np.eye(n))
        vals, u = np.linalg.eigh(kb.T @ kb)
        vals, u = vals[::-1][:m], u[:, ::-1][:, :m]
    else:
        from scipy.sparse.linalg import LinearOperator, eigsh

        op = LinearOperator((n, n), dtype=np.float64,
                            matvec=lambda v: b_isqrt(kc.T @ (kc @ b_isqrt(np.ravel(v)))))
        v0 = np.random.default_rng(seed).normal(size=n)
        vals, u = eigsh(op, k=m, which="LA", v0=v0, tol=1e-10, ncv=min(n, max(2 * m + 1, 64)))
    return vals, b_isqrt(u)


def _subsample(xs: np.ndarray, xt: np.ndarray, max_samples: int | None,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """At most ``max_samples`` rows in all: half from each domain, the rest to the larger."""
    if max_samples is None or len(xs) + len(xt) <= max_samples:
        return xs, xt
    half = int(max_samples) // 2
    take_t = min(len(xt), max(half, int(max_samples) - len(xs)))
    take_s = min(len(xs), int(max_samples) - take_t)
    s = np.sort(rng.choice(len(xs), take_s, replace=False))
    t = np.sort(rng.choice(len(xt), take_t, replace=False))
    return xs[s], xt[t]


@register_method("tca", "transfer component analysis on fixed features + a linear classifier")
class TCAMethod(ShallowMethod):
    """TCA as a transfer method: the classifier C is trained on z(x) = Wᵀ k(X_fit, φ(x)).

    L = E_S[ℓ(C(z(x_s)), y_s)] + E_{T_L}[ℓ(C(z(x_l)), y_l)]; W fitted on the source and the
    target pool (labeled + unlabeled, never validation or test). Twin: C on φ(x), labeled
    target only (see :mod:`.base`).
    """

    def __init__(self, model: str = "lenet", model_options: Mapping[str, Any] | None = None,
                 source_free: bool = False, features: str = "pixels",
                 pretrained: str | None = None, n_components: int = 30, mu: float = 1.0,
                 kernel: str = "rbf", gamma: float | None = None,
                 max_samples: int | None = 2000, memory_limit_mb: float = 2048.0) -> None:
        super().__init__(model, model_options, source_free, features, pretrained)
        self.n_components = n_components
        self.mu = mu
        self.kernel = kernel
        self.gamma = gamma
        self.max_samples = max_samples
        self.memory_limit_mb = memory_limit_mb

    def fit_embedding(self, fixed: FixedFeatures, data: TrainData) -> None:
        tca = TCA(self.n_components, self.mu, self.kernel, self.gamma, self.max_samples,
                  self.memory_limit_mb, random_state=self.seed_)
        tca.fit(self.features_["source"], self.target_pool())
        fixed.set_embedding(self.kernel, tca.gamma_, tca.X_fit_, tca.coef_)
        self.tca_ = tca

    def training_step(self, batches: Mapping[str, Batch], progress: float) -> StepOutput:
        loss, logs = supervised_loss(self.model_, self.labeled_batches(batches))
        return StepOutput(loss, logs)
