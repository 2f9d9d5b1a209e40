"""``diagnose``: will this source help or hurt this target, and what to do about it.

What :func:`diagnose` measures, all without the target test split:

1. a **source network** (the model trained ``source_iterations`` steps on the source alone)
   and a **random-init control** of the same architecture;
2. their **transferability scores** (LogME, LEEP, NCE, H-score, shrinkage H-score;
   :mod:`transferguard.analysis.transferability`) on the labeled target (training + validation
   parts); ``logme_gain`` = LogME(source network) − LogME(control), the use the methods
   reference (section 8) suggests for negative transfer;
3. the proxy **A-distance** between the source network's features of source and target;
4. the **label-space overlap**: the share of target classes that some source class maps to;
5. a **proxy run**: ``proxy_iterations`` steps of the method and of its target-only twin,
   compared on the labeled validation split (accuracy and loss; on the labeled training
   target when there are too few labels for a validation split);

then :class:`~transferguard.analysis.NTPredictor` turns these features into P(NTG > 0). The
default predictor is the one fitted by ``benchmarks/diagnose.py`` on the built-in digit
domains with LeNet (coefficients in :mod:`._ntpredictor`); its held-out accuracy is in
``docs/results/diagnose.md``. Outside that setting, treat its probability as a rough guide
and fit your own predictor on your configurations (the benchmark shows how).

The recommended defence follows a rule written from the measured benchmarks
(``docs/results/*.md``), see :func:`recommend`. ``apply=True`` trains the recommendation and
its twin over ``seeds`` and attaches the measured NTG with its interval.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from ..analysis import (
    NTGResult,
    NTPredictor,
    TransferabilityScores,
    a_distance,
    extract_outputs,
    negative_transfer_gap,
    transferability_scores,
)
from ..data import Split, TransferTask
from ..engine import Trainer
from ..errors import ConfigError, DataError
from ..methods import Method, create_method, pretrain_source
from ..models import create_model
from ..utils import derive_seed

#: the features the default predictor reads (see :func:`diagnostic_features`)
FEATURES = ("logme", "logme_gain", "leep", "nce", "shrinkage_h_score", "a_distance",
            "label_overlap", "proxy_acc_gap", "proxy_loss_gap", "log_labeled", "finetune")

NONE, SAFE, DTNH, DONT = "none", "safe selection", "dtnh", "don't transfer"
DEFENCES = (NONE, SAFE, DTNH, DONT)
#: thresholds of the recommendation rule on P(NTG > 0)
LOW, HIGH = 0.35, 0.65


@dataclass
class Diagnostics:
    """The measured evidence of one (task, method) pair, before any full training."""

    scores: TransferabilityScores
    control_scores: TransferabilityScores
    a_distance: float
    label_overlap: float
    proxy_acc: float
    proxy_twin_acc: float
    proxy_loss: float
    proxy_twin_loss: float
    n_labeled: int
    finetune: bool
    seconds: float = 0.0

    def features(self) -> dict[str, float]:
        return {
            "logme": self.scores.logme,
            "logme_gain": self.scores.logme - self.control_scores.logme,
            "leep": self.scores.leep, "nce": self.scores.nce,
            "h_score": self.scores.h_score,
            "shrinkage_h_score": self.scores.shrinkage_h_score,
            "a_distance": self.a_distance, "label_overlap": self.label_overlap,
            "proxy_acc_gap": self.proxy_twin_acc - self.proxy_acc,
            "proxy_loss_gap": self.proxy_loss - self.proxy_twin_loss,
            "log_labeled": math.log(max(1, self.n_labeled)),
            "finetune": float(self.finetune),
        }

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["features"] = self.features()
        return d


@dataclass
class DiagnoseResult:
    """What :func:`diagnose` returns: evidence, verdict, recommendation (and, with ``apply``,
    the measured NTG of the recommendation)."""

    task: dict[str, Any]
    method: str
    diagnostics: Diagnostics
    probability: float
    verdict: str
    recommendation: str
    reason: str
    contributions: dict[str, float] = field(default_factory=dict)
    predictor_note: str = ""
    seconds: float = 0.0
    applied: NTGResult | None = None
    applied_label: str = ""
    baseline: NTGResult | None = None

    @property
    def features(self) -> dict[str, float]:
        return self.diagnostics.features()

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self).items() if k not in ("applied", "baseline")}
        d["features"] = self.features
        d["applied"] = self.applied.to_dict() if self.applied is not None else None
        d["baseline"] = self.baseline.to_dict() if self.baseline is not None else None
        return d


def labeled_target(task: TransferTask) -> Split:
    """Training + validation parts of the labeled target (what scores may read; no test)."""
    data = task.train_data()
    parts = [s for s in (data.target_labeled, data.target_val) if len(s)]
    if not parts:
        raise DataError(f"{task!r} has no labeled target samples; diagnose needs some "
                        "(labeled_percent > 0).")
    return Split("target_labeled+val", torch.cat([s.images for s in parts]),
                 torch.cat([s.labels for s in parts]), torch.cat([s.indices for s in parts]))


def label_overlap(task: TransferTask) -> float:
    """Share of the target classes some source class maps to (1 with equal label spaces)."""
    if task.label_map is None:
        return 1.0
    return len(set(task.label_map.values())) / task.num_classes


def is_finetuning(method: Method) -> bool:
    """Fine-tuning family: the method pre-trains (or loads) a source network."""
    return callable(getattr(method, "source_state", None))


def _subsample_images(split: Split, n: int, seed: int) -> Split:
    if len(split) <= n:
        return split
    g = torch.Generator().manual_seed(seed)
    keep = torch.randperm(len(split), generator=g)[:n].sort().values
    return Split(split.name, split.images[keep], None, split.indices[keep])


def measure_diagnostics(task: TransferTask, method: Method | str = "dann", *,
                        trainer: Trainer | None = None, source_iterations: int = 100,
                        proxy_iterations: int = 50, max_samples: int = 1000) -> Diagnostics:
    """Measure every feature of the predictor for ``method`` on ``task`` (no test split)."""
    t0 = time.perf_counter()
    method = create_method(method) if isinstance(method, str) else method
    if source_iterations < 1 or proxy_iterations < 1:
        raise ConfigError(f"source_iterations and proxy_iterations must be >= 1, got "
                          f"{source_iterations} and {proxy_iterations}.")
    trainer = trainer or Trainer(progress=False)
    data = task.train_data()
    labeled = labeled_target(task)
    k = task.num_classes
    present = int(torch.unique(labeled.labels).numel())
    if present < 2:
        raise DataError(f"the labeled target of {task!r} holds {present} class; diagnose "
                        "needs at least 2 (raise labeled_percent).")
    if len(labeled) < k:
        raise DataError(f"{len(labeled)} labeled target samples for {k} classes; diagnose "
                        "needs at least one per class (raise labeled_percent).")
    seed = trainer.config.seed
    state = pretrain_source(data, trainer, method.model, method.model_options,
                            iterations=source_iterations)
    spec = task.spec
    net = create_model(method.model, k, spec.channels, spec.size, **method.model_options)
    net.load_state_dict(state)
    torch.manual_seed(derive_seed(seed, "diagnose-control"))
    control = create_model(method.model, k, spec.channels, spec.size, **method.model_options)
    device = trainer.device
    net.to(device)
    control.to(device)
    scores = transferability_scores(net, labeled, spec, num_classes=k, device=device)
    control_scores = transferability_scores(control, labeled, spec, num_classes=k,
                                            device=device)
    target_pool = data.target_unlabeled if len(data.target_unlabeled) else labeled
    fs, _ = extract_outputs(net, _subsample_images(data.source, max_samples, seed), spec,
                            device=device)
    ft, _ = extract_outputs(net, _subsample_images(target_pool, max_samples, seed + 1), spec,
                            device=device)
    dist = a_distance(fs.numpy(), ft.numpy(), seed=seed)
    proxy = trainer.with_options(iterations=proxy_iterations, eval_every=proxy_iterations,
                                 select="last", checkpoint_dir=None)
    a, b = method.clone(), method.twin()
    if is_finetuning(a):
        a.initial_state_ = state  # the proxy fine-tunes the network just scored
    proxy.fit(a, data)
    proxy.fit(b, data)
    # the validation split; with too few labels for one (e.g. 2% of a small target) the
    # labeled training target, which both runs trained on (a weaker, biased comparison)
    judge = data.target_val if len(data.target_val) else data.target_labeled
    ea = proxy.evaluate(a.model_, judge, spec)
    eb = proxy.evaluate(b.model_, judge, spec)
    return Diagnostics(scores, control_scores, dist, label_overlap(task), ea.accuracy,
                       eb.accuracy, ea.loss, eb.loss,
                       len(data.target_labeled) + len(data.target_val), is_finetuning(method),
                       time.perf_counter() - t0)


def default_predictor() -> NTPredictor:
    """The predictor fitted by ``benchmarks/diagnose.py`` on the built-in digits."""
    from ._ntpredictor import PREDICTOR

    return NTPredictor.from_dict(PREDICTOR)


def recommend(method: Method, probability: float, features: dict[str, float],
              ) -> tuple[str, str]:
    """The recommendation rule (documented in docs/guide.md, from docs/results/*.md):

    - P(NTG > 0) < 0.35: ``none``: transfer as planned; the source is expected to help.
    - a regulariser with a DTNH option (L2-SP, DELTA, KD, BSS) and P ≥ 0.35: ``dtnh``: with
      an inappropriate source DTNH raised DELTA / KD by 1.7 points on average
      (finetune_tables.md), though most of that is its regulariser decay;
    - 0.35 ≤ P < 0.65: ``safe selection``: train the method and its twin and keep the one
      the labeled validation prefers (2x the training, bounded loss either way);
    - P ≥ 0.65: ``don't transfer``: train the target-only twin.

    The discriminator gate is never recommended: on the built-in digits it brought NTG to
    ≤ 0 in 0 of the 14 negative-transfer cells and lost 0.4 points on average
    (gate_tables.md). Cut-point transfer and pruning are not recommended yet: they have not
    been measured in a negative-transfer setting here.
    """
    if probability < LOW:
        return NONE, (f"P(negative transfer) = {probability:.2f} < {LOW}: the source is "
                      "expected to help; train the method as planned.")
    if "dtnh" in method.get_params() and not method.get_params()["dtnh"]:
        return DTNH, (f"P(negative transfer) = {probability:.2f} >= {LOW} for a regularised "
                      "fine-tuning: DTNH gained 1.7 points for DELTA/KD with an inappropriate "
                      "source (docs/results/finetune_tables.md).")
    if probability < HIGH:
        return SAFE, (f"P(negative transfer) = {probability:.2f} is uncertain: train the method "
                      "and its target-only twin and keep the one the labeled validation prefers.")
    return DONT, (f"P(negative transfer) = {probability:.2f} >= {HIGH}: train on the target "
                  "alone (the twin); the gate did not remove negative transfer on the digits "
                  "(docs/results/gate_tables.md).")


def verdict_of(probability: float) -> str:
    if probability >= HIGH:
        return "negative transfer likely"
    if probability < LOW:
        return "positive transfer likely"
    return "uncertain"


def diagnose(task: TransferTask, method: Method | str = "dann", *,
             trainer: Trainer | None = None, predictor: NTPredictor | None = None,
             source_iterations: int = 100, proxy_iterations: int = 50, apply: bool = False,
             seeds: Sequence[int] = (0, 1, 2), apply_trainer: Trainer | None = None,
             ) -> DiagnoseResult:
    """Scores, P(negative transfer), verdict and a recommended defence for ``method``.

    ``trainer`` sets the device and the seed of the short trainings; ``apply=True`` then
    trains the recommendation and its twin for each of ``seeds`` with ``apply_trainer``
    (default: ``Trainer()``) and attaches the measured NTG (:class:`NTGResult`).
    """
    t0 = time.perf_counter()
    m = create_method(method) if isinstance(method, str) else method
    if not isinstance(m, Method):
        raise TypeError(f"method must be a Method or a method name, got {type(m).__name__}.")
    diag = measure_diagnostics(task, m, trainer=trainer, source_iterations=source_iterations,
                               proxy_iterations=proxy_iterations)
    pred = predictor or default_predictor()
    feats = diag.features()
    prob = float(pred.predict_proba([feats])[0])
    rec, reason = recommend(m, prob, feats)
    note = ("predictor fitted on the built-in digit domains (LeNet, short trainings); "
            f"{pred.n_train_} configurations") if predictor is None else ""
    res = DiagnoseResult(task.config(), m.label, diag, prob, verdict_of(prob), rec, reason,
                         pred.contributions(feats), note)
    if apply:
        _apply(res, task, m, seeds, apply_trainer or Trainer(progress=False))
    res.seconds = time.perf_counter() - t0
    return res


def _apply(res: DiagnoseResult, task: TransferTask, m: Method, seeds: Sequence[int],
           trainer: Trainer) -> None:
    """Train the recommendation and its twin; record the measured NTG."""
    if res.recommendation == DTNH:
        defended = m.clone(dtnh=True)
        res.applied = negative_transfer_gap(task, defended, seeds, trainer)
        res.applied_label = defended.label
        return
    if res.recommendation == SAFE:
        res.baseline, res.applied = safe_selection_gap(task, m, seeds, trainer)
        res.applied_label = f"{m.label} (safe selection)"
        return
    # NONE trains the method as planned; DONT measures the gap the twin avoids
    res.applied = negative_transfer_gap(task, m, seeds, trainer)
    res.applied_label = m.label


def safe_selection_gap(task: TransferTask, m: Method, seeds: Sequence[int], trainer: Trainer,
                       ) -> tuple[NTGResult, NTGResult]:
    """NTG of the method, and of "keep whichever of method / twin the validation prefers"."""
    seeds = [int(s) for s in seeds]
    acc, twin_acc, safe = [], [], []
    for seed in seeds:
        t = task.with_seed(seed)
        tr = trainer.with_options(seed=seed)
        a = tr.run(m.clone(), t)
        b = tr.run(m.twin(), t)
        acc.append(a.test_accuracy)
        twin_acc.append(b.test_accuracy)
        va = -math.inf if a.val_accuracy is None else a.val_accuracy
        vb = -math.inf if b.val_accuracy is None else b.val_accuracy
        safe.append(a.test_accuracy if va > vb else b.test_accuracy)  # ties: the twin
    label = m.twin().label
    return (NTGResult(m.label, label, seeds, acc, twin_acc),
            NTGResult(f"{m.label}+safe", label, seeds, safe, twin_acc))

