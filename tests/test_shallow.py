"""TCA and KMM: known solutions on small problems, constraints, memory guards, the methods."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import transferguard as tg
from transferguard.errors import ConfigError, DataError
from transferguard.methods.shallow import KMM, TCA, solve_kmm
from transferguard.methods.shallow.kernels import kernel, median_gamma
from transferguard.methods.shallow.kmm import kmm_objective, project_box_slab


def _two_domains(seed: int = 0, ns: int = 40, nt: int = 30, d: int = 5):
    rng = np.random.default_rng(seed)
    xs = rng.normal(size=(ns, d))
    xt = rng.normal(size=(nt, d)) * 0.7 + 0.8
    return xs, xt


# ---------------------------------------------------------------------------- KMM
def test_projection_onto_box_and_slab_matches_a_generic_solver():
    from scipy.optimize import minimize

    rng = np.random.default_rng(1)
    upper, lo, hi = 2.0, 6.0, 7.0
    for v in rng.normal(size=(5, 8)) * 3:
        p = project_box_slab(v, upper, lo, hi)
        ref = minimize(lambda b, v=v: ((b - v) ** 2).sum(), np.ones(8), method="SLSQP",
                       bounds=[(0, upper)] * 8,
                       constraints=[{"type": "ineq", "fun": lambda b: b.sum() - lo},
                                    {"type": "ineq", "fun": lambda b: hi - b.sum()}],
                       options={"ftol": 1e-12, "maxiter": 500}).x
        assert np.allclose(p, ref, atol=1e-5)


def test_kmm_matches_slsqp_and_satisfies_its_constraints():
    from scipy.optimize import minimize

    xs, xt = _two_domains()
    g = median_gamma(np.concatenate([xs, xt]))
    k = kernel(xs, xs, "rbf", g)
    kappa = len(xs) / len(xt) * kernel(xs, xt, "rbf", g).sum(1)
    upper, eps = 5.0, 0.1
    n = len(xs)
    lo, hi = n * (1 - eps), n * (1 + eps)
    beta, obj, _ = solve_kmm(k, kappa, upper, lo, hi, tol=1e-10, max_iter=20000)
    ref = minimize(lambda b: kmm_objective(k, kappa, b), np.ones(n), method="SLSQP",
                   jac=lambda b: k @ b - kappa, bounds=[(0, upper)] * n,
                   constraints=[{"type": "ineq", "fun": lambda b: b.sum() - lo},
                                {"type": "ineq", "fun": lambda b: hi - b.sum()}],
                   options={"ftol": 1e-14, "maxiter": 1000})
    assert obj <= ref.fun + 1e-6 * abs(ref.fun)
    assert np.allclose(beta, ref.x, atol=2e-3)
    # the box and the mean constraint
    assert beta.min() >= 0 and beta.max() <= upper + 1e-12
    assert abs(beta.mean() - 1) <= eps + 1e-9
    # and it moves the weighted source mean towards the target mean (the point of KMM)
    assert obj < kmm_objective(k, kappa, np.ones(n))


def test_kmm_weights_are_one_when_source_is_target():
    xs, _ = _two_domains()
    w = KMM(eps=0.05, B=10).fit(xs, xs).weights_
    assert np.allclose(w, 1.0, atol=1e-3)


def test_kmm_estimator_constraints_and_chunks():
    xs, xt = _two_domains(ns=90)
    kmm = KMM(B=3.0, eps=0.2, max_source=40).fit(xs, xt)
    assert kmm.n_chunks_ == 3 and kmm.weights_.shape == (90,)
    assert kmm.weights_.min() >= 0 and kmm.weights_.max() <= 3.0 + 1e-12
    # the mean constraint holds per chunk, hence for the whole source
    assert abs(kmm.weights_.mean() - 1) <= 0.2 + 1e-9


def test_kmm_and_tca_refuse_bad_input():
    xs, xt = _two_domains()
    with pytest.raises(DataError, match="dimension"):
        KMM().fit(xs, xt[:, :3])
    with pytest.raises(DataError, match="dimension"):
        TCA().fit(xs, xt[:, :3])
    with pytest.raises(DataError, match="NaN"):
        TCA().fit(np.full((3, 5), np.nan), xt)
    with pytest.raises(DataError, match="max_samples"):
        TCA(max_samples=None, memory_limit_mb=0.01).fit(xs, xt)
    with pytest.raises(DataError, match="max_source"):
        KMM(memory_limit_mb=0.001).fit(xs, xt)
    with pytest.raises(ConfigError, match="B"):
        KMM(B=0.5).fit(xs, xt)
    with pytest.raises(ConfigError, match="kernel"):
        TCA(kernel="poly").fit(xs, xt)


# ---------------------------------------------------------------------------- TCA
def test_tca_projection_is_orthonormal_in_the_kernel_metric():
    xs, xt = _two_domains()
    tca = TCA(n_components=4, mu=0.5).fit(xs, xt)
    x = tca.X_fit_
    k = kernel(x, x, "rbf", tca.gamma_)
    n = len(x)
    h = np.eye(n) - 1.0 / n
    w = tca.coef_
    assert np.allclose(w.T @ k @ h @ k @ w, np.eye(w.shape[1]), atol=1e-6)


def test_tca_components_are_the_leading_eigenvectors_of_the_reference_matrix():
    xs, xt = _two_domains(ns=15, nt=12)
    mu = 1.0
    tca = TCA(n_components=3, mu=mu, kernel="linear").fit(xs, xt)
    x = np.concatenate([xs, xt])
    k = x @ x.T
    ns, nt, n = len(xs), len(xt), len(x)
    e = np.concatenate([np.full(ns, 1 / ns), np.full(nt, -1 / nt)])
    l_mat = np.outer(e, e)
    h = np.eye(n) - 1.0 / n
    ref = np.linalg.solve(k @ l_mat @ k + mu * np.eye(n), k @ h @ k)
    vals = np.sort(np.linalg.eigvals(ref).real)[::-1][:3]
    assert np.allclose(tca.eigenvalues_, vals, rtol=1e-6)
    # each component is an eigenvector of the reference matrix
    for j in range(3):
        v = tca.coef_[:, j]
        assert np.allclose(ref @ v, vals[j] * v, atol=1e-6 * np.abs(v).max() * vals[0])


def test_tca_subsamples_above_max_samples_and_embeds_new_points():
    xs, xt = _two_domains(ns=60, nt=20)
    tca = TCA(n_components=5, max_samples=30).fit(xs, xt)
    assert tca.n_source_fit_ + tca.n_target_fit_ == 30 and tca.n_target_fit_ == 15
    z = tca.transform(xs[:7])
    assert z.shape == (7, 5) and np.isfinite(z).all()
    # the embedding brings the domain means closer than the raw features are
    raw = np.linalg.norm(xs.mean(0) - xt.mean(0)) ** 2 / xs.var(0).sum()
    emb = tca.mmd(xs, xt) / tca.transform(np.concatenate([xs, xt])).var(0).sum()
    assert emb < raw


# ---------------------------------------------------------------------------- the methods
def test_kmm_method_weights_have_mean_one(tiny_task, fast_trainer):
    m = tg.create_method("kmm", max_source=150)
    fast_trainer.fit(m, tiny_task.train_data())
    w = m.source_weights()[tiny_task.train_data().source.indices]
    assert torch.isclose(w.mean(), torch.tensor(1.0), atol=1e-4) and (w >= 0).all()
    assert m.kmm_.n_chunks_ == 3
    twin = m.twin()
    fast_trainer.fit(twin, tiny_task.train_data())
    with pytest.raises(ConfigError, match="no source weights"):
        twin.source_weights()


def test_tca_method_on_frozen_backbone_features(tiny_task, fast_trainer, tmp_path):
    with pytest.raises(ConfigError, match="pretrained"):
        fast_trainer.fit(tg.create_method("tca", features="backbone"), tiny_task.train_data())
    pre = tg.create_method("source_only")
    fast_trainer.fit(pre, tiny_task.train_data())
    path = tmp_path / "src.pt"
    torch.save(pre.model_.state_dict(), path)
    m = tg.create_method("tca", features="backbone", pretrained=str(path), n_components=8)
    fit = fast_trainer.fit(m, tiny_task.train_data())
    assert fit.trained and m.model_.feature_dim == 8
    trainable = [p for p in m.model_.parameters() if p.requires_grad]
    assert len(trainable) == 2  # only the linear classifier trains
    assert torch.equal(m.model_.backbone.net.fc[1].weight, pre.model_.backbone.fc[1].weight)


def test_dann_with_kmm_weights_is_one_line(tiny_task, fast_trainer):
    m = tg.create_method("dann", gate="kmm", gate_options={"max_source": 150, "B": 5.0})
    assert m.label == "dann+kmm(B=5, max_source=150)" and m.twin().label == "dann_T"
    fast_trainer.fit(m, tiny_task.train_data())
    w = m.per_sample_weights()
    assert w.shape == (len(tiny_task.train_data().source),)
    assert torch.isclose(w.mean(), torch.tensor(1.0), atol=1e-4) and (w >= 0).all()
    assert float(w.std()) > 0  # not uniform: KMM moved them
    # the same weights as the KMM estimator on the same standardised pixels
    assert m.weighter_.estimator.n_chunks_ == 3
