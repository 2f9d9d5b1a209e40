"""Experiments: configs, the run store, the runner, the HTML report of a runs directory and
the demo."""

from .active import ActiveResult, ActiveRound, run_active
from .commands import HarmfulFound, find_harmful, run_cutpoint
from .config import ExperimentConfig, config_from_dict, load_config
from .diagnosis import DiagnoseResult, Diagnostics, diagnose, measure_diagnostics
from .explain import ANALYSES, ExplainResult, explain, explain_config
from .impact import ImpactFound, analyse_impact
from .matrix import run_matrix, stored_matrix_run
from .pretrain import pretrained_checkpoint
from .reporting import load_records, ntg_table_rows, twin_key, write_report
from .runner import ExperimentResult, Runner, run_experiment, runs_table
from .store import RunRecord, RunStore, config_key
from .sweep import SweepConfig, SweepResult, load_sweep, run_sweep, sweep_from_dict

__all__ = [
    "ANALYSES",
    "ActiveResult",
    "ActiveRound",
    "DiagnoseResult",
    "Diagnostics",
    "ExperimentConfig",
    "ExperimentResult",
    "ExplainResult",
    "HarmfulFound",
    "ImpactFound",
    "RunRecord",
    "RunStore",
    "Runner",
    "SweepConfig",
    "SweepResult",
    "analyse_impact",
    "config_from_dict",
    "config_key",
    "diagnose",
    "explain",
    "explain_config",
    "find_harmful",
    "load_config",
    "load_records",
    "load_sweep",
    "measure_diagnostics",
    "ntg_table_rows",
    "pretrained_checkpoint",
    "run_active",
    "run_cutpoint",
    "run_experiment",
    "run_matrix",
    "run_sweep",
    "runs_table",
    "stored_matrix_run",
    "sweep_from_dict",
    "twin_key",
    "write_report",
]
