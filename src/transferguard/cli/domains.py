"""``transferguard domains``: the domains with their sizes (and a sample grid)."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    d = sub.add_parser("domains", help="list the domains with their sizes")
    d.add_argument("--grid", metavar="PNG", help="also save a sample grid of every domain")
    d.add_argument("--markdown", action="store_true", help="print a Markdown table")
    d.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..data import describe_domains, load_domain
    from ..report.tables import format_table

    infos = describe_domains()
    rows = [[i.name, i.size, "x".join(map(str, i.shape)), i.num_classes,
             f"{i.min_class}-{i.max_class}", f"{i.load_seconds:.2f}", i.description]
            for i in infos]
    print(format_table(rows, ["domain", "images", "shape", "classes", "per class", "load s",
                              "description"], args.markdown))
    if args.grid:
        from ..report.plots import sample_grid

        sample_grid([load_domain(i.name) for i in infos], args.grid)
        print(f"\nsample grid written to {args.grid}")
    return 0
