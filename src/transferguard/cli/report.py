"""``transferguard report RUNS_DIR -o report.html``: a self-contained HTML report."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("report", help="self-contained HTML report of the runs in a directory")
    s.add_argument("runs_dir", help="a run output directory (every runs.sqlite under it is read)")
    s.add_argument("-o", "--output", default="report.html", help="the HTML file to write")
    s.add_argument("--title", help="page title (default: the directory's name)")
    s.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..experiments import write_report

    path = write_report(args.runs_dir, args.output, args.title)
    print(f"written: {path}")
    return 0
