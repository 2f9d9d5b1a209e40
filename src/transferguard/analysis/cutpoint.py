"""The cut-point sweep of Yosinski et al. (methods reference section 5.3).

For k = 0..L (L = number of backbone blocks), transfer blocks 1..k of the pre-trained
network, re-initialise the rest, and train on the target with the transferred blocks frozen
(AnB) or fine-tuned (AnB+); k = 0 is training from scratch. Reports target accuracy against
k, the best (k, mode), and the **cutting point**: the last k before the frozen curve falls
below the from-scratch baseline (transferring more frozen blocks than that hurts).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..data.task import TransferTask
from ..engine import RunResult, Trainer

MODES = ("frozen", "finetuned")


def _mean(v: Sequence[float]) -> float:
    return statistics.fmean(v)


def _sd(v: Sequence[float]) -> float:
    return statistics.stdev(v) if len(v) > 1 else 0.0


@dataclass
class CutPointResult:
    blocks: list[str]
    seeds: list[int]
    scratch: list[float]
    accuracy: dict[str, dict[int, list[float]]] = field(default_factory=dict)

    def mean(self, mode: str, k: int) -> float:
        return _mean(self.scratch) if k == 0 else _mean(self.accuracy[mode][k])

    @property
    def best(self) -> tuple[int, str, float]:
        """(k, mode, mean accuracy) of the best treatment; k = 0 means "from scratch"."""
        best = (0, "scratch", _mean(self.scratch))
        for mode, per_k in self.accuracy.items():
            for k, accs in per_k.items():
                if _mean(accs) > best[2]:
                    best = (k, mode, _mean(accs))
        return best

    @property
    def cut_point(self) -> int | None:
        """The last k whose frozen accuracy is not below scratch (None without frozen runs)."""
        if "frozen" not in self.accuracy:
            return None
        base, cut = _mean(self.scratch), 0
        for k in sorted(self.accuracy["frozen"]):
            if _mean(self.accuracy["frozen"][k]) < base:
                break
            cut = k
        return cut

    def rows(self) -> list[list[Any]]:
        rows = [[0, "(scratch)", _mean(self.scratch), _sd(self.scratch), "", ""]]
        for k in range(1, len(self.blocks) + 1):
            row: list[Any] = [k, self.blocks[k - 1]]
            for mode in MODES:
                accs = self.accuracy.get(mode, {}).get(k)
                row += [_mean(accs), _sd(accs)] if accs else ["", ""]
            rows.append(row)
        return rows

    def table(self, markdown: bool = False) -> str:
        from ..report.tables import format_table

        headers = ["k", "last block transferred", "frozen acc", "sd", "fine-tuned acc", "sd"]
        text = format_table(self.rows(), headers, markdown)
        k, mode, acc = self.best
        what = "from scratch (no block)" if k == 0 else f"k={k} ({mode})"
        return (text + f"\n\nbest: {what}, {acc:.1f}%; cutting point (frozen): "
                f"k={self.cut_point}")

    def to_dict(self) -> dict[str, Any]:
        k, mode, acc = self.best
        return {"blocks": self.blocks, "seeds": self.seeds, "scratch": self.scratch,
                "accuracy": {m: {str(k): v for k, v in d.items()} for m, d in
                             self.accuracy.items()},
                "best": {"k": k, "mode": mode, "accuracy": acc}, "cut_point": self.cut_point}


RunFn = Callable[[Any, TransferTask, int], RunResult]


def cut_point_sweep(task: TransferTask, pretrained: str | Callable[[int], str] | None, *,
                    model: str = "lenet", model_options: dict | None = None,
                    seeds: Sequence[int] = (0, 1, 2), trainer: Trainer | None = None,
                    modes: Sequence[str] = MODES, run: RunFn | None = None) -> CutPointResult:
    """Run every k in every mode for every seed.

    ``pretrained`` is a checkpoint path, or a function seed -> path (one source network per
    seed), or None (each run pre-trains its own source network: slow).
    """
    from ..methods.cut import CutTransfer
    from ..models import create_model

    trainer = trainer or Trainer()
    run = run or (lambda m, t, s: trainer.with_options(seed=s).run(m, t))
    spec = task.spec
    blocks = create_model(model, 2, spec.channels, spec.size, **(model_options or {})).blocks
    result = CutPointResult(list(blocks), list(seeds), [], {m: {} for m in modes})
    for seed in seeds:
        t = task.with_seed(seed)
        path = pretrained(seed) if callable(pretrained) else pretrained
        scratch = CutTransfer(model, model_options, pretrained=path, blocks=0)
        result.scratch.append(run(scratch, t, seed).test_accuracy)
        for mode in modes:
            for k in range(1, len(blocks) + 1):
                m = CutTransfer(model, model_options, pretrained=path, blocks=k,
                                freeze=mode == "frozen")
                result.accuracy[mode].setdefault(k, []).append(run(m, t, seed).test_accuracy)
    return result
