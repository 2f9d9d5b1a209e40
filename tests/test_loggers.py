"""TensorBoard and MLflow loggers: what a fit reports is what the tracker stores.

Each tracker is an optional extra; its test skips, naming the extra, when it is absent.
"""

from __future__ import annotations

import pytest

import transferguard as tg
from transferguard.engine.loggers import MLflowLogger, TensorBoardLogger, make_loggers


def _fit_with(logger, tiny_task):
    """Train a tiny method and drive the logger's hooks with what the Trainer recorded."""
    trainer = tg.Trainer(iterations=6, batch_size=8, eval_every=3, log_every=2, progress=False)
    method = tg.create_method("target_only")
    result = trainer.fit(method, tiny_task.train_data())
    for row in result.history:
        logger.on_log(trainer, method, int(row["step"]), row)
    assert logger.on_eval(trainer, method, None, 6) is None
    logger.on_fit_end(trainer, method, result)
    return result


def test_tensorboard_logger_writes_the_history(tiny_task, tmp_path):
    pytest.importorskip("tensorboard", reason="the [tensorboard] extra is not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logger = TensorBoardLogger(tmp_path / "tb")
    result = _fit_with(logger, tiny_task)
    (run,) = logger.run_dirs_
    assert run.name.startswith("target_only_T-seed0-") or run.name.startswith("target_only")
    acc = EventAccumulator(str(run))
    acc.Reload()
    loss = [(e.step, e.value) for e in acc.Scalars("loss")]
    expected = [(int(r["step"]), r["loss"]) for r in result.history if "loss" in r]
    assert [s for s, _ in loss] == [s for s, _ in expected] == [2, 4, 6]
    assert all(abs(a - b) < 1e-5 for (_, a), (_, b) in zip(loss, expected))
    assert [e.step for e in acc.Scalars("val_acc")] == [3, 6]
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


def test_make_loggers_is_empty_without_settings():
    assert make_loggers() == []
