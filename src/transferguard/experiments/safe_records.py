"""Safe mode over the run store: its decisions recorded beside the runs they chose between.

Safe mode (:mod:`transferguard.analysis.safe`) trains nothing: it reads the stored validation
and test predictions of a method run and of its twin run (``OUT/predictions/KEY.pt``, saved
when the runs trained) and keeps the method, the twin or a blend. ``transferguard run --safe``
(:func:`~.runner.run_experiment`) and sweeps (:mod:`.sweep`) both decide with the same function,
:func:`~transferguard.analysis.safe.safe_ntg`, and record each seed's decision here, in the
store's ``safe`` table (:class:`~.store.SafeRecord`), keyed by the two runs and the rule.

A decision is stamped with the ``finished_at`` of the two runs it read: it is reused as long
as both runs are the ones recorded then (a resumed sweep never decides again, so it can not
decide differently), and decided again from the new predictions once either run is trained
again. The HTML report reads the decisions from the store (:func:`safe_rows`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ..analysis.ntg import NTGResult
from ..analysis.safe import SafeChoice, SafeMode, SplitPredictions, safe_label
from ..errors import DataError
from .store import RunRecord, RunStore, SafeRecord, safe_key


def predictions_path(work_dir: str | Path, key: str) -> Path:
    """Where a run's validation/test probabilities live (``WORK/predictions/KEY.pt``)."""
    return Path(work_dir) / "predictions" / f"{key[:32]}.pt"


def load_predictions(work_dir: str | Path, run: RunRecord, fix: str) -> SplitPredictions:
    """The stored predictions of a recorded run; a missing file stops with ``fix``."""
    path = predictions_path(work_dir, run.key)
    if not path.is_file():
        seed = run.config.get("trainer", {}).get("seed")
        raise DataError(f"safe mode needs the predictions of {run.label} (seed {seed}, run "
                        f"{run.key[:12]}), but {path} does not exist: the run was recorded "
                        f"before safe mode was asked, or the file was deleted. {fix}")
    return SplitPredictions.load(path)


def inputs_stamp(method: RunRecord, twin: RunRecord) -> str:
    """What a decision was computed from: the two runs as they were recorded."""
    return json.dumps([method.key, method.finished_at, twin.key, twin.finished_at])


def seed_decision(ntg: NTGResult, choice: SafeChoice, i: int, method_label: str) -> dict[str, Any]:
    """Seed ``i`` of a :func:`~transferguard.analysis.safe.safe_ntg` result, as recorded."""
    return {"seed": ntg.seeds[i], "method": method_label, "twin": ntg.twin,
            "test_accuracy": ntg.accuracy[i], "twin_test_accuracy": ntg.twin_accuracy[i],
            "chose": safe_label(choice, method_label, ntg.twin), "choice": choice.to_dict()}


def record_decisions(store: RunStore, experiment: str, rule: SafeMode, method_label: str,
                     ntg: NTGResult, choices: Sequence[SafeChoice],
                     runs: Sequence[tuple[RunRecord, RunRecord]]) -> list[SafeRecord]:
    """Record each seed's decision (``runs``: the method and twin records, per seed)."""
    out = []
    for i, (m, t) in enumerate(runs):
        result = {**seed_decision(ntg, choices[i], i, method_label), "rule": rule.get_params(),
                  "task": m.config.get("task", {}), "trainer": m.config.get("trainer", {}),
                  "method_test_accuracy": (m.metrics or {}).get("test_accuracy")}
        rec = SafeRecord(safe_key(m.key, t.key, rule.get_params()), experiment, ntg.method,
                         m.key, t.key, inputs_stamp(m, t), result, time.time())
        store.record_safe(rec)
        out.append(rec)
    return out


def decisions_result(label: str, twin: str, decisions: Sequence[dict[str, Any]],
                     level: float = 0.95) -> NTGResult:
    """Safe mode's NTG over recorded decisions (one per seed): the kept predictions' test
    accuracy against the twin's."""
    return NTGResult(label, twin, [int(d["seed"]) for d in decisions],
                     [float(d["test_accuracy"]) for d in decisions],
                     [float(d["twin_test_accuracy"]) for d in decisions], level=level)


def safe_groups(records: Iterable[SafeRecord]) -> list[tuple[str, dict[str, Any], NTGResult,
                                                              list[dict[str, Any]]]]:
    """Recorded decisions grouped over seeds like the report's NTG rows (experiment, task
    less its seed, trainer less its seed, rule, label): (experiment, task, NTG, decisions).
    A group with a seed decided twice keeps the latest decision."""
    groups: dict[tuple[str, str, str], dict[int, dict[str, Any]]] = {}
    for r in sorted(records, key=lambda r: r.recorded_at):
        res = r.result
        task = {k: v for k, v in res.get("task", {}).items() if k != "seed"}
        trainer = {k: v for k, v in res.get("trainer", {}).items() if k != "seed"}
        key = (r.experiment, r.label, json.dumps([task, trainer, res.get("rule")],
                                                 sort_keys=True, default=str))
        groups.setdefault(key, {})[int(res["seed"])] = res
    out = []
    for (experiment, label, _), by_seed in groups.items():
        decisions = [by_seed[s] for s in sorted(by_seed)]
        first = decisions[0]
        task = {k: v for k, v in first.get("task", {}).items() if k != "seed"}
        out.append((experiment, task, decisions_result(label, first["twin"], decisions),
                    decisions))
    return out


__all__ = ["decisions_result", "inputs_stamp", "load_predictions", "predictions_path",
           "record_decisions", "safe_groups", "seed_decision"]
