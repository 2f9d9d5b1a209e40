"""Tables of results (NTG tables); the generic formatter lives in :mod:`transferguard.utils`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..utils import format_table

__all__ = ["collapse_flag", "format_table", "ntg_table"]


def collapse_flag(r: Any) -> str:
    """" (collapsed)" / " (twin collapsed)" when a side predicted one class or chance."""
    if any(r.collapsed):
        return " (collapsed)"
    if any(r.twin_collapsed):
        return " (twin collapsed)"
    return ""


def ntg_table(results: Sequence[Any], markdown: bool = False,
              scenario: str | None = None) -> str:
    """One row per NTGResult: accuracy of A and A_T, NTG with its 95% CI, verdict."""
    headers = ["method", "acc", "twin", "twin acc", "NTG [95% CI]", "verdict"]
    if scenario:
        headers.insert(0, "scenario")
    rows = []
    for r in results:
        row = [r.method, r.mean_accuracy, r.twin, r.mean_twin_accuracy, r.interval_text(),
               r.verdict + collapse_flag(r)]
        if scenario:
            row.insert(0, scenario)
        rows.append(row)
    return format_table(rows, headers, markdown)
