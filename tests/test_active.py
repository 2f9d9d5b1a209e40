"""Active learning for transfer: the query strategies and the resumable loop."""

from __future__ import annotations

import itertools

import pytest
import torch

import transferguard as tg
from transferguard.analysis.active import (
    STRATEGIES,
    QueryInputs,
    disagreement,
    median_bandwidth,
    mmd_squared,
    select_batch,
    transfer_batch,
)
from transferguard.errors import ConfigError, DataError
from transferguard.experiments import run_active


def _inputs(seed: int = 0, n: int = 40, k: int = 4) -> QueryInputs:
    g = torch.Generator().manual_seed(seed)
    return QueryInputs(
        probs_transfer=torch.softmax(torch.randn(n, k, generator=g) * 2, 1),
        features=torch.randn(n, 3, generator=g),
        labeled_features=torch.randn(6, 3, generator=g),
        probs_base=torch.softmax(torch.randn(n, k, generator=g) * 2, 1),
        reference_features=torch.randn(30, 3, generator=g) + 0.5,
    )


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_returns_b_distinct_pool_indices(strategy):
    inp = _inputs()
    pick = select_batch(strategy, inp, 7, seed=3)
    assert len(pick) == 7 == len(set(pick.tolist()))
    assert int(pick.min()) >= 0 and int(pick.max()) < 40
    # deterministic for a seed
    assert torch.equal(pick, select_batch(strategy, inp, 7, seed=3))


def test_budget_larger_than_the_pool_is_refused():
    with pytest.raises(DataError, match="exceeds the unlabeled pool"):
        select_batch("transfer", _inputs(n=5), 6)
    with pytest.raises(DataError, match=">= 1"):
        select_batch("random", _inputs(), 0)
    with pytest.raises(ConfigError, match="strategy"):
        select_batch("margin", _inputs(), 2)


def test_lambda_zero_minimises_the_mmd_against_brute_force():
    for seed in range(6):
        g = torch.Generator().manual_seed(seed)
        pool = torch.randn(10, 2, generator=g).double()
        labeled = torch.randn(3, 2, generator=g).double()
        ref = (torch.randn(25, 2, generator=g) + 0.7).double()
        gamma = median_bandwidth(torch.cat([pool, ref]))
        b = 3
        pick = transfer_batch(pool, labeled, ref, torch.zeros(10), b, lam=0.0, gamma=gamma)
        got = mmd_squared(ref, torch.cat([labeled, pool[pick]]), gamma)
        best = min(mmd_squared(ref, torch.cat([labeled, pool[list(s)]]), gamma)
                   for s in itertools.combinations(range(10), b))
        assert got == pytest.approx(best, abs=1e-12)


def test_disagreement_term_steers_the_batch():
    inp = _inputs()
    d = disagreement(inp.probs_base, inp.probs_transfer)
    assert float(d.min()) >= 0 and float(d.max()) <= 1
    top = set(d.topk(5).indices.tolist())
    # a huge λ reduces the objective to disagreement only
    pick = transfer_batch(inp.features, inp.labeled_features, inp.reference_features, d, 5,
                          lam=1e6)
    assert set(pick.tolist()) == top
    assert set(select_batch("disagreement", inp, 5).tolist()) == top


def test_active_loop_queries_only_the_pool_and_resumes(tiny_task, fast_trainer, tmp_path):
    kw = dict(strategies=("transfer", "random"), rounds=1, budget=5, seeds=[0],
              trainer=fast_trainer, out=tmp_path)
    res = run_active(tiny_task, "dann", **kw)
    assert res.trained == 4 and res.reused == 0
    data = tiny_task.train_data()
    forbidden = set(data.target_labeled.indices.tolist()) | set(
        data.target_val.indices.tolist()) | set(tiny_task.test_split().indices.tolist())
    pool = set(data.target_unlabeled.indices.tolist())
    for strategy in ("transfer", "random"):
        rows = [r for r in res.rounds if r.strategy == strategy]
        assert [r.n_labeled for r in rows] == [len(data.target_labeled) + 5 * i for i in range(2)]
        asked = [i for r in rows for i in r.next_query]
        assert len(asked) == len(set(asked)) == 10
        assert set(asked) <= pool and not set(asked) & forbidden
    assert all(r.base_accuracy is not None for r in res.rounds if r.strategy == "transfer")
    # a rerun replays every round from the store: no training, the same queries
    again = run_active(tiny_task, "dann", **kw)
    assert again.trained == 0 and again.reused == 4
    assert [r.next_query for r in again.rounds] == [r.next_query for r in res.rounds]
    assert len(res.curve("random")) == 2


def test_pool_labels_refuse_test_indices(tiny_task):
    test_idx = tiny_task.test_split().indices[:3]
    with pytest.raises(tg.DataError, match="unlabeled target pool"):
        tiny_task.pool_labels(test_idx)
    with pytest.raises(tg.DataError, match="pool"):
        run_active(tiny_task, "dann", rounds=1000, budget=50, seeds=[0])
