"""The negative transfer gap: arithmetic, intervals, verdicts, and its sign on real tasks."""

from __future__ import annotations

import math

import pytest

import transferguard as tg
from transferguard.analysis import INCONCLUSIVE, NEGATIVE, POSITIVE, NTGResult
from transferguard.analysis.ntg import confidence_interval
from transferguard.report.tables import ntg_cell


def test_ntg_arithmetic_and_table_cell():
    r = NTGResult("dann", "dann_T", [0, 1, 2], [80.0, 82.0, 84.0], [90.0, 91.0, 92.0])
    assert r.gaps == [10.0, 9.0, 8.0]
    assert r.ntg == pytest.approx(9.0)
    # acc(A) + NTG = acc(A_T), the check of methods reference section 11
    assert r.mean_accuracy + r.ntg == pytest.approx(r.mean_twin_accuracy)
    assert ntg_cell(r) == "82.0 (+9.0)"
    assert r.verdict == NEGATIVE
    d = r.to_dict()
    assert d["verdict"] == NEGATIVE and d["ci_low"] < 9.0 < d["ci_high"]


def test_confidence_interval_matches_student_t():
    mean, low, high = confidence_interval([1.0, 2.0, 3.0])
    # t(0.975, 2) = 4.3027, sd = 1, n = 3
    assert mean == 2.0 and high - mean == pytest.approx(4.3027 / math.sqrt(3), rel=1e-3)
    assert mean - low == pytest.approx(high - mean)  # symmetric
    m1, l1, h1 = confidence_interval([5.0])
    assert m1 == 5.0 and math.isnan(l1) and math.isnan(h1)


def test_verdicts():
    pos = NTGResult("a", "a_T", [0, 1, 2], [90.0, 91.0, 92.0], [80.0, 80.5, 81.0])
    assert pos.verdict == POSITIVE and pos.ntg < 0
    mixed = NTGResult("a", "a_T", [0, 1, 2], [80.0, 90.0, 85.0], [85.0, 85.0, 85.0])
    assert mixed.verdict == INCONCLUSIVE
    one = NTGResult("a", "a_T", [0], [80.0], [90.0])
    assert one.verdict == INCONCLUSIVE and any("one seed" in w for w in one.warnings)
    col = NTGResult("a", "a_T", [0, 1], [10.0, 11.0], [90.0, 91.0], [True, False])
    assert any("collapsed" in w for w in col.warnings)
    with pytest.raises(ValueError, match="one accuracy"):
        NTGResult("a", "a_T", [0, 1], [1.0], [2.0, 3.0])


@pytest.mark.slow
def test_fully_random_source_labels_cause_negative_transfer():
    """ε_y = 1 (every source label redrawn at random) at L = 50%: fine-tuning from that
    source is worse than its twin, training on the target alone: NTG > 0."""
    task = tg.TransferTask("mnist", "uci-digits", eps_y=1.0, labeled_percent=50,
                           source_size=2000, spec=tg.InputSpec(3, 16))
    tr = tg.Trainer(iterations=150, batch_size=32, progress=False)
    r = tg.negative_transfer_gap(task, "finetune", seeds=[0], trainer=tr)
    assert r.twin == "finetune_T"
    assert r.ntg > 4, r.to_dict()  # measured: +8.3 and +8.7 on seeds 0 and 1


@pytest.mark.slow
def test_clean_close_source_gives_positive_transfer():
    """A clean, close source (mnist digits for mnist-m, the same shapes in colour) with only
    10% of the target labeled: joint training beats the target alone, NTG < 0."""
    task = tg.TransferTask("mnist", "mnist-m", labeled_percent=10, source_size=2000,
                           spec=tg.InputSpec(3, 16))
    tr = tg.Trainer(iterations=150, batch_size=32, progress=False)
    r = tg.negative_transfer_gap(task, "joint", seeds=[0], trainer=tr)
    assert r.twin == "joint_T"
    assert r.ntg < -5, r.to_dict()  # measured: -12.7 and -10.7 on seeds 0 and 1
