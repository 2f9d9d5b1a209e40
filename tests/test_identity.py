"""One run identity: the run store, training checkpoints and the pre-training cache agree on
what makes two trainings the same run."""

from __future__ import annotations

import json

import pytest

import transferguard as tg
from transferguard.engine.checkpoint import read_checkpoint
from transferguard.experiments import pretrained_checkpoint
from transferguard.experiments.runner import run_config
from transferguard.identity import (
    NON_SEMANTIC_TRAINER,
    identity_digest,
    method_identity,
    trainer_identity,
)
from transferguard.methods import pretrain_source


def _keys(tmp_path, task, **trainer_options):
    """The three identities of one (method, trainer) choice: store key, checkpoint
    identity, pre-trained network file name."""
    trainer = tg.Trainer(iterations=2, batch_size=8, progress=False, **trainer_options)
    method = tg.create_method("target_only")
    store = identity_digest(run_config(method, task, trainer.config))
    ckdir = tmp_path / f"ck-{len(list(tmp_path.iterdir()))}"
    trainer.with_options(checkpoint_dir=str(ckdir)).fit(method, task.train_data())
    (ck,) = ckdir.glob("*.pt")
    state = read_checkpoint(ck)
    checkpoint = json.loads(state["identity"])
    pre = pretrained_checkpoint(task, trainer, tmp_path / "pre", iterations=1)
    return store, checkpoint, pre.rsplit("-", 1)[-1], trainer.config, method


def test_the_three_identities_share_one_trainer_and_method_part(tiny_task, tmp_path):
    _, checkpoint, _, cfg, method = _keys(tmp_path, tiny_task)
    assert checkpoint["trainer"] == trainer_identity(cfg)
    assert checkpoint["method"] == method_identity(method)
    assert run_config(method, tiny_task, cfg)["trainer"] == trainer_identity(cfg)
    assert not set(NON_SEMANTIC_TRAINER) & set(trainer_identity(cfg))


def test_non_semantic_options_change_none_and_semantic_ones_change_all(tiny_task, tmp_path):
    base = _keys(tmp_path, tiny_task)
    cosmetic = _keys(tmp_path, tiny_task, log_every=1, eval_batch_size=7, flush_denormal=False)
    other_lr = _keys(tmp_path, tiny_task, lr=0.02)
    assert cosmetic[0] == base[0] and cosmetic[1] == base[1] and cosmetic[2] == base[2]
    assert other_lr[0] != base[0] and other_lr[1] != base[1] and other_lr[2] != base[2]


@pytest.mark.parametrize("field", ["lr", "iterations"])
def test_trainer_identity_keeps_every_semantic_field(field):
    assert field in trainer_identity(tg.TrainerConfig())


def test_pretrain_source_returns_a_cpu_state(tiny_task):
    state = pretrain_source(tiny_task.train_data(), tg.Trainer(iterations=1, batch_size=8,
                                                               progress=False))
    assert all(v.device.type == "cpu" for v in state.values())
