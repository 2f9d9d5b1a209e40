"""Kernel mean matching as a source weighter: ``tg.create_method("dann", gate="kmm")``.

The weights β of :class:`~transferguard.methods.shallow.KMM` (Huang et al. 2006; methods
reference section 1.7) are computed once, before training (:meth:`KMMWeighter.setup`), on
*fixed* features of the source and of the target pool (labeled + unlabeled, never validation
or test): the task's pixels (default), or with ``features="backbone"`` the frozen F of the
network in ``pretrained`` (a checkpoint of the method's model). Fixed features, because the
method's own F changes during training while KMM is a one-off QP; this is how KMM is used in
Wang et al.'s Table 2. Each step then looks up β̃ = β / mean(β) for its source batch by index,
so any domain-adaptation method trains on the KMM-weighted source loss λ E_S[β̃ ℓ] and keeps
its own alignment term. The weighter has no parameters and no loss of its own.

Before :meth:`setup` (no weights computed yet) every weight is 1. Options: those of the
estimator (``kernel``, ``gamma``, ``B``, ``eps``, ``max_source``, ``memory_limit_mb``,
``random_state``) plus ``features`` / ``pretrained`` and the slot's ``lam`` / ``lr_mult``.
"""

from __future__ import annotations

from typing import Any

import torch

from ...errors import ConfigError
from ..shallow.base import ShallowMethod
from ..shallow.kmm import KMM
from .weighter import Features, SourceWeighter, WeighterOutput, register_weighter


@register_weighter("kmm", "kernel mean matching weights on fixed features, computed once "
                   "before training")
class KMMWeighter(SourceWeighter):
    def __init__(self, feature_dim: int, num_classes: int, *, lam: float = 1.0,
                 lr_mult: float = 1.0, kernel: str = "rbf", gamma: float | None = None,
                 B: float = 1000.0, eps: float | None = None, max_source: int = 3000,
                 memory_limit_mb: float = 2048.0, random_state: int = 0,
                 features: str = "pixels", pretrained: str | None = None) -> None:
        super().__init__(feature_dim, num_classes, lam=lam, lr_mult=lr_mult)
        self.estimator = KMM(kernel, gamma, B, eps, max_source,
                             memory_limit_mb=memory_limit_mb, random_state=random_state)
        self.features, self.pretrained = features, pretrained
        self.register_buffer("weights_by_index", torch.empty(0))

    def setup(self, method: Any, data: Any) -> None:
        """Fit KMM on the fixed features of the source and of the target pool."""
        if getattr(method, "source_free", False):
            return  # a twin has no source to weight
        probe = ShallowMethod(method.model, method.model_options, features=self.features,
                              pretrained=self.pretrained)
        probe.name = "kmm-weighter"
        probe.source_free = True  # features and standardisation only, no embedding
        fixed = probe.build_model(data).backbone
        raw = probe.features_
        pool = torch.cat([raw["target_labeled"], raw["target_unlabeled"]])
        both = torch.cat([raw["source"], pool])
        mean, std = both.mean(0), both.std(0).clamp(min=1e-6)
        self.estimator.fit((raw["source"] - mean) / std, (pool - mean) / std)
        beta = torch.as_tensor(self.estimator.weights_, dtype=torch.float32)
        beta = beta / beta.mean().clamp(min=1e-12)
        lookup = torch.ones(int(data.source.indices.max()) + 1)
        lookup[data.source.indices] = beta
        self.weights_by_index = lookup.to(self.weights_by_index.device)
        del fixed

    def _lookup(self, index: torch.Tensor | None, n: int, device: torch.device
                ) -> torch.Tensor:
        if self.weights_by_index.numel() == 0:
            return torch.ones(n, device=device)
        if index is None:
            raise ConfigError("the kmm weighter looks weights up by source index; the step "
                              "gave none.")
        return self.weights_by_index.to(device)[index.to(device)]

    def forward(self, feats: Features) -> WeighterOutput:
        w = self._lookup(feats.index_src, len(feats.y_src), feats.y_src.device)
        return WeighterOutput(w.detach(), None, {"kmm_w_mean": w.mean().detach()})

    def score_batch(self, h: torch.Tensor, logits: torch.Tensor, y: torch.Tensor,
                    index: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        return {"weight": self._lookup(index, len(y), y.device)}
