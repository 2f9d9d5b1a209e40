"""Confident learning on the source (Northcutt et al., JAIR 2021) as a source weighter.

Source-only label-error detection, computed once before training (``setup``):

1. out-of-fold class probabilities p̂(k | x_i) for every source sample: ``folds``-fold
   stratified cross-validation of a small model on frozen inputs (PCA of the pixels to
   ``components`` dimensions, then multinomial logistic regression; scikit-learn);
2. cleanlab: the label quality q_i = p̂(ỹ_i | x_i) (``cleanlab.rank.get_label_quality_scores``,
   self-confidence) and the label issues of ``cleanlab.filter.find_label_issues``
   (``prune_by_noise_rate``: per observed class, as many of the least confident samples as
   the confident joint estimates are mislabeled);
3. ω_i = 0 for an issue, 1 otherwise (``mode="filter"``, cleanlab's intended use), or
   ω_i = q_i / mean(q) (``mode="soft"``).

What it can and cannot see: it trusts the source's own majority. With uniform noise the true
class stays the plurality and the fold models learn it; with asymmetric noise above
ε_y = 0.5 the wrong class *is* the majority of its images, and confident learning then flags
the correct labels (issue 10). ``cleanlab`` is an optional dependency
(``pip install transferguard[prevention]``, Apache-2.0).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ...errors import ConfigError
from .weighter import Features, SourceWeighter, WeighterOutput, register_weighter

MODES = ("filter", "soft")


def out_of_fold_probabilities(x: np.ndarray, y: np.ndarray, num_classes: int, *, folds: int = 5,
                              components: int = 64, seed: int = 0) -> np.ndarray:
    """p̂(k | x) of every sample from a model that never saw it (PCA + logistic regression)."""
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    counts = np.bincount(y, minlength=num_classes)
    k = int(min(folds, counts[counts > 0].min()))
    if k < 2:
        raise ConfigError("confident learning needs at least 2 source samples of every observed "
                          "class for out-of-fold probabilities.")
    probs = np.zeros((len(y), num_classes))
    cv = StratifiedKFold(k, shuffle=True, random_state=seed)
    for train, test in cv.split(x, y):
        n_comp = int(min(components, len(train) - 1, x.shape[1]))
        model = make_pipeline(StandardScaler(), PCA(n_comp, random_state=seed),
                              LogisticRegression(max_iter=300, C=0.1))
        model.fit(x[train], y[train])
        probs[np.ix_(test, model.classes_)] = model.predict_proba(x[test])
    probs = np.clip(probs, 1e-6, None)
    return probs / probs.sum(1, keepdims=True)


@register_weighter("confident", "confident learning (cleanlab) on out-of-fold source probabilities")
class ConfidentLearningWeighter(SourceWeighter):
    def __init__(self, feature_dim: int, num_classes: int, *, lam: float = 1.0,
                 mode: str = "filter", folds: int = 5, components: int = 64, seed: int = 0,
                 lr_mult: float = 1.0) -> None:
        super().__init__(feature_dim, num_classes, lam=lam, lr_mult=lr_mult)
        if mode not in MODES:
            raise ConfigError(f"confident mode must be one of {MODES}, got {mode!r}.")
        if folds < 2:
            raise ConfigError(f"confident folds must be at least 2, got {folds}.")
        self.mode, self.folds, self.components, self.seed = mode, folds, components, seed
        self.register_buffer("quality", torch.ones(0))
        self.register_buffer("issue", torch.zeros(0, dtype=torch.bool))
        self.register_buffer("omega", torch.ones(0))

    def setup(self, method: Any, data: Any) -> None:
        try:
            from cleanlab.filter import find_label_issues
            from cleanlab.rank import get_label_quality_scores
        except ImportError:  # pragma: no cover - depends on the environment
            raise ConfigError("the 'confident' weighter needs cleanlab: pip install "
                              "'transferguard[prevention]' (or pip install cleanlab).") from None
        src = data.source
        if len(src) == 0 or data.source_free:
            return
        x = src.images.reshape(len(src), -1).float().numpy() / 255.0
        y = src.labels.numpy()
        probs = out_of_fold_probabilities(x, y, self.num_classes, folds=self.folds,
                                          components=self.components, seed=self.seed)
        q = get_label_quality_scores(y, probs, method="self_confidence")
        issues = find_label_issues(y, probs, filter_by="prune_by_noise_rate")
        dev = self.quality.device
        self.quality = torch.as_tensor(q, dtype=torch.float32, device=dev)
        self.issue = torch.as_tensor(issues, dtype=torch.bool, device=dev)
        if self.mode == "filter":
            self.omega = (~self.issue).float()
        else:
            self.omega = self.quality / self.quality.mean().clamp(min=1e-12)

    def _lookup(self, buf: torch.Tensor, index: torch.Tensor | None, n: int,
                device: torch.device) -> torch.Tensor:
        if index is None or buf.numel() == 0:
            return torch.ones(n, device=device)
        return buf[index.to(buf.device)].to(device)

    def forward(self, feats: Features) -> WeighterOutput:
        if self.omega.numel() == 0:
            return WeighterOutput(None)
        w = self._lookup(self.omega, feats.index_src, len(feats.y_src), feats.y_src.device)
        return WeighterOutput(w, None, {"cl_w_mean": w.mean()})

    @torch.no_grad()
    def score_batch(self, h: torch.Tensor, logits: torch.Tensor, y: torch.Tensor,
                    index: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """``weight``: ω; ``quality``: cleanlab's label quality (the continuous ranking)."""
        return {"weight": self._lookup(self.omega, index, len(y), y.device),
                "quality": self._lookup(self.quality, index, len(y), y.device)}
