"""The run store: every run's config, status, metrics, timings and error text, in SQLite.

One file (``runs.sqlite``) per output directory, standard library only. Each write is one
transaction, so a process killed at any moment leaves either the previous row or the new
one, never half of one. A run is keyed by the SHA-256 of its canonical config (JSON with
sorted keys): the same config is the same run. With ``resume``, finished runs are skipped and
anything else (``running`` rows left by a killed process, ``failed`` rows) is redone.
Re-running a finished run (without ``resume``) never loses its result: the finished row
stays as it is until the new run finishes and replaces it; if the new run fails, the row
keeps the old metrics and records the failure in ``error``.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._version import __version__

STATUSES = ("running", "finished", "failed")
#: bump when training semantics change, so stale results are not resumed as if current
RESULTS_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    key         TEXT PRIMARY KEY,
    experiment  TEXT NOT NULL,
    label       TEXT NOT NULL,
    config      TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('running', 'finished', 'failed')),
    metrics     TEXT,
    error       TEXT,
    started_at  REAL NOT NULL,
    finished_at REAL,
    seconds     REAL,
    host        TEXT,
    pid         INTEGER,
    version     TEXT
);
CREATE INDEX IF NOT EXISTS runs_experiment ON runs (experiment);
"""


def config_key(config: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of ``config`` plus the results version."""
    blob = json.dumps({"config": config, "results_version": RESULTS_VERSION}, sort_keys=True,
                      default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


@dataclass(frozen=True)
class RunRecord:
    key: str
    experiment: str
    label: str
    config: dict[str, Any]
    status: str
    metrics: dict[str, Any] | None
    error: str | None
    started_at: float
    finished_at: float | None
    seconds: float | None
    host: str | None
    pid: int | None
    version: str | None


class RunStore:
    """``RunStore(dir_or_file)``; a directory gets ``runs.sqlite`` inside it."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        p = Path(path)
        if p.suffix not in (".sqlite", ".db"):
            p.mkdir(parents=True, exist_ok=True)
            p = p / "runs.sqlite"
        else:
            p.parent.mkdir(parents=True, exist_ok=True)
        self.path = p
        with self._connect() as con:
            con.executescript(_SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        con = sqlite3.connect(self.path, timeout=60)
        try:
            con.execute("PRAGMA journal_mode=WAL")
            with con:  # one transaction: committed on success, rolled back on error
                yield con
        finally:
            con.close()

    # ------------------------------------------------------------------ writes
    def start(self, key: str, experiment: str, label: str, config: dict[str, Any]) -> None:
        """Record a run as running; a finished row is left untouched (see the module doc)."""
        with self._connect() as con:
            con.execute(
                "INSERT INTO runs (key, experiment, label, config, status, metrics, "
                "error, started_at, finished_at, seconds, host, pid, version) "
                "VALUES (?, ?, ?, ?, 'running', NULL, NULL, ?, NULL, NULL, ?, ?, ?) "
                "ON CONFLICT(key) DO UPDATE SET status='running', metrics=NULL, error=NULL, "
                "started_at=excluded.started_at, finished_at=NULL, seconds=NULL, "
                "host=excluded.host, pid=excluded.pid, version=excluded.version "
                "WHERE runs.status != 'finished'",
                (key, experiment, label, json.dumps(config, sort_keys=True, default=str),
                 time.time(), socket.gethostname(), os.getpid(), __version__),
            )

    def finish(self, key: str, metrics: dict[str, Any], seconds: float) -> None:
        with self._connect() as con:
            con.execute(
                "UPDATE runs SET status='finished', metrics=?, error=NULL, finished_at=?, "
                "seconds=? WHERE key=?",
                (json.dumps(metrics, default=_json_default), time.time(), seconds, key),
            )

    def fail(self, key: str, error: str, seconds: float) -> None:
        with self._connect() as con:
            con.execute(
                "UPDATE runs SET status='failed', error=?, finished_at=?, seconds=? "
                "WHERE key=? AND status != 'finished'",
                (error, time.time(), seconds, key),
            )
            con.execute(  # a failed re-run of a finished run: keep the result, note the error
                "UPDATE runs SET error=? WHERE key=? AND status = 'finished'",
                (f"a later re-run failed: {error}", key),
            )

    # ------------------------------------------------------------------ reads
    def get(self, key: str) -> RunRecord | None:
        with self._connect() as con:
            row = con.execute("SELECT * FROM runs WHERE key=?", (key,)).fetchone()
        return _record(row) if row else None

    def records(self, experiment: str | None = None, status: str | None = None) -> list[RunRecord]:
        query, args = "SELECT * FROM runs", []
        conds = []
        if experiment is not None:
            conds.append("experiment=?")
            args.append(experiment)
        if status is not None:
            conds.append("status=?")
            args.append(status)
        if conds:
            query += " WHERE " + " AND ".join(conds)
        query += " ORDER BY started_at"
        with self._connect() as con:
            return [_record(r) for r in con.execute(query, args).fetchall()]

    # ------------------------------------------------------------------ the one entry point
    def run(self, config: dict[str, Any], fn: Callable[[], dict[str, Any]], *,
            experiment: str = "default", label: str = "", resume: bool = False
            ) -> tuple[dict[str, Any], bool]:
        """Run ``fn`` for ``config`` and record it; return (metrics, reused).

        With ``resume`` a finished run with the same config is not run again: its stored
        metrics come back with ``reused=True``. A failure is recorded and re-raised.
        """
        key = config_key(config)
        if resume:
            old = self.get(key)
            if old is not None and old.status == "finished" and old.metrics is not None:
                return old.metrics, True
        self.start(key, experiment, label, config)
        t0 = time.perf_counter()
        try:
            metrics = fn()
        except BaseException as exc:
            self.fail(key, f"{type(exc).__name__}: {exc}", time.perf_counter() - t0)
            raise
        self.finish(key, metrics, time.perf_counter() - t0)
        return metrics, False


def _record(row: tuple[Any, ...]) -> RunRecord:
    (key, experiment, label, config, status, metrics, error, started, finished, seconds, host,
     pid, version) = row
    return RunRecord(key, experiment, label, json.loads(config), status,
                     json.loads(metrics) if metrics else None, error, started, finished, seconds,
                     host, pid, version)


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    return str(obj)
