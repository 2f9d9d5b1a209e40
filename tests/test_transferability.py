"""Transferability scores against independent computations (closed forms, slow direct code)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import transferguard as tg
from transferguard.analysis import (
    h_score,
    leep,
    logme,
    nce,
    shrinkage_h_score,
    transferability_scores,
)
from transferguard.analysis.transferability import ledoit_wolf

RNG = np.random.default_rng(0)


def slow_logme(f: np.ndarray, y: np.ndarray, max_iter: int = 11, tol: float = 1e-3) -> float:
    """The paper's formulas with explicit matrices: m = β A⁻¹ Fᵀy, A = αI + βFᵀF,
    evidence with log det A; the same fixed point, no SVD tricks."""
    n, d = f.shape
    ftf = f.T @ f
    eig = np.linalg.eigvalsh(ftf)
    out = []
    for c in np.unique(y):
        t = (y == c).astype(float)
        alpha, beta = 1.0, 1.0
        for _ in range(max_iter):
            a = alpha * np.eye(d) + beta * ftf
            m = beta * np.linalg.solve(a, f.T @ t)
            gamma = sum(beta * s / (alpha + beta * s) for s in eig)
            old = alpha / beta
            alpha = gamma / (m @ m + 1e-5)
            beta = (n - gamma) / (np.sum((f @ m - t) ** 2) + 1e-5)
            if abs(alpha / beta - old) / old <= tol:
                break
        a = alpha * np.eye(d) + beta * ftf
        m = beta * np.linalg.solve(a, f.T @ t)
        logdet = np.linalg.slogdet(a)[1]
        ev = (d / 2 * math.log(alpha) + n / 2 * math.log(beta) - 0.5 * logdet
              - beta / 2 * np.sum((f @ m - t) ** 2) - alpha / 2 * (m @ m)
              - n / 2 * math.log(2 * math.pi))
        out.append(ev / n)
    return float(np.mean(out))


@pytest.mark.parametrize("n,d", [(60, 8), (20, 35)])  # D < N and D > N
def test_logme_matches_the_direct_formula(n, d):
    f = RNG.normal(size=(n, d))
    y = np.arange(n) % 3
    f[:, 0] += y  # some signal
    assert logme(f, y) == pytest.approx(slow_logme(f, y), rel=1e-6, abs=1e-8)


def test_logme_prefers_features_that_determine_the_labels():
    y = np.arange(300) % 5
    exact = np.eye(5)[y] * 2.0 + RNG.normal(0, 0.05, (300, 5))
    random = RNG.normal(size=(300, 5))
    assert logme(exact, y) > logme(random, y) + 1.0


def slow_leep(p: np.ndarray, y: np.ndarray) -> float:
    n, cs = p.shape
    ct = int(y.max()) + 1
    joint = np.zeros((ct, cs))
    for i in range(n):
        for z in range(cs):
            joint[y[i], z] += p[i, z] / n
    total = 0.0
    for i in range(n):
        total += math.log(sum(joint[y[i], z] / joint[:, z].sum() * p[i, z] for z in range(cs)))
    return total / n


def test_leep_of_a_classifier_equal_to_the_labels_is_zero():
    y = np.arange(40) % 4
    assert leep(np.eye(4)[y], y) == pytest.approx(0.0, abs=1e-12)
    # a source classifier with other class names (a permutation) is just as good
    assert leep(np.eye(4)[(y + 1) % 4], y) == pytest.approx(0.0, abs=1e-12)


def test_leep_matches_the_direct_formula_with_more_source_classes():
    logits = RNG.normal(size=(50, 7))
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    y = np.arange(50) % 3
    assert leep(p, y) == pytest.approx(slow_leep(p, y), rel=1e-10)
    assert -math.log(3) - 1e-9 <= leep(p, y) <= 0  # bounded by the uninformative classifier


def test_nce_closed_forms():
    y = np.arange(60) % 3
    assert nce(y.copy(), y) == pytest.approx(0.0)  # Z determines Y
    z_const = np.zeros(60, dtype=np.int64)
    assert nce(z_const, y) == pytest.approx(-math.log(3))  # Z says nothing: −H(Y)
    # probabilities are reduced to their argmax
    p = np.eye(3)[y] * 0.7 + 0.1
    assert nce(p, y) == pytest.approx(0.0)


def test_h_score_is_translation_invariant_and_matches_its_definition():
    y = np.arange(90) % 3
    f = RNG.normal(size=(90, 4)) + y[:, None] * np.array([1.0, 0.0, 0.5, 0.0])
    direct_g = np.stack([f[y == c].mean(0) for c in y])
    expected = np.trace(np.linalg.pinv(np.cov(f, rowvar=False)) @ np.cov(direct_g, rowvar=False))
    assert h_score(f, y) == pytest.approx(expected, rel=1e-8)
    assert h_score(f + 123.0, y) == pytest.approx(h_score(f, y), rel=1e-8)
    assert shrinkage_h_score(f - 50.0, y) == pytest.approx(shrinkage_h_score(f, y), rel=1e-8)


def test_ledoit_wolf_matches_scikit_learn():
    from sklearn.covariance import LedoitWolf

    x = RNG.normal(size=(40, 6)) @ RNG.normal(size=(6, 6))
    cov, a = ledoit_wolf(x)
    ref = LedoitWolf().fit(x)
    assert a == pytest.approx(ref.shrinkage_, rel=1e-8)
    np.testing.assert_allclose(cov, ref.covariance_, rtol=1e-8)
    # the shrinkage score is the H-score of the shrunk covariance
    y = np.arange(40) % 2
    f = x - x.mean(0)
    g = np.stack([f[y == c].mean(0) for c in y])
    expected = np.trace(np.linalg.inv(ref.covariance_) @ ((1 - a) * np.cov(g, rowvar=False)))
    assert shrinkage_h_score(x, y) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("fn", [logme, h_score, shrinkage_h_score])
def test_bad_inputs_stop_with_clear_errors(fn):
    f = RNG.normal(size=(10, 3))
    with pytest.raises(tg.DataError, match="needs at least 2"):
        fn(f, np.zeros(10, dtype=np.int64))  # a target with one class
    with pytest.raises(tg.DataError, match="4 labeled samples for 5 classes"):
        fn(f[:4], np.array([0, 1, 2, 3]), num_classes=5)  # fewer samples than classes
    bad = f.copy()
    bad[3, 1] = np.nan
    with pytest.raises(tg.DataError, match="NaN"):
        fn(bad, np.arange(10) % 2)
    assert math.isfinite(fn(f, np.arange(10) % 2, num_classes=2))


def test_leep_and_nce_check_their_labels_too():
    p = np.full((4, 2), 0.5)
    with pytest.raises(tg.DataError, match="4 labeled samples for 5 classes"):
        leep(p, np.array([0, 1, 2, 3]), num_classes=5)
    with pytest.raises(tg.DataError, match="needs at least 2"):
        nce(p, np.zeros(4, dtype=np.int64))


def test_leep_refuses_logits():
    with pytest.raises(tg.DataError, match="softmax"):
        leep(RNG.normal(size=(8, 3)), np.arange(8) % 2)


def test_scores_of_a_network_on_a_labeled_split(tiny_task):
    data = tiny_task.train_data()
    model = tg.create_model("lenet", tiny_task.num_classes, 3, 16)
    s = transferability_scores(model, data.target_labeled, tiny_task.spec)
    assert s.n == len(data.target_labeled) and s.feature_dim == model.feature_dim
    assert all(math.isfinite(v) for v in (s.logme, s.leep, s.nce, s.h_score,
                                          s.shrinkage_h_score))
    assert s.leep <= 0 and s.nce <= 0
    with pytest.raises(tg.DataError, match="unlabeled"):
        transferability_scores(model, data.target_unlabeled, tiny_task.spec)
    assert torch.is_tensor(data.target_labeled.labels)
