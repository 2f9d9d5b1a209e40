"""Sweeps: grid expansion, validation, a real 2-process sweep, SIGKILL of the driver then
``--resume``, and a real local Ray cluster (skipped without Ray)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from transferguard.errors import ConfigError
from transferguard.experiments import RunStore
from transferguard.experiments.pretrain import _file_lock
from transferguard.experiments.sweep import load_sweep, run_sweep, sweep_from_dict

ROOT = Path(__file__).resolve().parent.parent


def base(iterations: int = 6, **grid: list) -> dict:
    return {
        "name": "sw",
        "task": {"source": "mnist", "target": "uci-digits", "input_size": 16,
                 "source_size": 200, "labeled_percent": 20},
        "trainer": {"iterations": iterations, "batch_size": 8, "eval_every": 3,
                    "progress": False},
        "seeds": [0],
        "ntg": True,
        "grid": grid,
    }


def rows(out: Path) -> list[tuple]:
    con = sqlite3.connect(out / "runs.sqlite", timeout=60)
    try:
        return con.execute("SELECT key, status, finished_at, pid, label FROM runs").fetchall()
    finally:
        con.close()


# ------------------------------------------------------------------ expansion


def test_grid_expands_as_a_product_in_written_order_with_shared_twins():
    sweep = sweep_from_dict(base(eps=[0.0, 0.3, 0.6], labeled_percent=[10, 30],
                                 methods=["dann", {"name": "joint"}], seeds=[0, 1]))
    assert len(sweep.points) == 3 * 2 * 2 * 2
    assert list(sweep.axes) == ["eps", "labeled_percent", "methods", "seeds"]
    first = [(p.values["eps"], p.values["labeled_percent"], p.values["methods"],
              p.values["seeds"]) for p in sweep.points[:5]]
    assert first == [(0.0, 10, "dann", 0), (0.0, 10, "dann", 1), (0.0, 10, "joint", 0),
                     (0.0, 10, "joint", 1), (0.0, 30, "dann", 0)]
    p = sweep.points[7]  # eps 0, L 30, joint, seed 1
    assert (p.config.task.eps_x, p.config.task.eps_y, p.config.task.labeled_percent) == \
        (0.0, 0.0, 30.0)
    assert p.config.seeds == [1] and p.task_seed == 1 and len(p.config.methods) == 1
    jobs = sweep.jobs()
    keys = [j.key for j in jobs]
    assert len(keys) == len(set(keys))
    # a twin never reads the source: one per (method, L, seed), shared across eps
    twins = [j for j in jobs if j.twin]
    methods = [j for j in jobs if not j.twin]
    assert len(methods) == 24 and len(twins) == 2 * 2 * 2
    assert {j.label for j in twins} == {"dann_T", "joint_T"}
    # the same config expands into the same runs (keys are content, not order or time)
    assert [j.key for j in sweep_from_dict(base(eps=[0.0, 0.3, 0.6], labeled_percent=[10, 30],
            methods=["dann", {"name": "joint"}], seeds=[0, 1])).jobs()] == keys


def test_implicit_axes_domain_pairs_and_section_keys():
    data = base(domains=["mnist->uci-digits", ["syndigits", "mnist"],
                         {"source": "mnist", "target": "syndigits"}],
                **{"trainer.lr": [0.01, 0.001]})
    data.update(methods=["joint", "finetune"], seeds=[3, 4], resplit=False)
    sweep = sweep_from_dict(data)
    assert list(sweep.axes) == ["domains", "trainer.lr", "methods", "seeds"]
    assert len(sweep.points) == 3 * 2 * 2 * 2
    p = sweep.points[-1]
    assert p.values == {"domains": "mnist->syndigits", "trainer.lr": 0.001, "methods": "finetune",
                        "seeds": 4}
    assert p.config.trainer.lr == 0.001 and p.seed == 4
    assert p.task_seed == 3  # resplit off: every seed trains on the first seed's splits


def test_eps_x_axis_keeps_the_base_eps_for_eps_y():
    data = base(eps_x=[0.0, 0.4])
    data["task"]["eps"] = 0.2
    sweep = sweep_from_dict(data)
    assert [(p.config.task.eps_x, p.config.task.eps_y) for p in sweep.points] == \
        [(0.0, 0.2), (0.4, 0.2)]


@pytest.mark.parametrize(("grid", "extra", "words"), [
    ({"epsilon": [0.1]}, {}, ["grid.epsilon", "unknown axis", "eps"]),
    ({"eps": 0.3}, {}, ["grid.eps", "non-empty list"]),
    ({"eps": []}, {}, ["grid.eps", "non-empty list"]),
    ({"eps": [0.1, 1.5]}, {}, ["grid.eps[1]", "1.5"]),
    ({"labeled_percent": [10, 10]}, {}, ["grid.labeled_percent[1]", "repeats"]),
    ({"methods": ["dann", "no-such-method"]}, {}, ["grid.methods[1]", "unknown method"]),
    ({"domains": ["mnist"]}, {}, ["grid.domains[0]", "SOURCE->TARGET"]),
    ({"domains": ["mnist->nowhere"]}, {}, ["grid.domains[0]", "nowhere"]),
    ({"seeds": [0, "one"]}, {}, ["grid.seeds[1]", "integer"]),
    ({"trainer.lrate": [0.1]}, {}, ["grid.trainer.lrate", "valid", "lr"]),
    ({"eps": [0.1]}, {"resources": {"num_gpu": 1}}, ["resources", "num_gpus"]),
    ({"eps": [0.1]}, {"resources": {"num_cpus": 0}}, ["resources.num_cpus", "> 0"]),
    ({"eps": [0.1]}, {"grids": {}}, ["grids", "grid"]),
    ({"domains": ["mnist->uci-digits"], "source": ["mnist"]}, {},
     ["grid.domains and grid.source"]),
    ({"eps": [0.1], "task.eps": [0.2]}, {}, ["grid.task.eps", "given twice"]),
])
def test_bad_sweep_configs_name_the_key_and_the_fix(grid, extra, words):
    data = {**base(**grid), **extra}
    with pytest.raises(ConfigError) as err:
        sweep_from_dict(data)
    for w in words:
        assert w in str(err.value), str(err.value)


def test_a_bad_combination_names_the_grid_point():
    with pytest.raises(ConfigError, match=r"grid.eps and grid.eps_x"):
        sweep_from_dict(base(eps_x=[0.1], eps=[0.2]))
    # each value is fine alone on the base config; together they are not a task
    data = base(**{"eps_x": [0.0, 0.3], "task.corruptions": [["rotate"], []]})
    with pytest.raises(ConfigError, match=r"grid point eps_x=0.3, task.corruptions=\[\]"):
        sweep_from_dict(data)


def test_load_sweep_reads_yaml_and_refuses_a_missing_file(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(base(eps=[0.0, 0.3])))
    assert len(load_sweep(path).points) == 2
    with pytest.raises(ConfigError, match="does not exist"):
        load_sweep(tmp_path / "nope.yaml")


def test_workers_and_ray_are_exclusive(tmp_path):
    sweep = sweep_from_dict(base(eps=[0.0]))
    with pytest.raises(ConfigError, match="not both"):
        run_sweep(sweep, tmp_path, workers=2, ray="auto")
    with pytest.raises(ConfigError, match="workers"):
        run_sweep(sweep, tmp_path, workers=0)


def test_the_file_lock_holds_off_a_second_holder(tmp_path):
    lock = tmp_path / ".x.lock"
    order = []
    with _file_lock(lock):
        t = threading.Thread(target=lambda: _hold(lock, order))
        t.start()
        time.sleep(0.3)
        order.append("first released")
    t.join(10)
    assert order == ["first released", "second held"]


def _hold(lock: Path, order: list) -> None:
    with _file_lock(lock):
        order.append("second held")


# ------------------------------------------------------------------ real execution


@pytest.fixture(scope="module")
def two_worker_sweep(tmp_path_factory):
    """A real 2-process sweep (with a run that fails: a corrupt pre-trained file)."""
    out = tmp_path_factory.mktemp("sweep2")
    bad = out / "corrupt.pt"
    bad.write_bytes(b"not a checkpoint")
    sweep = sweep_from_dict(base(eps=[0.0, 0.4],
                                 methods=["joint", {"name": "finetune", "pretrained": str(bad)}]))
    result = run_sweep(sweep, out, workers=2)
    return sweep, result, out


def test_a_two_process_sweep_records_every_run_exactly_once(two_worker_sweep):
    sweep, result, out = two_worker_sweep
    jobs = sweep.jobs()
    got = rows(out)
    assert sorted(r[0] for r in got) == sorted(j.key for j in jobs)  # once each, keyed alike
    failing = {j.key for j in jobs if j.method.get("pretrained") and not j.twin}
    assert len(failing) == 2
    assert {r[0] for r in got if r[1] == "failed"} == failing
    assert all(r[1] == "finished" for r in got if r[0] not in failing)
    assert len({r[3] for r in got}) == 2  # two worker processes trained them
    assert result.trained == len(jobs) - 2 and len(result.failed) == 2
    summary = (out / "results-sw.md").read_text()
    assert "| joint" in summary and "2 failed" in summary
    # resume: nothing is trained again, the failures are skipped
    again = run_sweep(sweep, out, workers=2, resume=True)
    assert (again.trained, again.reused, again.skipped) == (0, len(jobs) - 2, 2)
    assert len(again.failed) == 2 and "failed before" in again.failed[0]["error"]
    assert rows(out) == got


def test_sigkill_of_the_driver_then_resume_loses_and_duplicates_nothing(tmp_path):
    cfg = tmp_path / "kill.yaml"
    # runs long enough (and enough of them) that the kill lands with work left on a fast
    # machine too: 6 runs and 3 twins
    cfg.write_text(yaml.safe_dump(base(iterations=150, eps=[0.0, 0.5], seeds=[0, 1, 2],
                                       methods=["joint"])))
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "transferguard", "sweep", str(cfg), "-o",
                             str(out), "--workers", "2", "--quiet"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    try:
        while time.time() < deadline and proc.poll() is None:
            if (out / "runs.sqlite").exists():
                got = rows(out)
                if any(r[1] == "finished" for r in got) and any(r[1] == "running" for r in got):
                    break
            time.sleep(0.2)
        assert proc.poll() is None, "the sweep ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert any(r[1] == "running" for r in rows(out))
    for _ in range(150):  # the orphaned workers see their driver gone and stop
        workers = {r[3] for r in rows(out)}  # every process that claimed a run
        if not any(_alive(pid) for pid in workers):
            break
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in workers), "workers outlived their killed driver"
    before = rows(out)  # a worker may have finished its run before it saw the driver gone
    finished_before = {r[0]: r[2] for r in before if r[1] == "finished"}
    assert finished_before and len(finished_before) < 9
    # the runs the workers were training are recorded as interrupted, not left running
    assert all(r[1] != "running" for r in before)
    sweep = load_sweep(cfg)
    res = run_sweep(sweep, out, workers=1, resume=True)
    after = rows(out)
    jobs = sweep.jobs()
    assert sorted(r[0] for r in after) == sorted(j.key for j in jobs)  # none missing, no extra
    assert all(r[1] == "finished" for r in after), \
        f"not finished after resume: {[r[:2] for r in after if r[1] != 'finished']}; " \
        f"before: {[r[:2] for r in before]}"
    assert all(dict((r[0], r[2]) for r in after)[k] == t for k, t in finished_before.items())
    assert res.reused == len(finished_before) and res.trained == len(jobs) - len(finished_before)
    assert not list((out / "checkpoints").rglob("*.pt")) if (out / "checkpoints").exists() \
        else True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (not yet reaped by init) counts as gone
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().split(")")[-1].split()[0] != "Z"


# ------------------------------------------------------------------ Ray


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install "
                                            "'transferguard[ray]' to run the Ray sweep test")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_a_ray_sweep_records_every_run_once_and_a_failure(local_ray, two_worker_sweep,
                                                          tmp_path):
    sweep, _, local_out = two_worker_sweep  # the same runs: Ray must give the same numbers
    res = run_sweep(sweep, tmp_path / "out", ray="auto", num_cpus=1)
    got = rows(tmp_path / "out")
    jobs = sweep.jobs()
    assert sorted(r[0] for r in got) == sorted(j.key for j in jobs)
    failing = {j.key for j in jobs if j.method.get("pretrained") and not j.twin}
    assert {r[0] for r in got if r[1] == "failed"} == failing
    assert all(r[1] == "finished" for r in got if r[0] not in failing)
    assert {r[3] for r in got} == {os.getpid()}  # the driver claims and records (module doc)
    assert res.trained == len(jobs) - 2 and len(res.failed) == 2
    assert "CheckpointError" in res.failed[0]["error"] or "checkpoint" in res.failed[0]["error"]
    local = {r.key: r.metrics for r in RunStore(local_out).records()}
    for r in RunStore(tmp_path / "out").records():
        if r.status == "finished":
            assert r.metrics["test_accuracy"] == local[r.key]["test_accuracy"]
    again = run_sweep(sweep, tmp_path / "out", ray="auto", resume=True)
    assert (again.trained, again.skipped) == (0, 2)
    assert local_ray.is_initialized()  # a cluster the caller started is left running


def test_the_cli_lists_the_runs_and_stops_on_a_bad_grid(tmp_path, capsys):
    from transferguard.cli import main

    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(base(eps=[0.0, 0.5], methods=["joint", "dann"])))
    assert main(["sweep", str(good), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "4 points, 6 runs" in out and out.count("joint_T") == 1
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(base(eps=[0.0, 2.0])))
    assert main(["sweep", str(bad), "-o", str(tmp_path / "o")]) == 2
    assert "grid.eps[1]" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()  # nothing launched, nothing recorded
    assert main(["sweep", str(good), "--workers", "2", "--ray", "auto"]) == 2


# ------------------------------------------------------------------ safe mode


def safe_base(**grid: list) -> dict:
    """Two points (eps 0 and 0.5) of joint with safe mode; its twin is shared by both."""
    data = base(eps=[0.0, 0.5], **grid)
    data["methods"] = [{"name": "joint", "safe": True}]
    return data


def safe_rows(out: Path) -> list[tuple]:
    con = sqlite3.connect(out / "runs.sqlite", timeout=60)
    try:
        return con.execute("SELECT key, inputs, result, recorded_at FROM safe "
                           "ORDER BY key").fetchall()
    finally:
        con.close()


@pytest.fixture(scope="module")
def safe_sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("safe")
    sweep = sweep_from_dict(safe_base())
    lines: list[str] = []
    return sweep, run_sweep(sweep, out, echo=lines.append), out, lines


def test_a_safe_sweep_scores_the_kept_predictions_against_the_twin(safe_sweep):
    from transferguard.analysis.safe import SafeMode, SplitPredictions, accuracy
    from transferguard.experiments.safe_records import predictions_path

    sweep, res, out, lines = safe_sweep
    assert res.trained == 3 and not res.failed  # 2 method runs + 1 shared twin, nothing more
    assert [c["method"] for c in res.cells] == ["joint", "safe(joint)"] * 2
    assert any("2 decision(s) made" in ln for ln in lines)
    recs = {r.key: r for r in RunStore(out).records()}
    for runs, plain, safe in zip(sweep.point_runs(), res.cells[::2], res.cells[1::2]):
        assert safe["safe"] and safe["values"] == plain["values"] and safe["seeds"] == [0]
        (d,) = safe["choices"]
        c = d["choice"]
        m, t = (recs[j.key].metrics["test_accuracy"] for j in runs)
        # the NTG of safe mode is against the same twin run as the method's
        assert d["twin_test_accuracy"] == pytest.approx(t, abs=1e-4)
        assert safe["result"].ntg == pytest.approx(t - d["test_accuracy"], abs=1e-9)
        assert plain["result"].twin_accuracy == [t]
        # its accuracy is the kept member's, or the blend's, on the stored test predictions
        pm, pt = (SplitPredictions.load(predictions_path(out, j.key)) for j in runs)
        blend = SafeMode.apply(SafeMode().choose(pm.val_probs, pt.val_probs, pm.val_labels),
                               pm.test_probs, pt.test_probs)
        assert d["test_accuracy"] == pytest.approx(accuracy(blend, pm.test_labels), abs=1e-9)
        expected = {"method": m, "twin": t}.get(c["choice"])
        if expected is not None:
            assert d["test_accuracy"] == pytest.approx(expected, abs=1e-4)
        assert c["weight"] == {"method": 1.0, "twin": 0.0}.get(c["choice"], c["weight"])
        assert d["chose"] in ("joint", "joint_T") or d["chose"].startswith("blend(joint")
    table = (out / "results-sw.md").read_text()
    assert "safe(joint)" in table and "kept" in table and "validation samples" in table
    summary = json.loads((out / "results-sw.json").read_text())
    assert [c.get("safe", False) for c in summary["cells"]] == [False, True] * 2


def test_a_safe_sweep_decides_as_run_safe_does(safe_sweep):
    """The same cell through ``transferguard run --safe`` on the same store: the same runs
    (no training) and the same decision."""
    from transferguard.experiments import config_from_dict, run_experiment

    sweep, res, out, _ = safe_sweep
    cfg = sweep.points[1].config  # eps 0.5
    again = run_experiment(config_from_dict(cfg.to_dict()), out, resume=True)
    assert again.trained == 0 and [r.method for r in again.ntg] == ["joint", "safe(joint)"]
    assert again.ntg[1].accuracy == res.cells[3]["result"].accuracy
    assert again.safe[0]["choices"][0] == res.cells[3]["choices"][0]["choice"]


def test_a_resumed_safe_sweep_reuses_its_decisions(safe_sweep):
    sweep, res, out, _ = safe_sweep
    before = safe_rows(out)
    assert len(before) == 2
    lines: list[str] = []
    again = run_sweep(sweep, out, resume=True, echo=lines.append)
    assert (again.trained, again.reused) == (0, 3)
    assert any("0 decision(s) made from the stored predictions, 2 already recorded" in ln
               for ln in lines)
    assert safe_rows(out) == before  # reused as recorded, not decided again
    assert [c.get("choices") for c in again.cells] == [c.get("choices") for c in res.cells]


def test_safe_mode_on_a_sweep_recorded_without_predictions(tmp_path):
    """A missing prediction file stops that cell's decision with the file and the fix named;
    the fix (``--resume``) trains those runs again for their predictions alone."""
    from transferguard.experiments.sweep import decide_safe

    out = tmp_path / "out"
    plain = base(eps=[0.0, 0.5], methods=["joint"])
    first = run_sweep(sweep_from_dict(plain), out)
    assert first.trained == 3 and not (out / "predictions").exists()
    sweep = sweep_from_dict(safe_base())
    made, reused, failed = decide_safe(sweep, RunStore(out), out)
    assert (made, reused, len(failed)) == (0, 0, 2)
    err = failed[0]["error"]
    assert failed[0]["method"] == "safe(joint)"
    for words in ("grid point eps=0.0", "predictions", ".pt does not exist",
                  "recorded before safe mode was asked", "--resume"):
        assert words in err, err
    recorded = rows(out)
    lines: list[str] = []
    res = run_sweep(sweep, out, resume=True, echo=lines.append)
    assert not res.failed and res.trained == 0 and res.reused == 3
    assert sum("trained again for its predictions" in ln for ln in lines) == 3
    assert rows(out) == recorded  # the recorded runs stay as they were
    assert [len(c["choices"]) for c in res.cells if c.get("safe")] == [1, 1]


def test_a_ray_safe_sweep_decides_on_the_driver_as_locally(local_ray, safe_sweep, tmp_path):
    sweep, local, _, _ = safe_sweep
    res = run_sweep(sweep, tmp_path / "out", ray="auto", num_cpus=1)
    assert res.trained == 3 and not res.failed
    assert len(list((tmp_path / "out" / "predictions").glob("*.pt"))) == 3  # saved by the driver
    assert [c.get("choices") for c in res.cells] == [c.get("choices") for c in local.cells]
    # a recorded run whose predictions are gone: a Ray task trains it again for them alone
    jobs = sweep.jobs()
    twin = next(j for j in jobs if j.twin)
    (tmp_path / "out" / "predictions" / f"{twin.key[:32]}.pt").unlink()
    con = sqlite3.connect(tmp_path / "out" / "runs.sqlite", timeout=60)
    with con:
        con.execute("DELETE FROM safe")
    con.close()
    recorded = rows(tmp_path / "out")
    lines: list[str] = []
    again = run_sweep(sweep, tmp_path / "out", ray="auto", resume=True, echo=lines.append)
    assert again.trained == 0 and not again.failed and rows(tmp_path / "out") == recorded
    assert sum("trained again for its predictions" in ln for ln in lines) == 1
    assert [c.get("choices") for c in again.cells] == [c.get("choices") for c in local.cells]
