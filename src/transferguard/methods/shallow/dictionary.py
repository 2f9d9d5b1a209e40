"""Linear-model parameter transfer through a shared dictionary (the "my work" part of the
CVPR 2019 negative-transfer talk; methods reference section 7.1: objective from the seed,
solver ours).

Given m source linear models W_S^i (d x c) and the labeled target (X_L, Y_L), learn a
dictionary D (d x k) of "base models", row-sparse codes V (k x c) and the target model W_T:

    J = Σ_i [½‖W_S^i − D V_S^i‖²_F + η‖V_S^i‖_{2,1}] + (α/2)‖W_T − D V_T‖²_F + η‖V_T‖_{2,1}
        + β[½‖X_L W_T − Y_L‖²_F + ρ‖W_T‖²_F]

(rows of X_L are samples, so X_L W_T is the seed's (W_Tᵀ X_L)ᵀ; ρ = 1 is the seed's value.)
‖V‖_{2,1} = Σ_j ‖V_{j,:}‖₂ makes every model use few atoms, so a source that shares no atom
with the target cannot pull W_T: it gets atoms of its own, which V_T leaves at zero. That is
the mechanism that should keep unrelated sources from hurting (tested in the benchmark).

**Solver**: block-coordinate descent, each block minimised exactly or by a monotone step, so
J never increases (tested):

1. D from the top-k left singular vectors of [W_S^1 … W_S^m]; V = 0; W_T the ridge solution
   on (X_L, Y_L);
2. V-steps (each V_S^i with weight 1, V_T with weight α): ``inner_iter`` proximal-gradient
   (ISTA) steps with step 1/(w‖DᵀD‖₂), prox = row shrinkage v_j ← max(0, 1 − tη/‖v_j‖) v_j;
   ISTA with that step never increases the block objective (FISTA would not guarantee it);
3. D-step: J is invariant to D → sD, V → V/s except for the η-terms, which a free D would
   drive to zero by growing D. We therefore constrain the atoms to ‖d_j‖ ≤ 1 (the dictionary
   learning convention, Mairal et al. 2010) and minimise over D by exact column-wise block
   coordinate descent: d_j ← Π_{‖·‖≤1}(d_j + (R_j − D G_j)/G_jj), with G = Σ V Vᵀ and
   R = Σ W Vᵀ (α-weighted for the target). This replaces the reference's unconstrained least
   squares + optional renormalisation, which is not monotone;
4. W_T-step (closed form): W_T = ((α + 2βρ) I + β X_LᵀX_L)⁻¹ (α D V_T + β X_Lᵀ Y_L);
5. stop when the relative decrease of J over an outer iteration is below ``tol`` (or after
   ``max_iter`` outer iterations; ``converged_`` says which).

Choosing k and β. ``n_atoms=None`` and ``beta=None`` select them jointly by stratified
3-fold cross-validation on the labeled target (the reference recommends it for β). The
candidate k are the numbers of singular directions of [W_S^1 … W_S^m] that hold 50, 75 and
90% of its energy (``energy_grid``). The reference's default k = min(d, 2c·m) makes the
dictionary complete whenever d ≤ 2c·m, and a complete dictionary is no prior at all: on the
planted-basis benchmark it costs most of the gain (docs/results/dictionary.md, the row
"reference k"). The β grid reaches 100, where the prior is
negligible and W_T is the target-only ridge: cross-validation can fall back to it when the
sources do not fit. η = 0.05 · mean_i ‖W_S^i‖_F / √k; α = 1; ρ = 1. Cost per outer iteration
O(m · inner_iter · k²c + d³).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ...errors import ConfigError, DataError
from .kernels import as_matrix


class SharedDictionaryTransfer:
    """``SharedDictionaryTransfer().fit(X, y, source_models=[W1, W2, ...]).predict(X)``.

    ``y`` is a vector of class labels (one-hot targets are built from ``classes_``) or a 2-D
    array of regression targets. Fitted attributes: ``coef_`` (W_T, d x c), ``dictionary_``
    (D), ``source_codes_`` (V_S^i), ``target_code_`` (V_T), ``objective_history_`` (J after
    initialisation and after each outer iteration), ``n_iter_``, ``converged_``, ``beta_``,
    ``eta_``, ``n_atoms_``, ``classes_`` (classification only).
    """

    def __init__(self, n_atoms: int | None = None, eta: float | None = None,
                 alpha: float = 1.0, beta: float | None = None, ridge: float = 1.0,
                 inner_iter: int = 10, max_iter: int = 200, tol: float = 1e-5,
                 beta_grid: Sequence[float] = (0.001, 0.01, 0.1, 1.0, 100.0),
                 energy_grid: Sequence[float] = (0.5, 0.75, 0.9), cv: int = 3,
                 random_state: int = 0) -> None:
        self.n_atoms = n_atoms
        self.eta = eta
        self.alpha = alpha
        self.beta = beta
        self.ridge = ridge
        self.inner_iter = inner_iter
        self.max_iter = max_iter
        self.tol = tol
        self.beta_grid = beta_grid
        self.energy_grid = energy_grid
        self.cv = cv
        self.random_state = random_state

    # ------------------------------------------------------------------ scikit-learn API
    def get_params(self, deep: bool = True) -> dict:
        return {k: getattr(self, k) for k in (
            "n_atoms", "eta", "alpha", "beta", "ridge", "inner_iter", "max_iter", "tol",
            "beta_grid", "energy_grid", "cv", "random_state")}

    def set_params(self, **params: object) -> SharedDictionaryTransfer:
        for k, v in params.items():
            if k not in self.get_params():
                raise ConfigError(f"SharedDictionaryTransfer has no parameter {k!r}.")
            setattr(self, k, v)
        return self

    def fit(self, X: object, y: object, *, source_models: Sequence[object],
            classes: Sequence[object] | None = None) -> SharedDictionaryTransfer:
        """``classes``: every class of the source models' columns, in order (default: the
        classes present in ``y``; pass them when the labeled target misses some)."""
        x = as_matrix(X, "X")
        targets, classes = self._targets(y, len(x), classes)
        ws = self._check_sources(source_models, x.shape[1], targets.shape[1])
        self._validate()
        betas = [float(self.beta)] if self.beta is not None else [float(b) for b in
                                                                  self.beta_grid]
        atoms = [int(self.n_atoms)] if self.n_atoms is not None else \
            _energy_atoms(ws, self.energy_grid)
        beta, k = betas[0], atoms[0]
        if len(betas) * len(atoms) > 1:
            beta, k = self._select(x, targets, classes, ws, betas, atoms)
        self.classes_ = classes
        self._solve(x, targets, ws, beta, k)
        return self

    def decision_function(self, X: object) -> np.ndarray:
        if not hasattr(self, "coef_"):
            raise ConfigError("this SharedDictionaryTransfer is not fitted; call fit first.")
        x = as_matrix(X, "X")
        if x.shape[1] != self.coef_.shape[0]:
            raise DataError(f"X has {x.shape[1]} features, the model {self.coef_.shape[0]}.")
        return x @ self.coef_

    def predict(self, X: object) -> np.ndarray:
        scores = self.decision_function(X)
        if self.classes_ is None:
            return scores
        return self.classes_[scores.argmax(1)]

    def score(self, X: object, y: object) -> float:
        """Accuracy for classification, R² for regression (scikit-learn's convention)."""
        pred = self.predict(X)
        yy = np.asarray(y)
        if self.classes_ is not None:
            return float((pred == yy).mean())
        yy = yy.reshape(pred.shape)
        return float(1 - ((yy - pred) ** 2).sum() / ((yy - yy.mean(0)) ** 2).sum())

    def twin(self) -> SharedDictionaryTransfer:
        """The target-only twin: the same objective without the sources (α = 0), i.e. the
        ridge W_T = (2ρ I + X_LᵀX_L)⁻¹ X_LᵀY_L (the reference's negative-transfer check)."""
        return SharedDictionaryTransfer(**{**self.get_params(), "alpha": 0.0, "beta": 1.0,
                                           "n_atoms": 1})

    # ------------------------------------------------------------------ the solver
    def objective(self, x: np.ndarray, targets: np.ndarray, ws: list[np.ndarray],
                  d: np.ndarray, vs: list[np.ndarray], vt: np.ndarray, wt: np.ndarray,
                  beta: float, eta: float) -> float:
        j = sum(0.5 * _sq(w - d @ v) + eta * _l21(v) for w, v in zip(ws, vs))
        j += 0.5 * self.alpha * _sq(wt - d @ vt) + eta * _l21(vt)
        j += beta * (0.5 * _sq(x @ wt - targets) + self.ridge * _sq(wt))
        return float(j)

    def _solve(self, x: np.ndarray, targets: np.ndarray, ws: list[np.ndarray],
               beta: float, k: int, max_iter: int | None = None,
               basis: np.ndarray | None = None) -> None:
        """``basis``: the left singular vectors of [W_S^1 … W_S^m] when already computed
        (they depend on the sources only, so cross-validation computes them once)."""
        dim, c = ws[0].shape
        k = min(k, dim)
        u = _source_basis(ws) if basis is None else basis
        d = np.zeros((dim, k))
        d[:, : min(k, u.shape[1])] = u[:, :k]
        if k > u.shape[1]:  # more atoms than the sources span: random unit columns
            extra = np.random.default_rng(self.random_state).normal(size=(dim, k - u.shape[1]))
            d[:, u.shape[1] :] = extra / np.linalg.norm(extra, axis=0)
        eta = self.eta if self.eta is not None else \
            0.05 * float(np.mean([np.linalg.norm(w) for w in ws])) / math.sqrt(k)
        vs = [np.zeros((k, c)) for _ in ws]
        vt = np.zeros((k, c))
        xty = x.T @ targets
        wt = _ShiftedGram(x, 2 * beta * self.ridge, beta).solve(beta * xty)
        # the W_T-step's matrix is the same every iteration: factorise it once
        w_step = _ShiftedGram(x, self.alpha + 2 * beta * self.ridge, beta)
        history = [self.objective(x, targets, ws, d, vs, vt, wt, beta, eta)]
        converged = False
        it = 0
        w_src = np.stack(ws)
        for it in range(1, int(max_iter or self.max_iter) + 1):  # noqa: B007
            vs = list(_ista(d, w_src, np.stack(vs), 1.0, eta, self.inner_iter))
            if self.alpha > 0:
                vt = _ista(d, wt, vt, float(self.alpha), eta, self.inner_iter)
            d = _dictionary_step(d, ws + [wt], vs + [vt], [1.0] * len(ws) + [self.alpha])
            wt = w_step.solve(self.alpha * d @ vt + beta * xty)
            history.append(self.objective(x, targets, ws, d, vs, vt, wt, beta, eta))
            if history[-2] - history[-1] <= self.tol * max(abs(history[-2]), 1e-12):
                converged = True
                break
        self.coef_, self.dictionary_ = wt, d
        self.source_codes_, self.target_code_ = vs, vt
        self.objective_history_ = history
        self.n_iter_, self.converged_ = it, converged
        self.beta_, self.eta_, self.n_atoms_ = beta, eta, k

    def _select(self, x: np.ndarray, targets: np.ndarray, classes: np.ndarray | None,
                ws: list[np.ndarray], betas: list[float], atoms: list[int]
                ) -> tuple[float, int]:
        """(β, k) from the grids by k-fold cross-validation on the labeled target."""
        n = len(x)
        folds = min(int(self.cv), n)
        if folds < 2:
            return betas[0], atoms[0]
        rng = np.random.default_rng(self.random_state)
        if classes is not None:  # stratified: deal each class's samples round-robin
            labels = targets.argmax(1)
            fold_of = np.empty(n, dtype=int)
            for cls in np.unique(labels):
                idx = rng.permutation(np.flatnonzero(labels == cls))
                fold_of[idx] = (np.arange(len(idx)) + rng.integers(folds)) % folds
        else:
            fold_of = rng.permutation(n) % folds
        best, best_score = (betas[0], atoms[0]), -np.inf
        basis = _source_basis(ws)
        for k in atoms:
            for b in betas:
                score = 0.0
                for f in range(folds):
                    tr, te = fold_of != f, fold_of == f
                    if not tr.any() or not te.any():
                        continue
                    est = SharedDictionaryTransfer(**self.get_params())
                    est._solve(x[tr], targets[tr], ws, b, k,
                               max_iter=min(int(self.max_iter), 30), basis=basis)
                    pred = x[te] @ est.coef_
                    if classes is not None:
                        score += float((pred.argmax(1) == targets[te].argmax(1)).sum())
                    else:
                        score -= float(((pred - targets[te]) ** 2).sum())
                if score > best_score:  # ties keep the earlier (smaller k, smaller β)
                    best, best_score = (b, k), score
        return best

    # ------------------------------------------------------------------ checks
    def _validate(self) -> None:
        if self.n_atoms is not None and int(self.n_atoms) < 1:
            raise ConfigError(f"n_atoms must be >= 1 or None, got {self.n_atoms}.")
        if self.eta is not None and self.eta < 0:
            raise ConfigError(f"eta must be >= 0, got {self.eta}.")
        if self.alpha < 0 or self.ridge < 0:
            raise ConfigError(f"alpha and ridge must be >= 0, got {self.alpha}, {self.ridge}.")
        if self.beta is not None and not self.beta > 0:
            raise ConfigError(f"beta must be > 0 or None (cross-validated), got {self.beta}.")
        if self.beta is None and not len(self.beta_grid):
            raise ConfigError("beta=None needs a non-empty beta_grid.")

    @staticmethod
    def _targets(y: object, n: int, classes: Sequence[object] | None
                 ) -> tuple[np.ndarray, np.ndarray | None]:
        yy = np.asarray(y)
        if len(yy) != n:
            raise DataError(f"X has {n} samples but y has {len(yy)}.")
        if yy.ndim == 1:
            if classes is None:
                classes, inv = np.unique(yy, return_inverse=True)
            else:
                classes = np.asarray(classes)
                lookup = {v: i for i, v in enumerate(classes.tolist())}
                missing = sorted(set(yy.tolist()) - set(lookup))
                if missing:
                    raise DataError(f"y has labels {missing[:5]} that are not in classes.")
                inv = np.array([lookup[v] for v in yy.tolist()], dtype=int)
            onehot = np.zeros((n, len(classes)))
            onehot[np.arange(n), inv] = 1.0
            return onehot, classes
        return as_matrix(yy, "y"), None

    @staticmethod
    def _check_sources(models: Sequence[object], dim: int, c: int) -> list[np.ndarray]:
        if models is None or len(models) == 0:
            raise DataError("source_models is empty; give at least one d x c source model.")
        ws = [as_matrix(w, f"source_models[{i}]") for i, w in enumerate(models)]
        shapes = sorted({w.shape for w in ws})
        if len(shapes) > 1:
            raise DataError(f"the source models differ in shape {shapes}; every W_S^i must be "
                            "d x c on the same features and outputs.")
        if shapes[0] != (dim, c):
            raise DataError(f"the source models are {shapes[0][0]} x {shapes[0][1]} but the "
                            f"target has {dim} features and {c} outputs; they must match "
                            "(d x c, in the order of classes_).")
        return ws


def _source_basis(ws: list[np.ndarray]) -> np.ndarray:
    """Left singular vectors of [W_S^1 … W_S^m] (the initial dictionary's candidates)."""
    return np.linalg.svd(np.concatenate(ws, axis=1), full_matrices=False)[0]


class _ShiftedGram:
    """Solves (a I + b XᵀX) W = R for many right-hand sides, factorised once.

    With fewer samples than features (n < d, the usual labeled target) the d x d system is
    solved through the n x n one (Woodbury): (aI + bXᵀX)⁻¹ R = (R − b Xᵀ(aI_n + b XXᵀ)⁻¹ X R)/a,
    O(n²d) to factorise and O(ndc) per solve instead of O(d³) and O(d²c): on pixels at
    3 x 24 x 24 (d = 1729) with a few hundred labels, the difference between milliseconds and
    seconds per cross-validation fit.
    """

    def __init__(self, x: np.ndarray, a: float, b: float) -> None:
        from scipy.linalg import cho_factor

        n, dim = x.shape
        self.x, self.a, self.b = x, float(a), float(b)
        self.dual = n < dim and self.a > 0
        if self.dual:
            self.chol = cho_factor(self.a * np.eye(n) + self.b * (x @ x.T))
        else:
            self.chol = cho_factor(self.a * np.eye(dim) + self.b * (x.T @ x))

    def solve(self, r: np.ndarray) -> np.ndarray:
        from scipy.linalg import cho_solve

        if self.dual:
            return (r - self.b * self.x.T @ cho_solve(self.chol, self.x @ r)) / self.a
        return cho_solve(self.chol, r)


def _sq(a: np.ndarray) -> float:
    return float((a * a).sum())


def _l21(v: np.ndarray) -> float:
    return float(np.linalg.norm(v, axis=1).sum())


def _ista(d: np.ndarray, w: np.ndarray, v: np.ndarray, weight: float, eta: float,
          steps: int) -> np.ndarray:
    """``steps`` proximal-gradient steps on (weight/2)‖w − Dv‖² + η‖v‖_{2,1}; ``w`` and ``v``
    may carry a leading batch axis (all source models at once)."""
    dtd, dtw = d.T @ d, np.matmul(d.T, w)
    lip = weight * float(np.linalg.eigvalsh(dtd)[-1])
    if lip <= 0:
        return np.zeros_like(v)
    t = 1.0 / lip
    for _ in range(int(steps)):
        z = v - t * weight * (np.matmul(dtd, v) - dtw)
        norms = np.linalg.norm(z, axis=-1, keepdims=True)
        v = z * np.maximum(0.0, 1.0 - t * eta / np.maximum(norms, 1e-300))
    return v


def _energy_atoms(ws: list[np.ndarray], fractions: Sequence[float]) -> list[int]:
    """Candidate k: the fewest singular directions of [W_S^1 … W_S^m] that hold each fraction
    of its energy (sorted, distinct)."""
    s = np.linalg.svd(np.concatenate(ws, axis=1), compute_uv=False)
    energy = np.cumsum(s**2) / max(float((s**2).sum()), 1e-300)
    ks = {int(np.searchsorted(energy, min(float(q), 1.0) - 1e-12)) + 1 for q in fractions}
    return sorted(min(k, len(s)) for k in ks) or [len(s)]


def _dictionary_step(d: np.ndarray, ws: list[np.ndarray], vs: list[np.ndarray],
                     weights: list[float]) -> np.ndarray:
    """One exact column-wise sweep of min_D Σ (w/2)‖W − DV‖² s.t. ‖d_j‖ ≤ 1."""
    g = sum(w * v @ v.T for w, v in zip(weights, vs))
    r = sum(w * m @ v.T for w, m, v in zip(weights, ws, vs))
    d = d.copy()
    for j in range(d.shape[1]):
        if g[j, j] <= 1e-12:  # atom unused by every model: it does not change J
            continue
        col = d[:, j] + (r[:, j] - d @ g[:, j]) / g[j, j]
        norm = np.linalg.norm(col)
        d[:, j] = col / max(1.0, norm)
    return d
