"""Flags shared by the commands that build a task from the command line."""

from __future__ import annotations

import argparse
from typing import Any

import yaml

from ..errors import TransferGuardError


def task_flags(p: argparse.ArgumentParser, method_required: bool,
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
                   help="percent of the target pool that is labeled (L%%, default 10; "
                        "10 means 10%%, 0.1 means 0.1%%)")
    p.add_argument("--labeled-per-class", type=int, metavar="N",
                   help="label exactly N target images per class instead of L%% (tiny "
                        "targets)")
    p.add_argument("--val-fraction", type=float, default=0.2, metavar="F",
                   help="share of the labeled target held out for model selection "
                        "(default 0.2; 0 selects the last iterate)")
    p.add_argument("--label-map", action="append", default=[], metavar="SRC=TGT[,...]",
                   help="map source class names to target class names, e.g. --label-map "
                        "zero=0,one=1 (repeatable), or a YAML file holding the mapping; "
                        "unmapped source classes are dropped")
    p.add_argument("--overlap", choices=("auto", "warn", "drop", "off"), default="auto",
                   help="near-duplicates of target test images in the source: 'auto' checks "
                        "when a domain is user data, 'warn' always, 'drop' removes them from "
                        "the source, 'off' skips the check")
    p.add_argument("--invert-target", action="store_true",
                   help="invert the target's pixels (folder:PATH domains): dark strokes on "
                        "white become white on black")
    p.add_argument("--iterations", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--input-size", type=int, default=32)
    p.add_argument("--channels", type=int, default=3)
    p.add_argument("--device", default="auto")
    p.add_argument("--root", help="data root for torchvision:NAME domains")
    p.add_argument("--download", action="store_true",
                   help="allow torchvision:NAME domains to download (needs network)")


def parse_params(items: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` strings to a dict; values are read as YAML scalars."""
    params = {}
    for item in items:
        if "=" not in item:
            raise TransferGuardError(f"--set expects KEY=VALUE, got {item!r}.")
        key, value = item.split("=", 1)
        params[key.strip()] = yaml.safe_load(value)
    return params


def parse_label_map(items: list[str]) -> dict[str, str] | None:
    """``--label-map`` values: ``SRC=TGT`` pairs (comma-separated, repeatable) or a YAML file
    with a mapping. Names stay strings (``0=zero`` maps class "0")."""
    from pathlib import Path

    mapping: dict[str, str] = {}
    for item in items:
        path = Path(item)
        if "=" not in item and path.suffix.lower() in (".yaml", ".yml", ".json"):
            if not path.is_file():
                raise TransferGuardError(f"--label-map file {item} does not exist.")
            data = yaml.safe_load(path.read_text())
            if isinstance(data, dict) and set(data) == {"label_map"}:
                data = data["label_map"]
            if not isinstance(data, dict):
                raise TransferGuardError(f"--label-map file {item} must hold a mapping "
                                         f"source_class: target_class, got {data!r}.")
            mapping.update({str(k): str(v) for k, v in data.items()})
            continue
        for pair in filter(None, (p.strip() for p in item.split(","))):
            if "=" not in pair:
                raise TransferGuardError(
                    f"--label-map expects SRC=TGT pairs separated by commas (or a .yaml "
                    f"file), got {pair!r}; e.g. --label-map zero=0,one=1.")
            src, tgt = (x.strip() for x in pair.split("=", 1))
            if not src or not tgt:
                raise TransferGuardError(f"--label-map pair {pair!r} has an empty class name.")
            if src in mapping and mapping[src] != tgt:
                raise TransferGuardError(f"--label-map maps source class {src!r} twice "
                                         f"({mapping[src]!r} and {tgt!r}).")
            mapping[src] = tgt
    return mapping or None


def config_from_flags(args: argparse.Namespace, name: str, seeds: list[int]) -> Any:
    """The validated :class:`ExperimentConfig` the task flags describe."""
    from ..experiments import config_from_dict

    def opts(domain: str) -> dict[str, Any]:
        if not domain.startswith("torchvision:"):
            return {}
        o: dict[str, Any] = {"download": bool(args.download)}
        if args.root:
            o["root"] = args.root
        return o

    target_options = opts(args.target)
    if getattr(args, "invert_target", False):
        if not args.target.startswith("folder:"):
            raise TransferGuardError("--invert-target works on folder:PATH targets; invert "
                                     "another domain in Python (255 - images).")
        target_options["invert"] = True
    task = {"source": args.source, "target": args.target, "labeled_percent": args.labeled,
            "input_size": args.input_size, "channels": args.channels,
            "source_options": opts(args.source), "target_options": target_options,
            "val_fraction": args.val_fraction, "overlap": args.overlap}
    if args.labeled_per_class is not None:
        task["labeled_per_class"] = args.labeled_per_class
    label_map = parse_label_map(args.label_map)
    if label_map:
        task["label_map"] = label_map
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
