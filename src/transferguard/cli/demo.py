"""``transferguard demo``: positive and negative transfer on the built-in digits, and the
defences against a harmful source."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    m = sub.add_parser("demo", help="positive and negative transfer on the built-in digits, "
                                    "and the defences")
    m.add_argument("--out", default="runs/demo")
    m.add_argument("--seeds", type=int, nargs="+", default=None,
                   help="seeds (default: the demo's five, 0 1 2 3 4)")
    m.add_argument("--iterations", type=int, default=None,
                   help="iterations per run (default: the demo's, 400)")
    m.add_argument("--resume", action="store_true")
    m.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..experiments.demo import ITERATIONS, SEEDS, run_demo

    run_demo(args.out, seeds=args.seeds or SEEDS, iterations=args.iterations or ITERATIONS,
             resume=args.resume)
    return 0
