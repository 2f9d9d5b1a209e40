"""Helpers shared by the benchmark scripts: where results go, written atomically."""

from __future__ import annotations

import json
from pathlib import Path

from transferguard.utils import atomic_write

RESULTS = Path(__file__).resolve().parent.parent / "docs" / "results"


def write_result(name: str, markdown: str, payload: str | None = None) -> Path:
    """Write ``docs/results/NAME.md`` (and ``NAME.json`` when given)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.md"
    with atomic_write(path, "w") as fh:
        fh.write(markdown)
    if payload is not None:
        with atomic_write(RESULTS / f"{name}.json", "w") as fh:
            fh.write(payload)
    print(f"\nwritten: {path}")
    return path


def provenance(trained: int, reused: int, seconds: float) -> str:
    """How much of a resumable table this invocation trained, for the results page."""
    return (f"{trained} runs trained by this invocation and {reused} resumed from the run "
            f"store (trained by an earlier invocation of the same command), in {seconds:.0f} s.")


def store_rows(out: Path, extra: str) -> dict[str, dict]:
    """The runs of the store in ``out`` by key: label, status, metrics, finished_at,
    started_at and the column ``extra`` (the crash benchmarks' view of the run store)."""
    import sqlite3

    db = out / "runs.sqlite"
    if not db.exists():
        return {}
    con = sqlite3.connect(db, timeout=60)
    try:
        got = con.execute("SELECT key, label, status, metrics, finished_at, started_at, "
                          f"{extra} FROM runs").fetchall()
    finally:
        con.close()
    return {k: {"label": lab, "status": st, "metrics": json.loads(m) if m else None,
                "finished_at": fin, "started_at": sta, extra: x}
            for k, lab, st, m, fin, sta, x in got}


def small_sweep(name: str, iterations: int) -> dict:
    """The sweep benchmarks' shared base config: mnist -> uci-digits (L = 20%, 300 source
    images, 24x24), batch 16, with NTG; each adds its methods and grid."""
    return {
        "name": name,
        "task": {"source": "mnist", "target": "uci-digits", "labeled_percent": 20,
                 "input_size": 24, "source_size": 300},
        "trainer": {"iterations": iterations, "batch_size": 16, "eval_every": 25,
                    "progress": False},
        "ntg": True,
    }
