"""Safe mode: never (knowingly) worse than the target alone (issue 10, item 4).

No source weighter is right on every source, so the last line of defence is a choice made on
target labels: train the method A and its twin A_T (the same algorithm without the source,
:meth:`~transferguard.methods.Method.twin`; in an NTG run it is the twin that run trains
anyway), then keep something other than A_T only if the labeled target's *validation* split
says, beyond its own noise, that it is better.

**Candidates.** The blends of the two runs' predicted class probabilities

    p_w(y|x) = w p_A(y|x) + (1 − w) p_T(y|x),    w in W (default {0.25, 0.5, 0.75, 1})

(w = 1 is A itself; w = 0, the twin, is the default and not a candidate). With
``blend=False``, W = {1}: A or A_T.

**The rule.** For each candidate, the one-sided exact McNemar (sign) test against the twin on
the paired validation predictions, with b = #{candidate right, A_T wrong} and
c = #{candidate wrong, A_T right}:

    p_w = P(Binomial(b + c, 1/2) >= b)

Having tried |W| candidates, the p-values are adjusted by Holm's step-down method (the
family-wise error over the candidates stays <= α, default 0.05). The candidates whose
adjusted p-value is below α have *each* been shown better than the twin; among them safe mode
keeps the one with the best validation accuracy (ties: the larger w). If none is, it keeps
A_T. So the chance that safe mode keeps a candidate that is in truth no better than the twin
is at most α, whichever candidate wins the accuracy race: choosing w on the same split costs
power (the Holm correction), not validity.

**What it costs.** Two trainings (A and A_T) instead of one; in an NTG run, none extra. On a
small validation split (a few dozen samples at L = 10%) the test rarely has the power to keep
A: safe mode then gives up a real transfer gain. The guarantee is about the validation
population (the labeled target's distribution), at level α, per decision: over a grid of many
cells, some choices of a candidate that is not better are expected (about α of the cells
where none is).

**Leakage.** The test split is never looked at for the choice: :meth:`SafeMode.choose`
receives validation predictions only, and the test predictions are read after it returns.
The validation split is the one each run already used for its model selection (both runs
were selected on it, so neither is favoured).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..data import Split, TransferTask, eval_batches
from ..engine import Trainer
from ..errors import ConfigError

METHOD, TWIN, BLEND = "method", "twin", "blend"
#: the weights of the method in the blended candidates (1 = the method alone)
DEFAULT_WEIGHTS = (0.25, 0.5, 0.75, 1.0)
CORRECTIONS = ("holm", "bonferroni")


def mcnemar_one_sided(wins: int, losses: int) -> float:
    """P(Binomial(wins + losses, 1/2) >= wins): small when A's wins outnumber its losses."""
    n = wins + losses
    if n == 0:
        return 1.0
    return sum(math.comb(n, i) for i in range(wins, n + 1)) / 2.0 ** n


def adjust_pvalues(pvalues: Sequence[float], correction: str = "holm") -> list[float]:
    """Family-wise adjusted p-values, in the input order: Holm's step-down
    (max_{j<=i} (m − j + 1) p_(j) over the sorted p-values) or Bonferroni (m p); capped at 1."""
    m = len(pvalues)
    if correction == "bonferroni":
        return [min(1.0, m * p) for p in pvalues]
    if correction != "holm":
        raise ValueError(f"correction must be one of {CORRECTIONS}, got {correction!r}.")
    order = sorted(range(m), key=lambda i: pvalues[i])
    out = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        out[i] = running
    return out


@dataclass
class SafeChoice:
    """The choice on the validation split (data; words in ``reason``).

    ``wins``/``losses``/``p_value`` are the kept candidate's against the twin (for the twin:
    the best candidate's, the evidence that was not enough); ``weight`` is the method's share
    of the kept predictions (1: the method, 0: the twin); ``candidates`` lists every candidate
    tried (weight, validation accuracy, wins, losses, p, adjusted p).
    """

    choice: str
    wins: int
    losses: int
    n_val: int
    p_value: float
    alpha: float
    reason: str
    weight: float | None = None
    p_adjusted: float | None = None
    candidates: list[dict[str, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.weight is None:
            self.weight = 1.0 if self.choice == METHOD else 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def choose(correct_method: torch.Tensor, correct_twin: torch.Tensor,
           alpha: float = 0.05) -> SafeChoice:
    """The rule with the method as the only candidate, on paired per-sample correctness
    (boolean tensors over the validation split)."""
    if correct_method.shape != correct_twin.shape:
        raise ValueError("the two runs must be scored on the same validation samples.")
    _check_alpha(alpha)
    a, t = correct_method.bool(), correct_twin.bool()
    wins, losses = int((a & ~t).sum()), int((~a & t).sum())
    p = mcnemar_one_sided(wins, losses)
    n = int(a.numel())
    if p < alpha:
        return SafeChoice(METHOD, wins, losses, n, p, alpha,
                          f"the method beat its twin on {wins} validation samples and lost on "
                          f"{losses} (one-sided McNemar p = {p:.3g} < {alpha})", 1.0, p)
    if n == 0:
        why = "no validation samples: nothing shows the source helps"
    else:
        why = (f"the method won {wins} and lost {losses} validation samples against its twin "
               f"(one-sided McNemar p = {p:.3g} >= {alpha}): not shown to help")
    return SafeChoice(TWIN, wins, losses, n, p, alpha, why, 0.0, p)


def _check_alpha(alpha: float) -> None:
    if not 0.0 < alpha < 1.0:
        raise ConfigError(f"alpha is a test level in (0, 1), got {alpha}.")


# --------------------------------------------------------------------------------------------
# predictions of one run
# --------------------------------------------------------------------------------------------


@dataclass
class SplitPredictions:
    """Class probabilities of one trained run on the labeled target's validation and test
    splits (CPU tensors), what safe mode needs from a run. Stored with :meth:`save` so that a
    run recorded once (a shared twin) serves every later choice."""

    val_probs: torch.Tensor
    val_labels: torch.Tensor
    test_probs: torch.Tensor
    test_labels: torch.Tensor

    def save(self, path: str | Path) -> None:
        from ..utils import atomic_save

        state = {k: v.contiguous() for k, v in asdict(self).items()}
        atomic_save(path, lambda fh: torch.save(state, fh))

    @classmethod
    def load(cls, path: str | Path) -> SplitPredictions:
        state = torch.load(path, map_location="cpu", weights_only=True)
        return cls(**{k: state[k] for k in ("val_probs", "val_labels", "test_probs",
                                             "test_labels")})

    def test_accuracy(self) -> float:
        return accuracy(self.test_probs, self.test_labels)


def accuracy(probs: torch.Tensor, labels: torch.Tensor) -> float:
    """Accuracy in % of the argmax of ``probs`` (nan on an empty split)."""
    if labels.numel() == 0:
        return math.nan
    return float((probs.argmax(1) == labels).float().mean() * 100)


@torch.no_grad()
def split_probabilities(model: torch.nn.Module, split: Split, spec: Any,
                        device: torch.device | str,
                        batch_size: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax probabilities (float32, CPU) and labels of ``model`` over a labeled split."""
    was = model.training
    model.eval()
    probs, labels = [], []
    for b in eval_batches(split, spec, batch_size, device):
        probs.append(torch.softmax(model(b.x).float(), 1).cpu())
        labels.append(b.y.cpu())
    model.train(was)
    k = int(getattr(model, "num_classes", 0)) or 1
    if not probs:
        return torch.zeros(0, k), torch.zeros(0, dtype=torch.long)
    return torch.cat(probs), torch.cat(labels)


def predict_splits(model: torch.nn.Module, task: TransferTask,
                   device: torch.device | str = "cpu") -> SplitPredictions:
    """The validation and test predictions of a trained model (its selected state)."""
    vp, vl = split_probabilities(model, task.train_data().target_val, task.spec, device)
    tp, tl = split_probabilities(model, task.test_split(), task.spec, device)
    return SplitPredictions(vp, vl, tp, tl)


# --------------------------------------------------------------------------------------------
# the rule with blends
# --------------------------------------------------------------------------------------------


class SafeMode:
    """Safe mode's rule: which of the method, its twin and their blends to keep.

    ``SafeMode(alpha=0.05, blend=True, weights=(0.25, 0.5, 0.75, 1.0), correction="holm")``
    stores its options only; :meth:`choose` decides on validation predictions,
    :meth:`decide` also applies the choice to the test predictions. Used by
    :func:`safe` (trains both runs), by experiment configs (``safe: true`` on a method) and
    by ``transferguard run/ntg --safe`` (both reuse the NTG's shared twin).
    """

    def __init__(self, alpha: float = 0.05, blend: bool = True,
                 weights: Sequence[float] = DEFAULT_WEIGHTS, correction: str = "holm") -> None:
        self.alpha = alpha
        self.blend = blend
        self.weights = tuple(weights)
        self.correction = correction

    def validate(self) -> SafeMode:
        _check_alpha(self.alpha)
        if self.correction not in CORRECTIONS:
            raise ConfigError(f"safe.correction must be one of {CORRECTIONS}, got "
                              f"{self.correction!r}.")
        if not isinstance(self.blend, bool):
            raise ConfigError(f"safe.blend is true or false, got {self.blend!r}.")
        ws = self.weights
        if not ws or any(isinstance(w, bool) or not isinstance(w, (int, float))
                         or not 0.0 < w <= 1.0 for w in ws) or len(set(ws)) != len(ws):
            raise ConfigError(f"safe.weights are distinct method weights in (0, 1] (1 = the "
                              f"method alone; 0, the twin, is always the fallback), got "
                              f"{list(ws)}.")
        return self

    def get_params(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "blend": self.blend, "weights": list(self.weights),
                "correction": self.correction}

    def __repr__(self) -> str:
        return "SafeMode(" + ", ".join(f"{k}={v!r}" for k, v in self.get_params().items()) + ")"

    @property
    def candidate_weights(self) -> tuple[float, ...]:
        return tuple(float(w) for w in self.weights) if self.blend else (1.0,)

    @staticmethod
    def label(method_label: str) -> str:
        return f"safe({method_label})"

    def choose(self, method_probs: torch.Tensor, twin_probs: torch.Tensor,
               labels: torch.Tensor) -> SafeChoice:
        """The choice from validation probabilities (n, K) of both runs and the labels (n)."""
        self.validate()
        if method_probs.shape != twin_probs.shape or method_probs.shape[:1] != labels.shape:
            raise ValueError(f"the two runs must be scored on the same validation samples: "
                             f"probabilities {tuple(method_probs.shape)} and "
                             f"{tuple(twin_probs.shape)}, labels {tuple(labels.shape)}.")
        n = int(labels.numel())
        twin_right = twin_probs.argmax(1) == labels
        twin_acc = float(twin_right.float().mean() * 100) if n else math.nan
        cands = []
        for w in self.candidate_weights:
            right = (w * method_probs + (1 - w) * twin_probs).argmax(1) == labels
            wins, losses = int((right & ~twin_right).sum()), int((~right & twin_right).sum())
            cands.append({"weight": w, "val_accuracy": float(right.float().mean() * 100)
                          if n else math.nan, "wins": wins, "losses": losses,
                          "p_value": mcnemar_one_sided(wins, losses)})
        for c, adj in zip(cands, adjust_pvalues([c["p_value"] for c in cands],
                                                self.correction)):
            c["p_adjusted"] = adj
        m = len(cands)
        tried = "" if m == 1 else f", {self.correction.capitalize()}-adjusted over {m} candidates"
        kept = [c for c in cands if c["p_adjusted"] < self.alpha]
        if kept:
            best = max(kept, key=lambda c: (c["val_accuracy"], c["weight"]))
            what = "the method" if best["weight"] == 1.0 else \
                f"the blend w = {best['weight']:g} (w x method + (1 - w) x twin probabilities)"
            why = (f"{what} beat the twin on {best['wins']} validation samples and lost on "
                   f"{best['losses']} (one-sided McNemar p = {best['p_value']:.3g}{tried} "
                   f"{best['p_adjusted']:.3g} < {self.alpha}); validation accuracy "
                   f"{best['val_accuracy']:.1f} vs {twin_acc:.1f}")
            if len(kept) > 1:
                why += f", the best of {len(kept)} candidates shown better"
            return SafeChoice(METHOD if best["weight"] == 1.0 else BLEND, best["wins"],
                              best["losses"], n, best["p_value"], self.alpha, why,
                              best["weight"], best["p_adjusted"], cands)
        if n == 0:
            return SafeChoice(TWIN, 0, 0, 0, 1.0, self.alpha,
                              "no validation samples: nothing shows the source helps", 0.0,
                              1.0, cands)
        best = min(cands, key=lambda c: (c["p_adjusted"], -c["weight"]))
        what = "the method" if best["weight"] == 1.0 else f"the blend w = {best['weight']:g}"
        why = (f"not shown to help: the strongest candidate, {what}, won {best['wins']} and "
               f"lost {best['losses']} validation samples against the twin (one-sided "
               f"McNemar p = {best['p_value']:.3g}{tried} {best['p_adjusted']:.3g} >= "
               f"{self.alpha})")
        return SafeChoice(TWIN, best["wins"], best["losses"], n, best["p_value"], self.alpha,
                          why, 0.0, best["p_adjusted"], cands)

    @staticmethod
    def apply(choice: SafeChoice, method_probs: torch.Tensor,
              twin_probs: torch.Tensor) -> torch.Tensor:
        """The kept predictions' probabilities on any split (after the choice is made)."""
        w = float(choice.weight or 0.0)
        if w == 0.0:  # exactly the kept run's predictions (never 0 x another run's)
            return twin_probs
        if w == 1.0:
            return method_probs
        return w * method_probs + (1 - w) * twin_probs

    def decide(self, method: SplitPredictions, twin: SplitPredictions
               ) -> tuple[SafeChoice, float]:
        """Choose on validation, then (only then) the chosen predictions' test accuracy."""
        if not torch.equal(method.val_labels, twin.val_labels) or \
                not torch.equal(method.test_labels, twin.test_labels):
            raise ValueError("the method and its twin were not evaluated on the same target "
                             "splits (were they trained with the same seed and task?).")
        c = self.choose(method.val_probs, twin.val_probs, method.val_labels)
        return c, accuracy(self.apply(c, method.test_probs, twin.test_probs),
                           method.test_labels)


def safe_label(choice: SafeChoice, method: str, twin: str) -> str:
    """What safe mode kept, as a run name: the method's, the twin's or ``blend(w=0.5)``."""
    if choice.choice == METHOD:
        return method
    if choice.choice == TWIN:
        return twin
    return f"blend({method}, w={choice.weight:g})"


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
        return safe_label(self.choice, self.method, self.twin)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["chose"] = self.chose
        return d


def safe(method: Any, task: TransferTask, trainer: Trainer | None = None, *,
         alpha: float = 0.05, blend: bool = True,
         weights: Sequence[float] = DEFAULT_WEIGHTS, correction: str = "holm",
         rule: SafeMode | None = None) -> SafeResult:
    """Train ``method`` and its twin through the Trainer, keep what the rule picks.

    ``method`` is a :class:`~transferguard.methods.Method` or a registered name; ``rule``
    (a :class:`SafeMode`) replaces ``alpha``/``blend``/``weights``/``correction``. The
    reported ``test_accuracy`` is the kept predictions' (both runs' are reported too). In
    an NTG experiment use ``safe: true`` on the method instead: it reuses the twin the NTG
    trains.
    """
    from ..methods import create_method

    if isinstance(method, str):
        method = create_method(method)
    rule = (rule or SafeMode(alpha, blend, weights, correction)).validate()
    trainer = trainer or Trainer()
    twin = method.twin()
    a = trainer.run(method, task)
    pa = predict_splits(method.model_, task, trainer.device)
    b = trainer.run(twin, task)
    pb = predict_splits(twin.model_, task, trainer.device)
    c, test = rule.decide(pa, pb)
    return SafeResult(method.label, twin.label, trainer.seed, c, test, a.test_accuracy,
                      b.test_accuracy, accuracy(pa.val_probs, pa.val_labels),
                      accuracy(pb.val_probs, pb.val_labels), a.seconds + b.seconds)


def safe_ntg(method: str, twin: str, seeds: Sequence[int],
             predictions: Sequence[tuple[SplitPredictions, SplitPredictions]],
             rule: SafeMode | None = None, level: float = 0.95
             ) -> tuple[Any, list[SafeChoice]]:
    """Safe mode's NTG from both runs' predictions per seed (no training): an
    :class:`~transferguard.analysis.NTGResult` named ``safe(METHOD)`` against the twin, and
    the choice of every seed."""
    from .ntg import NTGResult

    rule = (rule or SafeMode()).validate()
    if len(predictions) != len(seeds):
        raise ValueError(f"one (method, twin) prediction pair per seed: {len(predictions)} "
                         f"for {len(seeds)} seeds.")
    acc, twin_acc, choices = [], [], []
    for pa, pb in predictions:
        c, test = rule.decide(pa, pb)
        acc.append(test)
        twin_acc.append(pb.test_accuracy())
        choices.append(c)
    return NTGResult(rule.label(method), twin, list(seeds), acc, twin_acc, level=level), choices
