"""Neuron impact analysis (methods reference section 5.1, in every layer): the change of the
target loss when each unit of F or of the head is silenced, and the rules that call a unit
target-harmful.

The measurement is a repeated evaluation pass, so it is implemented in
:mod:`transferguard.engine.impact` (the method ``prune_transfer`` needs it, and methods sit
below analysis); this module is where users find it, next to the other analyses (unit
pictures in :mod:`.units`, the cut-point sweep in :mod:`.cutpoint`, the plots in
:mod:`transferguard.report.plots`).
"""

from __future__ import annotations

from ..engine.impact import ESTIMATORS, RULES, ImpactResult, neuron_impact, spearman
from ..models.layers import layer_names, resolve_layer

__all__ = ["ESTIMATORS", "RULES", "ImpactResult", "layer_names", "neuron_impact",
           "resolve_layer", "spearman"]
