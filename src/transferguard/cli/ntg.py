"""``transferguard ntg``: the negative transfer gap of a method on a task, from flags."""

from __future__ import annotations

import argparse

from ._common import config_from_flags, task_flags


def add_parser(sub: argparse._SubParsersAction) -> None:
    n = sub.add_parser("ntg", help="negative transfer gap of a method on a task")
    task_flags(n, method_required=True)
    n.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    n.add_argument("--safe", action="store_true",
                   help="also report safe mode: per seed, the method, its twin or a blend, "
                        "chosen on the validation split (no extra training)")
    n.add_argument("--out", default=None, help="run store directory (default runs/ntg)")
    n.add_argument("--resume", action="store_true",
                   help="skip runs that finished (and runs that failed)")
    n.add_argument("--retry-failed", action="store_true",
                   help="with --resume, train the runs that failed before again")
    n.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..experiments import run_experiment
    from ..report.tables import (
        experiment_table,
        failures_text,
        ntg_cell,
        safe_choices_text,
        task_line,
    )

    cfg = config_from_flags(args, "ntg", args.seeds)
    if args.safe:
        cfg.methods[0]["safe"] = True
    out = args.out or "runs/ntg"
    print(task_line(cfg.task.build(seed=cfg.seeds[0])))
    res = run_experiment(cfg, out, resume=args.resume, retry_failed=args.retry_failed,
                         echo=print)
    print()
    print(experiment_table(res))
    for r in res.ntg:
        print(f"\n{r.method}: {ntg_cell(r)}  ->  {r.verdict}")
        for w in r.warnings:
            print(f"  warning: {w}")
    for s in res.safe:
        print(f"\n{safe_choices_text(s)}")
    if res.failed:
        print(f"\n{failures_text(res.failed)}")
    print(f"\n{res.seconds:.0f} s; runs recorded in {out}/runs.sqlite")
    return 1 if res.failed else 0
