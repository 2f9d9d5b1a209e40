"""``dictionary``: the shared-dictionary parameter transfer (:mod:`.dictionary`) as a
registered method, on fixed features, evaluated with the NTG protocol (methods reference
section 7.1; the estimator's objective and solver are documented in :mod:`.dictionary`).

What one run does, on the standardised fixed features z = φ(x) (pixels or a frozen F, see
:mod:`.base`) with a constant feature appended (the intercept):

1. **m source models** W_S^i (d x c): ridge regressions on one-hot labels,
   W = argmin ½‖Z W − Y‖² + ρ_S‖W‖², one per part of a seeded partition of the source into
   ``n_source_models`` disjoint, near-equal parts;
2. **the target model** W_T: :class:`SharedDictionaryTransfer` fitted on the labeled target
   with those source models (k and β by cross-validation on the labeled target unless given);
3. **the classifier** C(z) = τ · (z W_T): W_T is frozen; the Trainer's loop fits only the
   softmax temperature τ (cross-entropy on the labeled target), so that probabilities mean
   something (the estimator's scores are regression outputs near [0, 1]). τ > 0 never
   changes an argmax: the accuracy is exactly the estimator's.

**Why m > 1 from one source.** A :class:`~transferguard.data.TransferTask` has one source
domain, and with m = 1 the dictionary is the column space of a single model: every atom is
a mixture of that model's class directions and the l2,1 codes have nothing to choose
between. Disjoint parts of the source give m independent estimates of the source model
(the bagging view); their stable directions carry most of the energy of [W_S^1 … W_S^m],
which the cross-validated k keeps, while directions that vary from part to part (noise,
corrupted labels at ε > 0) fall in the tail and are left out. Several *different* sources
(related and unrelated, the seed's setting) are the estimator's own API:
``SharedDictionaryTransfer().fit(X, y, source_models=[...])``, benchmarked in
``benchmarks/dictionary_transfer.py``.

**Twin** (A_T): the same objective without sources, which is the target-only ridge
W_T = (2ρ I + Z_Lᵀ Z_L)⁻¹ Z_Lᵀ Y_L (:meth:`SharedDictionaryTransfer.twin`), with the same
temperature fit: the same linear model on the labeled target alone. Its ρ is chosen from
``twin_ridge_grid`` by the same stratified 3-fold cross-validation on the labeled target that
chooses the method's (k, β). Without sources β cancels out of the objective, so a twin with
the fixed ρ = 1 would be the only untuned model of the pair. On the two Table 2 pairs
(d = 1729 pixels, a few hundred labels) that fixed-ρ twin reached 58.3 and 65.1 where the
tuned one reaches 77.7 and 85.7: the NTG would have credited the sources with 19 to 23 points
that were only the twin's missing regularisation. An empty grid gives the estimator's own
twin (ρ = ``ridge``).

Cost: a d x d Cholesky factorisation per solve (d = 3·24·24 + 1 = 1729 on pixels at the
default input size) times the cross-validation grid; the source models cost one d x d solve
each. Memory O(d²).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...data import Batch, Split, TrainData, iterate_batches
from ...engine import StepOutput
from ...errors import ConfigError, DataError
from ..base import register_method
from .base import ShallowMethod
from .dictionary import SharedDictionaryTransfer, _ShiftedGram


class TemperatureLinear(nn.Module):
    """A frozen linear map z ↦ τ (z W + b), τ = exp(log_tau) the one trainable number."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("weight", weight.float())
        self.register_buffer("bias", bias.float())
        self.log_tau = nn.Parameter(torch.zeros(()))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.exp(self.log_tau) * (z @ self.weight + self.bias)


@register_method("dictionary", "shared-dictionary linear parameter transfer (source models "
                 "from a partition of the source) on fixed features")
class DictionaryTransferMethod(ShallowMethod):
    """The seed's shared-dictionary transfer as a method (see the module docstring)."""

    def __init__(self, model: str = "lenet", model_options: Mapping[str, Any] | None = None,
                 source_free: bool = False, features: str = "pixels",
                 pretrained: str | None = None, n_source_models: int = 4,
                 source_ridge: float = 1.0, n_atoms: int | None = None,
                 eta: float | None = None, alpha: float = 1.0, beta: float | None = None,
                 ridge: float = 1.0, max_iter: int = 200, tol: float = 1e-5,
                 twin_ridge_grid: tuple[float, ...] = (0.1, 1.0, 10.0, 100.0, 1000.0)
                 ) -> None:
        super().__init__(model, model_options, source_free, features, pretrained)
        self.n_source_models = n_source_models
        self.source_ridge = source_ridge
        self.n_atoms = n_atoms
        self.eta = eta
        self.alpha = alpha
        self.beta = beta
        self.ridge = ridge
        self.max_iter = max_iter
        self.tol = tol
        self.twin_ridge_grid = tuple(twin_ridge_grid)

    def streams(self) -> tuple[str, ...]:
        # the source is consumed in closed form (prepare); the loop fits τ on labeled
        # target batches, which the twin's source-free view holds in the source slot
        return ("source",) if self.source_free else ("target_labeled",)

    def estimator(self) -> SharedDictionaryTransfer:
        return SharedDictionaryTransfer(n_atoms=self.n_atoms, eta=self.eta, alpha=self.alpha,
                                        beta=self.beta, ridge=self.ridge,
                                        max_iter=self.max_iter, tol=self.tol,
                                        random_state=self.seed_)

    def _check(self) -> None:
        if isinstance(self.n_source_models, bool) or not isinstance(self.n_source_models, int) \
                or self.n_source_models < 1:
            raise ConfigError(f"n_source_models must be an integer >= 1 (the number of "
                              f"disjoint parts of the source, one model each), got "
                              f"{self.n_source_models!r}.")
        if not self.source_ridge > 0:
            raise ConfigError(f"source_ridge must be > 0, got {self.source_ridge}.")
        if any(not float(r) > 0 for r in self.twin_ridge_grid):
            raise ConfigError(f"twin_ridge_grid must hold values > 0, got "
                              f"{self.twin_ridge_grid}.")
        self.estimator()._validate()

    def setup(self, data: TrainData, trainer: Any) -> None:
        self.seed_ = int(getattr(trainer, "seed", 0))
        self._check()  # bad options stop before any feature extraction
        super().setup(data, trainer)

    def prepare(self, data: TrainData, trainer: Any) -> None:
        c = data.num_classes
        if len(data.source if self.source_free else data.target_labeled) == 0:
            del self.features_  # no labeled target: can_train reports an untrained model
            return
        if self.source_free:  # the twin: the labeled target sits in the source slot
            z, y = self._design(self.features_["source"]), _labels(data.source, data)
            self.twin_ridge_ = _cv_ridge(z, y, self.twin_ridge_grid, self.ridge, self.seed_)
            est = self.estimator().set_params(ridge=self.twin_ridge_).twin().fit(
                z, y, source_models=[np.zeros((z.shape[1], c))], classes=np.arange(c))
        else:
            zs, ys = self._design(self.features_["source"]), _labels(data.source, data)
            m = self.n_source_models
            if len(zs) < m:
                raise DataError(f"the source has {len(zs)} samples, fewer than "
                                f"n_source_models={m}; lower n_source_models.")
            parts = np.array_split(np.random.default_rng(self.seed_).permutation(len(zs)), m)
            onehot = np.eye(c)[ys]
            models = [_ridge(zs[p], onehot[p], self.source_ridge) for p in parts]
            z, y = self._design(self.features_["target_labeled"]), _labels(
                data.target_labeled, data)
            est = self.estimator().fit(z, y, source_models=models, classes=np.arange(c))
            self.source_models_ = models
        self.dictionary_ = est
        coef = torch.as_tensor(est.coef_, dtype=torch.float32)
        device = next(self.model_.parameters(), torch.empty(0)).device
        self.model_.head = TemperatureLinear(coef[:-1], coef[-1]).to(device)
        del self.features_

    def _design(self, raw: torch.Tensor) -> np.ndarray:
        """Standardised features with a constant column (the intercept), float64."""
        z = self.standardized(raw).double().cpu().numpy()
        return np.hstack([z, np.ones((len(z), 1))])

    def param_groups(self) -> list[dict[str, Any]]:
        return [{"params": [self.model_.head.log_tau]}]

    def training_step(self, batches: Mapping[str, Batch], progress: float) -> StepOutput:
        lab = batches["source" if self.source_free else "target_labeled"]
        loss = F.cross_entropy(self.model_(lab.x).float(), lab.y)
        return StepOutput(loss, {"ce": loss.detach(),
                                 "tau": self.model_.head.log_tau.detach().exp()})


def _ridge(z: np.ndarray, y: np.ndarray, rho: float) -> np.ndarray:
    """argmin_W ½‖Z W − Y‖² + ρ‖W‖² = (ZᵀZ + 2ρ I)⁻¹ ZᵀY."""
    return np.linalg.solve(z.T @ z + 2.0 * rho * np.eye(z.shape[1]), z.T @ y)


def _cv_ridge(z: np.ndarray, y: np.ndarray, grid: tuple[float, ...], default: float,
              seed: int, folds: int = 3) -> float:
    """ρ from ``grid`` by stratified k-fold accuracy on (z, y), ties to the smaller ρ; the
    default when the grid is empty or there are too few samples to fold."""
    if not grid or len(y) < 2 * folds:
        return float(default)
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(y), dtype=int)
    for cls in np.unique(y):  # deal each class round-robin, as the estimator's CV does
        idx = rng.permutation(np.flatnonzero(y == cls))
        fold_of[idx] = (np.arange(len(idx)) + rng.integers(folds)) % folds
    onehot = np.eye(int(y.max()) + 1)[y]
    best, best_score = float(default), -1
    for rho in sorted(float(r) for r in grid):
        score = 0
        for f in range(folds):
            tr, te = fold_of != f, fold_of == f
            w = _ShiftedGram(z[tr], 2.0 * rho, 1.0).solve(z[tr].T @ onehot[tr])
            score += int(((z[te] @ w).argmax(1) == y[te]).sum())
        if score > best_score:
            best, best_score = rho, score
    return best


def _labels(split: Split, data: TrainData) -> np.ndarray:
    if split.labels is not None and not hasattr(split, "empty"):
        return split.labels.cpu().numpy().astype(int)
    return torch.cat([b.y for b in iterate_batches(split, data.spec, 512, "cpu")]
                     ).numpy().astype(int)
