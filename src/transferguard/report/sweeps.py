"""The table of a sweep: one row per grid cell (:func:`~transferguard.experiments.sweep.
sweep_cells`), its axis values, then the NTG over its seeds or the mean accuracy."""

from __future__ import annotations

from typing import Any

from .tables import format_table, interval_text


def sweep_table(result: Any, markdown: bool = False) -> str:
    """``result`` a :class:`~transferguard.experiments.sweep.SweepResult`. With twins: acc,
    twin acc, NTG [95% CI] and verdict per cell; without: the mean test accuracy. ``seeds``
    counts the seeds whose runs finished (and those still missing)."""
    if not result.cells:
        return "(no runs)"
    axes = list(result.cells[0]["values"])
    ntg = any(c.get("twin") for c in result.cells)
    headers = [*axes, "acc", *(["twin acc", "NTG [95% CI]", "verdict"] if ntg else []), "seeds"]
    rows = []
    for c in result.cells:
        acc = sum(c["accuracy"]) / len(c["accuracy"]) if c["accuracy"] else None
        row = [*(c["values"][a] for a in axes), acc]
        r = c.get("result")
        if ntg:
            row += [r.mean_twin_accuracy, interval_text(r), r.verdict] if r else [None] * 3
        row.append(f"{len(c['seeds'])}" + (f" ({c['missing']} missing)" if c["missing"] else ""))
        rows.append(row)
    return format_table(rows, headers, markdown)
