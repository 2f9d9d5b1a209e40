"""Shared-dictionary parameter transfer: a monotone solver that recovers a planted basis."""

from __future__ import annotations

import numpy as np
import pytest

from transferguard.errors import DataError
from transferguard.methods.shallow import SharedDictionaryTransfer


def _planted(seed: int = 0, d: int = 30, c: int = 4, k: int = 5, m: int = 6, n: int = 40):
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.normal(size=(d, k)))[0]

    def model() -> np.ndarray:
        v = np.zeros((k, c))
        v[rng.choice(k, 3, replace=False)] = rng.normal(size=(3, c)) * 3
        return basis @ v

    sources = [model() for _ in range(m)]
    w_t = model()
    x = rng.normal(size=(n, d))
    y = (x @ w_t + 0.3 * rng.normal(size=(n, c))).argmax(1)
    return basis, sources, w_t, x, y


def test_objective_never_increases_and_the_solver_stops():
    _, sources, _, x, y = _planted()
    est = SharedDictionaryTransfer(n_atoms=8, beta=0.1, eta=0.5, max_iter=300).fit(
        x, y, source_models=sources, classes=range(4))
    h = np.array(est.objective_history_)
    assert len(h) == est.n_iter_ + 1 >= 3
    assert (np.diff(h) <= 1e-10 * np.abs(h[:-1])).all()
    assert est.converged_ and est.n_iter_ < 300
    # the atoms respect their constraint
    assert np.linalg.norm(est.dictionary_, axis=0).max() <= 1 + 1e-12


def test_recovers_a_planted_basis():
    basis, sources, _, x, y = _planted(1)
    est = SharedDictionaryTransfer(n_atoms=5, beta=0.1, eta=0.05).fit(
        x, y, source_models=sources, classes=range(4))
    q = np.linalg.qr(est.dictionary_)[0]
    # every planted atom lies (almost) in the span of the learned dictionary
    captured = np.linalg.norm(q.T @ basis, axis=0)
    assert captured.min() > 0.98
    # and the source models are reconstructed from it
    for w, v in zip(sources, est.source_codes_):
        assert np.linalg.norm(w - est.dictionary_ @ v) / np.linalg.norm(w) < 0.1


def test_related_sources_beat_the_target_only_twin():
    _, truths, w_t, x, y = _planted(2)
    rng = np.random.default_rng(5)

    def probe(w: np.ndarray) -> np.ndarray:  # a source model fitted like the target's
        xs = rng.normal(size=(300, w.shape[0]))
        ys = np.eye(w.shape[1])[(xs @ w).argmax(1)]
        return np.linalg.solve(xs.T @ xs + np.eye(w.shape[0]), xs.T @ ys)

    sources = [probe(w) for w in truths]
    x_te = rng.normal(size=(2000, x.shape[1]))
    y_te = (x_te @ w_t).argmax(1)
    est = SharedDictionaryTransfer().fit(x, y, source_models=sources, classes=range(4))
    twin = est.twin().fit(x, y, source_models=sources, classes=range(4))
    assert est.score(x_te, y_te) > twin.score(x_te, y_te) + 0.05


def test_bad_input_is_refused():
    _, sources, _, x, y = _planted()
    with pytest.raises(DataError, match="differ in shape"):
        SharedDictionaryTransfer().fit(x, y, source_models=[sources[0], sources[1][:-1]])
    with pytest.raises(DataError, match="features"):
        SharedDictionaryTransfer().fit(x[:, :-1], y, source_models=sources, classes=range(4))
    with pytest.raises(DataError, match="empty"):
        SharedDictionaryTransfer().fit(x, y, source_models=[])
    with pytest.raises(DataError, match="not in classes"):
        SharedDictionaryTransfer().fit(x, y, source_models=sources, classes=[0, 1])
