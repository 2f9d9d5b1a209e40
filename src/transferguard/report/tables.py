"""Text and Markdown for result objects (they hold data; the words and tables are here).

The generic column formatter lives in :mod:`transferguard.utils`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ..utils import format_table

__all__ = ["collapse_flag", "cutpoint_table", "experiment_table", "failures_text", "format_table",
           "harmful_summary", "interval_text", "ntg_cell", "ntg_table"]


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
        row = [r.method, r.mean_accuracy, r.twin, r.mean_twin_accuracy, interval_text(r),
               r.verdict + collapse_flag(r)]
        if scenario:
            row.insert(0, scenario)
        rows.append(row)
    return format_table(rows, headers, markdown)


def ntg_cell(r: Any) -> str:
    """Wang et al.'s table form: accuracy with the NTG in brackets, e.g. ``86.7 (+5.7)``."""
    return f"{r.mean_accuracy:.1f} ({r.ntg:+.1f})"


def interval_text(r: Any) -> str:
    """``+1.5 [+0.3, +2.7]``: the NTG with its confidence interval (the mean alone for one
    seed)."""
    mean, low, high = r.interval
    if math.isnan(low):
        return f"{mean:+.1f}"
    return f"{mean:+.1f} [{low:+.1f}, {high:+.1f}]"


def experiment_table(result: Any, markdown: bool = False) -> str:
    """An experiment's NTG table, or its runs when it trained no twins."""
    if result.ntg:
        return ntg_table(result.ntg, markdown)
    rows = [[r["method"], r["seed"], r["test_accuracy"], r["test_accuracy_last"]]
            for r in result.runs]
    return format_table(rows, ["method", "seed", "test acc", "last-iterate acc"], markdown)


def harmful_summary(report: Any) -> str:
    """One paragraph: how well the source weights find the wrong labels and corrupted images."""
    def f(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.3f}"

    return (f"wrong labels: AUROC {f(report.label_auroc)} (ω), "
            f"{f(report.conditional_label_auroc)} (conditional ratio), "
            f"{f(report.small_loss_label_auroc)} (small-loss baseline); precision of ω at the "
            f"corruption rate {f(report.label_precision_at_rate)} (random = "
            f"{report.label_corruption_rate:.2f}). Corrupted images: AUROC "
            f"{f(report.image_auroc)} (ω), {f(report.marginal_image_auroc)} (marginal ratio). "
            f"Either: AUROC {f(report.any_auroc)} (ω).")


def cutpoint_table(result: Any, markdown: bool = False) -> str:
    """Accuracy against the number of blocks transferred, and the cut point chosen."""
    headers = ["k", "last block transferred", "frozen test acc", "sd",
               "fine-tuned test acc", "sd"]
    text = format_table(result.rows(), headers, markdown)

    def say(choice: Any) -> str:
        if choice is None:
            return "n/a (no validation split)"
        k, mode, _ = choice
        what = "from scratch (no block)" if k == 0 else f"k={k} ({mode})"
        return f"{what}, test accuracy {result.test_of(choice):.1f}%"

    return (text + f"\n\nbest, chosen on validation: {say(result.best)}; cutting point "
            f"(frozen, on validation): k={result.cut_point}.\nOracle (chosen on test, for "
            f"reference): {say(result.best_oracle)}; cutting point k={result.cut_point_oracle}.")


def failures_text(failed: Sequence[dict[str, Any]]) -> str:
    """The runs of an experiment that did not finish, one line each, with what to do."""
    lines = [f"{len(failed)} failed (recorded in runs.sqlite; `--resume` skips them, "
             "`--resume --retry-failed` trains them again):"]
    for f in failed:
        seed = "" if f.get("seed") is None else f" seed {f['seed']}"
        lines.append(f"- {f['method']}{seed}: {f['error']}")
    return "\n".join(lines)
