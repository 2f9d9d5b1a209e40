"""The ``dictionary`` method: the shared-dictionary estimator through the Trainer and NTG.

(The estimator itself, its monotone solver and planted-basis recovery: test_dictionary.py;
the generic conformance over every registered method, this one included: test_methods.py.)
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
import torch

import transferguard as tg
from transferguard.data import iterate_batches
from transferguard.errors import ConfigError, DataError


def _design(method, split, spec) -> tuple[np.ndarray, torch.Tensor]:
    xs = torch.cat([b.x for b in iterate_batches(split, spec, 512, "cpu")])
    raw = method.model_.backbone.raw(xs)
    return method._design(raw), xs


def test_dictionary_is_listed(capsys):
    from transferguard.cli import main

    assert main(["methods"]) == 0
    line = next(row for row in capsys.readouterr().out.splitlines()
                if row.split() and row.split()[0] == "dictionary")
    assert "shared-dictionary" in line


def test_dictionary_predicts_like_its_estimator_and_the_twin_is_ridge(tiny_task, fast_trainer):
    data = tiny_task.train_data()
    m = tg.create_method("dictionary", n_source_models=3, n_atoms=6, beta=1.0, max_iter=30)
    fast_trainer.fit(m, data)
    dim = 3 * 16 * 16 + 1  # pixels + the intercept column
    assert len(m.source_models_) == 3
    assert all(w.shape == (dim, data.num_classes) for w in m.source_models_)
    est = m.dictionary_
    assert est.coef_.shape == (dim, data.num_classes) and est.n_atoms_ == 6
    hist = est.objective_history_
    assert all(b <= a + 1e-9 * abs(a) for a, b in pairwise(hist))  # monotone solver
    # the loop fits only τ > 0: the network's argmax is the estimator's prediction
    z, xs = _design(m, data.target_val, data.spec)
    with torch.no_grad():
        net = m.model_(xs).argmax(1).numpy()
    assert (net == est.predict(z)).mean() > 0.99  # float32 vs float64 near-ties only
    assert m.model_.head.log_tau.requires_grad
    assert [p for g in m.param_groups() for p in g["params"]] == [m.model_.head.log_tau]

    twin = m.twin()
    assert twin.label == "dictionary(n_source_models=3, n_atoms=6, beta=1, max_iter=30)_T"
    assert m.get_params()["twin_ridge_grid"] == twin.get_params()["twin_ridge_grid"]
    fast_trainer.fit(twin, data.without_source())
    z, _ = _design(twin, data.target_labeled, data.spec)  # its standardisation, our labels
    y = np.eye(data.num_classes)[data.target_labeled.labels.numpy()]
    rho = twin.twin_ridge_  # chosen by cross-validation on the labeled target
    assert rho in (0.1, 1.0, 10.0, 100.0, 1000.0)
    ridge = np.linalg.solve(z.T @ z + 2.0 * rho * np.eye(dim), z.T @ y)
    assert np.allclose(twin.dictionary_.coef_, ridge, atol=1e-6)
    assert not hasattr(twin, "source_models_")


def test_dictionary_runs_through_the_ntg_protocol(tiny_task, fast_trainer):
    r = tg.negative_transfer_gap(tiny_task, tg.create_method("dictionary", n_source_models=2,
                                                              n_atoms=4, beta=1.0,
                                                              max_iter=20),
                                 seeds=[0, 1], trainer=fast_trainer)
    assert r.twin.endswith("_T") and len(r.accuracy) == len(r.twin_accuracy) == 2
    assert all(0.0 <= a <= 100.0 for a in r.accuracy + r.twin_accuracy)
    assert np.isfinite(r.ntg)


@pytest.mark.parametrize("options, match", [
    ({"n_source_models": 0}, "n_source_models must be an integer >= 1"),
    ({"n_source_models": 2.5}, "n_source_models must be an integer >= 1"),
    ({"source_ridge": 0.0}, "source_ridge must be > 0"),
    ({"beta": -1.0}, "beta must be > 0"),
    ({"n_atoms": 0}, "n_atoms must be >= 1"),
    ({"twin_ridge_grid": (1.0, -1.0)}, "twin_ridge_grid must hold values > 0"),
    ({"features": "edges"}, "features must be one of"),
])
def test_dictionary_bad_options_stop_before_training(options, match, tiny_task, fast_trainer):
    with pytest.raises(ConfigError, match=match):
        fast_trainer.fit(tg.create_method("dictionary", **options), tiny_task.train_data())


def test_dictionary_refuses_more_source_models_than_source_samples(tiny_task, fast_trainer):
    data = tiny_task.train_data()
    with pytest.raises(DataError, match="fewer than n_source_models"):
        fast_trainer.fit(tg.create_method("dictionary", n_source_models=len(data.source) + 1),
                         data)


def test_dictionary_without_labeled_target_is_reported_untrained(fast_trainer):
    task = tg.TransferTask("mnist", "uci-digits", labeled_percent=0, source_size=200,
                           spec=tg.InputSpec(3, 16))
    for m in (tg.create_method("dictionary"), tg.create_method("dictionary").twin()):
        res = fast_trainer.run(m, task)
        assert not res.trained and "no labeled samples" in res.note


def test_twin_ridge_is_chosen_from_its_grid_or_falls_back():
    from transferguard.methods.shallow.dictionary_method import _cv_ridge

    rng = np.random.default_rng(0)
    z, y = rng.normal(size=(30, 50)), np.repeat(np.arange(3), 10)
    assert _cv_ridge(z, y, (0.5, 5.0, 50.0), 1.0, seed=0) in (0.5, 5.0, 50.0)
    assert _cv_ridge(z, y, (), 7.0, seed=0) == 7.0  # empty grid: the estimator's ρ
    assert _cv_ridge(z[:4], y[:4], (0.5, 5.0), 7.0, seed=0) == 7.0  # too few to fold
