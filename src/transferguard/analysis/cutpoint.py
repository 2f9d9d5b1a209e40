"""The cut-point sweep of Yosinski et al. (methods reference section 5.3).

For k = 0..L (L = number of backbone blocks), transfer blocks 1..k of the pre-trained
network, re-initialise the rest, and train on the target with the transferred blocks frozen
(AnB) or fine-tuned (AnB+); k = 0 is training from scratch. Reports target test accuracy
against k, the best (k, mode), and the **cutting point**: the last k before the frozen curve
falls below the from-scratch baseline (transferring more frozen blocks than that hurts).
Both choices are made on the labeled-target validation split; the test split only reports.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..data import TransferTask
from ..engine import RunResult, Trainer

MODES = ("frozen", "finetuned")


def _mean(v: Sequence[float]) -> float:
    return statistics.fmean(v)


def _sd(v: Sequence[float]) -> float | str:
    """The sample standard deviation; blank with one seed, where it is undefined (not 0)."""
    return statistics.stdev(v) if len(v) > 1 else ""


@dataclass
class CutPointResult:
    """Test accuracies per (mode, k) and seed, and the validation accuracies that choose.

    The best treatment and the cutting point are chosen on the labeled-target validation
    split (``best``, ``cut_point``); the same choices made on the test split are reported
    beside them as oracle choices (``best_oracle``, ``cut_point_oracle``), never instead.
    Without a validation split (L = 0) only the oracle choices exist.
    """

    blocks: list[str]
    seeds: list[int]
    scratch: list[float]
    accuracy: dict[str, dict[int, list[float]]] = field(default_factory=dict)
    scratch_val: list[float] = field(default_factory=list)
    val_accuracy: dict[str, dict[int, list[float]]] = field(default_factory=dict)

    def _curves(self, oracle: bool) -> tuple[list[float], dict[str, dict[int, list[float]]]]:
        if oracle:
            return self.scratch, self.accuracy
        return self.scratch_val, self.val_accuracy

    def _has_val(self) -> bool:
        return bool(self.scratch_val) and all(v is not None for v in self.scratch_val)

    def _best(self, oracle: bool) -> tuple[int, str, float] | None:
        if not oracle and not self._has_val():
            return None
        scratch, curves = self._curves(oracle)
        best = (0, "scratch", _mean(scratch))
        for mode, per_k in curves.items():
            for k, accs in per_k.items():
                if _mean(accs) > best[2]:
                    best = (k, mode, _mean(accs))
        return best

    def _cut(self, oracle: bool) -> int | None:
        scratch, curves = self._curves(oracle)
        if "frozen" not in curves or (not oracle and not self._has_val()):
            return None
        base, cut = _mean(scratch), 0
        for k in sorted(curves["frozen"]):
            if _mean(curves["frozen"][k]) < base:
                break
            cut = k
        return cut

    @property
    def best(self) -> tuple[int, str, float] | None:
        """(k, mode, mean *validation* accuracy) of the best treatment; k = 0: scratch."""
        return self._best(oracle=False)

    @property
    def best_oracle(self) -> tuple[int, str, float]:
        """The same choice made on the test split (for reference only)."""
        return self._best(oracle=True)  # type: ignore[return-value]

    @property
    def cut_point(self) -> int | None:
        """The last k whose frozen validation accuracy is not below scratch's."""
        return self._cut(oracle=False)

    @property
    def cut_point_oracle(self) -> int | None:
        return self._cut(oracle=True)

    def test_of(self, choice: tuple[int, str, float] | None) -> float | None:
        if choice is None:
            return None
        k, mode, _ = choice
        return _mean(self.scratch) if k == 0 else _mean(self.accuracy[mode][k])

    def rows(self) -> list[list[Any]]:
        rows = [[0, "(scratch)", _mean(self.scratch), _sd(self.scratch), "", ""]]
        for k in range(1, len(self.blocks) + 1):
            row: list[Any] = [k, self.blocks[k - 1]]
            for mode in MODES:
                accs = self.accuracy.get(mode, {}).get(k)
                row += [_mean(accs), _sd(accs)] if accs else ["", ""]
            rows.append(row)
        return rows

    def to_dict(self) -> dict[str, Any]:
        def pack(d: dict[str, dict[int, list[float]]]) -> dict[str, dict[str, list[float]]]:
            return {m: {str(k): v for k, v in per.items()} for m, per in d.items()}

        return {"blocks": self.blocks, "seeds": self.seeds, "scratch": self.scratch,
                "scratch_val": self.scratch_val, "accuracy": pack(self.accuracy),
                "val_accuracy": pack(self.val_accuracy), "best": self.best,
                "best_oracle": self.best_oracle, "cut_point": self.cut_point,
                "cut_point_oracle": self.cut_point_oracle}


RunFn = Callable[[Any, TransferTask, int], RunResult]


def cut_point_sweep(task: TransferTask, pretrained: str | Callable[[int], str] | None, *,
                    model: str = "lenet", model_options: dict | None = None,
                    seeds: Sequence[int] = (0, 1, 2), trainer: Trainer | None = None,
                    modes: Sequence[str] = MODES, run: RunFn | None = None) -> CutPointResult:
    """Run every k in every mode for every seed.

    ``pretrained`` is a checkpoint path, or a function seed -> path (one source network per
    seed), or None (each run pre-trains its own source network: slow).
    """
    from ..methods.finetuning.cut import CutTransfer
    from ..models import create_model

    trainer = trainer or Trainer()
    run = run or (lambda m, t, s: trainer.with_options(seed=s).run(m, t))
    spec = task.spec
    blocks = create_model(model, 2, spec.channels, spec.size, **(model_options or {})).blocks
    result = CutPointResult(list(blocks), list(seeds), [], {m: {} for m in modes}, [],
                            {m: {} for m in modes})
    for seed in seeds:
        t = task.with_seed(seed)
        path = pretrained(seed) if callable(pretrained) else pretrained
        r = run(CutTransfer(model, model_options, pretrained=path, blocks=0), t, seed)
        result.scratch.append(r.test_accuracy)
        result.scratch_val.append(r.val_accuracy)
        for mode in modes:
            for k in range(1, len(blocks) + 1):
                m = CutTransfer(model, model_options, pretrained=path, blocks=k,
                                freeze=mode == "frozen")
                r = run(m, t, seed)
                result.accuracy[mode].setdefault(k, []).append(r.test_accuracy)
                result.val_accuracy[mode].setdefault(k, []).append(r.val_accuracy)
    return result
