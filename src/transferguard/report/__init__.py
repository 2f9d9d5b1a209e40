"""Report: the words, tables and plots for result objects (which only hold data)."""

from .diagnosis import diagnose_text
from .tables import (
    cutpoint_table,
    experiment_table,
    format_table,
    harmful_summary,
    interval_text,
    ntg_cell,
    ntg_table,
    safe_summary,
)

__all__ = ["cutpoint_table", "diagnose_text", "experiment_table", "format_table", "harmful_summary",
           "interval_text", "ntg_cell", "ntg_table", "safe_summary"]
