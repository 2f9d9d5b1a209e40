"""``transferguard run CONFIG.yaml``: one experiment from a validated config."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser("run", help="run one experiment from a YAML config")
    r.add_argument("config", help="path to the YAML config")
    r.add_argument("--out", help="output directory (default: the config's output, or runs/NAME)")
    r.add_argument("--resume", action="store_true",
                   help="skip runs that finished (and runs that failed)")
    r.add_argument("--retry-failed", action="store_true",
                   help="with --resume, train the runs that failed before again")
    r.add_argument("--quiet", action="store_true", help="print only the final table")
    r.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..experiments import load_config, run_experiment
    from ..report.tables import experiment_table, failures_text

    cfg = load_config(args.config)
    out = args.out or cfg.output or str(Path("runs") / cfg.name)
    res = run_experiment(cfg, out, resume=args.resume, retry_failed=args.retry_failed,
                         echo=None if args.quiet else print)
    print()
    print(experiment_table(res))
    if res.failed:
        print(f"\n{failures_text(res.failed)}")
    print(f"\n{res.trained} runs trained, {res.reused} resumed, {res.seconds:.0f} s; "
          f"recorded in {out}/runs.sqlite")
    return 1 if res.failed else 0
