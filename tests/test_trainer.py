"""The Trainer: reproducibility, selection, NaN stops, checkpoints and resume."""

from __future__ import annotations

import pytest
import torch

import transferguard as tg
from transferguard.engine import StepOutput, lr_factor, ramp
from transferguard.engine.trainer import data_fingerprint
from transferguard.errors import CheckpointError, ConfigError, TrainingDivergedError
from transferguard.identity import run_identity
from transferguard.methods.baselines.target_only import TargetOnly


def test_same_seed_same_accuracy(tiny_task):
    tr = tg.Trainer(iterations=20, batch_size=16, progress=False)
    a = tr.run(tg.create_method("dann"), tiny_task)
    b = tr.run(tg.create_method("dann"), tiny_task)
    assert a.test_accuracy == b.test_accuracy
    assert a.history == b.history
    c = tr.with_options(seed=1).run(tg.create_method("dann"), tiny_task)
    assert c.history != a.history


def test_validation_selection_and_last_iterate(tiny_task):
    tr = tg.Trainer(iterations=30, batch_size=16, eval_every=10, log_every=10, progress=False)
    res = tr.run(tg.create_method("target_only"), tiny_task)
    assert res.best_step in (10, 20, 30)
    assert res.val_accuracy is not None
    vals = [row["val_acc"] for row in res.history if "val_acc" in row]
    assert len(vals) == 3 and res.val_accuracy == max(vals)
    last = tr.with_options(select="last").run(tg.create_method("target_only"), tiny_task)
    assert last.best_step == 30 and last.test_accuracy == last.test_accuracy_last


class _NaNMethod(TargetOnly):
    name = "nan_method"

    def training_step(self, batches, progress):
        out = super().training_step(batches, progress)
        return StepOutput(out.loss * float("nan"), out.logs)


def test_nan_loss_stops_with_a_clear_error(tiny_task, fast_trainer):
    with pytest.raises(TrainingDivergedError, match="lower the learning rate"):
        fast_trainer.fit(_NaNMethod(), tiny_task.train_data())


def test_unknown_and_bad_trainer_options():
    with pytest.raises(ConfigError, match="valid options"):
        tg.Trainer(iteratons=5)
    with pytest.raises(ConfigError, match="optimizer must be one of"):
        tg.Trainer(optimizer="rmsprop")
    with pytest.raises(ConfigError, match="schedule"):
        tg.Trainer(schedule="linear")
    for bad in ({"log_every": 0}, {"eval_batch_size": 0}, {"momentum": 1.5},
                {"max_grad_norm": 0}, {"checkpoint_every": -1}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            tg.Trainer(**bad)


def test_schedules():
    assert lr_factor("dann", 0) == 1.0
    assert abs(lr_factor("dann", 1) - 11 ** -0.75) < 1e-12
    assert lr_factor("step", 0.7) == pytest.approx(0.1)
    assert lr_factor("cosine", 1.0) == pytest.approx(0.0)
    assert ramp(0) == 0 and 0.99 < ramp(1) < 1


def test_checkpoint_roundtrip_and_corruption(tiny_task, fast_trainer, tmp_path):
    m = tg.create_method("dann")
    fast_trainer.fit(m, tiny_task.train_data())
    path = tmp_path / "ckpt.pt"
    fast_trainer.save_checkpoint(m, path)
    assert not list(tmp_path.glob("*.tmp"))  # the temporary file was renamed away
    m2 = tg.create_method("dann")
    m2.setup(tiny_task.train_data(), fast_trainer)
    fast_trainer.load_checkpoint(m2, path)
    for a, b in zip(m.model_.parameters(), m2.model_.parameters()):
        assert torch.equal(a.cpu(), b.cpu())  # m trained on the Trainer's device
    path.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="corrupt"):
        fast_trainer.load_checkpoint(m2, path)
    other = tg.create_method("target_only")
    other.setup(tiny_task.train_data(), fast_trainer)
    fast_trainer.save_checkpoint(other, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="does not match"):
        fast_trainer.load_checkpoint(m2, tmp_path / "other.pt")


def _killed_at(step: int):
    """Make the next fit raise at ``step`` (after the step-10 checkpoint), like a kill."""
    calls = {"n": 0}

    def hook(method):
        real = method.training_step

        def step_fn(batches, progress):
            calls["n"] += 1
            if calls["n"] == step:
                raise KeyboardInterrupt
            return real(batches, progress)

        method.training_step = step_fn
        return method

    return hook


@pytest.mark.parametrize("name,params", [("target_only", {}), ("dann", {"gate": True}),
                                         ("l2sp", {"dtnh": True})])
def test_resume_from_a_killed_training_gives_the_same_model(name, params, tiny_task, tmp_path):
    """Exact resume, with dropout (the discriminators) and DTNH's step counter too."""
    tr = tg.Trainer(iterations=20, batch_size=8, progress=False, select="last",
                    checkpoint_dir=str(tmp_path), checkpoint_every=10)
    with pytest.raises(KeyboardInterrupt):
        tr.fit(_killed_at(15)(tg.create_method(name, **params)), tiny_task.train_data())
    resumed = tg.create_method(name, **params)
    tr.fit(resumed, tiny_task.train_data(), resume=True)
    straight = tg.create_method(name, **params)
    tr.with_options(checkpoint_dir=None).fit(straight, tiny_task.train_data())
    for a, b in zip(resumed.model_.parameters(), straight.model_.parameters()):
        assert torch.allclose(a, b, atol=1e-6)


def test_a_checkpoint_of_another_run_is_refused(tiny_task, tmp_path):
    tr = tg.Trainer(iterations=4, batch_size=8, progress=False, checkpoint_dir=str(tmp_path))
    tr.fit(tg.create_method("target_only"), tiny_task.train_data())
    [ckpt] = list(tmp_path.glob("*.pt"))
    other = tr.with_options(seed=1)  # same method, another seed: another file
    other.fit(tg.create_method("target_only"), tiny_task.train_data(), resume=True)
    assert len(list(tmp_path.glob("*.pt"))) == 2
    # a foreign file under this run's name is refused, not silently loaded
    mine = sorted(set(tmp_path.glob("*.pt")) - {ckpt})[0]
    mine.write_bytes(ckpt.read_bytes())
    with pytest.raises(CheckpointError, match="another run"):
        other.fit(tg.create_method("target_only"), tiny_task.train_data(), resume=True)


def test_checkpoint_identity_depends_on_the_data_content():
    """Two tasks of equal split sizes and indices (only ε differs) must not share a checkpoint."""
    spec = tg.InputSpec(1, 8)
    a = tg.TransferTask("mnist", "uci-digits", eps=0.0, source_size=100, spec=spec)
    b = tg.TransferTask("mnist", "uci-digits", eps=0.9, source_size=100, spec=spec)
    cfg = tg.TrainerConfig(iterations=2, progress=False)
    m = tg.create_method("source_only")

    def ident(task):
        return run_identity(m, cfg, data=data_fingerprint(task.train_data()))

    assert ident(a) != ident(b)
    assert ident(a) == ident(a)
