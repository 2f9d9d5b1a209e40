"""``transferguard show RUNS_DIR``: a table of the recorded runs."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import TransferGuardError


def add_parser(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("show", help="table of the runs recorded in a directory")
    s.add_argument("runs_dir")
    s.add_argument("--markdown", action="store_true")
    s.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..experiments import RunStore, runs_table

    path = Path(args.runs_dir)
    db = path if path.is_file() or path.suffix in (".sqlite", ".db") else path / "runs.sqlite"
    if not db.exists():
        raise TransferGuardError(f"no run store at {db}; give the --out directory of a run.")
    print(runs_table(RunStore(db), args.markdown))
    return 0
