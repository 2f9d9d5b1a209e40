"""Plain-text and Markdown tables (no dependency beyond the standard library)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def format_table(rows: Sequence[Sequence[Any]], headers: Sequence[str],
                 markdown: bool = False) -> str:
    """Align columns; numbers right-aligned. ``markdown=True`` gives a GitHub table."""
    cells = [[str(h) for h in headers]] + [[_fmt(v) for v in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    numeric = [all(_is_num(r[i]) for r in rows) and rows for i in range(len(headers))]

    def line(r: list[str]) -> str:
        parts = [c.rjust(w) if numeric[i] else c.ljust(w) for i, (c, w) in
                 enumerate(zip(r, widths))]
        return ("| " + " | ".join(parts) + " |") if markdown else "  ".join(parts).rstrip()

    out = [line(cells[0])]
    if markdown:
        out.append("|" + "|".join(("-" * (w + 1) + ":") if numeric[i] else "-" * (w + 2)
                                  for i, w in enumerate(widths)) + "|")
    else:
        out.append("  ".join("-" * w for w in widths))
    out += [line(r) for r in cells[1:]]
    return "\n".join(out)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.1f}"
    return "" if v is None else str(v)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def ntg_table(results: Sequence[Any], markdown: bool = False,
              scenario: str | None = None) -> str:
    """One row per NTGResult: accuracy of A and A_T, NTG with its 95% CI, verdict."""
    headers = ["method", "acc", "twin", "twin acc", "NTG [95% CI]", "verdict"]
    if scenario:
        headers.insert(0, "scenario")
    rows = []
    for r in results:
        row = [r.method, r.mean_accuracy, r.twin, r.mean_twin_accuracy, r.interval_text(),
               r.verdict + (" (collapsed)" if any(r.collapsed) else "")]
        if scenario:
            row.insert(0, scenario)
        rows.append(row)
    return format_table(rows, headers, markdown)
