"""``transferguard sweep CONFIG.yaml``: a grid of runs, on local worker processes or Ray."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("sweep", help="expand a config's grid into runs and train them in "
                                     "parallel (local processes or Ray)")
    s.add_argument("config", help="path to the YAML sweep config (an experiment config plus "
                                  "`grid:`)")
    s.add_argument("-o", "--out", help="output directory (default: the config's output, or "
                                       "runs/NAME)")
    s.add_argument("--workers", type=int, default=1, metavar="N",
                   help="local worker processes (default 1: in this process); each gets "
                        "cores/N torch threads")
    s.add_argument("--ray", metavar="auto|ADDRESS",
                   help="one Ray task per run: 'auto' (a running cluster, else a local one) or "
                        "a cluster address (needs transferguard[ray])")
    s.add_argument("--num-cpus", type=float, help="CPUs per run on Ray (default: the config's "
                                                  "resources.num_cpus, else 1)")
    s.add_argument("--num-gpus", type=float, help="GPUs per run on Ray (fractions share one; "
                                                  "default: resources.num_gpus, else 0)")
    s.add_argument("--resume", action="store_true",
                   help="skip runs that finished (and runs that failed); redo interrupted ones")
    s.add_argument("--retry-failed", action="store_true",
                   help="with --resume, train the runs that failed before again")
    s.add_argument("--dry-run", action="store_true",
                   help="validate and list the runs the grid expands into; train nothing")
    s.add_argument("--quiet", action="store_true", help="print only the final table")
    s.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..experiments.sweep import load_sweep, run_sweep
    from ..report.sweeps import sweep_safe_text, sweep_table
    from ..report.tables import failures_text

    sweep = load_sweep(args.config)  # every point validated before anything runs
    if args.dry_run:
        jobs = sweep.jobs()
        print(f"sweep {sweep.name}: {len(sweep.points)} points, {len(jobs)} runs "
              f"(axes: {', '.join(f'{a} x{len(v)}' for a, v in sweep.axes.items()) or 'none'})")
        for job in jobs:
            values = " ".join(f"{a}={v}" for a, v in sweep.points[job.point].values.items()
                              if a != "methods")
            print(f"  {job.key[:12]}  {job.label:<20} {values}")
        return 0
    out = args.out or sweep.base.output or str(Path("runs") / sweep.name)
    res = run_sweep(sweep, out, workers=args.workers, ray=args.ray, resume=args.resume,
                    retry_failed=args.retry_failed, num_cpus=args.num_cpus,
                    num_gpus=args.num_gpus, echo=None if args.quiet else print)
    print()
    print(sweep_table(res))
    safe = sweep_safe_text(res)
    if safe and not args.quiet:
        print(f"\n{safe}")
    if res.failed:
        print(f"\n{failures_text(res.failed)}")
    print(f"\n{res.jobs} runs: {res.trained} trained, {res.reused} already recorded, "
          f"{res.skipped} skipped (failed before), {len(res.failed) - res.skipped} failed; "
          f"{res.seconds:.0f} s; recorded in {out}/runs.sqlite")
    return 1 if res.failed else 0
