"""``transferguard run CONFIG.yaml``: one experiment from a validated config."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser("run", help="run one experiment from a YAML config")
    r.add_argument("config", help="path to the YAML config")
    r.add_argument("--out", help="output directory (default: the config's output, or runs/NAME)")
    r.add_argument("--resume", action="store_true",
                   help="skip runs that finished (and runs that failed)")
    r.add_argument("--retry-failed", action="store_true",
                   help="with --resume, train the runs that failed before again")
    r.add_argument("--safe", action="store_true",
                   help="also report safe mode around every method (chosen against the "
                        "shared twin on the validation split; no extra training)")
    r.add_argument("--quiet", action="store_true", help="print only the final table")
    r.add_argument("--tensorboard", metavar="DIR",
                   help="also log metrics to TensorBoard in DIR (needs transferguard[tensorboard])")
    r.add_argument("--mlflow", metavar="DIR_OR_URI",
                   help="also log metrics to MLflow: a folder (file store) or a tracking URI "
                        "(needs transferguard[mlflow])")
    r.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..experiments import load_config, run_experiment
    from ..report.tables import experiment_table, failures_text, safe_choices_text, task_line

    cfg = load_config(args.config)
    for name in ("tensorboard", "mlflow"):  # flags override the config's loggers
        if getattr(args, name):
            cfg.loggers[name] = getattr(args, name)
    if args.safe:
        from ..errors import ConfigError

        if not cfg.ntg:
            raise ConfigError("--safe needs the twins: the config sets ntg: false; set it to "
                              "true or drop --safe.")
        for m in cfg.methods:
            m.setdefault("safe", True)
    out = args.out or cfg.output or str(Path("runs") / cfg.name)
    if not args.quiet:
        print(task_line(cfg.task.build(seed=cfg.seeds[0])))
    res = run_experiment(cfg, out, resume=args.resume, retry_failed=args.retry_failed,
                         echo=None if args.quiet else print)
    print()
    print(experiment_table(res))
    for s in res.safe:
        print(f"\n{safe_choices_text(s)}")
    if res.failed:
        print(f"\n{failures_text(res.failed)}")
    print(f"\n{res.trained} runs trained, {res.reused} resumed, {res.seconds:.0f} s; "
          f"recorded in {out}/runs.sqlite")
    return 1 if res.failed else 0
