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


def parse_params(items: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` strings to a dict; values are read as YAML scalars."""
    params = {}
    for item in items:
        if "=" not in item:
            raise TransferGuardError(f"--set expects KEY=VALUE, got {item!r}.")
        key, value = item.split("=", 1)
        params[key.strip()] = yaml.safe_load(value)
    return params


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
