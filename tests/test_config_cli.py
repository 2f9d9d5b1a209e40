"""Experiment configs (validation messages) and the command line."""

from __future__ import annotations

import pytest

import transferguard as tg
from transferguard.cli import main
from transferguard.errors import ConfigError
from transferguard.experiments import config_from_dict, load_config, run_experiment

TINY = {
    "name": "tiny",
    "task": {"source": "mnist", "target": "uci-digits", "eps": 0.3, "labeled_percent": 20,
             "input_size": 16, "source_size": 300},
    "method": {"name": "dann", "trade_off": 0.5},
    "trainer": {"iterations": 4, "batch_size": 8, "progress": False},
    "seeds": [0, 1],
}


def test_unknown_keys_list_the_valid_ones():
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['epsx'\] in task; valid keys"):
        config_from_dict({**TINY, "task": {**TINY["task"], "epsx": 0.1}})
    with pytest.raises(ConfigError, match="at the top level"):
        config_from_dict({**TINY, "iterations": 5})
    with pytest.raises(ConfigError, match=r"trainer.*valid keys.*iterations"):
        config_from_dict({**TINY, "trainer": {"iters": 5}})


def test_bad_values_name_the_key_and_the_expected_kind():
    with pytest.raises(ConfigError, match=r"task\.labeled_percent must be a number"):
        config_from_dict({**TINY, "task": {**TINY["task"], "labeled_percent": "ten"}})
    with pytest.raises(ConfigError, match=r"task.eps_x must lie in \[0, 1\]"):
        config_from_dict({**TINY, "task": {"eps_x": 1.5}})
    with pytest.raises(ConfigError, match="unknown domain 'mnst'"):
        config_from_dict({**TINY, "task": {"source": "mnst"}})
    with pytest.raises(ConfigError, match=r"trainer\.optimizer must be one of"):
        config_from_dict({**TINY, "trainer": {"optimizer": "lbfgs"}})
    with pytest.raises(ConfigError, match="known methods"):
        config_from_dict({**TINY, "method": "danm"})
    with pytest.raises(ConfigError, match="has no parameters"):
        config_from_dict({**TINY, "method": {"name": "dann", "tradeoff": 1}})
    with pytest.raises(ConfigError, match="known models"):
        config_from_dict({**TINY, "method": {"name": "dann", "model": "vgg"}})
    with pytest.raises(ConfigError, match="not both"):
        config_from_dict({**TINY, "methods": ["dann"]})
    with pytest.raises(ConfigError, match=r"gate_options: unknown option\(s\) \['lamda'\]"):
        config_from_dict({**TINY, "method": {"name": "dann", "gate": True,
                                             "gate_options": {"lamda": 1}}})
    with pytest.raises(ConfigError, match=r"model_options: unknown option\(s\) \['widht'\]"):
        config_from_dict({**TINY, "method": {"name": "dann", "model_options": {"widht": 2}}})
    with pytest.raises(ConfigError, match="seeds repeat"):
        config_from_dict({**TINY, "seeds": [0, 0, 0]})
    with pytest.raises(ConfigError, match="log_every must be >= 1"):
        config_from_dict({**TINY, "trainer": {"log_every": 0}})


def test_yaml_config_end_to_end_and_resume(tmp_path, capsys):
    import yaml

    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(TINY))
    cfg = load_config(path)
    assert cfg.methods == [{"name": "dann", "trade_off": 0.5}]
    out = tmp_path / "out"
    res = run_experiment(cfg, out)
    assert res.trained == 4 and len(res.ntg) == 1 and res.ntg[0].seeds == [0, 1]
    assert (out / "results-tiny.md").exists() and (out / "results-tiny.json").exists()
    assert main(["run", str(path), "--out", str(out), "--resume", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "0 runs trained, 4 resumed" in printed and "dann(trade_off=0.5)_T" in printed
    assert main(["show", str(out)]) == 0
    assert "finished" in capsys.readouterr().out


def test_bad_yaml_file(tmp_path):
    (tmp_path / "bad.yaml").write_text("task: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(tmp_path / "bad.yaml")
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")


def test_cli_domains_lists_the_builtins(capsys):
    assert main(["domains"]) == 0
    out = capsys.readouterr().out
    for name in ("mnist", "uci-digits", "mnist-m", "syndigits"):
        assert name in out


def test_cli_errors_are_one_clear_line(capsys, tmp_path):
    assert main(["ntg", "--source", "mnist", "--target", "uci-digits", "--method", "danm",
                 "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "known methods" in err
    assert main(["show", str(tmp_path / "nothing")]) == 2
    assert "no run store" in capsys.readouterr().err
    assert main(["ntg", "--source", "mnist", "--target", "uci-digits", "--method", "dann",
                 "--eps", "2", "--out", str(tmp_path)]) == 2
    assert "eps must lie in [0, 1]" in capsys.readouterr().err


def test_cli_ntg_runs(tmp_path, capsys):
    code = main(["ntg", "--source", "mnist", "--target", "uci-digits", "--method", "joint",
                 "--labeled", "20", "--seeds", "0", "--iterations", "3", "--batch-size", "8",
                 "--input-size", "16", "--set", "model=lenet", "--out", str(tmp_path)])
    assert code == 0
    out = capsys.readouterr().out
    assert "joint_T" in out and "NTG" in out and "one seed" in out


def test_public_api_lists():
    assert "dann" in tg.list_methods() and "lenet" in tg.list_models()


TINY_FLAGS = ["--source", "mnist", "--target", "uci-digits", "--labeled", "20",
              "--iterations", "3", "--batch-size", "8", "--input-size", "16"]


def test_cli_ntg_with_the_gate(tmp_path, capsys):
    assert main(["ntg", *TINY_FLAGS, "--method", "dan", "--gate", "--eps", "0.5",
                 "--seeds", "0", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "dan+gate" in out and "dan_T" in out


def test_cli_harmful_lists_samples_and_draws_them(tmp_path, capsys):
    grid = tmp_path / "harmful.png"
    assert main(["harmful", *TINY_FLAGS, "--eps-y", "0.5", "--eps-x", "0", "--top", "5",
                 "--grid", str(grid)]) == 0
    out = capsys.readouterr().out
    assert "AUROC" in out and "small-loss baseline" in out and "clean label" in out
    assert grid.exists() and grid.stat().st_size > 1000


def test_cli_cutpoint_table_and_plot(tmp_path, capsys):
    plot = tmp_path / "cut.png"
    assert main(["cutpoint", *TINY_FLAGS, "--seeds", "0", "--pretrain-iterations", "3",
                 "--plot", str(plot), "--out", str(tmp_path / "cp")]) == 0
    out = capsys.readouterr().out
    assert "cutting point" in out and "(scratch)" in out and plot.exists()
    assert len(list((tmp_path / "cp" / "pretrained").glob("*.pt"))) == 1  # cached source
