"""``transferguard harmful``: train a gated method and list the source samples it down-weights."""

from __future__ import annotations

import argparse

from ._common import config_from_flags, task_flags


def add_parser(sub: argparse._SubParsersAction) -> None:
    h = sub.add_parser("harmful", help="train a gated method; list the harmful source samples")
    task_flags(h, method_required=False)
    h.add_argument("--seed", type=int, default=0)
    h.add_argument("--top", type=int, default=20, help="how many samples to list")
    h.add_argument("--grid", metavar="PNG", help="save the most harmful samples as an image")
    h.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..experiments import find_harmful
    from ..report.tables import format_table, harmful_summary

    args.gate = True
    cfg = config_from_flags(args, "harmful", [args.seed])
    found = find_harmful(cfg, seed=args.seed, top=args.top)
    report = found.report
    print(f"{found.label} on {found.task}: test accuracy {found.result.test_accuracy:.1f}")
    print(harmful_summary(report))
    rows = [[r["index"], f"{r['weight']:.3f}", r["label"], r["clean_label"],
             "yes" if r["label_wrong"] else "", "yes" if r["image_corrupted"] else ""]
            for r in report.most_harmful]
    print()
    print(format_table(rows, ["source index", "weight", "label", "clean label", "label wrong",
                              "image corrupted"]))
    if args.grid:
        from ..report.plots import harmful_grid

        harmful_grid(found.task, report, args.grid)
        print(f"\nmost harmful samples drawn to {args.grid}")
    return 0
