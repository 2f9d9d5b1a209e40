"""Transferability scores: how well a source network fits the target labels, before training
(methods reference section 8).

All scores are computed from one forward pass of the source network over the *labeled*
target (never the test split) and a few seconds of linear algebra; higher is better for all.

- **LogME** (You et al., ICML 2021): per class c, a Bayesian linear model y_c = F w + noise
  with prior w ~ N(0, α⁻¹I) and noise N(0, β⁻¹); the log evidence

      log p(y|F, α, β) = D/2 log α + N/2 log β − ½ Σ_i log(α + β σ_i) − β/2 ‖F m − y‖²
                         − α/2 ‖m‖² − N/2 log 2π,   m = β (αI + βFᵀF)⁻¹ Fᵀ y,

  with σ_i the D eigenvalues of FᵀF, is maximised over (α, β) by the authors' fixed point
  γ = Σ βσ_i / (α + βσ_i), α ← γ / ‖m‖², β ← (N − γ) / ‖F m − y‖² (start α = β = 1, at most
  11 iterations, stop when α/β changes by less than 1e-3 relative). Score = mean over
  classes of evidence / N. One SVD of F serves every class. We evaluate the evidence at the
  final (α, β) with m recomputed for them (the authors' code evaluates it with the m of the
  previous iterate, a difference below the stopping tolerance), and keep the D − rank zero
  eigenvalues in the log-determinant, which makes the evidence exact also when D > N.
- **LEEP** (Nguyen et al., ICML 2020): with θ(x) the source-class softmax,
  P̂(y, z) = 1/N Σ_i θ(x_i)_z 1[y_i = y], P̂(y|z) = P̂(y, z) / Σ_y P̂(y, z),
  LEEP = 1/N Σ_i log Σ_z P̂(y_i|z) θ(x_i)_z. Always ≤ 0; 0 when θ equals the target labels.
- **NCE** (Tran et al., ICCV 2019): z_i = argmax θ(x_i); NCE = −H(Y|Z) = Σ P̂(y,z) log P̂(y|z).
- **H-score** (Bao et al., ICIP 2019): tr(cov(f)⁺ cov(E[f|y])) with the pseudo-inverse.
- **Shrinkage H-score** (Ibrahim et al., 2022): cov(f) replaced by its Ledoit–Wolf estimate
  (1 − a) S + a (tr S / D) I, and tr(cov_a(f)⁻¹ (1 − a) cov(E[f|y])); stable when D ≳ N.

The LogME authors warn that the LEEP / NCE numbers in the LogME paper came from buggy
historical code; our LEEP / NCE follow the formulas above (the corrected ``LEEP.py`` /
``NCE.py``), so compare with the corrected numbers only.

Using the scores to *predict negative transfer* (rather than to rank pre-trained models, the
use they were validated for) is ours: see :mod:`transferguard.experiments.diagnosis`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from ..data import Split, iterate_batches
from ..errors import DataError

__all__ = [
    "TransferabilityScores",
    "extract_outputs",
    "h_score",
    "ledoit_wolf",
    "leep",
    "logme",
    "nce",
    "shrinkage_h_score",
    "transferability_scores",
]


# ---------------------------------------------------------------------- input checks
def _check_labels(labels: np.ndarray | torch.Tensor, n: int, what: str,
                  num_classes: int | None = None) -> np.ndarray:
    y = np.asarray(labels.detach().cpu() if isinstance(labels, torch.Tensor) else labels)
    if y.ndim != 1 or len(y) != n:
        raise DataError(f"{what}: labels must be a vector of {n} class indices (one per "
                        f"sample), got shape {tuple(y.shape)}.")
    if not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{what}: labels must be integer class indices, got {y.dtype}.")
    if n and y.min() < 0:
        raise DataError(f"{what}: labels must be >= 0, got {int(y.min())}.")
    classes = np.unique(y)
    if len(classes) < 2:
        raise DataError(f"{what}: the labeled target has {len(classes)} class; a "
                        "transferability score compares classes and needs at least 2. Label "
                        "samples of more classes (raise labeled_percent).")
    k = len(classes) if num_classes is None else int(num_classes)
    if num_classes is not None and y.max() >= k:
        raise DataError(f"{what}: label {int(y.max())} is out of range for {k} classes.")
    if n < k:
        raise DataError(f"{what}: {n} labeled samples for {k} classes; give at least one "
                        "labeled sample per class (raise labeled_percent).")
    return y.astype(np.int64)


def _check_matrix(x: np.ndarray | torch.Tensor, what: str, name: str) -> np.ndarray:
    a = np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] == 0 or a.shape[1] == 0:
        raise DataError(f"{what}: {name} must be a non-empty (samples, dims) matrix, got "
                        f"shape {tuple(a.shape)}.")
    if not np.isfinite(a).all():
        bad = int((~np.isfinite(a)).any(axis=1).sum())
        raise DataError(f"{what}: {name} contain NaN or infinite values in {bad} of "
                        f"{a.shape[0]} rows; check the network (a diverged checkpoint?) and "
                        "the inputs.")
    return a


def _check_probs(p: np.ndarray | torch.Tensor, what: str) -> np.ndarray:
    a = _check_matrix(p, what, "source-class probabilities")
    if (a < -1e-6).any() or np.abs(a.sum(1) - 1).max() > 1e-3:
        raise DataError(f"{what}: rows of the source-class probabilities must be a softmax "
                        "(non-negative, summing to 1); pass softmax(logits), not logits.")
    return np.clip(a, 0.0, None)


# ---------------------------------------------------------------------- LogME
def logme(features: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor,
          max_iter: int = 11, tol: float = 1e-3, num_classes: int | None = None) -> float:
    """LogME: mean over classes of the maximised log evidence per sample (see module doc).

    ``num_classes`` (the target's class count, when known) makes a labeled set with fewer
    samples than classes an error instead of a score over the classes present."""
    f = _check_matrix(features, "logme", "features")
    y = _check_labels(labels, f.shape[0], "logme", num_classes)
    n, d = f.shape
    # F = U diag(s) Vᵀ: the per-class quantities need only Uᵀy and the eigenvalues s².
    u, s, _ = np.linalg.svd(f, full_matrices=False)
    sigma = s**2
    zeros = d - len(sigma)  # eigenvalues of FᵀF beyond the rank are 0
    evidences = []
    for c in np.unique(y):
        t = (y == c).astype(np.float64)
        proj = u.T @ t
        proj2 = proj**2
        resid_out = float(t @ t - proj2.sum())  # part of y outside the column space of F
        alpha, beta = 1.0, 1.0
        for _ in range(max_iter):
            ratio_old = alpha / beta
            alpha, beta = _logme_update(sigma, proj2, resid_out, alpha, beta, n)
            if abs(alpha / beta - ratio_old) / ratio_old <= tol:
                break
        ev = _logme_evidence(sigma, zeros, proj2, resid_out, alpha, beta, n, d)
        evidences.append(ev / n)
    return float(np.mean(evidences))


def _logme_terms(sigma: np.ndarray, proj2: np.ndarray, resid_out: float, alpha: float,
                 beta: float) -> tuple[float, float]:
    """‖m‖² and ‖F m − y‖² for m = β(αI + βFᵀF)⁻¹Fᵀy, in the SVD basis."""
    denom = alpha + beta * sigma
    m2 = float(np.sum(beta**2 * sigma * proj2 / denom**2))
    res2 = float(np.sum(proj2 * (alpha / denom) ** 2)) + resid_out
    return m2, res2


def _logme_update(sigma: np.ndarray, proj2: np.ndarray, resid_out: float, alpha: float,
                  beta: float, n: int) -> tuple[float, float]:
    gamma = float(np.sum(beta * sigma / (alpha + beta * sigma)))
    m2, res2 = _logme_terms(sigma, proj2, resid_out, alpha, beta)
    return gamma / (m2 + 1e-5), (n - gamma) / (res2 + 1e-5)


def _logme_evidence(sigma: np.ndarray, zeros: int, proj2: np.ndarray, resid_out: float,
                    alpha: float, beta: float, n: int, d: int) -> float:
    m2, res2 = _logme_terms(sigma, proj2, resid_out, alpha, beta)
    logdet = float(np.sum(np.log(alpha + beta * sigma))) + zeros * math.log(alpha)
    return (d / 2 * math.log(alpha) + n / 2 * math.log(beta) - 0.5 * logdet
            - beta / 2 * res2 - alpha / 2 * m2 - n / 2 * math.log(2 * math.pi))


# ---------------------------------------------------------------------- LEEP / NCE
def leep(probs: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor,
         num_classes: int | None = None) -> float:
    """LEEP of source-class probabilities θ (N × C_s) for target labels (see module doc)."""
    p = _check_probs(probs, "leep")
    y = _check_labels(labels, p.shape[0], "leep", num_classes)
    n = p.shape[0]
    k = int(y.max()) + 1
    onehot = np.eye(k)[y]  # N × C_t
    joint = onehot.T @ p / n  # C_t × C_s: P̂(y, z)
    marginal = joint.sum(0, keepdims=True)  # P̂(z)
    cond = np.divide(joint, marginal, out=np.zeros_like(joint), where=marginal > 0)
    eep = p @ cond.T  # N × C_t: Σ_z P̂(y|z) θ_z
    return float(np.mean(np.log(eep[np.arange(n), y])))


def nce(probs_or_labels: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor,
        num_classes: int | None = None) -> float:
    """NCE = −H(Y|Z) of hard source labels z (given, or the argmax of source probabilities)."""
    a = np.asarray(probs_or_labels.detach().cpu() if isinstance(probs_or_labels, torch.Tensor)
                   else probs_or_labels)
    z = _check_probs(a, "nce").argmax(1) if a.ndim == 2 else a.astype(np.int64)
    y = _check_labels(labels, len(z), "nce", num_classes)
    n = len(y)
    joint = np.zeros((int(y.max()) + 1, int(z.max()) + 1))
    np.add.at(joint, (y, z), 1.0 / n)
    pz = joint.sum(0, keepdims=True)
    cond = np.divide(joint, pz, out=np.ones_like(joint), where=pz > 0)
    mask = joint > 0
    return float(np.sum(joint[mask] * np.log(cond[mask])))


# ---------------------------------------------------------------------- H-score
def _class_means(f: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Each row replaced by the mean of its class: samples of E[f|y]."""
    g = np.zeros_like(f)
    for c in np.unique(y):
        g[y == c] = f[y == c].mean(0)
    return g


def h_score(features: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor,
            num_classes: int | None = None) -> float:
    """H-score tr(cov(f)⁺ cov(E[f|y])) (Bao et al. 2019)."""
    f = _check_matrix(features, "h_score", "features")
    y = _check_labels(labels, f.shape[0], "h_score", num_classes)
    f = f - f.mean(0)
    cov_f = np.cov(f, rowvar=False)
    cov_g = np.cov(_class_means(f, y), rowvar=False)
    return float(np.trace(np.linalg.pinv(np.atleast_2d(cov_f), rcond=1e-15)
                          @ np.atleast_2d(cov_g)))


def ledoit_wolf(x: np.ndarray) -> tuple[np.ndarray, float]:
    """Ledoit–Wolf shrunk covariance of the rows of ``x`` and the shrinkage a ∈ [0, 1].

    S = XᵀX/N (X centred), μ = tr S / D, target μI; a = min(1, b̄² / d²) with
    d² = ‖S − μI‖²_F and b̄² = 1/N² Σ_i ‖x_i x_iᵀ − S‖²_F (Ledoit & Wolf 2004).
    """
    x = np.asarray(x, dtype=np.float64)
    x = x - x.mean(0)
    n, d = x.shape
    s = x.T @ x / n
    mu = np.trace(s) / d
    delta2 = float(np.sum((s - mu * np.eye(d)) ** 2))
    sq = (x**2).sum(1)
    # Σ_i ‖x_i x_iᵀ − S‖² = Σ_i ‖x_i‖⁴ − N ‖S‖²
    beta2 = float((np.sum(sq**2) - n * np.sum(s**2)) / n**2)
    a = 0.0 if delta2 == 0 else min(1.0, max(0.0, beta2) / delta2)
    return (1 - a) * s + a * mu * np.eye(d), a


def shrinkage_h_score(features: np.ndarray | torch.Tensor,
                      labels: np.ndarray | torch.Tensor, num_classes: int | None = None) -> float:
    """H-score with the Ledoit–Wolf covariance (Ibrahim et al. 2022): stable for D ≳ N."""
    f = _check_matrix(features, "shrinkage_h_score", "features")
    y = _check_labels(labels, f.shape[0], "shrinkage_h_score", num_classes)
    f = f - f.mean(0)
    cov_a, a = ledoit_wolf(f)
    cov_g = np.atleast_2d(np.cov(_class_means(f, y), rowvar=False))
    return float(np.trace(np.linalg.pinv(cov_a, rcond=1e-15) @ ((1 - a) * cov_g)))


# ---------------------------------------------------------------------- from a network
@torch.no_grad()
def extract_outputs(model: nn.Module, split: Split, spec, *, batch_size: int = 512,
                    device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Penultimate features F(x) and logits C(F(x)) of a :class:`TransferModel` on a split."""
    if len(split) == 0:
        raise DataError(f"split {split.name!r} is empty; there is nothing to score.")
    was = model.training
    model.eval()
    feats, logits = [], []
    for batch in iterate_batches(split, spec, batch_size, device):
        h = model.features(batch.x)
        feats.append(h.float().cpu())
        logits.append(model.head(h).float().cpu())
    model.train(was)
    return torch.cat(feats), torch.cat(logits)


@dataclass
class TransferabilityScores:
    """The scores of one source network on one labeled target (higher is better)."""

    logme: float
    leep: float
    nce: float
    h_score: float
    shrinkage_h_score: float
    n: int
    feature_dim: int

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def transferability_scores(model: nn.Module, split: Split, spec, *,
                           num_classes: int | None = None,
                           device: torch.device | str = "cpu") -> TransferabilityScores:
    """Every score of ``model`` (a source network: F gives features, C source-class logits)
    on a labeled target ``split`` (use the labeled training / validation target, never test).
    ``num_classes``: the target's class count (checks one labeled sample per class)."""
    if split.labels is None:
        raise DataError(f"split {split.name!r} is unlabeled; transferability scores need the "
                        "labeled target.")
    feats, logits = extract_outputs(model, split, spec, device=device)
    y = split.labels
    k = num_classes
    probs = torch.softmax(logits.double(), 1)
    return TransferabilityScores(
        logme=logme(feats, y, num_classes=k), leep=leep(probs, y, k), nce=nce(probs, y, k),
        h_score=h_score(feats, y, k), shrinkage_h_score=shrinkage_h_score(feats, y, k),
        n=len(split), feature_dim=int(feats.shape[1]),
    )
