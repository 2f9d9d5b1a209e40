"""Active learning for transfer: rounds of query -> label -> retrain, above the Trainer
(methods reference section 7.2; the query strategies are in
:mod:`transferguard.analysis.active`).

For each seed and strategy, round r = 0, 1, ..., ``rounds``:

1. the labeled target is the task's labeled split plus every sample queried so far (with its
   held-back label from :meth:`TransferTask.pool_labels`: the unlabeled pool's own labels,
   never the test split's); the unlabeled target is the rest of the pool; the validation
   split (model selection) and the test split never change;
2. the transfer model (``method``) is trained with the Trainer and evaluated on the test split
   (that accuracy is the curve); strategies that need it also train the base model (``base``,
   by default ``target_only``: trained on the labeled target alone);
3. the strategy picks the next ``budget`` pool samples from the two models' predictions and
   the transfer model's features F(x) (R = a seeded subsample of at most ``reference_size``
   source samples, or the target pool).

Every round is one record of the run store, keyed by the task, the method, the trainer, the
strategy's options and the exact set of queried samples; its metrics hold the accuracies and
the *next* query. A rerun with ``resume`` therefore replays finished rounds from the store
(no training) and continues where it stopped. Within one invocation, a round whose labeled
set another strategy already trained (round 0 is common to all) is not trained again.
"""

from __future__ import annotations

import hashlib
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from ..analysis import ACTIVE_STRATEGIES as STRATEGIES
from ..analysis import QueryInputs, confidence_interval, select_batch
from ..data import Split, TrainData, TransferTask, iterate_batches
from ..engine import RunResult, Trainer
from ..errors import ConfigError, DataError
from ..methods import Method, create_method
from ..utils import derive_seed
from .runner import run_config
from .store import RunStore

NEEDS_BASE = ("transfer", "disagreement")


@dataclass
class ActiveRound:
    strategy: str
    seed: int
    round: int
    n_labeled: int
    n_queried: int
    test_accuracy: float
    base_accuracy: float | None
    next_query: list[int]
    reused: bool = False


@dataclass
class ActiveResult:
    """Every round of every (strategy, seed); :meth:`curve` aggregates over seeds."""

    method: str
    budget: int
    rounds: list[ActiveRound] = field(default_factory=list)
    trained: int = 0
    reused: int = 0

    def strategies(self) -> list[str]:
        return list(dict.fromkeys(r.strategy for r in self.rounds))

    def curve(self, strategy: str, level: float = 0.95) -> list[dict[str, float]]:
        """Per round: labels queried, mean test accuracy and its Student-t interval."""
        by_round: dict[int, list[ActiveRound]] = {}
        for r in self.rounds:
            if r.strategy == strategy:
                by_round.setdefault(r.round, []).append(r)
        out = []
        for rnd in sorted(by_round):
            rows = by_round[rnd]
            mean, lo, hi = confidence_interval([r.test_accuracy for r in rows], level)
            out.append({"round": rnd, "queried": rows[0].n_queried, "mean": mean, "low": lo,
                        "high": hi, "seeds": len(rows)})
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "budget": self.budget,
                "rounds": [asdict(r) for r in self.rounds],
                "curves": {s: self.curve(s) for s in self.strategies()}}


class _LabeledTask:
    """What :meth:`Trainer.run` reads of a task, with the active labeled set swapped in."""

    def __init__(self, task: TransferTask, data: TrainData) -> None:
        self._task, self._data, self.spec = task, data, task.spec

    def train_data(self) -> TrainData:
        return self._data

    def test_split(self) -> Split:
        return self._task.test_split()


def with_queries(task: TransferTask, queried: Sequence[int]) -> TrainData:
    """The task's training data with the ``queried`` pool samples moved, labeled, from the
    unlabeled split to the labeled one."""
    data = task.train_data()
    if not queried:
        return data
    q = torch.as_tensor(sorted(queried), dtype=torch.long)
    unl, lab = data.target_unlabeled, data.target_labeled
    is_q = torch.isin(unl.indices, q)
    labels = task.pool_labels(unl.indices[is_q])  # refuses anything outside the pool
    images = torch.cat([lab.images, unl.images[is_q]])
    indices = torch.cat([lab.indices, unl.indices[is_q]])
    order = indices.argsort()
    new_lab = Split("target_labeled", images[order], torch.cat([lab.labels, labels])[order],
                    indices[order])
    new_unl = Split("target_unlabeled", unl.images[~is_q], None, unl.indices[~is_q])
    return replace(data, target_labeled=new_lab, target_unlabeled=new_unl)


@torch.no_grad()
def _predict(method: Method, split: Split, spec: Any, device: torch.device
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """(softmax probabilities, features F(x)) of a trained method's model on a split."""
    model = method.model_
    was = model.training
    model.eval()
    probs, feats = [], []
    for b in iterate_batches(split, spec, 512, device):
        h = model.features(b.x)
        probs.append(torch.softmax(model.head(h).float(), 1).cpu())
        feats.append(h.float().flatten(1).cpu())
    model.train(was)
    return torch.cat(probs), torch.cat(feats)


def _digest(queried: Sequence[int]) -> str:
    return hashlib.sha256(",".join(map(str, sorted(queried))).encode()).hexdigest()[:16]


def run_active(task: TransferTask, method: Method | str,
               strategies: Sequence[str] = ("transfer", "random", "entropy"), *,
               rounds: int = 5, budget: int = 20, seeds: Sequence[int] = (0, 1, 2),
               trainer: Trainer | None = None, out: str | Path | None = None,
               lam: float = 1.0, reference: str = "source", reference_size: int = 1000,
               divergence: str = "tv", base: str = "target_only", resume: bool = True,
               experiment: str = "active", echo: Callable[[str], None] | None = None
               ) -> ActiveResult:
    """Active-learning curves of ``strategies`` for ``method`` on ``task`` (see the module)."""
    if isinstance(method, str):
        method = create_method(method)
    bad = sorted(set(strategies) - set(STRATEGIES))
    if bad or not strategies:
        raise ConfigError(f"unknown strategies {bad}; choose among {STRATEGIES}.")
    if reference not in ("source", "target"):
        raise ConfigError(f"reference must be 'source' (the slide's P_S) or 'target' (the "
                          f"target pool), got {reference!r}.")
    if int(rounds) < 1 or int(budget) < 1:
        raise ConfigError(f"rounds and budget must be >= 1, got {rounds} and {budget}.")
    pool = task.summary()["target_unlabeled"]
    if int(rounds) * int(budget) > pool:
        raise DataError(f"{rounds} rounds of {budget} queries need {rounds * budget} pool "
                        f"samples, but the unlabeled target pool has {pool}; lower --rounds "
                        "or --budget.")
    trainer = trainer or Trainer()
    store = RunStore(out) if out is not None else None
    base_method = create_method(base)
    result = ActiveResult(method.label, int(budget))
    memo: dict[tuple, dict[str, Any]] = {}
    options = {"budget": int(budget), "lam": float(lam), "reference": reference,
               "reference_size": int(reference_size), "divergence": divergence, "base": base}

    for seed in seeds:
        t = task.with_seed(seed)
        tr = trainer.with_options(seed=seed)
        for strategy in strategies:
            queried: list[int] = []
            for rnd in range(int(rounds) + 1):
                config = run_config(method, t, tr.config)
                config["active"] = {"strategy": strategy, "round": rnd, **options,
                                    "queried": _digest(queried), "n_queried": len(queried)}

                def one_round(strategy: str = strategy, queried: list[int] = queried,
                              rnd: int = rnd, t: TransferTask = t, tr: Trainer = tr,
                              seed: int = seed) -> dict[str, Any]:
                    return _round(t, tr, method, base_method, strategy, queried, rnd,
                                  budget, lam, reference, reference_size, divergence, seed,
                                  memo)

                if store is not None:
                    metrics, reused = store.run(config, one_round, experiment=experiment,
                                                label=f"{method.label}/{strategy}",
                                                resume=resume)
                else:
                    metrics, reused = one_round(), False
                row = ActiveRound(strategy, seed, rnd, metrics["n_labeled"], len(queried),
                                  metrics["test_accuracy"], metrics["base_accuracy"],
                                  list(metrics["next_query"]), reused)
                result.rounds.append(row)
                if reused:
                    result.reused += 1
                else:
                    result.trained += 1
                if echo:
                    base_txt = "" if row.base_accuracy is None else \
                        f", base {row.base_accuracy:5.1f}"
                    echo(f"  seed {seed} {strategy:<12} round {rnd}: {row.n_labeled:4d} labels, "
                         f"test acc {row.test_accuracy:5.1f}{base_txt}"
                         + ("  [resumed]" if reused else ""))
                queried = queried + row.next_query
    return result


def _round(task: TransferTask, trainer: Trainer, method: Method, base: Method,
           strategy: str, queried: list[int], rnd: int, budget: int, lam: float,
           reference: str, reference_size: int, divergence: str, seed: int,
           memo: dict[tuple, dict[str, Any]]) -> dict[str, Any]:
    data = with_queries(task, queried)
    labeled_task = _LabeledTask(task, data)
    need_base = strategy in NEEDS_BASE
    key = (seed, _digest(queried))
    state = memo.get(key)
    if state is None:
        m = method.clone()
        res: RunResult = trainer.run(m, labeled_task)
        probs, feats = _predict(m, data.target_unlabeled, data.spec, trainer.device)
        _, lab_feats = _predict(m, data.target_labeled, data.spec, trainer.device)
        if reference == "source":
            src = data.source
            g = torch.Generator().manual_seed(derive_seed(seed, "active-reference"))
            keep = torch.randperm(len(src), generator=g)[:reference_size].sort().values
            ref_split = Split("reference", src.images[keep], None, src.indices[keep])
            _, ref_feats = _predict(m, ref_split, data.spec, trainer.device)
        else:
            ref_feats = torch.cat([lab_feats, feats])
        state = {"accuracy": res.test_accuracy, "probs": probs, "feats": feats,
                 "lab_feats": lab_feats, "ref_feats": ref_feats}
        memo[key] = state
    if need_base and "base_probs" not in state:
        b = base.clone()
        res_b = trainer.run(b, labeled_task)
        state["base_probs"], _ = _predict(b, data.target_unlabeled, data.spec, trainer.device)
        state["base_accuracy"] = res_b.test_accuracy
    n_pool = len(data.target_unlabeled)
    next_query: list[int] = []
    if n_pool >= budget:
        inputs = QueryInputs(state["probs"], state["feats"], state["lab_feats"],
                             state.get("base_probs"), state["ref_feats"])
        pick = select_batch(strategy, inputs, int(budget), lam=lam, divergence=divergence,
                            seed=derive_seed(seed, "active", strategy, rnd))
        next_query = data.target_unlabeled.indices[pick].tolist()
    return {"test_accuracy": state["accuracy"], "base_accuracy": state.get("base_accuracy"),
            "n_labeled": len(data.target_labeled), "next_query": next_query}


def curve_gaps(result: ActiveResult, strategy: str, baseline: str) -> list[float]:
    """Per round, the mean over seeds of acc(strategy) − acc(baseline) (paired by seed)."""
    out = []
    for rnd in sorted({r.round for r in result.rounds}):
        a = {r.seed: r.test_accuracy for r in result.rounds
             if r.strategy == strategy and r.round == rnd}
        b = {r.seed: r.test_accuracy for r in result.rounds
             if r.strategy == baseline and r.round == rnd}
        common = sorted(set(a) & set(b))
        out.append(statistics.fmean(a[s] - b[s] for s in common) if common else math.nan)
    return out
