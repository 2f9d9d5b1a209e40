"""Validators: model-selection rules, labeled and label-free, as first-class objects.

A validator turns a trained model into one number, **higher is better**, so that every rule
picks a checkpoint the same way (the highest score; ties go to the later checkpoint, as in
the Trainer). The Trainer's own rule, accuracy on the labeled target validation split, is
one validator (``target_val``); the others use no target label:

- ``target_val``: accuracy on the labeled target validation split (the Trainer's rule);
- ``source_acc``: accuracy on source samples (the classic DA practice);
- ``entropy``: −1/N Σ H(p(x_t)), confident target predictions (Morerio et al. 2018);
- ``im``: H(1/N Σ p(x_t)) − 1/N Σ H(p(x_t)), confident *and* diverse (information
  maximisation; pytorch-adapt's IMValidator);
- ``snd``: 1/N Σ_i H(softmax_j(⟨p̂_i, p̂_j⟩ / τ)), p̂ the L2-normalised softmax, j ≠ i,
  τ = 0.05 (soft neighbourhood density, Saito et al. ICCV 2021; skada's
  SoftNeighborhoodDensity);
- ``dev``: −(mean(w ℓ) + η mean(w) − η), η = −Cov(wℓ, w) / Var(w), with w = p_T(x)/p_S(x)
  from a logistic domain classifier on features and ℓ the source loss (deep embedded
  validation, You et al. ICML 2019).

All label-free rules read model outputs on at most ``max_samples`` unlabeled target samples
(and source samples for ``source_acc`` / ``dev``), gathered once per checkpoint by
:func:`collect_outputs` and shared by every validator (one forward pass, not one per rule).

Two honest caveats:

- :class:`~transferguard.data.TrainData` holds no held-out *source* split, so ``source_acc``
  and ``dev`` read a fixed subsample of the training source (DEV fits its domain classifier on
  one half and weighs the other). That measures fit to the source rather than held-out
  source error, which makes both rules optimistic about source over-fitting.
- ``entropy`` and ``snd`` reward a model that predicts one class with confidence (a collapsed
  DA run): known failures of both. With ``guard_collapse=True`` (the default) every
  label-free validator scores −inf when one class takes ≥ 80% of the target predictions, the
  toolkit's collapse flag (``EvalResult.collapsed``); ``guard_collapse=False`` gives the
  published rules.

:class:`ValidatorCallback` evaluates validators at every evaluation point of a training
(``Trainer(..., callbacks=[cb])``; the values join the history rows), and
:func:`select_checkpoints` / :func:`selection_summary` turn those rows into the checkpoint each
rule picks and what it costs against the oracle.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data import Split, TrainData, iterate_batches
from ..errors import ConfigError, DataError
from ..registry import Registry
from ..utils import make_generator

__all__ = [
    "VALIDATORS",
    "DeepEmbeddedValidation",
    "EntropyValidator",
    "InfoMaxValidator",
    "SelectionSummary",
    "SoftNeighborhoodDensity",
    "SourceAccuracy",
    "TargetValAccuracy",
    "ValidationOutputs",
    "Validator",
    "ValidatorCallback",
    "collect_outputs",
    "create_validator",
    "list_validators",
    "select_checkpoints",
    "selection_summary",
]

#: one class taking this share of the target predictions is a collapse (as EvalResult.collapsed)
COLLAPSE_FRACTION = 0.8


@dataclass
class ValidationOutputs:
    """Model outputs a validator reads: logits and features on target / source / validation."""

    target_logits: torch.Tensor
    target_features: torch.Tensor
    source_logits: torch.Tensor
    source_features: torch.Tensor
    source_labels: torch.Tensor
    val_logits: torch.Tensor
    val_labels: torch.Tensor

    @property
    def target_probs(self) -> torch.Tensor:
        return torch.softmax(self.target_logits.double(), 1)

    @property
    def majority_fraction(self) -> float:
        pred = self.target_logits.argmax(1)
        return float(torch.bincount(pred).max()) / max(1, len(pred))


def _subsample(split: Split, n: int, seed: int) -> Split:
    if len(split) <= n:
        return split
    keep = torch.randperm(len(split), generator=make_generator(seed))[:n].sort().values
    labels = split.labels[keep] if split.labels is not None else None
    return Split(split.name, split.images[keep], labels, split.indices[keep])


@torch.no_grad()
def _outputs(model: nn.Module, split: Split, spec: Any, device: torch.device,
             batch_size: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    feats, logits = [], []
    for batch in iterate_batches(split, spec, batch_size, device):
        x = batch.x
        if x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        h = model.features(x)
        feats.append(h.float().cpu())
        logits.append(model.head(h).float().cpu())
    if not feats:
        return torch.empty(0, 0), torch.empty(0, 0)
    return torch.cat(feats), torch.cat(logits)


def collect_outputs(model: nn.Module, data: TrainData, *, max_samples: int = 1000,
                    seed: int = 0, device: torch.device | str = "cpu",
                    need_source: bool = True, need_val: bool = True) -> ValidationOutputs:
    """One forward pass of ``model`` (a :class:`TransferModel`) over what validators read.

    The unlabeled target (or, when there is none, the labeled target with its labels unused)
    and the source are subsampled to ``max_samples`` with a fixed ``seed``, so every
    checkpoint of a run is scored on the same samples.
    """
    device = torch.device(device)
    target = data.target_unlabeled if len(data.target_unlabeled) else data.target_labeled
    if len(target) == 0:
        raise DataError("validators need target samples: the task has no unlabeled or "
                        "labeled target training data.")
    was = model.training
    model.eval()
    try:
        tf, tl = _outputs(model, _subsample(target, max_samples, seed), data.spec, device)
        src = _subsample(data.source, max_samples, seed + 1) if need_source else None
        if src is not None and len(src):
            sf, sl = _outputs(model, src, data.spec, device)
            sy = src.labels if src.labels is not None else torch.empty(0, dtype=torch.long)
        else:
            sf, sl, sy = tf[:0], tl[:0], torch.empty(0, dtype=torch.long)
        if need_val and len(data.target_val):
            _, vl = _outputs(model, data.target_val, data.spec, device)
            vy = data.target_val.labels
        else:
            vl, vy = tl[:0], torch.empty(0, dtype=torch.long)
    finally:
        model.train(was)
    return ValidationOutputs(tl, tf, sl, sf, sy, vl, vy)


# ---------------------------------------------------------------------- the interface
class Validator:
    """A model-selection rule: ``score(outputs) -> float``, higher is better.

    ``validator(model, data)`` gathers the outputs and scores them in one call; a training
    callback gathers them once for all validators (:class:`ValidatorCallback`).
    """

    name: ClassVar[str] = "validator"
    #: True when the rule reads target labels (the labeled-validation rule)
    uses_target_labels: ClassVar[bool] = False
    #: True when the rule reads source samples
    uses_source: ClassVar[bool] = False

    def __init__(self, guard_collapse: bool = True) -> None:
        self.guard_collapse = bool(guard_collapse)

    def score(self, outputs: ValidationOutputs) -> float:
        if (self.guard_collapse and not self.uses_target_labels
                and outputs.majority_fraction >= COLLAPSE_FRACTION):
            return -math.inf
        return float(self._score(outputs))

    def _score(self, outputs: ValidationOutputs) -> float:
        raise NotImplementedError

    def __call__(self, model: nn.Module, data: TrainData, *, max_samples: int = 1000,
                 device: torch.device | str = "cpu") -> float:
        return self.score(collect_outputs(model, data, max_samples=max_samples, device=device,
                                          need_source=self.uses_source,
                                          need_val=self.uses_target_labels))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(guard_collapse={self.guard_collapse})"


VALIDATORS: Registry[type[Validator]] = Registry("validator")
V = TypeVar("V", bound=type[Validator])


def register_validator(name: str, description: str = "") -> Callable[[V], V]:
    """Class decorator: register a :class:`Validator` subclass under ``name``."""
    return VALIDATORS.register_class(name, description)


def list_validators() -> list[str]:
    return VALIDATORS.names()


def create_validator(name: str, **params: Any) -> Validator:
    return VALIDATORS.get(name)(**params)


def _entropy_rows(p: torch.Tensor) -> torch.Tensor:
    return -(p * torch.log(p.clamp_min(1e-12))).sum(1)


@register_validator("target_val", "accuracy on the labeled target validation split")
class TargetValAccuracy(Validator):
    uses_target_labels = True

    def _score(self, outputs: ValidationOutputs) -> float:
        if len(outputs.val_labels) == 0:
            raise DataError("target_val needs a labeled target validation split; the task "
                            "has none (labeled_percent > 0 and val_fraction > 0).")
        return float((outputs.val_logits.argmax(1) == outputs.val_labels).double().mean() * 100)


@register_validator("source_acc", "accuracy on source samples (training source, see caveat)")
class SourceAccuracy(Validator):
    uses_source = True

    def _score(self, outputs: ValidationOutputs) -> float:
        if len(outputs.source_labels) == 0:
            raise DataError("source_acc needs labeled source samples; the data has none.")
        return float((outputs.source_logits.argmax(1) == outputs.source_labels)
                     .double().mean() * 100)


@register_validator("entropy", "negative mean prediction entropy on the target")
class EntropyValidator(Validator):
    def _score(self, outputs: ValidationOutputs) -> float:
        return -float(_entropy_rows(outputs.target_probs).mean())


@register_validator("im", "information maximisation: entropy of the mean minus mean entropy")
class InfoMaxValidator(Validator):
    def _score(self, outputs: ValidationOutputs) -> float:
        p = outputs.target_probs
        return float(_entropy_rows(p.mean(0, keepdim=True))[0] - _entropy_rows(p).mean())


@register_validator("snd", "soft neighbourhood density (Saito et al. 2021)")
class SoftNeighborhoodDensity(Validator):
    def __init__(self, guard_collapse: bool = True, temperature: float = 0.05) -> None:
        super().__init__(guard_collapse)
        if temperature <= 0:
            raise ConfigError(f"snd temperature must be positive, got {temperature}.")
        self.temperature = float(temperature)

    def _score(self, outputs: ValidationOutputs) -> float:
        p = F.normalize(outputs.target_probs, dim=1)
        if len(p) < 2:
            raise DataError("snd needs at least 2 target samples.")
        sim = p @ p.T
        sim.fill_diagonal_(-math.inf)  # a sample is not its own neighbour
        q = torch.softmax(sim / self.temperature, 1)
        return float(_entropy_rows(q).mean())


@register_validator("dev", "deep embedded validation (You et al. 2019), importance-weighted "
                           "source loss")
class DeepEmbeddedValidation(Validator):
    uses_source = True

    def __init__(self, guard_collapse: bool = True, C: float = 1.0) -> None:
        super().__init__(guard_collapse)
        self.C = float(C)

    def _score(self, outputs: ValidationOutputs) -> float:
        from sklearn.linear_model import LogisticRegression

        sf, tf = outputs.source_features.double().numpy(), outputs.target_features.double().numpy()
        if len(sf) < 4 or len(tf) < 2:
            raise DataError("dev needs at least 4 source and 2 target samples.")
        half = len(sf) // 2
        fit_s, val_s = sf[:half], sf[half:]
        x = np.concatenate([fit_s, tf])
        mu, sd = x.mean(0), x.std(0) + 1e-8
        d = np.concatenate([np.zeros(len(fit_s)), np.ones(len(tf))])
        clf = LogisticRegression(C=self.C, max_iter=500).fit((x - mu) / sd, d)
        p_t = clf.predict_proba((val_s - mu) / sd)[:, 1].clip(1e-6, 1 - 1e-6)
        w = p_t / (1 - p_t) * len(fit_s) / len(tf)  # density ratio p_T(x) / p_S(x)
        losses = F.cross_entropy(outputs.source_logits[half:].double(),
                                 outputs.source_labels[half:], reduction="none").numpy()
        wl = w * losses
        var_w = float(np.var(w, ddof=1))
        eta = 0.0 if var_w == 0 else -float(np.cov(wl, w)[0, 1]) / var_w
        risk = float(wl.mean() + eta * w.mean() - eta)
        return -risk


# ---------------------------------------------------------------------- during training
class ValidatorCallback:
    """Evaluates validators at every evaluation point of a training (Trainer callbacks).

    ``on_eval(trainer, method, data, step)`` returns ``{prefix + name: score}``, which the
    Trainer adds to the history row of that step. ``validators`` are names or objects;
    default: every registered validator.
    """

    def __init__(self, validators: Iterable[str | Validator] | None = None, *,
                 max_samples: int = 1000, seed: int = 0, prefix: str = "v_") -> None:
        self.validators = list(validators) if validators is not None else None
        self.max_samples = int(max_samples)
        self.seed = int(seed)
        self.prefix = prefix

    def resolved(self) -> list[Validator]:
        items = self.validators if self.validators is not None else list_validators()
        return [create_validator(v) if isinstance(v, str) else v for v in items]

    def scores(self, model: nn.Module, data: TrainData,
               device: torch.device | str = "cpu") -> dict[str, float]:
        vals = self.resolved()
        need_val = any(v.uses_target_labels for v in vals) and len(data.target_val) > 0
        out = collect_outputs(model, data, max_samples=self.max_samples, seed=self.seed,
                              device=device, need_source=any(v.uses_source for v in vals),
                              need_val=need_val)
        res = {}
        for v in vals:
            if v.uses_target_labels and not need_val:
                continue
            res[self.prefix + v.name] = v.score(out)
        return res

    def on_eval(self, trainer: Any, method: Any, data: TrainData, step: int,
                ) -> dict[str, float] | None:
        """Scores at an evaluation point; None in a stage without target data (a source
        pre-training run inside a fine-tuning method), where there is nothing to validate."""
        if not (len(data.target_unlabeled) or len(data.target_labeled)):
            return None
        return self.scores(method.model_, data, getattr(trainer, "device", "cpu"))


# ---------------------------------------------------------------------- selection
def select_checkpoints(rows: Sequence[Mapping[str, float]], keys: Iterable[str],
                       ) -> dict[str, int]:
    """Index of the row each key picks (highest value; ties to the later row; NaN skipped)."""
    picks: dict[str, int] = {}
    for key in keys:
        best, best_i = -math.inf, None
        for i, row in enumerate(rows):
            v = row.get(key)
            if v is None or (isinstance(v, float) and math.isnan(v)):
                continue
            if best_i is None or v >= best:
                best, best_i = v, i
        if best_i is None:
            raise DataError(f"no evaluation point has a value for {key!r}; known keys: "
                            f"{sorted({k for r in rows for k in r})}.")
        picks[key] = best_i
    return picks


@dataclass
class SelectionSummary:
    """For each rule: the mean test accuracy of the checkpoint it picks over runs, its mean
    loss against the oracle (best test checkpoint), and how often it picks the oracle's
    checkpoint or the labeled-validation rule's."""

    rules: list[str]
    runs: int
    mean_test: dict[str, float] = field(default_factory=dict)
    mean_regret: dict[str, float] = field(default_factory=dict)
    worst_regret: dict[str, float] = field(default_factory=dict)
    same_as_oracle: dict[str, float] = field(default_factory=dict)
    same_as_val: dict[str, float] = field(default_factory=dict)
    mean_last: float = math.nan


def selection_summary(histories: Sequence[Sequence[Mapping[str, float]]], rules: Sequence[str],
                      *, test_key: str = "test_acc", val_key: str | None = "v_target_val",
                      ) -> SelectionSummary:
    """Aggregate :func:`select_checkpoints` over runs. ``test_key`` holds the test accuracy
    of each checkpoint (recorded for reporting only, never for selection)."""
    if not histories:
        raise DataError("selection_summary needs at least one run's history.")
    rules = list(rules)
    per: dict[str, list[float]] = {r: [] for r in rules}
    regret: dict[str, list[float]] = {r: [] for r in rules}
    oracle_hit: dict[str, list[float]] = {r: [] for r in rules}
    val_hit: dict[str, list[float]] = {r: [] for r in rules}
    last = []
    for rows in histories:
        rows = [r for r in rows if test_key in r]
        if not rows:
            raise DataError(f"a run has no evaluation point with {test_key!r}.")
        tests = [float(r[test_key]) for r in rows]
        oracle_i = select_checkpoints(rows, [test_key])[test_key]
        val_i = select_checkpoints(rows, [val_key])[val_key] if val_key else None
        picks = select_checkpoints(rows, rules)
        for r in rules:
            i = picks[r]
            per[r].append(tests[i])
            regret[r].append(tests[oracle_i] - tests[i])
            oracle_hit[r].append(float(tests[i] == tests[oracle_i]))
            if val_i is not None:
                val_hit[r].append(float(i == val_i))
        last.append(tests[-1])
    mean = statistics.fmean
    return SelectionSummary(
        rules, len(histories), {r: mean(v) for r, v in per.items()},
        {r: mean(v) for r, v in regret.items()}, {r: max(v) for r, v in regret.items()},
        {r: mean(v) for r, v in oracle_hit.items()},
        {r: mean(v) for r, v in val_hit.items() if v}, mean(last),
    )
