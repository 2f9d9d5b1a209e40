"""How a shallow (closed-form) method meets the NTG API: ``ShallowMethod``.

TCA and KMM have no SGD loop of their own: they are a closed-form estimator (a kernel
embedding, source weights) followed by a classifier. We make them ordinary
:class:`~transferguard.methods.Method` objects so that ``tg.negative_transfer_gap(task,
"tca")``, the run store, the CLI and the conformance tests treat them like every other
method:

1. **fixed features** φ(x): the pixels (flattened, normalised by the task's input spec), or
   with ``features="backbone"`` the frozen F of a pre-trained network (``pretrained`` = a
   checkpoint path, the same network for A and A_T);
2. **the closed-form part** is fitted when the model is built (:meth:`build_model`, which the
   Trainer's ``setup`` calls): TCA's embedding becomes a fixed layer of the feature map;
   KMM's weights are computed in :meth:`prepare`. Nothing of it is trainable;
3. **the classifier** is the one thing left with parameters: a linear softmax classifier C
   on the standardised fixed features (multinomial logistic regression), trained by the
   Trainer with the same loop, selection on the labeled-target validation split and test
   evaluation as every other method.

We chose this over a separate ``fit``-based evaluation because one loop, one selection rule
and one evaluation path make the shallow numbers comparable with the deep ones in the same
table, which is what Wang et al.'s Table 2 does.

**Twin** (A_T): the same classifier on the same fixed features, trained on the labeled target
alone, with no embedding and no weights. That is the baseline the paper's Table 2 implies:
TCA and KMM share one target-only accuracy there (58.7 + 18.2 = 70.9 + 6.0 = 76.9).
The standardisation statistics come from the training features each variant sees (source
and target pool for A, the target pool for A_T), never from the validation or test split.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from ...data import Split, TrainData, iterate_batches
from ...errors import ConfigError
from ...models import TransferModel, create_model
from ..base import Method

FEATURES = ("pixels", "backbone")


class FixedFeatures(nn.Module):
    """φ(x): pixels or a frozen network, an optional fixed kernel embedding, standardisation.

    The embedding, when present, is z = k(φ(x), basis) @ coef (TCA's Wᵀ k(X_fit, x)).
    Everything is a buffer or a frozen parameter; the module never trains.
    """

    def __init__(self, net: nn.Module | None, in_dim: int) -> None:
        super().__init__()
        self.net = net
        if net is not None:
            for p in net.parameters():
                p.requires_grad_(False)
        self.kind = "none"
        self.gamma = 0.0
        self.register_buffer("basis", torch.empty(0))
        self.register_buffer("coef", torch.empty(0))
        self.register_buffer("mean", torch.zeros(in_dim))
        self.register_buffer("std", torch.ones(in_dim))
        self.out_dim = in_dim

    def set_embedding(self, kind: str, gamma: float | None, basis: np.ndarray,
                      coef: np.ndarray) -> None:
        self.kind, self.gamma = kind, float(gamma or 0.0)
        self.basis = torch.as_tensor(basis, dtype=torch.float32)
        self.coef = torch.as_tensor(coef, dtype=torch.float32)
        self.out_dim = int(coef.shape[1])
        self.mean, self.std = torch.zeros(self.out_dim), torch.ones(self.out_dim)

    def set_standardization(self, z: torch.Tensor) -> None:
        self.mean = z.mean(0)
        self.std = z.std(0).clamp(min=1e-6) if len(z) > 1 else torch.ones(z.shape[1])

    def raw(self, x: torch.Tensor) -> torch.Tensor:
        """φ(x) before the embedding and the standardisation."""
        if self.net is not None:
            self.net.eval()
            return self.net(x).float().flatten(1)
        return x.float().reshape(len(x), -1)

    def embed(self, f: torch.Tensor) -> torch.Tensor:
        if self.kind == "none":
            return f
        if self.kind == "linear":
            k = f @ self.basis.T
        else:
            d = (f * f).sum(1, keepdim=True) + (self.basis * self.basis).sum(1) \
                - 2.0 * f @ self.basis.T
            k = torch.exp(-self.gamma * d.clamp(min=0))
        return k @ self.coef

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return (self.embed(self.raw(x)) - self.mean) / self.std


class ShallowMethod(Method):
    """Base of the shallow family: fixed features, a closed-form part, a linear classifier."""

    streams_used: ClassVar[tuple[str, ...]] = ("source", "target_labeled")

    def __init__(self, model: str = "lenet", model_options: Mapping[str, Any] | None = None,
                 source_free: bool = False, features: str = "pixels",
                 pretrained: str | None = None) -> None:
        super().__init__(model, model_options, source_free)
        self.features = features
        self.pretrained = pretrained

    # ------------------------------------------------------------------ building
    def setup(self, data: TrainData, trainer: Any) -> None:
        self.seed_ = int(getattr(trainer, "seed", 0))
        super().setup(data, trainer)

    def build_model(self, data: TrainData) -> TransferModel:
        if self.features not in FEATURES:
            raise ConfigError(f"features must be one of {FEATURES}, got {self.features!r}.")
        net = None
        if self.features == "backbone":
            if not self.pretrained:
                raise ConfigError(
                    f"{self.name} with features='backbone' needs pretrained=PATH (a checkpoint "
                    "of the network whose frozen F gives the features); for raw pixels use "
                    "features='pixels'.")
            full = create_model(self.model, data.num_classes, data.spec.channels,
                                data.spec.size, **self.model_options)
            full.backbone.load_state_dict(_backbone_state(self.pretrained, self.model))
            net = full.backbone
            in_dim = full.feature_dim
        else:
            in_dim = data.spec.channels * data.spec.size * data.spec.size
        fixed = FixedFeatures(net, in_dim)
        self.features_ = {name: self._raw(fixed, getattr(data, name), data)
                          for name in ("source", "target_labeled", "target_unlabeled")}
        if not self.source_free:
            self.fit_embedding(fixed, data)
        seen = torch.cat([fixed.embed(f) for f in self.features_.values() if len(f)])
        fixed.set_standardization(seen)
        return TransferModel(fixed, fixed.out_dim, data.num_classes, ["features"],
                             f"{self.name}-{self.features}")

    def fit_embedding(self, fixed: FixedFeatures, data: TrainData) -> None:
        """Hook: fit a closed-form embedding on the raw features (TCA)."""

    def prepare(self, data: TrainData, trainer: Any) -> None:
        if not self.source_free:
            self.fit_weights(data)
        del self.features_  # the raw features of every split: not needed for training

    def fit_weights(self, data: TrainData) -> None:
        """Hook: fit closed-form source weights on the standardised features (KMM)."""

    def standardized(self, raw: torch.Tensor) -> torch.Tensor:
        fixed: FixedFeatures = self.model_.backbone
        with torch.no_grad():
            return (fixed.embed(raw) - fixed.mean) / fixed.std

    @staticmethod
    @torch.no_grad()
    def _raw(fixed: FixedFeatures, split: Split, data: TrainData) -> torch.Tensor:
        parts = [fixed.raw(b.x) for b in iterate_batches(split, data.spec, 512, "cpu")]
        return torch.cat(parts) if parts else torch.empty(0, fixed.out_dim)

    def target_pool(self) -> torch.Tensor:
        """Raw features of every target training sample (labeled and unlabeled)."""
        return torch.cat([self.features_["target_labeled"], self.features_["target_unlabeled"]])

    def set_train_mode(self) -> None:
        self.model_.train()
        self.model_.backbone.eval()

    def param_groups(self) -> list[dict[str, Any]]:
        return [{"params": list(self.model_.head.parameters())}]


def _backbone_state(path: str, model: str) -> dict[str, torch.Tensor]:
    """The ``backbone.*`` weights of a model checkpoint, without the prefix."""
    from ..finetuning.finetune import load_model_state

    state = load_model_state(path)  # refuses files without 'backbone.*' keys
    return {k.removeprefix("backbone."): v for k, v in state.items()
            if str(k).startswith("backbone.")}
