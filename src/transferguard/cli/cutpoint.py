"""``transferguard cutpoint``: target accuracy against the number of blocks transferred."""

from __future__ import annotations

import argparse

from ._common import config_from_flags, task_flags


def add_parser(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser("cutpoint", help="transfer the first k blocks, frozen or fine-tuned, "
                                        "for every k (Yosinski et al.)")
    task_flags(c, method_required=False, method_flags=False)
    c.add_argument("--model-option", dest="model_options", action="append", default=[],
                   metavar="KEY=VALUE", help="a model option, e.g. --model-option "
                   "weights=resnet18.pth (repeatable)")
    c.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    c.add_argument("--pretrained", help="source network checkpoint (default: pre-train one "
                                        "per seed on the source, cached under OUT/pretrained)")
    c.add_argument("--pretrain-iterations", type=int, default=None)
    c.add_argument("--plot", metavar="PNG", help="save the accuracy-vs-k plot")
    c.add_argument("--out", default="runs/cutpoint", help="run store directory")
    c.add_argument("--resume", action="store_true")
    c.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..experiments import run_cutpoint
    from ..report.tables import cutpoint_table

    cfg = config_from_flags(args, "cutpoint", args.seeds)
    result = run_cutpoint(cfg, args.out, pretrained=args.pretrained,
                          pretrain_iterations=args.pretrain_iterations,
                          resume=args.resume, echo=print)
    print()
    print(cutpoint_table(result))
    if args.plot:
        from ..report.plots import cutpoint_plot

        cutpoint_plot(result, args.plot, f"{args.source} -> {args.target}, "
                                         f"L = {args.labeled:g}%")
        print(f"\nplot written to {args.plot}")
    return 0
