"""The table of a sweep: one row per grid cell (:func:`~transferguard.experiments.sweep.
sweep_cells`), its axis values, then the NTG over its seeds or the mean accuracy. A method
with ``safe:`` has a row of its own, ``safe(LABEL)``, right after its method's, with what safe
mode kept in each seed."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from .tables import format_table, interval_text


def kept_text(decisions: Sequence[dict[str, Any]]) -> str:
    """What safe mode kept over the seeds of a cell, e.g. ``twin x2, blend w=0.5``: ``method``
    (the method's own predictions), ``twin`` (the target-only run) or ``blend w=W`` (W x the
    method's probabilities + (1 - W) x the twin's)."""
    counts = Counter(_kept(d["choice"]) for d in decisions)
    return ", ".join(k if n == 1 else f"{k} x{n}" for k, n in counts.items()) or "—"


def _kept(choice: dict[str, Any]) -> str:
    return f"blend w={choice['weight']:g}" if choice["choice"] == "blend" else choice["choice"]


def sweep_table(result: Any, markdown: bool = False) -> str:
    """``result`` a :class:`~transferguard.experiments.sweep.SweepResult`. With twins: acc,
    twin acc, NTG [95% CI] and verdict per cell; without: the mean test accuracy. ``seeds``
    counts the seeds whose runs finished (and those still missing). With safe mode, a
    ``kept`` column says what it kept in its rows (and a ``method`` column names the rows
    when the grid has no ``methods`` axis)."""
    if not result.cells:
        return "(no runs)"
    axes = list(result.cells[0]["values"])
    ntg = any(c.get("twin") for c in result.cells)
    safe = any(c.get("safe") for c in result.cells)
    named = safe and "methods" not in axes
    headers = [*axes, *(["method"] if named else []), "acc",
               *(["twin acc", "NTG [95% CI]", "verdict"] if ntg else []),
               *(["kept"] if safe else []), "seeds"]
    rows = []
    for c in result.cells:
        acc = sum(c["accuracy"]) / len(c["accuracy"]) if c["accuracy"] else None
        row = [*(c["values"][a] for a in axes), *([c["method"]] if named else []), acc]
        r = c.get("result")
        if ntg:
            row += [r.mean_twin_accuracy, interval_text(r), r.verdict] if r else [None] * 3
        if safe:
            row.append(kept_text(c["choices"]) if c.get("safe") else "")
        row.append(f"{len(c['seeds'])}" + (f" ({c['missing']} missing)" if c["missing"] else ""))
        rows.append(row)
    return format_table(rows, headers, markdown)


def sweep_safe_text(result: Any) -> str:
    """Safe mode's choice in every seed of every safe cell, with the reason (one line each);
    "" when the sweep has no safe cell."""
    lines = []
    for c in result.cells:
        if not c.get("safe"):
            continue
        where = ", ".join(f"{a}={v}" for a, v in c["values"].items() if a != "methods")
        for d in c["choices"]:
            ch = d["choice"]
            lines.append(f"- {c['method']}{f' ({where})' if where else ''}, seed {d['seed']}: "
                         f"kept {_kept(ch)} ({ch['n_val']} validation samples): {ch['reason']}")
    if not lines:
        return ""
    return "Safe mode, what it kept and why (chosen on the validation split):\n" + \
        "\n".join(lines)
