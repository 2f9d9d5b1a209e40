"""``transferguard impact``: which units of a source network hurt the target."""

from __future__ import annotations

import argparse

from ._common import config_from_flags, task_flags


def add_parser(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser("impact", help="neuron impact of every unit of a source network on the "
                                      "target; the units prune_transfer would remove")
    task_flags(c, method_required=False, method_flags=False)
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--pretrained", help="source network checkpoint (default: pre-train one on "
                                        "the source, cached under OUT/pretrained)")
    c.add_argument("--pretrain-iterations", type=int, default=None)
    c.add_argument("--estimator", choices=["exact", "taylor"], default="exact")
    c.add_argument("--top", type=int, default=10, help="how many harmful units to list")
    c.add_argument("--plot", metavar="PNG", help="save the harmful share per layer vs depth")
    c.add_argument("--units", metavar="PNG", help="save the top-activating target images of "
                                                  "the most harmful units")
    c.add_argument("--out", default="runs/impact", help="where pre-trained networks are cached")
    c.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..experiments.impact import analyse_impact
    from ..report.matrix import impact_table
    from ..report.tables import format_table

    cfg = config_from_flags(args, "impact", [args.seed])
    found = analyse_impact(cfg, args.out, pretrained=args.pretrained,
                           pretrain_iterations=args.pretrain_iterations, seed=args.seed,
                           estimator=args.estimator)
    imp = found.impact
    print(f"{found.task}: target head accuracy {imp.base_accuracy:.1f}% on {imp.n_samples} "
          f"labeled target images; {imp.forwards} forwards, {imp.seconds:.2f} s")
    print(impact_table(imp))
    print(f"\nsuggested cut point: transfer the first {imp.suggested_cut()} blocks")
    counts = {n: f"{int(m.sum())}/{m.numel()}" for n, m in found.pruned.items()}
    print(f"prune_transfer (rule impact < 0, at most half a layer) would remove: {counts}")
    rows = [[layer, unit, f"{value:+.4f}"] for layer, unit, value in imp.ranking(args.top)]
    print()
    print(format_table(rows, ["layer", "unit", "impact"]))
    if args.plot:
        from ..report.plots import impact_depth_plot

        impact_depth_plot(imp, args.plot, title=f"{args.source} -> {args.target}")
        print(f"\nplot written to {args.plot}")
    if args.units:
        from ..analysis import top_activating
        from ..report.plots import unit_grid

        worst = [(layer, unit) for layer, unit, _ in imp.ranking(min(args.top, 8))]
        pics = [p for layer, unit in worst for p in top_activating(
            found.model, layer, unit, found.task.train_data().target_unlabeled,
            found.task.spec, k=10, impact=imp)]
        unit_grid(pics, args.units, "most harmful units: top-activating target images")
        print(f"unit pictures written to {args.units}")
    return 0
