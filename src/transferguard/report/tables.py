"""Text and Markdown for result objects (they hold data; the words and tables are here).

The generic column formatter lives in :mod:`transferguard.utils`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ..utils import format_table

__all__ = ["active_table", "collapse_flag", "cutpoint_table", "experiment_table",
           "failures_text", "format_table", "harmful_summary", "interval_text", "ntg_cell",
           "ntg_table", "safe_choices_text", "safe_summary", "signed", "task_line"]


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
               r.verdict + collapse_flag(r) + (" (thin margin)" if r.thin_margin else "")]
        if scenario:
            row.insert(0, scenario)
        rows.append(row)
    return format_table(rows, headers, markdown)


def signed(value: float, digits: int = 1) -> str:
    """``+1.5`` / ``-0.3`` / ``+0.0``: a signed number that never prints ``-0.0`` (a value
    that rounds to zero has no sign worth showing)."""
    rounded = round(float(value), digits)
    return f"{(rounded if rounded != 0 else 0.0):+.{digits}f}"


def ntg_cell(r: Any) -> str:
    """Wang et al.'s table form: accuracy with the NTG in brackets, e.g. ``86.7 (+5.7)``."""
    return f"{r.mean_accuracy:.1f} ({signed(r.ntg)})"


def interval_text(r: Any) -> str:
    """``+1.5 [+0.3, +2.7]``: the NTG with its confidence interval (the mean alone for one
    seed)."""
    mean, low, high = r.interval
    if math.isnan(low):
        return signed(mean)
    return f"{signed(mean)} [{signed(low)}, {signed(high)}]"


def task_line(task: Any) -> str:
    """One line on a built task: the splits, with L% as asked and as realised (tiny targets
    round it up to one labeled image per class)."""
    sm = task.summary()
    labeled = sm["target_labeled"] + sm["target_val"]
    pool = labeled + sm["target_unlabeled"] if task.unlabeled == "rest" else None
    asked = (f"{task.labeled_per_class} per class" if task.labeled_per_class is not None
             else f"{task.labeled_percent:g}%")
    of_pool = f" of a pool of {pool}" if pool is not None else ""
    return (f"task: {task.source_name} -> {task.target_name}: source {sm['source']}, "
            f"L = {asked} asked, {sm['labeled_percent_effective']:.1f}% effective "
            f"({labeled} labeled{of_pool}: {sm['target_labeled']} train, {sm['target_val']} "
            f"validation), test {sm['target_test']}")


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
def active_table(result: Any, markdown: bool = False) -> str:
    """Active-learning curves: one row per round, one column per strategy, each cell the mean
    test accuracy over seeds with its 95% interval."""
    strategies = result.strategies()
    curves = {s: result.curve(s) for s in strategies}
    n_rounds = max(len(c) for c in curves.values())
    rows = []
    for i in range(n_rounds):
        first = next(c[i] for c in curves.values() if len(c) > i)
        row: list[Any] = [first["round"], first["queried"]]
        for s in strategies:
            if len(curves[s]) <= i:
                row.append("")
                continue
            p = curves[s][i]
            ci = "" if math.isnan(p["low"]) else f" [{p['low']:.1f}, {p['high']:.1f}]"
            row.append(f"{p['mean']:.1f}{ci}")
        rows.append(row)
    return format_table(rows, ["round", "queried"] + strategies, markdown)


def safe_summary(result: Any) -> str:
    """One paragraph: which run safe mode kept, and the evidence on the validation split."""
    c = result.choice
    return (f"safe mode kept {result.chose} (test accuracy {result.test_accuracy:.1f}; "
            f"{result.method} {result.method_test_accuracy:.1f}, {result.twin} "
            f"{result.twin_test_accuracy:.1f}). Validation ({c.n_val} samples): "
            f"{result.method} {result.method_val_accuracy:.1f}, {result.twin} "
            f"{result.twin_val_accuracy:.1f}; {c.reason}.")


def safe_choices_text(entry: dict[str, Any]) -> str:
    """Safe mode's choice per seed (an entry of ``ExperimentResult.safe``), one line each."""
    lines = [f"{entry['method']}: what it kept, per seed"]
    for seed, c in zip(entry["seeds"], entry["choices"]):
        kept = f"blend w = {c['weight']:g}" if c["choice"] == "blend" else c["choice"]
        lines.append(f"- seed {seed}: {kept} ({c['n_val']} validation samples): {c['reason']}")
    return "\n".join(lines)


def failures_text(failed: Sequence[dict[str, Any]]) -> str:
    """The runs of an experiment that did not finish, one line each, with what to do."""
    lines = [f"{len(failed)} failed (recorded in runs.sqlite; `--resume` skips them, "
             "`--resume --retry-failed` trains them again):"]
    for f in failed:
        seed = "" if f.get("seed") is None else f" seed {f['seed']}"
        lines.append(f"- {f['method']}{seed}: {f['error']}")
    return "\n".join(lines)
