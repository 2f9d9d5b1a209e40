"""Safe mode: never (knowingly) worse than the target alone (issue 10).

No source weighter is right on every source, so the last line of defence is a choice made on
target labels: train the method A and its twin A_T (the same algorithm without the source,
:meth:`~transferguard.methods.Method.twin`), then keep A only if the labeled target's
*validation* split says, beyond its own noise, that A is better.

The rule is a one-sided exact McNemar (sign) test on the paired validation predictions:
with b = #{A right, A_T wrong} and c = #{A wrong, A_T right},

    p = P(Binomial(b + c, 1/2) >= b)        keep A  iff  p < α   (default α = 0.05)

otherwise A_T. The twin is the default because it is the "do no harm" answer: the burden of
proof is on the source. On a small validation split (a few dozen samples at L = 10%) the test
rarely has the power to keep A, so safe mode gives up real transfer gains there; that is its
cost, besides training twice. The test split is never looked at for the choice; the
validation split is the one each run already used for its model selection (both runs were
selected on it, so neither is favoured).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch

from ..data import TransferTask, iterate_batches
from ..engine import Trainer

METHOD, TWIN = "method", "twin"


def mcnemar_one_sided(wins: int, losses: int) -> float:
    """P(Binomial(wins + losses, 1/2) >= wins): small when A's wins outnumber its losses."""
    n = wins + losses
    if n == 0:
        return 1.0
    return sum(math.comb(n, i) for i in range(wins, n + 1)) / 2.0 ** n


@dataclass
class SafeChoice:
    """The choice on the validation split (data; words in ``reason``)."""

    choice: str
    wins: int
    losses: int
    n_val: int
    p_value: float
    alpha: float
    reason: str


def choose(correct_method: torch.Tensor, correct_twin: torch.Tensor,
           alpha: float = 0.05) -> SafeChoice:
    """The rule on paired per-sample correctness (boolean tensors of the validation split)."""
    if correct_method.shape != correct_twin.shape:
        raise ValueError("the two runs must be scored on the same validation samples.")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha is a test level in (0, 1), got {alpha}.")
    a, t = correct_method.bool(), correct_twin.bool()
    wins, losses = int((a & ~t).sum()), int((~a & t).sum())
    p = mcnemar_one_sided(wins, losses)
    n = int(a.numel())
    if p < alpha:
        return SafeChoice(METHOD, wins, losses, n, p, alpha,
                          f"the method beat its twin on {wins} validation samples and lost on "
                          f"{losses} (one-sided McNemar p = {p:.3g} < {alpha})")
    if n == 0:
        why = "no validation samples: nothing shows the source helps"
    else:
        why = (f"the method won {wins} and lost {losses} validation samples against its twin "
               f"(one-sided McNemar p = {p:.3g} >= {alpha}): not shown to help")
    return SafeChoice(TWIN, wins, losses, n, p, alpha, why)


@dataclass
class SafeResult:
    """A safe-mode run: both candidates' accuracies, the choice and why."""

    method: str
    twin: str
    seed: int
    choice: SafeChoice
    test_accuracy: float
    method_test_accuracy: float
    twin_test_accuracy: float
    method_val_accuracy: float
    twin_val_accuracy: float
    seconds: float

    @property
    def chose(self) -> str:
        return self.method if self.choice.choice == METHOD else self.twin

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["chose"] = self.chose
        return d


@torch.no_grad()
def _val_correct(method: Any, task: TransferTask, device: torch.device) -> torch.Tensor:
    model = method.model_
    was = model.training
    model.eval()
    out = []
    for b in iterate_batches(task.train_data().target_val, task.spec, 512, device):
        out.append((model(b.x).argmax(1) == b.y).cpu())
    model.train(was)
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.bool)


def safe(method: Any, task: TransferTask, trainer: Trainer | None = None, *,
         alpha: float = 0.05) -> SafeResult:
    """Train ``method`` and its twin through the Trainer, keep the one the rule picks.

    ``method`` is a :class:`~transferguard.methods.Method` or a registered name. The
    reported ``test_accuracy`` is the chosen run's (both are reported too).
    """
    from ..methods import create_method

    if isinstance(method, str):
        method = create_method(method)
    trainer = trainer or Trainer()
    twin = method.twin()
    a = trainer.run(method, task)
    ca = _val_correct(method, task, trainer.device)
    b = trainer.run(twin, task)
    cb = _val_correct(twin, task, trainer.device)
    c = choose(ca, cb, alpha)
    acc = lambda x: float(x.float().mean() * 100) if x.numel() else math.nan  # noqa: E731
    test = a.test_accuracy if c.choice == METHOD else b.test_accuracy
    return SafeResult(method.label, twin.label, trainer.seed, c, test, a.test_accuracy,
                      b.test_accuracy, acc(ca), acc(cb), a.seconds + b.seconds)
