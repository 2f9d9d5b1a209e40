"""``transferguard explain``: what is being transferred on a task (Neyshabur et al.): loss
basins, feature similarity, parameter distance, module criticality, which checkpoint, block
shuffling; plots and ``summary.md`` in the output folder."""

from __future__ import annotations

import argparse

from ._common import config_from_flags, task_flags


def add_parser(sub: argparse._SubParsersAction) -> None:
    from ..experiments import ANALYSES

    e = sub.add_parser("explain", help="what is transferred: basins, CKA, parameter distance, "
                                       "module criticality, checkpoints, block shuffling")
    task_flags(e, method_required=False, method_flags=False)
    e.add_argument("--model-option", dest="model_options", action="append", default=[],
                   metavar="KEY=VALUE", help="a model option (repeatable)")
    e.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                   help="fine-tuning seeds (at least 2: pairs of models are compared)")
    e.add_argument("--split-seed", type=int, default=0, help="seed of the task's splits")
    e.add_argument("--pretrain-iterations", type=int, default=None,
                   help="source pre-training iterations (default: --iterations)")
    e.add_argument("--grids", type=int, nargs="+", default=None, metavar="K",
                   help="block-shuffling grids, k blocks per side (must divide the input "
                        "size; default: 1, the smallest, a middle one and single pixels)")
    e.add_argument("--shuffle-mode", choices=["per_image", "shared"], default="per_image")
    e.add_argument("--points", type=int, default=11, help="interpolation points (default 11)")
    e.add_argument("--analyses", nargs="+", choices=list(ANALYSES), default=list(ANALYSES))
    e.add_argument("--out", default="runs/explain", help="output folder")
    e.add_argument("--resume", action="store_true", help="reuse recorded sweep trainings")
    e.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..experiments import explain_config
    from ..report.explain import findings_table, write_explain_report

    cfg = config_from_flags(args, "explain", args.seeds)
    result = explain_config(cfg, args.out, split_seed=args.split_seed,
                            pretrain_iterations=args.pretrain_iterations, grids=args.grids,
                            shuffle_mode=args.shuffle_mode, points=args.points,
                            analyses=args.analyses, resume=args.resume, echo=print)
    path = write_explain_report(result, args.out)
    print()
    print(findings_table(result, markdown=False))
    print(f"\nplots and summary written to {path.parent} (summary: {path})")
    return 0
