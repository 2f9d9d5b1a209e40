"""``transferguard methods`` and ``transferguard models``: what is registered."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    sub.add_parser("methods", help="list the transfer methods").set_defaults(func=run_methods)
    sub.add_parser("models", help="list the models").set_defaults(func=run_models)


def run_methods(args: argparse.Namespace) -> int:
    from ..methods import METHODS, WEIGHTERS
    from ..methods.alignment.adaptation import COMBINER_DESCRIPTIONS
    from ..report.tables import format_table

    rows = [[e.name, "yes" if e.obj.accepts_weighter else "", e.description] for e in METHODS]
    print(format_table(rows, ["method", "gate", "description"]))
    # the choices of a method's gate option (gate=True is the paper's gate, also "paper")
    print("\nsource weighters (gate=NAME on a method marked 'gate'; gate=True or 'paper': the "
          "paper's gate):")
    print(format_table([[e.name, e.description] for e in WEIGHTERS],
                       ["weighter", "description"]))
    # the choices of the combine option of dann, dan, dcoral, cdan, pada and joint
    print("\ngradient combiners (combine=NAME on dann, dan, dcoral, cdan, pada, joint):")
    print(format_table([[k, v] for k, v in COMBINER_DESCRIPTIONS.items()],
                       ["combiner", "description"]))
    return 0


def run_models(args: argparse.Namespace) -> int:
    from ..models import MODELS
    from ..report.tables import format_table

    print(format_table([[e.name, e.description] for e in MODELS], ["model", "description"]))
    return 0
