"""TensorBoard and MLflow loggers: what a fit reports is what the tracker stores.

Each tracker is an optional extra; its test skips, naming the extra, when it is absent.
"""

from __future__ import annotations

import pytest

import transferguard as tg
from transferguard.engine.loggers import MLflowLogger, TensorBoardLogger, make_loggers


def _fit_with(logger, tiny_task):
    """Train a tiny method with the logger as a Trainer callback."""
    trainer = tg.Trainer(iterations=6, batch_size=8, eval_every=3, log_every=2, progress=False,
                         callbacks=[logger])
    return trainer.fit(tg.create_method("target_only"), tiny_task.train_data())


def test_tensorboard_logger_writes_the_history(tiny_task, tmp_path):
    pytest.importorskip("tensorboard", reason="the [tensorboard] extra is not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logger = TensorBoardLogger(tmp_path / "tb")
    result = _fit_with(logger, tiny_task)
    (run,) = logger.run_dirs_
    assert run.name.startswith("target_only-seed0-")
    acc = EventAccumulator(str(run))
    acc.Reload()
    loss = [(e.step, e.value) for e in acc.Scalars("loss")]
    expected = [(int(r["step"]), r["loss"]) for r in result.history if "loss" in r]
    assert [s for s, _ in loss] == [s for s, _ in expected] == [2, 4, 6]
    assert all(abs(a - b) < 1e-5 for (_, a), (_, b) in zip(loss, expected))
    assert [e.step for e in acc.Scalars("val_acc")] == [3, 6]
    assert [e.step for e in acc.Scalars("lr")] == [2, 4, 6]
    assert acc.Scalars("final/val_accuracy")[0].value == pytest.approx(result.val_accuracy)


def test_mlflow_logger_writes_a_local_file_store(tiny_task, tmp_path):
    pytest.importorskip("mlflow", reason="the [mlflow] extra is not installed")
    logger = MLflowLogger(tmp_path / "mlruns", experiment="tiny")
    result = _fit_with(logger, tiny_task)
    (run_id,) = logger.run_ids_
    client = logger.client_
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["trainer.iterations"] == "6"
    assert run.data.params["method.name"] == "target_only"
    history = client.get_metric_history(run_id, "loss")
    assert [m.step for m in history] == [2, 4, 6]
    expected = [r["loss"] for r in result.history if "loss" in r]
    assert [m.value for m in history] == pytest.approx(expected)
    assert run.data.metrics["final.val_accuracy"] == pytest.approx(result.val_accuracy)
    assert (tmp_path / "mlruns").is_dir()


def test_make_loggers_is_empty_without_settings_and_names_unknown_ones():
    from transferguard.errors import ConfigError

    assert make_loggers() == [] and make_loggers({"tensorboard": None}) == []
    with pytest.raises(ConfigError, match="unknown logger"):
        make_loggers({"wandb": "x"})


def test_config_key_and_cli_flag_switch_the_loggers_on(tmp_path):
    pytest.importorskip("tensorboard", reason="the [tensorboard] extra is not installed")
    from transferguard.cli import main
    from transferguard.errors import ConfigError
    from transferguard.experiments import config_from_dict

    with pytest.raises(ConfigError, match="unknown logger"):
        config_from_dict({"loggers": {"wandb": "x"}})
    config = tmp_path / "exp.yaml"
    config.write_text(
        "name: tiny\n"
        "task: {source: mnist, target: uci-digits, labeled_percent: 20, input_size: 16,"
        " source_size: 100}\n"
        "method: target_only\nntg: false\nseeds: [0]\n"
        "trainer: {iterations: 4, batch_size: 8, log_every: 2, eval_every: 2}\n"
        "loggers: {tensorboard: tb}\n")
    out = tmp_path / "out"
    assert main(["run", str(config), "--out", str(out), "--quiet"]) == 0
    assert list((out / "tb").glob("target_only-seed0-*/events.out.tfevents.*"))
    flag = tmp_path / "flag-tb"
    assert main(["run", str(config), "--out", str(tmp_path / "out2"), "--quiet",
                 "--tensorboard", str(flag)]) == 0
    assert list(flag.glob("target_only-seed0-*/events.out.tfevents.*"))
