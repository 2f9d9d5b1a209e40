"""The small-loss rule done properly (Arazo et al. 2019; DivideMix, Li et al. 2020).

Networks fit clean labels before noisy ones, so early in training a wrong label has a large
loss. One loss at the end of training (the harmful-source report's baseline) has memorised
much of the noise; this weighter instead

1. for the first ``warmup`` fraction of training, trains on the source as usual (ω = 1) and
   records every source sample's cross-entropy each time it is drawn (a running mean per
   sample: the loss *averaged over the early steps*);
2. at the end of the warm-up, min-max normalises the mean losses and fits a two-component
   one-dimensional Gaussian mixture (scikit-learn); the clean probability of a sample is the
   posterior of the low-mean component (samples never drawn get the median loss);
3. from then on ω_i = P(clean | ℓ̄_i) (``mode="soft"``), or 1[P(clean) > ``threshold``]
   (``mode="filter"``, DivideMix's split).

Source-only: like confident learning it trusts the source's majority, so it fails on
asymmetric noise above ε_y = 0.5 (the wrong class is then the easy one to fit).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ...errors import ConfigError
from .weighter import Features, SourceWeighter, WeighterOutput, register_weighter

MODES = ("soft", "filter")


def clean_posterior(losses: np.ndarray, seed: int = 0) -> np.ndarray:
    """P(low-loss component | loss) of a two-component Gaussian mixture on min-max scaled
    losses (all 1 when the losses do not vary)."""
    from sklearn.mixture import GaussianMixture

    lo, hi = float(losses.min()), float(losses.max())
    if hi - lo < 1e-12:
        return np.ones_like(losses)
    z = ((losses - lo) / (hi - lo)).reshape(-1, 1)
    gmm = GaussianMixture(2, max_iter=100, tol=1e-3, reg_covar=5e-4, random_state=seed).fit(z)
    clean = int(np.argmin(gmm.means_.ravel()))
    return gmm.predict_proba(z)[:, clean]


@register_weighter("smallloss", "loss averaged over the warm-up, two-component mixture: "
                                "ω = P(clean | loss)")
class SmallLossWeighter(SourceWeighter):
    def __init__(self, feature_dim: int, num_classes: int, *, lam: float = 1.0,
                 warmup: float = 0.3, mode: str = "soft", threshold: float = 0.5,
                 seed: int = 0, lr_mult: float = 1.0) -> None:
        super().__init__(feature_dim, num_classes, lam=lam, lr_mult=lr_mult)
        if not 0.0 < warmup < 1.0:
            raise ConfigError(f"smallloss warmup is a fraction of training in (0, 1), got "
                              f"{warmup}.")
        if mode not in MODES:
            raise ConfigError(f"smallloss mode must be one of {MODES}, got {mode!r}.")
        self.warmup, self.mode, self.threshold, self.seed = warmup, mode, threshold, seed
        self.register_buffer("loss_sum", torch.zeros(0))
        self.register_buffer("loss_count", torch.zeros(0))
        self.register_buffer("clean", torch.ones(0))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))

    def setup(self, method: Any, data: Any) -> None:
        n = len(data.source)
        dev = self.loss_sum.device
        self.loss_sum = torch.zeros(n, device=dev)
        self.loss_count = torch.zeros(n, device=dev)
        self.clean = torch.ones(n, device=dev)

    @torch.no_grad()
    def fit_mixture(self) -> None:
        seen = self.loss_count > 0
        mean = torch.zeros_like(self.loss_sum)
        mean[seen] = self.loss_sum[seen] / self.loss_count[seen]
        if seen.any():
            mean[~seen] = mean[seen].median()
        p = clean_posterior(mean.cpu().double().numpy(), self.seed)
        self.clean = torch.as_tensor(p, dtype=torch.float32, device=self.clean.device)
        self.fitted.fill_(True)

    def _omega(self, p: torch.Tensor) -> torch.Tensor:
        return (p > self.threshold).float() if self.mode == "filter" else p

    def forward(self, feats: Features) -> WeighterOutput:
        idx = feats.index_src
        if idx is None or self.loss_sum.numel() == 0:
            return WeighterOutput(None)
        idx = idx.to(self.loss_sum.device)
        if feats.progress < self.warmup:
            with torch.no_grad():
                loss = F.cross_entropy(feats.logits_src.detach().float(), feats.y_src,
                                       reduction="none")
                self.loss_sum.index_add_(0, idx, loss.to(self.loss_sum.device))
                self.loss_count.index_add_(0, idx, torch.ones_like(self.loss_count[idx]))
            return WeighterOutput(None)
        if not bool(self.fitted):
            self.fit_mixture()
        w = self._omega(self.clean[idx]).to(feats.y_src.device)
        return WeighterOutput(w, None, {"smallloss_w_mean": w.mean()})

    @torch.no_grad()
    def score_batch(self, h: torch.Tensor, logits: torch.Tensor, y: torch.Tensor,
                    index: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """``weight``: ω; ``quality``: P(clean | early mean loss) (1 before the fit)."""
        if index is None or self.clean.numel() == 0:
            one = torch.ones(len(y), device=y.device)
            return {"weight": one, "quality": one}
        p = self.clean[index.to(self.clean.device)].to(y.device)
        return {"weight": self._omega(p), "quality": p}
