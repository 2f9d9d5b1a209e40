"""``transferguard active``: active-learning curves for transfer (query -> label -> retrain)."""

from __future__ import annotations

import argparse

from ._common import config_from_flags, task_flags


def add_parser(sub: argparse._SubParsersAction) -> None:
    a = sub.add_parser("active", help="active learning for transfer: accuracy against labels "
                                      "queried, per query strategy")
    task_flags(a, method_required=False)
    a.add_argument("--strategies", nargs="+", default=["transfer", "random", "entropy"],
                   help="query strategies: transfer (disagreement + MMD, the default), "
                        "random, entropy, disagreement, coreset")
    a.add_argument("--rounds", type=int, default=5, help="query rounds after the first fit")
    a.add_argument("--budget", type=int, default=20, help="samples queried per round (b)")
    a.add_argument("--lam", type=float, default=1.0,
                   help="weight of the disagreement term, relative to the MMD term's spread")
    a.add_argument("--reference", choices=["source", "target"], default="source",
                   help="the sample R the labeled set is matched to (MMD)")
    a.add_argument("--base", default="target_only",
                   help="the base model trained on the labeled target alone")
    a.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    a.add_argument("--out", default="runs/active", help="run store directory")
    a.add_argument("--no-resume", action="store_true",
                   help="train every round again instead of replaying finished ones")
    a.add_argument("--plot", metavar="PNG", help="save the curves as an image")
    a.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..engine import Trainer
    from ..experiments import run_active
    from ..report.tables import active_table

    cfg = config_from_flags(args, "active", args.seeds)
    task = cfg.task.build(seed=args.seeds[0])
    method = cfg.build_methods()[0]
    res = run_active(task, method, args.strategies, rounds=args.rounds, budget=args.budget,
                     seeds=args.seeds, trainer=Trainer(cfg.trainer), out=args.out,
                     lam=args.lam, reference=args.reference, base=args.base,
                     resume=not args.no_resume, echo=print)
    print()
    print(active_table(res))
    if args.plot:
        from ..report.plots import active_curves

        active_curves(res, args.plot)
        print(f"\ncurves drawn to {args.plot}")
    print(f"\n{res.trained} rounds trained, {res.reused} replayed; store: {args.out}/runs.sqlite")
    return 0
