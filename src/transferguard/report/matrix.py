"""Text tables of the cross-domain matrix and of neuron impact."""

from __future__ import annotations

from typing import Any

from ..utils import format_table

TITLES = {"raw": "accuracy (%)", "row": "relative change vs the model's in-domain accuracy (%)",
          "column": "relative change vs the test domain's in-domain model (%)"}


def matrix_table(result: Any, view: str = "raw", markdown: bool = False) -> str:
    """Rows: training domain; columns: test domain. ``view``: raw, row or column."""
    values = result.view(view)
    sds = result.sd() if view == "raw" else None
    rows = []
    for i, name in enumerate(result.domains):
        cells: list[Any] = []
        for j, v in enumerate(values[i]):
            if view == "raw":
                sd = sds[i][j]
                cells.append(f"{v:.1f}" + (f" ± {sd:.1f}" if sd is not None else ""))
            else:
                cells.append("0%" if i == j else f"{v:+.0f}%")
        if view == "raw":
            cells.append(f"{result.percent_drop()[i]:.0f}%")
        rows.append([name, *cells])
    headers = ["trained on \\ tested on", *result.domains]
    if view == "raw":
        headers.append("percent drop")
    return format_table(rows, headers, markdown)


def impact_table(result: Any, markdown: bool = False, z: float = 0.0) -> str:
    """Per layer: units, harmful share, most negative / median / largest impact."""
    import torch

    rows = []
    share = result.harmful_share(z=z)
    for name in result.layers:
        s = result.impact[name]
        rows.append([name, s.numel(), f"{share[name] * 100:.0f}%",
                     f"{float(s.min()):+.4f}", f"{float(torch.median(s)):+.4f}",
                     f"{float(s.max()):+.4f}"])
    return format_table(rows, ["layer", "units", "harmful", "min impact", "median", "max"],
                        markdown)
