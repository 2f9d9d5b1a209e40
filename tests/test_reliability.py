"""Issue 17: failed runs, stale keys, empty test splits, unsafe names, concurrency, resume
from checkpoints, stale temporary files, SIGTERM, the checkpoint hint, file permissions;
and issue 11 item 6 (twins, source networks and summaries shared, never redone/overwritten).

Real processes and signals where the item is about them; tiny data everywhere."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import transferguard as tg
from transferguard.errors import CheckpointError, DataError, TrainingDivergedError
from transferguard.experiments import RunStore, config_from_dict, run_experiment
from transferguard.experiments.runner import run_config
from transferguard.experiments.store import config_key
from transferguard.models import create_model

SRC = str(Path(__file__).resolve().parents[1] / "src")
TRAINER = {"iterations": 4, "batch_size": 8, "progress": False, "eval_every": 2}
TASK = {"source": "mnist", "target": "uci-digits", "labeled_percent": 20, "input_size": 16,
        "source_size": 200}


def _cfg(name: str = "rel", **over) -> tg.experiments.ExperimentConfig:
    base = {"name": name, "task": TASK, "trainer": TRAINER, "seeds": [0], "ntg": False,
            "methods": ["target_only"], "resplit": False}  # one task build per experiment
    base.update(over)
    return config_from_dict(base)


def _lenet_file(path: Path) -> str:
    torch.save(create_model("lenet", 10, 3, 16).state_dict(), path)
    return str(path)


# ---------------------------------------------------------------- 1. a failed run
def test_a_failed_run_is_recorded_the_others_go_on_and_resume_skips_it(tmp_path):
    bad = tmp_path / "corrupt.pt"
    bad.write_bytes(b"not a checkpoint at all")
    cfg = _cfg(methods=["target_only", {"name": "finetune", "pretrained": str(bad)}, "joint"])
    out = tmp_path / "out"
    res = run_experiment(cfg, out)
    assert [r["method"] for r in res.runs] == ["target_only", "joint"]
    assert len(res.failed) == 1 and "CheckpointError" in res.failed[0]["error"]
    assert "1 failed" in (out / "results-rel.md").read_text()
    by_label = {r.label: r.status for r in RunStore(out).records()}
    assert by_label == {"target_only": "finished", "finetune(pretrained=corrupt.pt)": "failed",
                        "joint": "finished"}
    again = run_experiment(cfg, out, resume=True)  # skipped, not retried, not fatal
    assert again.trained == 0 and "earlier run" in again.failed[0]["error"]
    retry = run_experiment(cfg, out, resume=True, retry_failed=True)
    assert retry.trained == 0 and "CheckpointError" in retry.failed[0]["error"]


def test_the_divergence_message_names_the_effective_rate_of_each_group(tiny_task, tmp_path):
    method = tg.create_method("finetune", pretrained=_lenet_file(tmp_path / "src.pt"),
                              backbone_lr_mult=0.1)
    trainer = tg.Trainer(iterations=20, batch_size=8, lr=1e9, progress=False)
    with pytest.raises(TrainingDivergedError) as err:
        trainer.run(method, tiny_task)
    assert "(x0.1)" in str(err.value) and "(x1)" in str(err.value)


# ---------------------------------------------------------------- 2. keys by content
def _folder(root: Path, classes=("a", "b"), per_class: int = 3, seed: int = 0) -> Path:
    from PIL import Image

    g = torch.Generator().manual_seed(seed)
    for c in classes:
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            px = torch.randint(0, 255, (16, 16, 3), generator=g, dtype=torch.uint8).numpy()
            Image.fromarray(px).save(root / c / f"{i}.png")
    return root


def test_run_keys_follow_the_contents_of_folders_and_pretrained_files(tmp_path, monkeypatch):
    folder = _folder(tmp_path / "imgs")
    ckpt = _lenet_file(tmp_path / "src.pt")
    task = tg.TransferTask("mnist", f"folder:{folder}", spec=tg.InputSpec(3, 16))
    method = tg.create_method("finetune", pretrained=ckpt)
    store = RunStore(tmp_path / "out")
    calls = []
    import transferguard.experiments.store as store_mod

    real = store_mod.path_digest
    monkeypatch.setattr(store_mod, "path_digest", lambda p: calls.append(p) or real(p))
    key = lambda: config_key(run_config(method, task, tg.TrainerConfig(),  # noqa: E731
                                        store.content_digest))
    k1 = key()
    assert key() == k1 and len(calls) == 2  # unchanged sizes and mtimes: no second hash
    from PIL import Image

    Image.new("RGB", (16, 16), (9, 9, 9)).save(folder / "a" / "0.png")
    k2 = key()
    assert k2 != k1
    torch.save(create_model("lenet", 10, 3, 16).state_dict(), ckpt)
    assert key() not in (k1, k2)


# ---------------------------------------------------------------- 3. empty test split
def test_a_target_with_one_image_per_class_is_refused_with_the_count_needed():
    imgs = torch.zeros(3, 3, 16, 16, dtype=torch.uint8)
    tgt = tg.Domain("tiny", imgs, torch.tensor([0, 1, 2]), ("a", "b", "c"))
    src = tg.Domain("src", imgs.repeat(4, 1, 1, 1), torch.arange(3).repeat(4), ("a", "b", "c"))
    task = tg.TransferTask(src, tgt, spec=tg.InputSpec(3, 16))
    with pytest.raises(DataError, match=r"test split empty .* at least 2 images"):
        task.summary()


# ---------------------------------------------------------------- 4. names stay inside OUT
def test_pretrained_networks_of_folder_sources_stay_inside_the_output(tmp_path):
    from transferguard.experiments import pretrained_checkpoint

    src = _folder(tmp_path / "src", classes=("a", "b"), per_class=4)
    tgt = _folder(tmp_path / "tgt", classes=("a", "b"), per_class=4, seed=1)
    task = tg.TransferTask(f"folder:{src}", f"folder:{tgt}", labeled_percent=50,
                           spec=tg.InputSpec(3, 16))
    out = tmp_path / "out" / "pretrained"
    path = Path(pretrained_checkpoint(task, tg.Trainer(iterations=2, batch_size=4,
                                                       progress=False), out))
    assert path.parent == out and path.is_file() and path.name.startswith("folder_")


# ---------------------------------------------------------------- 6. claims, summaries
def _slow_run(path: str, delay: float, log: str) -> None:
    def fn():
        with open(log, "a") as fh:
            fh.write(f"{os.getpid()}\n")
        time.sleep(delay)
        return {"acc": 1.0}

    RunStore(path).run({"x": 1}, fn, label="slow", poll=0.1)  # no resume: waiting is enough


def test_a_run_another_process_is_training_is_waited_for_not_trained_again(tmp_path):
    log = tmp_path / "trained.log"
    ctx = mp.get_context("fork")
    a = ctx.Process(target=_slow_run, args=(str(tmp_path), 2.0, str(log)))
    a.start()
    deadline = time.time() + 30
    while not log.exists() and time.time() < deadline:
        time.sleep(0.05)
    b = ctx.Process(target=_slow_run, args=(str(tmp_path), 0.0, str(log)))
    b.start()
    a.join(60)
    b.join(60)
    assert a.exitcode == 0 and b.exitcode == 0
    assert len(log.read_text().split()) == 1  # trained once, by the first process
    [rec] = RunStore(tmp_path).records()
    assert rec.status == "finished"


def test_summaries_are_per_experiment_and_twins_and_source_networks_are_shared(tmp_path):
    out = tmp_path / "out"
    run_experiment(_cfg("one"), out)
    run_experiment(_cfg("two", methods=["joint"]), out)
    assert (out / "results-one.md").exists() and (out / "results-two.md").exists()
    ntg = _cfg("ntg", ntg=True, methods=["joint"])
    first = run_experiment(ntg, out)
    second = run_experiment(ntg, out)  # no resume: the method again, not its twin
    assert first.trained == 2 and (second.trained, second.reused) == (1, 1)
    ft = _cfg("ft", methods=["finetune", {"name": "l2sp", "alpha": 0.1}],
              trainer={**TRAINER, "iterations": 3})
    run_experiment(ft, out)
    assert len(list((out / "pretrained").glob("*.pt"))) == 1  # one pre-training, shared


# ---------------------------------------------------------------- 7. resume, .tmp files
class _StopAt:
    def __init__(self, step: int | None) -> None:
        self.step, self.seen = step, []

    def on_log(self, trainer, method, step, row) -> None:
        self.seen.append(step)
        if self.step is not None and step == self.step:
            raise KeyboardInterrupt


def test_an_interrupted_run_resumes_from_its_checkpoint_exactly(tiny_task, tmp_path):
    from transferguard.experiments import Runner

    def trainer(cb):
        return tg.Trainer(iterations=10, batch_size=8, eval_every=5, log_every=1,
                          progress=False, callbacks=[cb])

    ref = Runner(RunStore(tmp_path / "ref"), trainer(_StopAt(None)))(
        tg.create_method("target_only"), tiny_task, 0)
    store = RunStore(tmp_path / "out")
    with pytest.raises(KeyboardInterrupt):
        Runner(store, trainer(_StopAt(6)))(tg.create_method("target_only"), tiny_task, 0)
    assert "interrupted" in store.records()[0].error
    again = _StopAt(None)
    res = Runner(store, trainer(again), resume=True)(tg.create_method("target_only"),
                                                    tiny_task, 0)
    assert again.seen[0] == 6  # steps 1-5 came from the checkpoint
    assert res.test_accuracy == ref.test_accuracy and res.history == ref.history
    assert not any((tmp_path / "out" / "checkpoints").iterdir())  # deleted once finished


def test_stale_temporary_files_are_cleaned(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    stale = out / f".results-rel.md.{dead}.abc123.tmp"
    live = out / f".x.pt.{os.getpid()}.def456.tmp"
    stale.write_text("half")
    live.write_text("being written")
    run_experiment(_cfg(), out)
    assert not stale.exists() and live.exists()
    assert not list(out.rglob(f".*.{dead}.*.tmp"))


# ---------------------------------------------------------------- 8. small ones
def test_sigterm_marks_the_run_interrupted_like_ctrl_c(tmp_path):
    import yaml

    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"name": "term", "task": TASK, "method": "target_only",
                                   "trainer": {**TRAINER, "iterations": 100000},
                                   "seeds": [0], "ntg": False}))
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "transferguard", "run", str(cfg), "--out",
                             str(out), "--quiet"], env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        if (out / "runs.sqlite").exists() and RunStore(out).records(status="running"):
            break
        time.sleep(0.2)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and "terminated" in err
    [rec] = RunStore(out).records()
    assert rec.status == "failed" and rec.error.startswith("interrupted")


def test_the_checkpoint_error_does_not_advise_weights_only_false(tmp_path):
    import argparse

    path = tmp_path / "evil.pt"
    torch.save({"model": argparse.Namespace(a=1)}, path)
    with pytest.raises(CheckpointError) as err:
        tg.Trainer(progress=False).load_checkpoint(tg.create_method("target_only"), path)
    text = str(err.value)
    assert "will likely succeed" not in text and "Do not load it with weights_only=False" in text


def test_outputs_share_one_permission_mode(tmp_path):
    old = os.umask(0o022)
    try:
        out = tmp_path / "out"
        run_experiment(_cfg(), out)
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in
             (out / "runs.sqlite", out / "results-rel.md", out / "results-rel.json")}
    assert set(modes.values()) == {0o644}, modes
