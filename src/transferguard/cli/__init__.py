"""The ``transferguard`` command: one module per sub-command, each only parses and calls the API.

    transferguard domains [NAME ...]          list the domains, or describe folder:PATH ...
    transferguard methods | models            list the methods / models
    transferguard run CONFIG.yaml             one experiment from a validated config
    transferguard sweep CONFIG.yaml           a grid of runs on N processes or Ray
    transferguard ntg --source ... --method   the negative transfer gap from flags
    transferguard diagnose --source ...       scores, predicted verdict, recommended defence
    transferguard harmful --source ... --eps  the source samples the gate finds harmful
    transferguard cutpoint --source ...       target accuracy against the blocks transferred
    transferguard impact --source ...         which units of a source network hurt the target
    transferguard matrix DOMAIN...            train on each domain, test on every domain
    transferguard explain --source ...        what is transferred: basins, CKA, criticality ...
    transferguard show RUNS_DIR               a table of the recorded runs
    transferguard report RUNS_DIR -o FILE     a self-contained HTML report of the runs
    transferguard demo                        negative vs positive transfer on built-in digits

A command module defines ``add_parser(sub)``, which adds its sub-parser and sets
``func=run``; ``run(args) -> int`` calls the public API and prints. Adding a command is one
module here and one name in :data:`COMMANDS`.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import signal
import sys
import warnings

from ..errors import TransferGuardError

#: the command modules, in the order ``--help`` lists them
COMMANDS = ("domains", "listing", "run", "sweep", "ntg", "diagnose", "harmful", "cutpoint",
            "explain", "impact", "matrix", "active", "show", "report", "demo")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    previous = _on_sigterm()
    try:
        with warnings.catch_warnings():  # restores showwarning afterwards
            warnings.showwarning = _show_warning
            return int(args.func(args) or 0)
    except TransferGuardError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Terminated:
        print("terminated: finished runs are recorded; rerun with --resume", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("interrupted: finished runs are recorded; rerun with --resume", file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that the run in progress is recorded as interrupted
    (``--resume`` redoes it, from its last training checkpoint) instead of left running."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated("SIGTERM")


def _on_sigterm() -> object:
    """Route SIGTERM to :class:`Terminated` (main thread only; returns the old handler)."""
    with contextlib.suppress(ValueError):  # not the main thread: leave signals alone
        return signal.signal(signal.SIGTERM, _raise_terminated)
    return None


def _show_warning(message: Warning | str, category: type[Warning], filename: str,
                  lineno: int, file: object = None, line: str | None = None) -> None:
    """Warnings as ``warning: ...`` lines on stderr (not file:line: UserWarning: ...)."""
    print(f"warning: {message}", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    from .._version import __version__

    p = argparse.ArgumentParser(
        prog="transferguard",
        description="Measure, explain and prevent negative transfer.",
    )
    p.add_argument("--version", action="version", version=f"transferguard {__version__}")
    sub = p.add_subparsers(metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").add_parser(sub)
    return p


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
