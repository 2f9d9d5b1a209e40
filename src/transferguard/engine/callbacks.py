"""Callbacks: how code outside the loop (loggers, label-free validators) sees a training.

A callback is any object with some of these methods; the Trainer calls the ones it has:

- ``on_log(trainer, method, step, row)``: a history row was written (``row`` holds floats);
- ``on_eval(trainer, method, data, step) -> dict | None``: at every evaluation point (every
  ``eval_every`` steps and at the end, whether or not there is a validation split); the
  returned floats join that step's history row (a validator's score, for example);
- ``on_fit_end(trainer, method, result)``: after :meth:`Trainer.fit`, with its FitResult.

Callbacks observe; they must not change the method's parameters (selection stays the
Trainer's, on the labeled-target validation split).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Callback(Protocol):
    """Marker protocol; every hook is optional (see the module docstring)."""


def call(callbacks: Any, hook: str, *args: Any) -> list[Any]:
    """Call ``hook`` on every callback that defines it; return their results."""
    out = []
    for cb in callbacks:
        fn = getattr(cb, hook, None)
        if fn is not None:
            out.append(fn(*args))
    return out
