"""Image folders streamed from disk: the same protocol as in memory, deterministic streams,
augmentation, the decode cache, and the Trainer end to end on a tiny generated folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import transferguard as tg
from transferguard.data import (
    FileSplit,
    LoaderOptions,
    LoaderStream,
    StreamingTask,
    eval_batches,
    open_stream,
)
from transferguard.errors import DataError

CLASSES = ("bike", "cup", "pen")
SPEC = tg.InputSpec(3, 24)


def _write_domain(root: Path, per_class: int, seed: int) -> None:
    """Photos of varying size and aspect, one colour per class (learnable), JPEG and PNG."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for k, name in enumerate(CLASSES):
        d = root / name
        d.mkdir(parents=True)
        for i in range(per_class):
            w, h = int(rng.integers(40, 90)), int(rng.integers(40, 90))
            a = rng.integers(0, 60, (h, w, 3)).astype(np.uint8)
            a[..., k] += 150
            suffix = ".png" if i == 0 else ".jpg"
            Image.fromarray(a).save(d / f"img{i:03d}{suffix}")


@pytest.fixture(scope="module")
def office(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("office")
    _write_domain(root / "amazon", 12, 0)
    _write_domain(root / "webcam", 14, 1)
    return root


def _task(office: Path, **kw) -> StreamingTask:
    kw.setdefault("loader", LoaderOptions(num_workers=0))
    return StreamingTask(f"folder:{office / 'amazon'}", f"folder:{office / 'webcam'}",
                         spec=SPEC, labeled_percent=50, seed=3, **kw)


def test_same_protocol_and_splits_as_the_in_memory_task(office):
    streamed = _task(office, eps_y=0.4)
    in_memory = tg.TransferTask(f"folder:{office / 'amazon'}", f"folder:{office / 'webcam'}",
                                spec=SPEC, labeled_percent=50, seed=3, eps_y=0.4)
    a, b = streamed.train_data(), in_memory.train_data()
    for name in ("source", "target_labeled", "target_unlabeled", "target_val"):
        sa, sb = getattr(a, name), getattr(b, name)
        assert isinstance(sa, FileSplit) and len(sa) == len(sb) > 0
        assert torch.equal(sa.indices, sb.indices)
        if sb.labels is not None:
            assert torch.equal(sa.labels, sb.labels)
    assert torch.equal(streamed.test_split().indices, in_memory.test_split().indices)
    assert torch.equal(streamed.perturbation.labels, in_memory.perturbation.labels)
    assert streamed.summary() == in_memory.summary()
    assert streamed.classes == CLASSES
    assert streamed.config()["stream"]["augment"] is True
    assert streamed.config() != _task(office, loader=LoaderOptions(augment=False)).config()


@pytest.mark.parametrize("settings", [
    {"labeled_per_class": 3, "eps_y": 0.5, "label_noise": "pairflip"},
    {"labeled_percent": 40, "eps_y": 0.6, "label_noise": "permute", "source_size": 30},
])
def test_streamed_splits_and_asymmetric_noise_match_in_memory(office, settings):
    """One split protocol and one label-noise implementation serve both kinds of task."""
    settings = {"labeled_percent": 50, **settings}
    streamed = StreamingTask(f"folder:{office / 'amazon'}", f"folder:{office / 'webcam'}",
                             spec=SPEC, seed=4, loader=LoaderOptions(num_workers=0), **settings)
    in_memory = tg.TransferTask(f"folder:{office / 'amazon'}", f"folder:{office / 'webcam'}",
                                spec=SPEC, seed=4, **settings)
    a, b = streamed.train_data(), in_memory.train_data()
    for name in ("source", "target_labeled", "target_unlabeled", "target_val"):
        assert torch.equal(getattr(a, name).indices, getattr(b, name).indices)
    assert torch.equal(streamed.test_split().indices, in_memory.test_split().indices)
    pa, pb = streamed.perturbation, in_memory.perturbation
    assert torch.equal(pa.labels, pb.labels) and torch.equal(pa.y_mask, pb.y_mask)
    wrong = pa.label_flipped
    assert torch.equal(wrong, pa.y_mask)  # asymmetric noise never keeps the true label
    # every wrong label of a class goes to the same other class
    for c in range(len(CLASSES)):
        assert len(set(pa.labels[wrong & (pa.clean_labels == c)].tolist())) <= 1
    assert streamed.summary() == in_memory.summary()


def test_stream_is_the_same_with_and_without_workers_and_resumes_exactly(office):
    split = _task(office).train_data().source
    assert isinstance(split, FileSplit)
    with_workers = FileSplit(**{**split.__dict__, "options": LoaderOptions(num_workers=2)})
    a = LoaderStream(split, 8, SPEC, seed=5)
    b = open_stream(with_workers, 8, SPEC, seed=5)
    assert isinstance(b, LoaderStream)
    first = [a.next() for _ in range(6)]  # 48 draws: the stream crosses an epoch of 36
    second = [b.next() for _ in range(6)]
    for x, y in zip(first, second):
        assert x.x.shape == (8, 3, 24, 24) and x.x.dtype == torch.float32
        assert torch.equal(x.x, y.x) and torch.equal(x.y, y.y) and torch.equal(x.index, y.index)
    epoch = torch.cat([bt.index for bt in first])[:36]
    assert sorted(epoch.tolist()) == list(range(36))  # every sample once per epoch
    resumed = LoaderStream(split, 8, SPEC, seed=5)
    c = LoaderStream(split, 8, SPEC, seed=5)
    for _ in range(3):
        c.next()
    resumed.load_state_dict(c.state_dict())
    assert torch.equal(resumed.next().x, first[3].x)
    b.close()


def test_training_draws_are_augmented_and_evaluation_draws_are_not(office):
    split = _task(office).train_data().target_labeled
    n = len(split)
    stream = LoaderStream(split, n, SPEC, seed=0)
    e1, e2 = stream.next(), stream.next()  # two epochs
    order1, order2 = e1.index.argsort(), e2.index.argsort()
    assert not torch.equal(e1.x[order1], e2.x[order2])  # other crops and flips
    ev1 = torch.cat([b.x for b in eval_batches(split, SPEC, 4, "cpu")])
    ev2 = torch.cat([b.x for b in eval_batches(split, SPEC, 5, "cpu")])
    assert ev1.shape == (n, 3, 24, 24) and torch.equal(ev1, ev2)
    labels = torch.cat([b.y for b in eval_batches(split, SPEC, 4, "cpu")])
    assert torch.equal(labels, split.labels)
    # the class colour survives the crop: the mean of the class channel is the largest
    means = ev1.mean(dim=(2, 3))
    assert torch.equal(means.argmax(1), split.labels)


def test_decode_cache_is_written_once_and_gives_the_same_pixels(office, tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERGUARD_CACHE", str(tmp_path / "cache"))
    split = _task(office).test_split()
    first = torch.cat([b.x for b in eval_batches(split, SPEC, 8, "cpu")])
    cached = sorted((tmp_path / "cache").rglob("*.jpg"))
    assert len(cached) == len(split)
    stamp = [p.stat().st_mtime_ns for p in cached]
    again = torch.cat([b.x for b in eval_batches(split, SPEC, 8, "cpu")])
    assert torch.equal(first, again)
    assert [p.stat().st_mtime_ns for p in cached] == stamp  # read, not rewritten
    plain = FileSplit(**{**split.__dict__, "options": LoaderOptions(num_workers=0, cache=False)})
    uncached = torch.cat([b.x for b in eval_batches(plain, SPEC, 8, "cpu")])
    assert (uncached - first).abs().mean() < 0.05  # JPEG at quality 90: close, not equal


def test_source_corruption_is_fixed_per_sample(office):
    clean = _task(office, loader=LoaderOptions(num_workers=0, augment=False))
    noisy = _task(office, eps_x=1.0, loader=LoaderOptions(num_workers=0, augment=False))
    assert bool(noisy.perturbation.x_mask.all())
    a = torch.cat([b.x for b in eval_batches(clean.train_data().source, SPEC, 64, "cpu")])
    b = torch.cat([b.x for b in eval_batches(noisy.train_data().source, SPEC, 64, "cpu")])
    b2 = torch.cat([b.x for b in eval_batches(noisy.train_data().source, SPEC, 64, "cpu")])
    assert (a - b).abs().mean() > 0.2 and torch.equal(b, b2)


def test_trainer_runs_a_method_and_its_twin_on_streamed_folders(office):
    task = _task(office, eps=0.2, loader=LoaderOptions(num_workers=2))
    tr = tg.Trainer(iterations=8, batch_size=8, eval_every=4, log_every=4, progress=False)
    method = tg.create_method("dann")
    res = tr.run(method, task)
    in_process = _task(office, eps=0.2, loader=LoaderOptions(num_workers=0))
    again = tr.run(tg.create_method("dann"), in_process)  # workers change nothing
    assert 0.0 <= res.test_accuracy <= 100.0 and res.history == again.history
    assert res.test_accuracy == again.test_accuracy
    assert [r["step"] for r in res.history] == [4.0, 8.0]
    twin = tr.run(method.twin(), in_process)  # source-free: the target labels replace the source
    assert twin.trained and twin.iterations == 8


def test_a_killed_streamed_training_resumes_exactly(office, tmp_path):
    task = _task(office)
    tr = tg.Trainer(iterations=8, batch_size=8, progress=False, select="last",
                    checkpoint_dir=str(tmp_path), checkpoint_every=4)
    killed = tg.create_method("target_only")
    real, calls = killed.training_step, {"n": 0}

    def step(batches, progress):
        calls["n"] += 1
        if calls["n"] == 6:
            raise KeyboardInterrupt
        return real(batches, progress)

    killed.training_step = step
    with pytest.raises(KeyboardInterrupt):
        tr.fit(killed, task.train_data())
    resumed = tg.create_method("target_only")
    tr.fit(resumed, task.train_data(), resume=True)
    straight = tg.create_method("target_only")
    tr.with_options(checkpoint_dir=None).fit(straight, task.train_data())
    for a, b in zip(resumed.model_.parameters(), straight.model_.parameters()):
        assert torch.allclose(a, b, atol=1e-6)


def test_clear_errors(office, tmp_path):
    split = _task(office).train_data().source
    with pytest.raises(DataError, match="streams its"):
        _ = split.images
    with pytest.raises(DataError, match="TransferTask"):
        StreamingTask("mnist", f"folder:{office / 'webcam'}")
    with pytest.raises(DataError, match="does not exist"):
        StreamingTask(f"folder:{tmp_path / 'nope'}", f"folder:{office / 'webcam'}").summary()
    with pytest.raises(DataError, match="num_workers"):
        LoaderOptions(num_workers=-1)
    with pytest.raises(DataError, match="empty"):
        LoaderStream(split.empty("x"), 4, SPEC, 0)
    (tmp_path / "bad" / "cup").mkdir(parents=True)
    (tmp_path / "bad" / "cup" / "broken.jpg").write_bytes(b"not a jpeg")
    from transferguard.data.streaming import FolderIndex

    idx = FolderIndex.scan(tmp_path / "bad")
    bad = FileSplit("bad", idx.files, idx.mtimes, idx.labels, torch.arange(1), SPEC,
                    LoaderOptions(num_workers=0))
    with pytest.raises(DataError, match="could not read image"):
        next(eval_batches(bad, SPEC, 4, "cpu"))


def test_config_key_stream_builds_a_streaming_task(office):
    from transferguard.errors import ConfigError
    from transferguard.experiments import config_from_dict

    base = {"source": f"folder:{office / 'amazon'}", "target": f"folder:{office / 'webcam'}",
            "input_size": 24, "labeled_percent": 50}
    cfg = config_from_dict({"task": {**base, "stream": {"num_workers": 0}}})
    task = cfg.task.build(seed=1)
    assert isinstance(task, StreamingTask) and task.loader.workers == 0
    assert not isinstance(config_from_dict({"task": base}).task.build(), StreamingTask)
    with pytest.raises(ConfigError, match="unknown options"):
        config_from_dict({"task": {**base, "stream": {"workers": 2}}})
    with pytest.raises(ConfigError, match="folder:PATH"):
        config_from_dict({"task": {"source": "mnist", "target": "uci-digits", "stream": {}}})


def test_the_report_rebuilds_a_streamed_source_from_its_record(office):
    import json

    from transferguard.report.html import _source_image, _task_from_config

    task = _task(office, eps=0.5)
    again = _task_from_config(json.loads(json.dumps(task.config())))  # as the store holds it
    assert isinstance(again, StreamingTask) and again.config() == task.config()
    assert torch.equal(again.perturbation.labels, task.perturbation.labels)
    img = _source_image(again, 3)
    assert img.shape == (3, 24, 24) and img.dtype == torch.uint8


def test_grey_spec_streams_one_channel(office):
    grey = tg.InputSpec(1, 16)
    task = StreamingTask(f"folder:{office / 'amazon'}", f"folder:{office / 'webcam'}",
                         spec=grey, eps_x=1.0, loader=LoaderOptions(num_workers=0))
    batch = open_stream(task.train_data().source, 4, grey, seed=0).next()
    assert batch.x.shape == (4, 1, 16, 16)
    test = next(eval_batches(task.test_split(), grey, 100, "cpu"))
    assert test.x.shape == (len(task.test_split()), 1, 16, 16)
