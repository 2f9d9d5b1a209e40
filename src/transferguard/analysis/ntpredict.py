"""Predicting the sign of the negative transfer gap before the full training.

- :func:`a_distance`: the proxy A-distance of Ben-David et al. (2007, 2010),
  d_A = 2 (1 − 2 ε), with ε the held-out error of a linear classifier that tells source
  features from target features (2-fold, averaged); 0 when the domains are indistinguishable,
  2 when a line separates them.
- :class:`NTPredictor`: P(NTG > 0 | features) by an L2-regularised logistic regression on
  standardised features. Logistic regression fits the log-odds directly, so with a sensible
  regularisation its probabilities are calibrated on data like its training data (the
  benchmark reports the held-out Brier score and the calibration by bins); it stores
  hyper-parameters in the constructor and fitted values in ``*_`` attributes, and
  round-trips through :meth:`to_dict` / :meth:`from_dict` so a fitted predictor ships as
  plain numbers.
- :func:`grouped_predictions`: honest held-out probabilities. Every group (a source-target
  pair) is predicted by a model fitted on the other groups only (leave-one-group-out), so no
  held-out configuration shares its pair with the configurations it was fitted on.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import DataError

__all__ = ["NTPredictor", "a_distance", "brier", "calibration_bins", "grouped_predictions"]


def a_distance(source: Any, target: Any, *, C: float = 1.0, seed: int = 0) -> float:
    """Proxy A-distance between two feature sets (rows are samples)."""
    from sklearn.linear_model import LogisticRegression

    s = np.asarray(source, dtype=np.float64)
    t = np.asarray(target, dtype=np.float64)
    if s.ndim != 2 or t.ndim != 2 or s.shape[1] != t.shape[1]:
        raise DataError(f"a_distance needs two (samples, dims) matrices of the same width, got "
                        f"{s.shape} and {t.shape}.")
    if len(s) < 4 or len(t) < 4:
        raise DataError(f"a_distance needs at least 4 samples per domain, got {len(s)} and "
                        f"{len(t)}.")
    if not (np.isfinite(s).all() and np.isfinite(t).all()):
        raise DataError("a_distance: the features contain NaN or infinite values.")
    n = min(len(s), len(t))  # balanced, so that chance error is 0.5
    rng = np.random.default_rng(seed)
    s, t = s[rng.permutation(len(s))[:n]], t[rng.permutation(len(t))[:n]]
    x = np.concatenate([s, t])
    y = np.concatenate([np.zeros(n), np.ones(n)])
    fold = np.concatenate([np.arange(n) % 2, np.arange(n) % 2])
    errors = []
    for k in (0, 1):
        tr, te = fold != k, fold == k
        mu, sd = x[tr].mean(0), x[tr].std(0) + 1e-8
        clf = LogisticRegression(C=C, max_iter=1000).fit((x[tr] - mu) / sd, y[tr])
        errors.append(float(np.mean(clf.predict((x[te] - mu) / sd) != y[te])))
    err = float(np.mean(errors))
    return float(min(2.0, max(0.0, 2.0 * (1.0 - 2.0 * err))))


class NTPredictor:
    """P(negative transfer) from diagnostic features, by logistic regression.

    ``features``: the names of the columns used (a row is a mapping name -> value, or an
    array in that order). ``C``: inverse L2 strength (small data: keep it ≤ 1).
    """

    def __init__(self, features: Sequence[str], C: float = 0.5) -> None:
        self.features = list(features)
        self.C = C

    def _matrix(self, rows: Any) -> np.ndarray:
        if isinstance(rows, np.ndarray):
            x = rows.astype(np.float64)
        else:
            try:
                x = np.array([[float(r[f]) for f in self.features] for r in rows])
            except KeyError as exc:
                raise DataError(f"NTPredictor: a row lacks feature {exc}; needs "
                                f"{self.features}.") from None
        if x.ndim != 2 or x.shape[1] != len(self.features):
            raise DataError(f"NTPredictor expects {len(self.features)} features "
                            f"{self.features}, got shape {x.shape}.")
        if not np.isfinite(x).all():
            raise DataError("NTPredictor: a feature is NaN or infinite; compute the "
                            "diagnostics again (a diverged proxy run?).")
        return x

    def fit(self, rows: Any, y: Sequence[int]) -> NTPredictor:
        from sklearn.linear_model import LogisticRegression

        x = self._matrix(rows)
        t = np.asarray(y, dtype=np.int64)
        if len(t) != len(x):
            raise DataError(f"NTPredictor.fit: {len(x)} rows and {len(t)} labels.")
        if len(np.unique(t)) < 2:
            raise DataError("NTPredictor.fit needs both outcomes (negative and positive "
                            "transfer) among the training configurations.")
        self.mean_ = x.mean(0)
        self.scale_ = x.std(0)
        self.scale_[self.scale_ == 0] = 1.0
        clf = LogisticRegression(C=self.C, max_iter=2000).fit((x - self.mean_) / self.scale_, t)
        self.coef_ = clf.coef_[0].astype(np.float64)
        self.intercept_ = float(clf.intercept_[0])
        self.n_train_ = len(t)
        return self

    def decision_function(self, rows: Any) -> np.ndarray:
        if not hasattr(self, "coef_"):
            raise DataError("NTPredictor is not fitted; call fit(rows, labels) first.")
        x = self._matrix(rows)
        return (x - self.mean_) / self.scale_ @ self.coef_ + self.intercept_

    def predict_proba(self, rows: Any) -> np.ndarray:
        """P(NTG > 0) for each row."""
        return 1.0 / (1.0 + np.exp(-self.decision_function(rows)))

    def predict(self, rows: Any) -> np.ndarray:
        return (self.predict_proba(rows) >= 0.5).astype(np.int64)

    def contributions(self, row: Mapping[str, float]) -> dict[str, float]:
        """Each feature's share of the log-odds for one row (the evidence, in logits)."""
        x = self._matrix([row])[0]
        return {f: float(c) for f, c in zip(self.features, (x - self.mean_) / self.scale_
                                            * self.coef_)}

    def to_dict(self) -> dict[str, Any]:
        return {"features": self.features, "C": self.C, "mean": self.mean_.tolist(),
                "scale": self.scale_.tolist(), "coef": self.coef_.tolist(),
                "intercept": self.intercept_, "n_train": self.n_train_}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> NTPredictor:
        p = cls(d["features"], d.get("C", 0.5))
        p.mean_ = np.asarray(d["mean"], dtype=np.float64)
        p.scale_ = np.asarray(d["scale"], dtype=np.float64)
        p.coef_ = np.asarray(d["coef"], dtype=np.float64)
        p.intercept_ = float(d["intercept"])
        p.n_train_ = int(d.get("n_train", 0))
        return p


def grouped_predictions(rows: Sequence[Mapping[str, float]], y: Sequence[int],
                        groups: Sequence[Any],
                        make: Callable[[], NTPredictor]) -> np.ndarray:
    """Leave-one-group-out probabilities: row i is predicted by a model that never saw its
    group. A fold whose training part holds a single outcome predicts that outcome's rate."""
    t = np.asarray(y, dtype=np.int64)
    g = np.asarray([str(v) for v in groups])
    if not (len(rows) == len(t) == len(g)):
        raise DataError("grouped_predictions: rows, labels and groups differ in length.")
    if len(np.unique(g)) < 2:
        raise DataError("grouped_predictions needs at least 2 groups.")
    out = np.zeros(len(t))
    for grp in np.unique(g):
        test = g == grp
        train_rows = [r for r, m in zip(rows, test) if not m]
        if len(np.unique(t[~test])) < 2:
            out[test] = float(t[~test].mean())
            continue
        model = make().fit(train_rows, t[~test])
        out[test] = model.predict_proba([r for r, m in zip(rows, test) if m])
    return out


def brier(prob: Sequence[float], y: Sequence[int]) -> float:
    p, t = np.asarray(prob, dtype=np.float64), np.asarray(y, dtype=np.float64)
    return float(np.mean((p - t) ** 2))


def calibration_bins(prob: Sequence[float], y: Sequence[int], bins: int = 5,
                     ) -> list[tuple[float, float, float, int]]:
    """(low, high, observed rate, count) per probability bin, for a reliability table."""
    p, t = np.asarray(prob, dtype=np.float64), np.asarray(y, dtype=np.float64)
    edges = np.linspace(0, 1, bins + 1)
    out = []
    for lo, hi in itertools.pairwise(edges):
        m = (p >= lo) & ((p < hi) if hi < 1 else (p <= hi))
        out.append((float(lo), float(hi), float(t[m].mean()) if m.any() else math.nan,
                    int(m.sum())))
    return out
