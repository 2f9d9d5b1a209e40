"""Shared fixtures: a private cache per test session and tiny tasks that train in seconds."""

from __future__ import annotations

import os

import pytest
import torch

if "OMP_NUM_THREADS" not in os.environ:
    torch.set_num_threads(2)


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory):
    """Generated domains go to a session cache, not the user's."""
    mp = pytest.MonkeyPatch()
    mp.setenv("TRANSFERGUARD_CACHE", str(tmp_path_factory.mktemp("tgcache")))
    yield
    mp.undo()


@pytest.fixture(scope="session")
def tiny_task():
    import transferguard as tg

    task = tg.TransferTask("mnist", "uci-digits", eps=0.3, labeled_percent=20, source_size=400,
                           spec=tg.InputSpec(3, 16), seed=0)
    task.summary()  # build once
    return task


@pytest.fixture()
def fast_trainer():
    import transferguard as tg

    return tg.Trainer(iterations=6, batch_size=8, eval_every=3, log_every=3, progress=False)
