"""``transferguard matrix DOMAIN...``: train on each domain, test on every domain."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    m = sub.add_parser("matrix", help="cross-domain generalisation matrix: train on each "
                                      "domain, test on every domain")
    m.add_argument("domains", nargs="+", metavar="DOMAIN",
                   help="two or more domains with one label space (built-in names, "
                        "folder:PATH, torchvision:NAME)")
    m.add_argument("--model", default="lenet")
    m.add_argument("--iterations", type=int, default=1000)
    m.add_argument("--batch-size", type=int, default=32)
    m.add_argument("--lr", type=float, default=0.01)
    m.add_argument("--input-size", type=int, default=32)
    m.add_argument("--channels", type=int, default=3)
    m.add_argument("--test-fraction", type=float, default=0.5,
                   help="share of each domain held out as its test split (default 0.5)")
    m.add_argument("--seeds", type=int, nargs="+", default=[0])
    m.add_argument("--device", default="auto")
    m.add_argument("--root", help="data root for torchvision:NAME domains")
    m.add_argument("--download", action="store_true",
                   help="allow torchvision:NAME domains to download (needs network)")
    m.add_argument("--view", choices=["raw", "row", "column", "all"], default="all",
                   help="which tables to print (default all)")
    m.add_argument("--markdown", action="store_true", help="print Markdown tables")
    m.add_argument("--plot", metavar="PNG", help="save the heatmaps (raw and row-relative)")
    m.add_argument("--out", default="runs/matrix", help="run store directory")
    m.add_argument("--resume", action="store_true", help="skip runs that already finished")
    m.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..data import InputSpec
    from ..engine import Trainer
    from ..experiments import run_matrix
    from ..report.matrix import TITLES, matrix_table

    options = {}
    for d in args.domains:
        if d.startswith("torchvision:"):
            options[d] = {"download": bool(args.download),
                          **({"root": args.root} if args.root else {})}
    trainer = Trainer(iterations=args.iterations, batch_size=args.batch_size, lr=args.lr,
                      device=args.device)
    result = run_matrix(args.domains, args.out, spec=InputSpec(args.channels, args.input_size),
                        trainer=trainer, seeds=args.seeds, model=args.model,
                        test_fraction=args.test_fraction, domain_options=options,
                        resume=args.resume, echo=print)
    views = ["raw", "row", "column"] if args.view == "all" else [args.view]
    for view in views:
        print(f"\n{TITLES[view]}, mean over seeds {args.seeds}:")
        print(matrix_table(result, view, args.markdown))
    if args.plot:
        from ..report.plots import matrix_heatmap

        matrix_heatmap(result, args.plot, ("raw", "row", "column"))
        print(f"\nheatmap written to {args.plot}")
    print(f"\nruns recorded in {args.out}/runs.sqlite")
    return 0
