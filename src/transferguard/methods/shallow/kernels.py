"""Kernels shared by the shallow methods (TCA, KMM) and the active-learning sampler.

Everything here works on float64 NumPy arrays: these are closed-form estimators whose
eigen-solvers and quadratic programs want the precision, and whose sizes are bounded by
:func:`check_kernel_memory` (an n x n kernel is 8 n² bytes).

- ``rbf``: k(x, y) = exp(−γ ‖x − y‖²), with γ = 1 / median(‖x_i − x_j‖²) by default (the
  median heuristic, computed on at most 1000 points so that it costs nothing);
- ``linear``: k(x, y) = xᵀy.
"""

from __future__ import annotations

import numpy as np

from ...errors import ConfigError, DataError

KERNELS = ("rbf", "linear")


def as_matrix(x: object, name: str) -> np.ndarray:
    """A 2-D float64 array with finite values, or a DataError that says what is wrong."""
    try:
        import torch

        if isinstance(x, torch.Tensor):
            x = x.detach().cpu().double().numpy()
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2:
        raise DataError(f"{name} must be a 2-D array (samples x features), got shape {a.shape}.")
    if a.shape[0] == 0:
        raise DataError(f"{name} is empty; give at least one sample.")
    if not np.isfinite(a).all():
        raise DataError(f"{name} contains NaN or infinite values; clean the features first.")
    return a


def sq_dists(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """‖x_i − y_j‖² for every pair (clipped at 0 against rounding)."""
    d = (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2.0 * x @ y.T
    return np.maximum(d, 0.0)


def median_gamma(x: np.ndarray, seed: int = 0, max_points: int = 1000) -> float:
    """γ = 1 / median of the pairwise squared distances (the median heuristic)."""
    if len(x) > max_points:
        x = x[np.random.default_rng(seed).choice(len(x), max_points, replace=False)]
    d = sq_dists(x, x)[np.triu_indices(len(x), 1)]
    med = float(np.median(d)) if d.size else 0.0
    return 1.0 / med if med > 0 else 1.0


def kernel(x: np.ndarray, y: np.ndarray, kind: str = "rbf", gamma: float | None = None
           ) -> np.ndarray:
    """The kernel matrix k(x_i, y_j)."""
    if kind == "linear":
        return x @ y.T
    if kind == "rbf":
        if gamma is None:
            raise ConfigError("the rbf kernel needs gamma (use median_gamma for the heuristic).")
        return np.exp(-gamma * sq_dists(x, y))
    raise ConfigError(f"kernel must be one of {KERNELS}, got {kind!r}.")


def check_kernel(kind: str) -> str:
    if kind not in KERNELS:
        raise ConfigError(f"kernel must be one of {KERNELS}, got {kind!r}.")
    return kind


def kernel_megabytes(n: int, copies: int = 1) -> float:
    """Memory of ``copies`` n x n float64 matrices, in MB."""
    return copies * 8.0 * n * n / 2**20


def check_kernel_memory(n: int, copies: int, limit_mb: float, who: str, fix: str) -> None:
    """Refuse a kernel problem whose n x n matrices would not fit in ``limit_mb``."""
    need = kernel_megabytes(n, copies)
    if need > limit_mb:
        raise DataError(
            f"{who} would build {copies} kernel matrices of {n} x {n} float64 values "
            f"({need:,.0f} MB), above memory_limit_mb={limit_mb:g}; {fix}"
        )
