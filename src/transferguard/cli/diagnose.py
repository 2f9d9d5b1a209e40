"""``transferguard diagnose``: will the source help or hurt, and which defence to use."""

from __future__ import annotations

import argparse

from ._common import config_from_flags, task_flags


def add_parser(sub: argparse._SubParsersAction) -> None:
    d = sub.add_parser("diagnose", help="transferability scores, the predicted verdict and a "
                                        "recommended defence, before training")
    task_flags(d, method_required=False)
    # the default predictor was fitted at 3x24x24 with 300-iteration trainings
    d.set_defaults(input_size=24, iterations=300)
    d.add_argument("--source-iterations", type=int, default=100,
                   help="steps of the source network that is scored (default 100)")
    d.add_argument("--proxy-iterations", type=int, default=50,
                   help="steps of the short method / twin proxy runs (default 50)")
    d.add_argument("--seed", type=int, default=0, help="seed of the task draw and the "
                                                       "short runs")
    d.add_argument("--apply", action="store_true",
                   help="train the recommended defence and its twin over --seeds and report "
                        "the measured NTG with its interval")
    d.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                   help="seeds of --apply (default 0 1 2)")
    d.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..engine import Trainer
    from ..experiments import diagnose
    from ..report import diagnose_text

    cfg = config_from_flags(args, "diagnose", args.seeds)
    task = cfg.task.build(seed=args.seed)
    method = cfg.build_methods()[0]
    short = Trainer(cfg.trainer, seed=args.seed, progress=False)
    result = diagnose(task, method, trainer=short, source_iterations=args.source_iterations,
                      proxy_iterations=args.proxy_iterations, apply=args.apply,
                      seeds=args.seeds, apply_trainer=Trainer(cfg.trainer))
    print(diagnose_text(result))
    return 0
