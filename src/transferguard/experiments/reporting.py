"""The HTML report of a runs directory: read every run store under it, pair each run with its
target-only twin the way the runner keys runs, and render the page (:mod:`..report.html`)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..errors import DataError
from ..methods import create_method
from ..report.html import NTGRow, SafeRow, ntg_rows, render_report
from ..utils import atomic_write
from .runner import SOURCE_FIELDS
from .safe_records import safe_groups
from .store import RunRecord, RunStore, SafeRecord, config_key


def find_stores(runs_dir: str | os.PathLike[str]) -> list[Path]:
    """``runs.sqlite`` files: the one given, or every one under a directory."""
    path = Path(runs_dir)
    if path.is_file() and path.suffix in (".sqlite", ".db"):
        return [path]
    if not path.is_dir():
        raise DataError(f"{str(path)!r} is not a directory or a run store; give the output "
                        "directory of `transferguard run` (it holds runs.sqlite).")
    stores = sorted(path.rglob("runs.sqlite"))
    if not stores:
        raise DataError(f"no run store (runs.sqlite) under {str(path)!r}; give the output "
                        "directory of `transferguard run` or of a sweep.")
    return stores


def load_records(runs_dir: str | os.PathLike[str]) -> list[RunRecord]:
    """Every run record of every store under ``runs_dir`` (a key seen twice counts once)."""
    seen: dict[str, RunRecord] = {}
    for db in find_stores(runs_dir):
        for r in RunStore(db).records():
            seen.setdefault(r.key, r)
    return list(seen.values())


def load_safe_records(runs_dir: str | os.PathLike[str]) -> list[SafeRecord]:
    """Safe mode's recorded decisions in every store under ``runs_dir`` (a key seen twice
    counts once)."""
    seen: dict[str, SafeRecord] = {}
    for db in find_stores(runs_dir):
        for r in RunStore(db).safe_records():
            seen.setdefault(r.key, r)
    return list(seen.values())


def safe_table_rows(records: list[SafeRecord]) -> list[SafeRow]:
    """The safe-mode rows the report shows: the decisions grouped over seeds per
    experiment, scenario, rule and method."""
    return [SafeRow(exp, task, result, [], decisions)
            for exp, task, result, decisions in safe_groups(records)]


def twin_key(config: dict[str, Any]) -> str | None:
    """The store key of the target-only twin of the run with ``config``: the method is rebuilt
    from its recorded parameters and asked for its twin (a gated method's twin has no gate,
    a regulariser's may be plain fine-tuning), then keyed exactly as the runner keys runs.
    ``None`` when the method can not be rebuilt here (unregistered, parameters renamed)."""
    params = dict(config.get("method", {}))
    name = params.pop("name", None)
    if name is None or "task" not in config:
        return None
    try:
        twin = create_method(name, **params).twin()
    except Exception:  # a record of another version: no twin key, the run shows unpaired
        return None
    task = {k: v for k, v in config["task"].items() if k not in SOURCE_FIELDS}
    method = json.loads(json.dumps({"name": twin.name, **twin.get_params()}, default=str))
    return config_key({"method": method, "trainer": config["trainer"], "task": task})


def ntg_table_rows(records: list[RunRecord]) -> list[NTGRow]:
    """The NTG rows the report shows for ``records``."""
    return ntg_rows(records, twin_key)


def write_report(runs_dir: str | os.PathLike[str], out: str | os.PathLike[str],
                 title: str | None = None) -> Path:
    """Read every run store under ``runs_dir`` and write the HTML report to ``out``."""
    records = load_records(runs_dir)
    root = Path(runs_dir)
    page = render_report(records, title or f"transferguard report: {root.resolve().name}",
                         root if root.is_dir() else root.parent, twin_key,
                         safe_table_rows(load_safe_records(runs_dir)))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(out, "w") as fh:
        fh.write(page)
    return out
