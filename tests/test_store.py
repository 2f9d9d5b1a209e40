"""The run store: records, resume, killed runs, failures, and the store-backed runner."""

from __future__ import annotations

import sqlite3

import pytest

import transferguard as tg
from transferguard.experiments import Runner, RunStore, config_key


def test_same_config_same_key_and_order_does_not_matter():
    assert config_key({"a": 1, "b": [1, 2]}) == config_key({"b": [1, 2], "a": 1})
    assert config_key({"a": 1}) != config_key({"a": 2})


def test_finished_runs_are_skipped_on_resume(tmp_path):
    store = RunStore(tmp_path)
    calls = []

    def fn():
        calls.append(1)
        return {"test_accuracy": 90.0}

    m1, reused1 = store.run({"x": 1}, fn, label="a", resume=True)
    m2, reused2 = store.run({"x": 1}, fn, label="a", resume=True)
    assert (m1, reused1) == ({"test_accuracy": 90.0}, False)
    assert (m2, reused2) == (m1, True) and len(calls) == 1
    store.run({"x": 1}, fn, label="a", resume=False)  # without resume: runs again
    assert len(calls) == 2
    [rec] = store.records()
    assert rec.status == "finished" and rec.seconds is not None and rec.pid


def test_a_killed_run_leaves_a_whole_row_and_is_redone(tmp_path):
    store = RunStore(tmp_path)

    def killed():
        raise KeyboardInterrupt  # the process dies half-way through training

    with pytest.raises(KeyboardInterrupt):
        store.run({"x": 2}, killed, label="k", resume=True)
    [rec] = store.records()
    assert rec.status == "failed" and "KeyboardInterrupt" in rec.error
    # a hard kill (no Python cleanup) leaves the 'running' row written at start
    store.start(config_key({"x": 3}), "default", "k3", {"x": 3})
    assert store.get(config_key({"x": 3})).status == "running"
    metrics, reused = store.run({"x": 3}, lambda: {"ok": 1}, resume=True)
    assert not reused and store.get(config_key({"x": 3})).status == "finished"
    metrics, reused = store.run({"x": 2}, lambda: {"ok": 2}, resume=True)
    assert not reused and metrics == {"ok": 2}


def test_a_failed_rerun_keeps_the_finished_result(tmp_path):
    store = RunStore(tmp_path)
    store.run({"x": 9}, lambda: {"acc": 91.0})

    def crash():
        raise RuntimeError("out of memory")

    with pytest.raises(RuntimeError):
        store.run({"x": 9}, crash, resume=False)  # a re-run that dies half-way
    [rec] = store.records()
    assert rec.status == "finished" and rec.metrics == {"acc": 91.0}
    assert "later re-run failed" in rec.error and "out of memory" in rec.error
    store.run({"x": 9}, lambda: {"acc": 92.0}, resume=False)  # a successful re-run replaces
    assert store.records()[0].metrics == {"acc": 92.0}


def test_failures_keep_the_error_text_and_other_rows(tmp_path):
    store = RunStore(tmp_path / "runs.sqlite")
    store.run({"x": 1}, lambda: {"acc": 1.0})

    def bad():
        raise ValueError("loss exploded")

    with pytest.raises(ValueError):
        store.run({"x": 2}, bad)
    recs = {r.config["x"]: r for r in store.records()}
    assert recs[1].status == "finished" and recs[2].status == "failed"
    assert "loss exploded" in recs[2].error
    assert store.records(status="failed") == [recs[2]]


def test_store_rejects_invalid_status_at_the_database_level(tmp_path):
    store = RunStore(tmp_path)
    con = sqlite3.connect(store.path)
    with pytest.raises(sqlite3.IntegrityError):
        con.execute("INSERT INTO runs (key, experiment, label, config, status, started_at) "
                    "VALUES ('k', 'e', 'l', '{}', 'half-written', 0)")
    con.close()


def test_runner_records_and_resumes_real_training(tiny_task, tmp_path):
    store = RunStore(tmp_path)
    tr = tg.Trainer(iterations=4, batch_size=8, progress=False)
    r1 = Runner(store, tr, "t", resume=True)
    res = tg.negative_transfer_gap(tiny_task, "dann", seeds=[0], run=r1)
    assert r1.trained == 2 and r1.reused == 0
    r2 = Runner(store, tr, "t", resume=True)
    res2 = tg.negative_transfer_gap(tiny_task, "dann", seeds=[0], run=r2)
    assert r2.trained == 0 and r2.reused == 2
    assert res2.accuracy == res.accuracy and res2.twin_accuracy == res.twin_accuracy
    labels = sorted(r.label for r in store.records())
    assert labels == ["dann", "dann_T"]
