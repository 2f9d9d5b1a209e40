"""``transferguard domains [NAME ...]``: describe domains (sizes, classes, a sample grid).

Without names it lists the registered domains; with names (``folder:PATH``,
``torchvision:NAME`` or built-ins) it describes each, per-class counts included.
"""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(sub: argparse._SubParsersAction) -> None:
    d = sub.add_parser("domains", help="list the domains, or describe the named ones "
                                       "(folder:PATH, torchvision:NAME, built-ins)")
    d.add_argument("names", nargs="*", metavar="NAME",
                   help="domains to describe (default: every registered domain)")
    d.add_argument("--grid", metavar="PNG", help="also save a sample grid of the domains")
    d.add_argument("--markdown", action="store_true", help="print Markdown tables")
    d.add_argument("--size", type=int, help="folder:PATH: resize to SIZE x SIZE (default: "
                                            "the images' native size, at most 224)")
    d.add_argument("--invert", action="store_true", help="folder:PATH: invert the pixels")
    d.add_argument("--root", help="data root for torchvision:NAME domains")
    d.add_argument("--download", action="store_true",
                   help="allow torchvision:NAME domains to download (needs network)")
    d.set_defaults(func=run)


def _options(name: str, args: argparse.Namespace) -> dict[str, Any]:
    if name.startswith("folder:"):
        opts: dict[str, Any] = {}
        if args.size:
            opts["size"] = args.size
        if args.invert:
            opts["invert"] = True
        return opts
    if name.startswith("torchvision:"):
        opts = {"download": bool(args.download)}
        if args.root:
            opts["root"] = args.root
        return opts
    return {}


def run(args: argparse.Namespace) -> int:
    from ..data import describe_domain, list_domains
    from ..report.tables import format_table

    names = args.names or list_domains()
    infos, domains = [], []
    for name in names:
        info, domain = describe_domain(name, **_options(name, args))
        infos.append(info)
        domains.append(domain)
    rows = [[i.name, i.size, "x".join(map(str, i.shape)), i.num_classes,
             f"{i.min_class}-{i.max_class}", f"{i.mean_intensity:.2f}",
             f"{i.load_seconds:.2f}", i.description] for i in infos]
    print(format_table(rows, ["domain", "images", "shape", "classes", "per class",
                              "mean intensity", "load s", "description"], args.markdown))
    if args.names:  # named domains: their classes and per-class counts too
        for i in infos:
            print(f"\n{i.name}: images per class")
            print(format_table([[c, n] for c, n in zip(i.classes, i.counts)],
                               ["class", "images"], args.markdown))
    if args.grid:
        from ..report.plots import sample_grid

        sample_grid(domains, args.grid)
        print(f"\nsample grid written to {args.grid}")
    return 0
