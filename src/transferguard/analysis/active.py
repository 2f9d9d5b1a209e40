"""Query strategies for active learning in transfer (methods reference section 7.2; the
objective is the seed's, the solver ours).

A base model W trained on the labeled target alone and a transfer model W_T disagree most on
the target samples the source changed: where the transfer helped (the labeled target did not
teach them) or hurt (the source misled it). Both are worth a label. Querying by disagreement
alone picks outliers, so the batch also keeps the labeled set distributed like a reference
sample R:

    min_{α ∈ {0,1}^{n_U}, Σα = b}   −λ dᵀα + MMD²(R, L ∪ U_α)

d_i = ‖p_W(x_i) − p_{W_T}(x_i)‖₁ / 2 ∈ [0, 1] (total variation; ``divergence="sym_kl"``
gives the symmetric KL rescaled to [0, 1] over the pool). R is the source sample, as on the
slide (``reference="source"``), or the target pool L ∪ U (``"target"``). With m = n_L + b
fixed, MMD² is the quadratic αᵀAα + cᵀα + const with A = K_UU/m² and
c_i = −(2/(n_R m)) Σ_r k(r, u_i) + (2/m²) Σ_l k(l, u_i).

**Solver**: greedy (add the i minimising c_i − λd_i + A_ii + 2Σ_{j∈S}A_ij, running sums kept),
then best-improvement swaps (exchange i ∈ S for j ∉ S while it lowers the objective, at most
``max_swaps``), which repairs most of greedy's misses; the tests check the pick against brute
force on small pools. Memory O(b·n_U): only the kernel rows of chosen points are formed; the
sums over R and L are computed in blocks.

**λ**: the two terms live on different scales, so ``lam`` is relative: λ = lam · (the spread
max − min over the pool of the per-point MMD² change c_i + A_ii). lam = 0 is pure
distribution matching; lam → ∞ is disagreement only.

Baselines (same signature): ``random``; ``entropy`` of the transfer model's prediction;
``disagreement`` (top-b d_i); ``coreset`` (k-centre greedy on the features, Sener & Savarese
2018: repeatedly take the pool point farthest from the labeled and chosen points).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..errors import ConfigError, DataError

STRATEGIES = ("transfer", "random", "entropy", "disagreement", "coreset")
DIVERGENCES = ("tv", "sym_kl")


@dataclass
class QueryInputs:
    """What a strategy may look at (all on the unlabeled pool U unless named otherwise).

    ``probs_transfer`` / ``probs_base``: (n_U, K) predictive distributions of the transfer and
    the base model; ``features``: (n_U, D) features of U; ``labeled_features``: (n_L, D);
    ``reference_features``: (n_R, D), the sample R of the MMD term.
    """

    probs_transfer: torch.Tensor
    features: torch.Tensor
    labeled_features: torch.Tensor
    probs_base: torch.Tensor | None = None
    reference_features: torch.Tensor | None = None


def disagreement(p_base: torch.Tensor, p_transfer: torch.Tensor, kind: str = "tv"
                 ) -> torch.Tensor:
    """d_i in [0, 1]: total variation ½‖p − q‖₁, or the symmetric KL scaled by its maximum."""
    if p_base.shape != p_transfer.shape:
        raise DataError(f"the two models' predictions differ in shape: {tuple(p_base.shape)} "
                        f"vs {tuple(p_transfer.shape)}.")
    if kind == "tv":
        return 0.5 * (p_base - p_transfer).abs().sum(1)
    if kind == "sym_kl":
        p, q = p_base.clamp(min=1e-12), p_transfer.clamp(min=1e-12)
        d = ((p - q) * (p.log() - q.log())).sum(1)
        return d / d.max().clamp(min=1e-12)
    raise ConfigError(f"divergence must be one of {DIVERGENCES}, got {kind!r}.")


def median_bandwidth(x: torch.Tensor, max_points: int = 1000, seed: int = 0) -> float:
    """γ = 1 / median squared distance (on at most ``max_points`` points)."""
    if len(x) > max_points:
        g = torch.Generator().manual_seed(seed)
        x = x[torch.randperm(len(x), generator=g)[:max_points]]
    d = torch.cdist(x, x).pow(2)
    vals = d[torch.triu(torch.ones_like(d, dtype=torch.bool), 1)]
    med = float(vals.median()) if vals.numel() else 0.0
    return 1.0 / med if med > 0 else 1.0


def _rbf(x: torch.Tensor, y: torch.Tensor, gamma: float) -> torch.Tensor:
    return torch.exp(-gamma * torch.cdist(x, y).pow(2))


def _kernel_sums(x: torch.Tensor, others: torch.Tensor, gamma: float, block: int = 2048
                 ) -> torch.Tensor:
    """Σ_o k(x_i, o) for every row of x, in blocks of ``others`` (memory O(n_x · block))."""
    out = torch.zeros(len(x), dtype=torch.float64)
    for s in range(0, len(others), block):
        out += _rbf(x, others[s : s + block], gamma).sum(1)
    return out


def mmd_objective_terms(features: torch.Tensor, labeled: torch.Tensor,
                        reference: torch.Tensor, b: int, gamma: float
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """(c, diag A) of the quadratic form of MMD²(R, L ∪ U_α) (the constant left out)."""
    m = len(labeled) + b
    c = -2.0 / (len(reference) * m) * _kernel_sums(features, reference, gamma)
    if len(labeled):
        c += 2.0 / m**2 * _kernel_sums(features, labeled, gamma)
    diag = torch.full((len(features),), 1.0 / m**2, dtype=torch.float64)  # k(u, u) = 1
    return c, diag


def mmd_squared(reference: torch.Tensor, sample: torch.Tensor, gamma: float) -> float:
    """The (biased, V-statistic) MMD² between two samples with the rbf kernel."""
    k_rr = _rbf(reference, reference, gamma).mean()
    k_ss = _rbf(sample, sample, gamma).mean()
    k_rs = _rbf(reference, sample, gamma).mean()
    return float(k_rr + k_ss - 2 * k_rs)


def transfer_batch(features: torch.Tensor, labeled: torch.Tensor, reference: torch.Tensor,
                   d: torch.Tensor, b: int, lam: float = 1.0, gamma: float | None = None,
                   max_swaps: int = 100) -> torch.Tensor:
    """Indices (into U) of the b points minimising −λdᵀα + MMD²(R, L ∪ U_α); see the module."""
    n = len(features)
    _check_budget(b, n)
    if len(reference) == 0:
        raise DataError("the MMD reference sample R is empty; give source or target features.")
    f = features.double()
    lab, ref = labeled.double(), reference.double()
    if gamma is None:
        gamma = median_bandwidth(torch.cat([f, ref]))
    m = len(lab) + b
    c, diag = mmd_objective_terms(f, lab, ref, b, gamma)
    unary = c + diag
    spread = float(unary.max() - unary.min())
    lam_eff = float(lam) * (spread if spread > 0 else 1.0)
    c = c - lam_eff * d.double()

    rows: dict[int, torch.Tensor] = {}

    def row(i: int) -> torch.Tensor:  # A_i· = k(u_i, U) / m²
        if i not in rows:
            rows[i] = _rbf(f[i : i + 1], f, gamma)[0] / m**2
        return rows[i]

    chosen: list[int] = []
    pair = torch.zeros(n, dtype=torch.float64)  # Σ_{j∈S} A_ij for every i
    taken = torch.zeros(n, dtype=torch.bool)
    for _ in range(b):
        gain = c + diag + 2 * pair
        gain[taken] = math.inf
        i = int(gain.argmin())
        chosen.append(i)
        taken[i] = True
        pair += row(i)
    for _ in range(max_swaps):  # best-improvement swaps i ∈ S -> j ∉ S
        s = torch.tensor(chosen)
        out_gain = c + diag + 2 * pair  # for j ∉ S: c_j + A_jj + 2 Σ_S A_jt
        in_loss = out_gain[s]  # for i ∈ S: c_i + A_ii + 2 Σ_S A_it (includes 2 A_ii)
        a_sj = torch.stack([row(i) for i in chosen])  # (b, n)
        delta = out_gain[None, :] - in_loss[:, None] + 2 * diag[s][:, None] - 2 * a_sj
        delta[:, s] = math.inf
        best = float(delta.min())
        if best >= -1e-15:
            break
        pos, j = divmod(int(delta.argmin()), n)
        i = chosen[pos]
        chosen[pos] = j
        taken[i], taken[j] = False, True
        pair += row(j) - row(i)
    return torch.tensor(sorted(chosen), dtype=torch.long)


def coreset_batch(features: torch.Tensor, labeled: torch.Tensor, b: int) -> torch.Tensor:
    """k-centre greedy: each pick is the pool point farthest from all labeled/chosen points."""
    n = len(features)
    _check_budget(b, n)
    f = features.double()
    nearest = torch.full((n,), math.inf, dtype=torch.float64)
    for s in range(0, len(labeled), 2048):
        block = labeled[s : s + 2048].double()
        nearest = torch.minimum(nearest, torch.cdist(f, block).min(1).values)
    chosen: list[int] = []
    for _ in range(b):
        i = int(nearest.argmax())  # all infinite (nothing labeled): the first point
        chosen.append(i)
        nearest = torch.minimum(nearest, torch.cdist(f, f[i : i + 1])[:, 0])
        nearest[i] = -1.0  # never twice, even among duplicate points
    return torch.tensor(sorted(chosen), dtype=torch.long)


def entropy(probs: torch.Tensor) -> torch.Tensor:
    p = probs.clamp(min=1e-12)
    return -(p * p.log()).sum(1)


def select_batch(strategy: str, inputs: QueryInputs, b: int, *, lam: float = 1.0,
                 divergence: str = "tv", seed: int = 0, gamma: float | None = None
                 ) -> torch.Tensor:
    """b distinct indices into the unlabeled pool U chosen by ``strategy``."""
    if strategy not in STRATEGIES:
        raise ConfigError(f"strategy must be one of {STRATEGIES}, got {strategy!r}.")
    n = len(inputs.probs_transfer)
    _check_budget(b, n)
    if strategy == "random":
        g = torch.Generator().manual_seed(int(seed))
        return torch.randperm(n, generator=g)[:b].sort().values
    if strategy == "entropy":
        return entropy(inputs.probs_transfer.double()).topk(b).indices.sort().values
    if strategy == "coreset":
        return coreset_batch(inputs.features, inputs.labeled_features, b)
    if inputs.probs_base is None:
        raise ConfigError(f"strategy {strategy!r} needs the base model's predictions "
                          "(probs_base).")
    d = disagreement(inputs.probs_base.double(), inputs.probs_transfer.double(), divergence)
    if strategy == "disagreement":
        return d.topk(b).indices.sort().values
    if inputs.reference_features is None:
        raise ConfigError("strategy 'transfer' needs reference_features (the sample R).")
    return transfer_batch(inputs.features, inputs.labeled_features, inputs.reference_features,
                          d, b, lam, gamma)


def _check_budget(b: int, n: int) -> None:
    if int(b) < 1:
        raise DataError(f"the batch size b must be >= 1, got {b}.")
    if int(b) > n:
        raise DataError(f"the batch size b = {b} exceeds the unlabeled pool ({n} samples); "
                        "lower the budget per round or the number of rounds.")
