"""Pruning family: remove (or drop) the source units that hurt the target, then fine-tune."""

from . import prune_transfer  # noqa: F401  (registration)
from .masks import guided_dropout, silence_units
from .structural import model_cost, remove_units

__all__ = ["guided_dropout", "model_cost", "remove_units", "silence_units"]
