"""The ``transferguard`` command. It parses arguments and calls the public API, nothing more.

    transferguard domains                     list the domains with their sizes
    transferguard methods | models            list the methods / models
    transferguard run CONFIG.yaml             one experiment from a validated config
    transferguard ntg --source ... --method   the negative transfer gap from flags
    transferguard harmful --source ... --eps  the source samples the gate finds harmful
    transferguard cutpoint --source ...       target accuracy against the blocks transferred
    transferguard show RUNS_DIR               a table of the recorded runs
    transferguard demo                        negative vs positive transfer on built-in digits
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from .errors import TransferGuardError


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        return int(args.func(args) or 0)
    except TransferGuardError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished runs are recorded; rerun with --resume", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="transferguard",
        description="Measure, explain and prevent negative transfer.",
    )
    from ._version import __version__

    p.add_argument("--version", action="version", version=f"transferguard {__version__}")
    sub = p.add_subparsers(metavar="COMMAND")

    d = sub.add_parser("domains", help="list the domains with their sizes")
    d.add_argument("--grid", metavar="PNG", help="also save a sample grid of every domain")
    d.add_argument("--markdown", action="store_true", help="print a Markdown table")
    d.set_defaults(func=cmd_domains)

    ms = sub.add_parser("methods", help="list the transfer methods")
    ms.set_defaults(func=cmd_methods)
    md = sub.add_parser("models", help="list the models")
    md.set_defaults(func=cmd_models)

    r = sub.add_parser("run", help="run one experiment from a YAML config")
    r.add_argument("config", help="path to the YAML config")
    r.add_argument("--out", help="output directory (default: the config's output, or runs/NAME)")
    r.add_argument("--resume", action="store_true", help="skip runs that already finished")
    r.add_argument("--quiet", action="store_true", help="print only the final table")
    r.set_defaults(func=cmd_run)

    n = sub.add_parser("ntg", help="negative transfer gap of a method on a task")
    _task_flags(n, method_required=True)
    n.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    n.add_argument("--out", default=None, help="run store directory (default runs/ntg)")
    n.add_argument("--resume", action="store_true", help="skip runs that already finished")
    n.set_defaults(func=cmd_ntg)

    h = sub.add_parser("harmful", help="train a gated method; list the harmful source samples")
    _task_flags(h, method_required=False)
    h.add_argument("--seed", type=int, default=0)
    h.add_argument("--top", type=int, default=20, help="how many samples to list")
    h.add_argument("--grid", metavar="PNG", help="save the most harmful samples as an image")
    h.set_defaults(func=cmd_harmful)

    c = sub.add_parser("cutpoint", help="transfer the first k blocks, frozen or fine-tuned, "
                                        "for every k (Yosinski et al.)")
    _task_flags(c, method_required=False, method_flags=False)
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
    c.set_defaults(func=cmd_cutpoint)

    s = sub.add_parser("show", help="table of the runs recorded in a directory")
    s.add_argument("runs_dir")
    s.add_argument("--markdown", action="store_true")
    s.set_defaults(func=cmd_show)

    m = sub.add_parser("demo", help="negative vs positive transfer on the built-in digits")
    m.add_argument("--out", default="runs/demo")
    m.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    m.add_argument("--iterations", type=int, default=600)
    m.add_argument("--resume", action="store_true")
    m.set_defaults(func=cmd_demo)
    return p


def _task_flags(p: argparse.ArgumentParser, method_required: bool,
                method_flags: bool = True) -> None:
    p.add_argument("--source", required=True, help="source domain (see `domains`)")
    p.add_argument("--target", required=True, help="target domain")
    if method_flags:
        p.add_argument("--method", required=method_required, default="dann",
                       help="transfer method (see `transferguard methods`)")
        p.add_argument("--gate", action="store_true",
                       help="switch on the discriminator gate (domain-adaptation methods)")
        p.add_argument("--set", dest="params", action="append", default=[],
                       metavar="KEY=VALUE",
                       help="a method hyper-parameter, e.g. --set trade_off=0.5 (repeatable)")
    p.add_argument("--model", default="lenet", help="model name (default lenet)")
    p.add_argument("--eps", type=float, help="source noise: sets eps_x = eps_y")
    p.add_argument("--eps-x", type=float, help="source image-corruption rate")
    p.add_argument("--eps-y", type=float, help="source label-noise rate")
    p.add_argument("--labeled", type=float, default=10.0, metavar="L",
                   help="percent of the target pool that is labeled (L%%, default 10)")
    p.add_argument("--iterations", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--input-size", type=int, default=32)
    p.add_argument("--channels", type=int, default=3)
    p.add_argument("--device", default="auto")
    p.add_argument("--root", help="data root for torchvision:NAME domains")
    p.add_argument("--download", action="store_true",
                   help="allow torchvision:NAME domains to download (needs network)")


def _config_from_flags(args: argparse.Namespace, name: str, seeds: list[int]) -> Any:
    from .experiments import config_from_dict

    def opts(domain: str) -> dict[str, Any]:
        if not domain.startswith("torchvision:"):
            return {}
        o: dict[str, Any] = {"download": bool(args.download)}
        if args.root:
            o["root"] = args.root
        return o

    task = {"source": args.source, "target": args.target, "labeled_percent": args.labeled,
            "input_size": args.input_size, "channels": args.channels,
            "source_options": opts(args.source), "target_options": opts(args.target)}
    for key in ("eps", "eps_x", "eps_y"):
        if getattr(args, key) is not None:
            task[key] = getattr(args, key)
    method = {"name": getattr(args, "method", "finetune"), "model": args.model,
              **parse_params(getattr(args, "params", []))}
    if getattr(args, "model_options", None):
        method["model_options"] = parse_params(args.model_options)
    if getattr(args, "gate", False):
        method["gate"] = True
    return config_from_dict({
        "name": name, "task": task, "method": method, "seeds": seeds,
        "trainer": {"iterations": args.iterations, "batch_size": args.batch_size,
                    "lr": args.lr, "device": args.device},
    })


def cmd_domains(args: argparse.Namespace) -> int:
    from .data import describe_domains, load_domain
    from .report.tables import format_table

    infos = describe_domains()
    rows = [[i.name, i.size, "x".join(map(str, i.shape)), i.num_classes,
             f"{i.min_class}-{i.max_class}", f"{i.load_seconds:.2f}", i.description]
            for i in infos]
    print(format_table(rows, ["domain", "images", "shape", "classes", "per class", "load s",
                              "description"], args.markdown))
    if args.grid:
        from .report.plots import sample_grid

        sample_grid([load_domain(i.name) for i in infos], args.grid)
        print(f"\nsample grid written to {args.grid}")
    return 0


def cmd_methods(args: argparse.Namespace) -> int:
    from .methods import METHODS
    from .methods.adaptation import AdaptationMethod
    from .report.tables import format_table

    rows = [[e.name, "yes" if issubclass(e.obj, AdaptationMethod) else "", e.description]
            for e in METHODS]
    print(format_table(rows, ["method", "gate", "description"]))
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from .models import MODELS
    from .report.tables import format_table

    print(format_table([[e.name, e.description] for e in MODELS], ["model", "description"]))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from .experiments import load_config, run_experiment

    cfg = load_config(args.config)
    out = args.out or cfg.output or str(Path("runs") / cfg.name)
    res = run_experiment(cfg, out, resume=args.resume, echo=None if args.quiet else print)
    print()
    print(res.table())
    print(f"\n{res.trained} runs trained, {res.reused} resumed, {res.seconds:.0f} s; "
          f"recorded in {out}/runs.sqlite")
    return 0


def parse_params(items: list[str]) -> dict[str, Any]:
    params = {}
    for item in items:
        if "=" not in item:
            raise TransferGuardError(f"--set expects KEY=VALUE, got {item!r}.")
        key, value = item.split("=", 1)
        params[key.strip()] = yaml.safe_load(value)
    return params


def cmd_ntg(args: argparse.Namespace) -> int:
    from .experiments import run_experiment

    cfg = _config_from_flags(args, "ntg", args.seeds)
    out = args.out or "runs/ntg"
    res = run_experiment(cfg, out, resume=args.resume, echo=print)
    print()
    print(res.table())
    for r in res.ntg:
        print(f"\n{r.method}: {r.cell()}  ->  {r.verdict}")
        for w in r.warnings:
            print(f"  warning: {w}")
    print(f"\n{res.seconds:.0f} s; runs recorded in {out}/runs.sqlite")
    return 0


def cmd_harmful(args: argparse.Namespace) -> int:
    from .analysis import harmful_source_report
    from .engine import Trainer
    from .report.tables import format_table

    args.gate = True
    cfg = _config_from_flags(args, "harmful", [args.seed])
    task = cfg.task.build(seed=args.seed)
    method = cfg.build_methods()[0]
    trainer = Trainer(cfg.trainer, seed=args.seed)
    result = trainer.run(method, task)
    report = harmful_source_report(method, task, top=args.top)
    print(f"{method.label} on {task}: test accuracy {result.test_accuracy:.1f}")
    print(report.summary())
    rows = [[r["index"], f"{r['weight']:.3f}", r["label"], r["clean_label"],
             "yes" if r["label_wrong"] else "", "yes" if r["image_corrupted"] else ""]
            for r in report.most_harmful]
    print()
    print(format_table(rows, ["source index", "weight", "label", "clean label", "label wrong",
                              "image corrupted"]))
    if args.grid:
        from .report.plots import harmful_grid

        harmful_grid(task, report, args.grid)
        print(f"\nmost harmful samples drawn to {args.grid}")
    return 0


def cmd_cutpoint(args: argparse.Namespace) -> int:
    from .analysis import cut_point_sweep
    from .engine import Trainer
    from .experiments import Runner, RunStore, pretrained_checkpoint

    cfg = _config_from_flags(args, "cutpoint", args.seeds)
    task = cfg.task.build(seed=args.seeds[0])
    trainer = Trainer(cfg.trainer)
    out = Path(args.out)

    def source(seed: int) -> str:
        if args.pretrained:
            return args.pretrained
        return pretrained_checkpoint(task.with_seed(seed), trainer, out / "pretrained",
                                     model=args.model, iterations=args.pretrain_iterations,
                                     model_options=cfg.methods[0].get("model_options"))

    model_options = cfg.methods[0].get("model_options")
    runner = Runner(RunStore(out), trainer, "cutpoint", args.resume, print)
    result = cut_point_sweep(task, source, model=args.model, model_options=model_options,
                             seeds=args.seeds, run=runner)
    print()
    print(result.table())
    if args.plot:
        from .report.plots import cutpoint_plot

        cutpoint_plot(result, args.plot, f"{args.source} -> {args.target}, "
                                         f"L = {args.labeled:g}%")
        print(f"\nplot written to {args.plot}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from .experiments import RunStore, runs_table

    path = Path(args.runs_dir)
    db = path if path.suffix in (".sqlite", ".db") else path / "runs.sqlite"
    if not db.exists():
        raise TransferGuardError(f"no run store at {db}; give the --out directory of a run.")
    print(runs_table(RunStore(db), args.markdown))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .experiments.demo import run_demo

    run_demo(args.out, seeds=args.seeds, iterations=args.iterations, resume=args.resume)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
