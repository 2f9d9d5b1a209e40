"""Text of a :class:`~transferguard.experiments.DiagnoseResult` (what ``transferguard
diagnose`` prints)."""

from __future__ import annotations

from typing import Any

from ..utils import format_table
from .tables import interval_text

__all__ = ["diagnose_text"]

_EXPLAIN = {
    "logme": "LogME of the source network's features (higher: features fit the target labels)",
    "logme_gain": "LogME of the source network minus that of a random-init network",
    "leep": "LEEP of the source classifier (<= 0; 0 is a perfect label map)",
    "nce": "NCE = -H(target label | source prediction)",
    "h_score": "H-score of the source network's features",
    "shrinkage_h_score": "H-score with a Ledoit-Wolf covariance",
    "a_distance": "proxy A-distance between source and target features (0 same, 2 apart)",
    "label_overlap": "share of target classes the source covers",
    "proxy_acc_gap": "validation accuracy: short twin run minus short method run (points)",
    "proxy_loss_gap": "validation loss: short method run minus short twin run",
    "log_labeled": "log of the number of labeled target samples",
    "finetune": "1 for the fine-tuning family (the method pre-trains a source network)",
}


def diagnose_text(result: Any) -> str:
    """Scores, verdict with probability, evidence and recommendation, as plain text."""
    t = result.task
    lines = [f"diagnose: {t['source']} -> {t['target']}, eps_x={t['eps_x']}, "
             f"eps_y={t['eps_y']}, L={t['labeled_percent']:g}%, method {result.method}", ""]
    d = result.diagnostics
    s, c = d.scores, d.control_scores
    rows = [[name, f"{getattr(s, name):.3f}", f"{getattr(c, name):.3f}"]
            for name in ("logme", "leep", "nce", "h_score", "shrinkage_h_score")]
    lines += ["transferability scores on the labeled target "
              f"({s.n} samples, {s.feature_dim}-d features):",
              format_table(rows, ["score", "source network", "random-init network"]), ""]
    lines.append(f"verdict: {result.verdict}  (P(negative transfer) = "
                 f"{result.probability:.2f})")
    if result.predictor_note:
        lines.append(f"  ({result.predictor_note})")
    lines += ["", "evidence (each feature's push on the log-odds against an average "
              "configuration of the fitted predictor; > 0 towards negative transfer):"]
    feats = result.features
    ranked = sorted(result.contributions.items(), key=lambda kv: -abs(kv[1]))
    ev = [[name, f"{feats[name]:.3g}", f"{val:+.2f}", _EXPLAIN.get(name, "")]
          for name, val in ranked]
    lines += [format_table(ev, ["feature", "value", "log-odds", "meaning"]), ""]
    lines += [f"recommended defence: {result.recommendation}", f"  {result.reason}"]
    lines.append(f"\ndiagnosis took {d.seconds:.1f} s")
    if result.applied is not None:
        r = result.applied
        lines += ["", f"applied: {result.applied_label} against {r.twin} over seeds {r.seeds}:",
                  f"  accuracy {r.mean_accuracy:.1f}, twin {r.mean_twin_accuracy:.1f}, "
                  f"NTG {interval_text(r)} -> {r.verdict}"]
        if result.recommendation == "don't transfer":
            lines.append(f"  (the method as planned against its twin: training on the target "
                         f"alone avoids an NTG of {r.ntg:+.1f} points)")
        if result.baseline is not None:
            b = result.baseline
            lines.append(f"  without safe selection ({b.method}): NTG {interval_text(b)}")
        lines += [f"  warning: {w}" for w in r.warnings]
    return "\n".join(lines)
