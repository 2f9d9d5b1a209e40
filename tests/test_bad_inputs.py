"""Bad inputs (issue 17, item 5 and the audit's list): each one stops before anything trains
or is recorded, with a message that names the problem. ``BAD_CONFIGS`` + ``BAD_FILES`` +
``BAD_COMMANDS`` + the data/checkpoint cases below are the count reported in
docs/results/reliability.md."""

from __future__ import annotations

import copy

import pytest
import torch

import transferguard as tg
from transferguard.cli import main
from transferguard.errors import CheckpointError, ConfigError, DataError, TransferGuardError
from transferguard.experiments import config_from_dict, load_config

BASE = {"name": "bad", "task": {"source": "mnist", "target": "uci-digits", "input_size": 16},
        "method": {"name": "dann"}, "trainer": {"iterations": 2, "device": "cpu"},
        "seeds": [0]}


def _with(path: str, value):
    cfg = copy.deepcopy(BASE)
    *parents, last = path.split(".")
    node = cfg
    for p in parents:
        node = node[p]
    node[last] = value
    return cfg


BAD_CONFIGS = [  # (where, value, what the message must say)
    ("method.trade_off", "abc", "trade_off must be a number"),
    ("method.trade_off", -1, "trade_off must be >= 0"),
    ("method.trade_off", float("nan"), "must be a finite number"),
    ("method.gate", "no", "quoted string"),
    ("method.gate", "yes", "quoted string"),
    ("method.gate", 3, "gate"),
    ("method.gate", "nosuchweighter", "nosuchweighter"),
    ("method.model_options", {"in_channels": 5}, "come from the task"),
    ("method.model_options", {"depth": 5}, "unknown option"),
    ("method.model", "resnet9000", "unknown model"),
    ("method.name", "danm", "known methods"),
    ("method.bogus", 1, "has no parameters ['bogus']"),
    ("trainer.batch_size", 2.5, "batch_size must be an integer"),
    ("trainer.batch_size", 0, "batch_size must be >= 1"),
    ("trainer.iterations", 0, "iterations must be >= 1"),
    ("trainer.lr", -0.1, "lr must be positive"),
    ("trainer.lr", "fast", "lr must be a number"),
    ("trainer.device", "foo", "is not a device"),
    ("trainer.optimizer", "lbfgs", "optimizer must be one of"),
    ("trainer.momentum", 1.5, "momentum must lie in [0, 1)"),
    ("trainer.progress", "sure", "must be true or false"),
    ("task.channels", 5, "channels must be 1 or 3"),
    ("task.input_size", 12, "does not take 3x12x12"),
    ("task.input_size", "big", "input_size must be an integer"),
    ("task.eps", 2, "eps must lie in [0, 1]"),
    ("task.labeled_percent", 150, "labeled_percent"),
    ("task.source", "nosuchdomain", "unknown domain"),
    ("task.colour", "red", "unknown key"),
    ("seeds", [0, 0], "seeds repeat"),
    ("seeds", [], "at least one seed"),
    ("name", "/abs/path", "not a plain name"),
    ("name", "../../x", "not a plain name"),
    ("name", "", "not a plain name"),
    ("name", "a/b", "not a plain name"),
    ("ntg", "yes", "ntg must be true or false"),
    ("methods", [], "non-empty list"),
]


@pytest.mark.parametrize(("where", "value", "message"), BAD_CONFIGS,
                         ids=[f"{w}={v!r}" for w, v, _ in BAD_CONFIGS])
def test_bad_config_values_stop_with_a_named_error(where, value, message):
    cfg = _with(where, value)
    if where == "methods":
        cfg.pop("method")
    with pytest.raises(TransferGuardError) as err:
        config_from_dict(cfg)
    assert message in str(err.value)


def test_cuda_on_a_machine_without_one_is_refused():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: device cuda is valid here")
    with pytest.raises(ConfigError, match="CUDA device"):
        config_from_dict(_with("trainer.device", "cuda"))


def test_a_missing_pretrained_file_is_refused(tmp_path):
    cfg = _with("method", {"name": "finetune", "pretrained": str(tmp_path / "none.pt")})
    with pytest.raises(ConfigError, match="no file"):
        config_from_dict(cfg)


BAD_FILES = [  # (file name, bytes, message); None: a directory
    ("empty.yaml", b"", "is empty"),
    ("blank.yaml", b"\n# only a comment\n", "is empty"),
    ("binary.yaml", bytes(range(256)), "not a text file"),
    ("nul.yaml", b"name: x\x00\x00", "binary file"),
    ("bad.yaml", b"task: [unclosed", "not valid YAML"),
    ("list.yaml", b"- a\n- b\n", "mapping"),
    ("tag.yaml", b"name: !!python/object/apply:os.system ['true']\n", "not valid YAML"),
    ("dir.yaml", None, "is a directory"),
]


@pytest.mark.parametrize(("name", "content", "message"), BAD_FILES,
                         ids=[n for n, _, _ in BAD_FILES])
def test_bad_config_files_stop_with_a_named_error(tmp_path, name, content, message):
    path = tmp_path / name
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert message in str(err.value)


def _cmd(tmp_path, *extra):
    return ["ntg", "--source", "mnist", "--target", "uci-digits", "--method", "dann",
            "--input-size", "16", "--iterations", "2", "--out", str(tmp_path / "o"), *extra]


BAD_COMMANDS = [  # (extra flags, message)
    (["--set", "trade_off=abc"], "trade_off must be a number"),
    (["--set", "trade_off=-1"], "trade_off must be >= 0"),
    (["--set", "gate='no'"], "quoted string"),
    (["--set", "trade_off"], "--set expects KEY=VALUE"),
    (["--device", "foo"], "is not a device"),
    (["--input-size", "12"], "does not take 3x12x12"),
    (["--channels", "5"], "channels must be 1 or 3"),
    (["--labeled", "-5"], "labeled_percent"),
]


@pytest.mark.parametrize(("extra", "message"), BAD_COMMANDS,
                         ids=[" ".join(e) for e, _ in BAD_COMMANDS])
def test_bad_flags_stop_with_one_error_line_and_record_nothing(tmp_path, capsys, extra,
                                                                message):
    assert main(_cmd(tmp_path, *extra)) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and message in err
    assert not (tmp_path / "o" / "runs.sqlite").exists()  # nothing recorded


def test_show_refuses_a_file_that_is_not_a_run_store(tmp_path, capsys):
    junk = tmp_path / "notes.txt"
    junk.write_text("hello, not a database")
    assert main(["show", str(junk)]) == 2
    assert "not a transferguard run store" in capsys.readouterr().err
    assert main(["show", str(tmp_path / "nothing")]) == 2
    assert "no run store" in capsys.readouterr().err


def test_a_target_too_small_for_a_test_split_is_refused():
    imgs = torch.zeros(2, 1, 16, 16, dtype=torch.uint8)
    dom = tg.Domain("one-each", imgs, torch.tensor([0, 1]), ("a", "b"))
    task = tg.TransferTask(dom, tg.Domain("t", imgs, torch.tensor([0, 1]), ("a", "b")),
                           spec=tg.InputSpec(1, 16))
    with pytest.raises(DataError, match="needs at least 2 images"):
        task.summary()


def test_a_corrupt_checkpoint_is_refused_without_the_unsafe_hint(tmp_path):
    path = tmp_path / "c.pt"
    path.write_bytes(b"\x80\x04garbage")
    with pytest.raises(CheckpointError, match="corrupt") as err:
        tg.Trainer(progress=False).load_checkpoint(tg.create_method("dann"), path)
    assert "will likely succeed" not in str(err.value)
