"""Deep CORAL (Sun & Saenko, ECCV-W 2016): align second-order statistics of the features.

    L = CE terms + trade_off · ‖C_S − C_T‖²_F / (4 d²)

C_S and C_T are the d×d covariance matrices of the source and unlabeled-target features of
the batch (methods reference 1.3). Applied to the feature layer F (the original applies it
to the last layer; ``layer="logits"`` does that). ``gate=True`` adds the gate's own
discriminator (CORAL is not adversarial) and weights the source loss by ω.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from ...errors import ConfigError
from ..base import register_method
from .adaptation import AdaptationMethod, Features


def coral(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """‖cov(x) − cov(y)‖²_F / (4 d²)."""
    d = x.shape[1]

    def cov(a: torch.Tensor) -> torch.Tensor:
        a = a.float() - a.float().mean(0, keepdim=True)
        return a.t() @ a / max(len(a) - 1, 1)

    return (cov(x) - cov(y)).pow(2).sum() / (4 * d * d)


@register_method("dcoral", "deep CORAL: match feature covariances")
class DCORAL(AdaptationMethod):
    def __init__(self, model: str = "lenet", model_options: Mapping[str, Any] | None = None,
                 source_free: bool = False, trade_off: float = 1.0, ramp_gamma: float = 10.0,
                 gate: bool | str = False, gate_options: Mapping[str, Any] | None = None,
                 layer: str = "features",
                 combine: str | None = None,
                 combine_options: Mapping[str, Any] | None = None) -> None:
        super().__init__(model, model_options, source_free, trade_off, ramp_gamma, gate,
                         gate_options, combine, combine_options)
        if layer not in ("features", "logits"):
            raise ConfigError(f"dcoral layer must be 'features' or 'logits', got {layer!r}.")
        self.layer = layer

    def alignment_loss(self, feats: Features) -> torch.Tensor:
        if self.layer == "logits":
            return coral(feats.logits_src, feats.logits_unl)
        return coral(feats.h_src, feats.h_unl)
