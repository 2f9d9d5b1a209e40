"""The run store: every run's config, status, metrics, timings and error text, in SQLite.

One file (``runs.sqlite``) per output directory, standard library only, in WAL mode with a
busy timeout, each write one short transaction: a process killed at any moment leaves either
the previous row or the new one, never half of one, and several processes can share a store.
A run is keyed by the SHA-256 of its canonical config (JSON with sorted keys): the same config
is the same run.

A run is *claimed* before it trains (:meth:`RunStore.claim`, one ``BEGIN IMMEDIATE``
transaction): a second process that reaches a run another live process is training waits for
its result instead of training it again. With ``resume``, finished runs are skipped, runs
left ``running`` by a killed process and runs interrupted by Ctrl-C or SIGTERM are redone,
and runs that *failed* (an error in the run itself, which would fail again) are skipped
unless ``retry_failed``. Without ``resume`` a finished run is trained again, unless it
finished after ``since`` (the caller's start: a concurrent invocation's fresh result) or
``reuse`` is set (a source-free twin, shared by every method of a target).
Re-running a finished run never loses its result: the finished row stays as it is until the
new run finishes and replaces it; if the new run fails, the row keeps the old metrics and
records the failure in ``error``.

A second table, ``safe``, holds safe mode's decisions (:class:`SafeRecord`): they train
nothing, so they are not runs; each names the method run and the twin run it chose between
(:mod:`.safe_records`).
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
from ..errors import TransferGuardError

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
CREATE TABLE IF NOT EXISTS digests (path TEXT PRIMARY KEY, stamp TEXT NOT NULL,
                                    digest TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS safe (key TEXT PRIMARY KEY, experiment TEXT NOT NULL,
                                 label TEXT NOT NULL, method_key TEXT NOT NULL,
                                 twin_key TEXT NOT NULL, inputs TEXT NOT NULL,
                                 result TEXT NOT NULL, recorded_at REAL NOT NULL);
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


@dataclass(frozen=True)
class SafeRecord:
    """Safe mode's decision for one (method run, twin run, rule): no training of its own, so
    not a run; ``inputs`` stamps the two runs it was computed from (their ``finished_at``),
    so that a decision is reused only while those runs stay as they were."""

    key: str
    experiment: str
    label: str
    method_key: str
    twin_key: str
    inputs: str
    result: dict[str, Any]
    recorded_at: float


def safe_key(method_key: str, twin_key: str, rule: dict[str, Any]) -> str:
    """The key of safe mode's decision between two runs under one rule (its parameters)."""
    return config_key({"safe": rule, "method": method_key, "twin": twin_key})


#: the error text of a run stopped by Ctrl-C or SIGTERM (redone by ``resume``, not skipped)
INTERRUPTED = "interrupted"
#: a ``running`` row of another host older than this is taken as abandoned (no pid check there)
STALE_REMOTE_SECONDS = 24 * 3600
_SQLITE_MAGIC = b"SQLite format 3\x00"


class RunFailedBefore(TransferGuardError):
    """``resume`` met a run that failed in an earlier invocation (it is not retried)."""


def _alive(host: str | None, pid: int | None, started: float) -> bool:
    """Whether the process that claimed a row may still be training it."""
    if host != socket.gethostname():
        return time.time() - started < STALE_REMOTE_SECONDS
    if not pid or pid == os.getpid():
        return False  # our own stale claim (this process is not training it twice)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_interrupted(rec: RunRecord) -> bool:
    return rec.status == "failed" and (rec.error or "").startswith(INTERRUPTED)


class RunStore:
    """``RunStore(dir_or_file)``; a directory gets ``runs.sqlite`` inside it."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        p = Path(path)
        if p.suffix not in (".sqlite", ".db") and not p.is_file():
            p.mkdir(parents=True, exist_ok=True)
            p = p / "runs.sqlite"
        else:
            p.parent.mkdir(parents=True, exist_ok=True)
        self.path = p
        if p.is_dir():
            raise TransferGuardError(f"{p} is a directory, not a run store file.")
        if p.exists() and p.stat().st_size > 0:
            with open(p, "rb") as fh:
                if fh.read(16) != _SQLITE_MAGIC:
                    raise TransferGuardError(
                        f"{p} is not a transferguard run store (not an SQLite database); give "
                        "the --out directory of a run, or move the file away.")
        try:
            con = sqlite3.connect(self.path, timeout=60)
            try:
                con.execute("PRAGMA busy_timeout=60000")
                con.execute("PRAGMA journal_mode=WAL")
                con.executescript(_SCHEMA)
            finally:
                con.close()
        except sqlite3.DatabaseError as exc:
            raise TransferGuardError(f"{p} is not a usable run store ({exc}); give the --out "
                                     "directory of a run, or move the file away.") from None

    @contextmanager
    def _connect(self, immediate: bool = False) -> Iterator[sqlite3.Connection]:
        """One short transaction: committed on success, rolled back on error.
        ``immediate`` takes the write lock at once (read-then-write without a race)."""
        con = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        try:
            con.execute("PRAGMA busy_timeout=60000")
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")
        finally:
            con.close()

    # ------------------------------------------------------------------ writes
    def start(self, key: str, experiment: str, label: str, config: dict[str, Any]) -> None:
        """Record a run as running; a finished row keeps its result (see the module doc)."""
        with self._connect() as con:
            self._claim_row(con, key, experiment, label, config)

    @staticmethod
    def _claim_row(con: sqlite3.Connection, key: str, experiment: str, label: str,
                   config: dict[str, Any]) -> None:
        con.execute(
            "INSERT INTO runs (key, experiment, label, config, status, metrics, "
            "error, started_at, finished_at, seconds, host, pid, version) "
            "VALUES (?, ?, ?, ?, 'running', NULL, NULL, ?, NULL, NULL, ?, ?, ?) "
            "ON CONFLICT(key) DO UPDATE SET "
            "status=CASE WHEN runs.status='finished' THEN 'finished' ELSE 'running' END, "
            "metrics=CASE WHEN runs.status='finished' THEN runs.metrics ELSE NULL END, "
            "finished_at=CASE WHEN runs.status='finished' THEN runs.finished_at ELSE NULL END, "
            "seconds=CASE WHEN runs.status='finished' THEN runs.seconds ELSE NULL END, "
            "error=NULL, started_at=excluded.started_at, host=excluded.host, "
            "pid=excluded.pid, version=excluded.version",
            (key, experiment, label, json.dumps(config, sort_keys=True, default=str),
             time.time(), socket.gethostname(), os.getpid(), __version__),
        )

    def claim(self, key: str, experiment: str, label: str, config: dict[str, Any], *,
              resume: bool = False, retry_failed: bool = False, reuse: bool = False,
              since: float | None = None) -> tuple[str, RunRecord | None]:
        """Decide, in one locked transaction, what to do with a run: ``("train", None)`` (the
        run is now ours), ``("reuse", rec)``, ``("busy", rec)`` (another live process is
        training it: wait) or ``("failed", rec)`` (failed before; skipped by ``resume``)."""
        with self._connect(immediate=True) as con:
            row = con.execute("SELECT * FROM runs WHERE key=?", (key,)).fetchone()
            rec = _record(row) if row else None
            if rec is not None:
                rerun = rec.status == "finished" and rec.error is None and \
                    rec.finished_at is not None and rec.started_at > rec.finished_at
                if (rec.status == "running" or rerun) and \
                        _alive(rec.host, rec.pid, rec.started_at):
                    return "busy", rec
                if rec.status == "finished" and rec.metrics is not None and (
                        resume or reuse or (since is not None and rec.finished_at is not None
                                            and rec.finished_at >= since)):
                    return "reuse", rec
                if rec.status == "failed" and resume and not retry_failed and \
                        not is_interrupted(rec):
                    return "failed", rec
            self._claim_row(con, key, experiment, label, config)
        return "train", None

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

    def record_safe(self, rec: SafeRecord) -> None:
        """Record (or replace) safe mode's decision between two recorded runs."""
        with self._connect() as con:
            con.execute(
                "INSERT OR REPLACE INTO safe (key, experiment, label, method_key, twin_key, "
                "inputs, result, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (rec.key, rec.experiment, rec.label, rec.method_key, rec.twin_key, rec.inputs,
                 json.dumps(rec.result, default=_json_default), rec.recorded_at))

    # ------------------------------------------------------------------ content digests
    def content_digest(self, path: str | os.PathLike[str]) -> str:
        """A digest of a file's or a folder tree's contents, for run keys.

        Cheap when nothing changed: the sizes and modification times of the files are
        compared with the last time (kept in the store); only when they differ are the
        contents hashed again.
        """
        p = Path(path).expanduser().resolve()
        files = _files(p)
        stamp = hashlib.sha256(json.dumps(
            [[str(f.relative_to(p)) if f != p else "", s.st_size, s.st_mtime_ns]
             for f, s in files]).encode()).hexdigest()
        with self._connect() as con:
            row = con.execute("SELECT stamp, digest FROM digests WHERE path=?",
                              (str(p),)).fetchone()
        if row and row[0] == stamp:
            return row[1]
        digest = path_digest(p)
        with self._connect() as con:
            con.execute("INSERT OR REPLACE INTO digests (path, stamp, digest) VALUES (?, ?, ?)",
                        (str(p), stamp, digest))
        return digest

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

    def safe_records(self, experiment: str | None = None) -> list[SafeRecord]:
        """Safe mode's recorded decisions (:meth:`record_safe`), oldest first."""
        query, args = "SELECT * FROM safe", []
        if experiment is not None:
            query, args = query + " WHERE experiment=?", [experiment]
        with self._connect() as con:
            rows = con.execute(query + " ORDER BY recorded_at", args).fetchall()
        return [SafeRecord(*r[:6], json.loads(r[6]), r[7]) for r in rows]

    def get_safe(self, key: str) -> SafeRecord | None:
        with self._connect() as con:
            row = con.execute("SELECT * FROM safe WHERE key=?", (key,)).fetchone()
        return SafeRecord(*row[:6], json.loads(row[6]), row[7]) if row else None

    # ------------------------------------------------------------------ the one entry point
    def run(self, config: dict[str, Any], fn: Callable[[], dict[str, Any]], *,
            experiment: str = "default", label: str = "", resume: bool = False,
            retry_failed: bool = False, reuse: bool = False, since: float | None = None,
            poll: float = 1.0) -> tuple[dict[str, Any], bool]:
        """Run ``fn`` for ``config`` and record it; return (metrics, reused).

        See the module doc for ``resume``, ``retry_failed``, ``reuse`` and ``since``. While
        another live process trains the same run, this waits (``poll`` seconds apart) and
        returns its result. A failure is recorded and re-raised; a failure recorded earlier
        and skipped raises :class:`RunFailedBefore`.
        """
        key = config_key(config)
        while True:
            what, rec = self.claim(key, experiment, label, config, resume=resume,
                                   retry_failed=retry_failed, reuse=reuse, since=since)
            if what == "busy":
                # what the other process finishes from now on is fresh: take it
                since = min(since, time.time()) if since is not None else time.time()
                time.sleep(poll)
                continue
            if what == "reuse":
                return rec.metrics, True
            if what == "failed":
                raise RunFailedBefore(
                    f"{label or key[:12]} failed in an earlier run ({rec.error}); it is "
                    "skipped: pass --retry-failed (retry_failed=True) to train it again.")
            break  # ours now (also when the process we waited for failed or died)
        t0 = time.perf_counter()
        try:
            metrics = fn()
        except KeyboardInterrupt as exc:
            self.fail(key, f"{INTERRUPTED} ({type(exc).__name__}: {exc})",
                      time.perf_counter() - t0)
            raise
        except BaseException as exc:
            self.fail(key, f"{type(exc).__name__}: {exc}", time.perf_counter() - t0)
            raise
        self.finish(key, metrics, time.perf_counter() - t0)
        return metrics, False


def _files(p: Path) -> list[tuple[Path, os.stat_result]]:
    if p.is_file():
        return [(p, p.stat())]
    if not p.is_dir():
        raise TransferGuardError(f"{p} does not exist; its contents define the run.")
    return [(f, f.stat()) for f in sorted(p.rglob("*")) if f.is_file()]


def path_digest(path: str | os.PathLike[str]) -> str:
    """SHA-256 (24 hex digits) of a file's bytes, or of a folder tree's relative file names
    and bytes (uncached; :meth:`RunStore.content_digest` caches it by sizes and mtimes)."""
    p = Path(path).expanduser().resolve()
    h = hashlib.sha256()
    for f, _ in _files(p):
        h.update(str(f.relative_to(p)).encode() + b"\0" if f != p else b"\0")
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:24]


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
