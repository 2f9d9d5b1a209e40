"""Prune and retrain: remove the source units that hurt the target, then fine-tune.

The negative-transfer pruning poster's method (methods reference section 5, "toolkit
use"), with Domain Guided Dropout's neuron impact score (section 5.1) in every layer:

1. transfer the source network (pre-trained here, or ``pretrained=PATH``);
2. fit a target head on the frozen backbone (``probe_iterations`` steps of the Trainer;
   default a quarter of the fine-tuning iterations);
3. impact of every unit of every block of F and of the head on labeled target data
   (:func:`~transferguard.analysis.neuron_impact`; ``impact_data``: the validation split,
   the labeled training split, or both; never the test split):
   impact_i = E[ℓ(f with unit i silenced) − ℓ(f)]; impact_i < 0 is target-harmful;
4. choose the units to prune in ``layers`` (default: every block of F) by ``rule``:
   ``"negative"`` (impact + z·se < 0), ``"threshold"`` (< ``threshold``) or ``"fraction"``
   (the lowest ``fraction`` of each layer), at most ``max_fraction`` of a layer;
5. fine-tune on the labeled target (backbone at ``backbone_lr_mult``), in one of the modes:

   - ``"remove"`` (deterministic): the chosen units output 0 from now on, at test time
     too; with ``structural=True`` they are physically removed (Torch-Pruning), so the
     network fine-tuned and deployed is smaller (``cost_before_`` / ``cost_after_``);
   - ``"dropout"`` (stochastic DGD, section 5.2): nothing is removed; during fine-tuning
     unit i is kept with p_i = sigmoid(s_i / ``temperature``), s the impact normalised so
     that the most helpful unit of its layer has p = 0.9 (harmful units have p < 0.5),
     outputs scaled by C / Σ p; the identity at test time;
   - ``"both"``: remove the chosen units and drop the rest as in ``"dropout"``.

``head="probe"`` fine-tunes from the fitted target head, ``"reset"`` from a fresh one (the
plain fine-tuning start). ``rule="fraction", fraction=0`` prunes nothing: the control that
separates the pruning's effect from the head probe's.

Twin: ``finetune_T`` (the same fine-tuning from random initialisation, shared with every
fine-tuning method): without a source there are no source units to judge.

Fitted attributes: ``impact_`` (an :class:`~transferguard.analysis.ImpactResult`),
``pruned_`` (layer -> boolean mask of the removed units), ``keep_prob_``, ``cost_before_``,
``cost_after_`` (parameters and multiply-adds; ``cost_after_`` with ``structural=True``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from ...data import Batch, Split, TrainData
from ...engine import StepOutput
from ...engine.impact import ESTIMATORS, RULES, ImpactResult, check_fraction, neuron_impact
from ...errors import ConfigError, UnknownNameError
from ...utils import derive_seed
from ..base import Method, register_method
from ..finetuning.finetune import FineTune
from .masks import guided_dropout, silence_units
from .structural import model_cost, remove_units

MODES = ("remove", "dropout", "both")
IMPACT_DATA = ("val", "train", "all")


def _one_of(name: str, value: str, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise ConfigError(f"prune_transfer {name} must be one of {valid}, got {value!r}.")


@register_method("prune_transfer", "prune the target-harmful units of the source network, "
                                   "then fine-tune (remove or Domain Guided Dropout)")
class PruneTransfer(FineTune):
    def __init__(self, model: str = "lenet", model_options: Mapping[str, Any] | None = None,
                 source_free: bool = False, backbone_lr_mult: float = 0.1,
                 pretrain_iterations: int | None = None, pretrained: str | None = None,
                 pretrain_aux_weight: float = 0.0, partition_seed: int = 0,
                 mode: str = "remove", rule: str = "negative", threshold: float = 0.0,
                 fraction: float = 0.1, max_fraction: float = 0.5, z: float = 0.0,
                 layers: Sequence[str] | None = None, impact_data: str = "all",
                 estimator: str = "exact", probe_iterations: int | None = None,
                 head: str = "probe", temperature: float = 1.0,
                 structural: bool = False) -> None:
        super().__init__(model, model_options, source_free, backbone_lr_mult,
                         pretrain_iterations, pretrained, pretrain_aux_weight, partition_seed)
        _one_of("mode", mode, MODES)
        _one_of("rule", rule, RULES)
        _one_of("impact_data", impact_data, IMPACT_DATA)
        _one_of("estimator", estimator, ESTIMATORS)
        _one_of("head", head, ("probe", "reset"))
        check_fraction("fraction", fraction)
        check_fraction("max_fraction", max_fraction)
        if temperature <= 0:
            raise ConfigError(f"temperature must be positive, got {temperature}.")
        if probe_iterations is not None and probe_iterations < 1:
            raise ConfigError(f"probe_iterations must be >= 1, got {probe_iterations}.")
        if structural and mode == "dropout":
            raise ConfigError("structural=True removes units, but mode='dropout' removes "
                              "none; use mode='remove' or 'both'.")
        self.mode, self.rule, self.threshold = mode, rule, threshold
        self.fraction, self.max_fraction, self.z = fraction, max_fraction, z
        self.layers = list(layers) if layers is not None else None
        self.impact_data, self.estimator = impact_data, estimator
        self.probe_iterations, self.head, self.temperature = probe_iterations, head, temperature
        self.structural = bool(structural)

    @property
    def label(self) -> str:
        if self.source_free:
            return f"{self.name}_T"
        if self.rule == "fraction" and self.fraction == 0 and self.mode == "remove":
            return "prune-nothing"  # the control: head probe, then fine-tuning
        return f"prune-{self.mode}"

    def twin(self) -> Method:
        return FineTune(self.model, self.model_options, source_free=True,
                        backbone_lr_mult=self.backbone_lr_mult,
                        pretrain_iterations=self.pretrain_iterations)

    # ------------------------------------------------------------------ set-up
    def setup(self, data: TrainData, trainer: Any) -> None:
        super().setup(data, trainer)
        blocks = list(self.model_.blocks)
        self.prune_layers_ = list(self.layers) if self.layers is not None else blocks
        bad = [n for n in self.prune_layers_ if n not in blocks]
        if bad:
            raise UnknownNameError(f"prune_transfer layers {bad} are not blocks of "
                                   f"{self.model!r}; its blocks: {blocks} (the head's units "
                                   "are the classes and are never pruned).")
        self.impact_: ImpactResult | None = None
        self.pruned_: dict[str, torch.Tensor] = {}
        self.keep_prob_: dict[str, torch.Tensor] = {}
        self.cost_before_ = self.cost_after_ = None
        self.hooks_: list[Any] = []

    def prepare(self, data: TrainData, trainer: Any) -> None:
        super().prepare(data, trainer)
        if self.source_free:
            return
        split = self.impact_split(data)
        if split is None:  # no labeled target: nothing to judge the units by
            return
        self.fit_head(data, trainer)
        self.impact_ = neuron_impact(self.model_, split, data.spec, estimator=self.estimator,
                                     layers=[*self.model_.blocks, "head"],
                                     seed=derive_seed(trainer.seed, "impact"))
        self.pruned_ = self.impact_.select(self.rule, threshold=self.threshold,
                                           fraction=self.fraction, z=self.z,
                                           max_fraction=self.max_fraction,
                                           layers=self.prune_layers_)
        self.cost_before_ = model_cost(self.model_, data.spec)
        normalised = self.impact_.normalised()
        keep = {n: torch.sigmoid(normalised[n] / self.temperature) for n in self.prune_layers_}
        if self.mode in ("remove", "both"):
            if self.structural:
                self.model_ = remove_units(self.model_, self.pruned_, data.spec)
                self.cost_after_ = model_cost(self.model_, data.spec)
                keep = {n: p[~self.pruned_[n]] for n, p in keep.items()}
            else:
                self.hooks_ += silence_units(self.model_, self.pruned_)
                keep = {n: torch.where(self.pruned_[n], torch.zeros_like(p), p)
                        for n, p in keep.items()}
        if self.mode in ("dropout", "both"):
            self.keep_prob_ = keep
            self.hooks_ += guided_dropout(self.model_, keep)
        if self.head == "reset":
            self.model_.reset_head()

    def impact_split(self, data: TrainData) -> Split | None:
        parts = {"val": [data.target_val], "train": [data.target_labeled],
                 "all": [data.target_labeled, data.target_val]}[self.impact_data]
        parts = [p for p in parts if len(p) > 0]
        if not parts:
            return None
        if len(parts) == 1:
            return parts[0]
        return Split("target_labeled+val", torch.cat([p.images for p in parts]),
                     torch.cat([p.labels for p in parts]), torch.cat([p.indices for p in parts]))

    def fit_head(self, data: TrainData, trainer: Any) -> None:
        """Train a target head on the frozen source backbone (the Trainer's loop)."""
        if len(data.target_labeled) == 0:
            return
        probe = _HeadProbe(self.model_)
        steps = self.probe_iterations or max(1, trainer.config.iterations // 4)
        trainer.with_options(iterations=steps, select="last", checkpoint_dir=None,
                             eval_every=steps, log_every=steps, progress=False,
                             seed=derive_seed(trainer.seed, "probe")).fit(probe, data)

    def pruned_counts(self) -> dict[str, tuple[int, int]]:
        """(pruned, total) units per pruned layer."""
        return {n: (int(m.sum()), int(m.numel())) for n, m in self.pruned_.items()}


class _HeadProbe(Method):
    """Trains only the head of an existing model on the labeled target (not registered)."""

    name = "head_probe"
    streams_used = ("target_labeled",)

    def __init__(self, model_obj: Any) -> None:
        super().__init__()
        self._model_obj = model_obj

    def get_params(self) -> dict[str, Any]:
        return {}

    def build_model(self, data: TrainData) -> Any:
        return self._model_obj

    def param_groups(self) -> list[dict[str, Any]]:
        return [{"params": list(self.model_.head.parameters()), "weight_decay": 0.0}]

    def set_train_mode(self) -> None:
        self.model_.eval()  # the backbone is frozen: no batch-norm statistics updates

    def training_step(self, batches: Mapping[str, Batch], progress: float) -> StepOutput:
        batch = batches["target_labeled"]
        with torch.no_grad():
            h = self.model_.features(batch.x)
        loss = F.cross_entropy(self.model_.head(h).float(), batch.y)
        return StepOutput(loss, {"ce": loss.detach()})
