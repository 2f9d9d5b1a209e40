"""Gold Loss Correction with the labeled target as the trusted set (Hendrycks et al., NeurIPS
2018, "Using Trusted Data to Train Deep Networks on Labels Corrupted by Severe Noise"; issue 10).

The source labels ỹ are treated as a noisy channel of the true class: P(ỹ = j | y = k, x) =
C[k, j]. GLC estimates C from a small *trusted* set (here the labeled target, whose labels are
right by construction) and trains the classifier through it, so that a source whose labels are
systematically wrong (pair-flip noise: the wrong class is the majority) still teaches the
right classes. The paper's two stages (a noisy classifier, then the corrected one) run online
inside the one training loop:

    noisy head  g: a linear head on the *detached* aligned features F, trained with
                   CE(g(F(x_s)), ỹ_s) (the weighter's own loss; it never moves F)
    C[k, :]     = EMA over steps of mean_{(x_l, y_l = k) in T_L} softmax(g(F(x_l)))
                  (each row a distribution; ``smoothing`` mixes in the uniform row)
    source loss ℓ_i = −log( (softmax(C(F(x_s))) @ C)[ỹ_i] )    (forward correction)

The labeled target keeps its plain cross-entropy (the method's own term). C is the identity
(plain cross-entropy) until every class has been seen in a labeled batch *and* the
``warmup`` fraction of training has passed, so that the noisy head has learnt something
before it is trusted. Without labeled target (L = 0) there is no trusted set: plain CE.

Estimators of C (``estimator``; the correction is the same for all):

- ``"noisy_head"`` (the paper's, default): the linear noisy head above. Online it is
  undertrained early on; ``lr_mult`` (its learning rate over the base rate, default 10) and
  ``warmup`` (default 0.3) give it time: in the probe of ``benchmarks/prevention.py`` (mnist ->
  uci-digits, pair-flip, 2 seeds) these defaults left NTG at +0.6 / +1.3 (ε 0.7 / 0.9, L 10%)
  where ``lr_mult=1, warmup=0.1`` left +1.8 / +3.0 and DANN +2.6 / +4.2 (3 seeds in
  docs/results/prevention.md).
- ``"knn"``: p_noisy(j | x_l) = the fraction of the ``neighbors`` most similar source features
  (cosine, in a ring ``bank`` of recent detached source features) that carry label j: a
  training-free noisy classifier, so C is usable as soon as the bank has filled.
- ``"prototype"``: the other direction: labeled-target prototypes in F give p(true k | x_s)
  for the *source* samples and C[k, j] ∝ Σ_s p(k | x_s) 1[ỹ_s = j] (EMA at ``joint_momentum``;
  ``confidence`` > 0 counts only samples whose top prototype probability reaches it).
- ``"classifier"``: the same with the main classifier's p(k | x_s).
- ``matrix``: a known C (forward correction with a given matrix, Patrini et al. 2017): no
  estimation; the probe uses the task's true C as an upper bound for every estimator.

The noisy head trains with every estimator (its p(ỹ | x) is reported as ``noisy_p``).
``warmup_source=False`` turns the source loss off during the warm-up (instead of plain CE), so
the features are not first trained towards the noisy labels.

Why F and not the pixels: the noisy head has to read *target* images (the trusted set) after
learning from source images; in the aligned features the two domains are comparable, which
is what DANN's alignment gives. With ``detach`` the head cannot pull F towards the noisy
labels.

What C can and cannot do: with pair-flip noise C is a (mixed) permutation, invertible even at
ε = 0.9, and the corrected loss recovers the clean classifier's signal. With uniform noise at
ε close to (K−1)/K every row of C is the same distribution (rank one): (p C)[ỹ] no longer
depends on p, the source loss carries no gradient and the method falls back to the labeled
target alone (NTG → 0), which is the right answer for a source that says nothing.

Per-sample harm score (``score_batch``): the posterior that the observed label is the true
one, P(y = ỹ | x, ỹ) = p(ỹ | x) C[ỹ, ỹ] / Σ_k p(k | x) C[k, ỹ].
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ConfigError
from .prototype import PrototypeWeighter
from .weighter import (
    Features,
    SourceWeighter,
    WeighterOutput,
    register_weighter,
    update_class_means,
)

ESTIMATORS = ("noisy_head", "knn", "prototype", "classifier")


@register_weighter("glc", "Gold Loss Correction: the labeled target estimates the source's "
                          "label-corruption matrix C; source loss −log (p C)[ỹ]")
class GoldLossCorrection(SourceWeighter):
    def __init__(self, feature_dim: int, num_classes: int, *, lam: float = 1.0,
                 momentum: float = 0.9, smoothing: float = 0.01, warmup: float = 0.3,
                 detach: bool = True, estimator: str = "noisy_head",
                 confidence: float = 0.0, joint_momentum: float = 0.99,
                 warmup_source: bool = True, matrix: Sequence[Sequence[float]] | None = None,
                 neighbors: int = 10, bank: int = 1024, lr_mult: float = 10.0) -> None:
        super().__init__(feature_dim, num_classes, lam=lam, lr_mult=lr_mult)
        if not 0.0 <= momentum < 1.0:
            raise ConfigError(f"glc momentum must lie in [0, 1), got {momentum}.")
        if not 0.0 <= smoothing < 1.0:
            raise ConfigError(f"glc smoothing (the weight of the uniform row mixed into C) "
                              f"must lie in [0, 1), got {smoothing}.")
        if not 0.0 <= warmup < 1.0:
            raise ConfigError(f"glc warmup is a fraction of training in [0, 1), got {warmup}.")
        if estimator not in ESTIMATORS:
            raise ConfigError(f"glc estimator must be one of {ESTIMATORS}, got {estimator!r}.")
        self.momentum, self.smoothing, self.warmup, self.detach = (
            momentum, smoothing, warmup, detach)
        self.estimator, self.confidence, self.joint_momentum = (
            estimator, confidence, joint_momentum)
        self.warmup_source = warmup_source
        if neighbors < 1 or bank < neighbors:
            raise ConfigError(f"glc needs 1 <= neighbors <= bank, got neighbors={neighbors}, "
                              f"bank={bank}.")
        self.neighbors = neighbors
        if not 0.0 <= confidence <= 1.0:
            raise ConfigError(f"glc confidence is a probability in [0, 1], got {confidence}.")
        if not 0.0 <= joint_momentum < 1.0:
            raise ConfigError(f"glc joint_momentum must lie in [0, 1), got {joint_momentum}.")
        # estimator="knn": a bank of recent (detached, normalised) source features and labels
        self.register_buffer("bank_h", torch.zeros(bank if estimator == "knn" else 0,
                                                   feature_dim))
        self.register_buffer("bank_y", torch.full((len(self.bank_h),), -1, dtype=torch.long))
        self.register_buffer("bank_ptr", torch.zeros((), dtype=torch.long))
        self.noisy_head = nn.Linear(feature_dim, num_classes)
        # estimator="prototype": labeled-target prototypes in F give p(true k | x_s) for the
        # *source* samples; C[k, j] ∝ Σ_s p(k | x_s) 1[ỹ_s = j] (an EMA of the soft joint)
        self.prototypes = (PrototypeWeighter(feature_dim, num_classes, momentum=momentum)
                           if estimator == "prototype" else None)
        self.register_buffer("joint", torch.zeros(num_classes, num_classes))
        self.register_buffer("corruption", torch.eye(num_classes))
        self.register_buffer("seen", torch.zeros(num_classes, dtype=torch.bool))
        self.register_buffer("active", torch.zeros((), dtype=torch.bool))
        self.fixed = matrix is not None
        if matrix is not None:  # a known C (forward correction of Patrini et al.; diagnostics)
            m = torch.as_tensor(matrix, dtype=torch.float32)
            if m.shape != (num_classes, num_classes) or (m < 0).any() or not torch.allclose(
                    m.sum(1), torch.ones(num_classes), atol=1e-4):
                raise ConfigError(f"glc matrix must be a {num_classes}x{num_classes} "
                                  "row-stochastic matrix C[true, observed] (non-negative rows "
                                  "summing to 1).")
            self.corruption.copy_(m)
            self.seen.fill_(True)

    # ------------------------------------------------------------------ C
    @property
    def ready(self) -> bool:
        """Whether every row of C has been estimated at least once."""
        return bool(self.seen.all())

    @torch.no_grad()
    def update_from_source(self, p: torch.Tensor, y_src: torch.Tensor) -> None:
        """estimator="prototype" / "classifier": the soft joint of (true class k by p, observed
        source label j), EMA over steps; C is its row-normalised form."""
        p = p.detach().float()
        if self.confidence > 0:  # the confident joint: only samples the prototypes are sure of
            conf, k = p.max(1)
            p = F.one_hot(k, self.num_classes).float() * (conf >= self.confidence)[:, None]
        batch = p.T @ F.one_hot(y_src, self.num_classes).float()  # [k, j]
        batch = batch / len(y_src)
        m = self.joint_momentum
        self.joint.mul_(m).add_((1 - m) * batch)
        rows = self.joint.sum(1, keepdim=True)
        seen = rows.squeeze(1) > 0
        self.corruption[seen] = self.joint[seen] / rows[seen]
        self.seen |= seen

    @property
    def C(self) -> torch.Tensor:
        """The corruption matrix in use: the smoothed estimate once active, else I."""
        if not bool(self.active):
            return torch.eye(self.num_classes, device=self.corruption.device)
        u = torch.full_like(self.corruption, 1.0 / self.num_classes)
        return (1 - self.smoothing) * self.corruption + self.smoothing * u

    @torch.no_grad()
    def push(self, h_src: torch.Tensor, y_src: torch.Tensor) -> None:
        """estimator="knn": add the source batch to the ring bank."""
        n, size = len(y_src), len(self.bank_y)
        idx = (self.bank_ptr + torch.arange(n, device=self.bank_y.device)) % size
        self.bank_h[idx] = F.normalize(h_src.detach().float(), dim=1)[-size:]
        self.bank_y[idx] = y_src[-size:]
        self.bank_ptr.fill_(int((self.bank_ptr + n) % size))

    @torch.no_grad()
    def noisy_posterior(self, h: torch.Tensor) -> torch.Tensor:
        """p_noisy(j | x): the noisy head's softmax, or with estimator="knn" the label
        histogram of the ``neighbors`` most similar source features in the bank."""
        if self.estimator != "knn":
            return torch.softmax(self.noisy_head(h.detach().float()), 1)
        filled = self.bank_y >= 0
        bank_h, bank_y = self.bank_h[filled], self.bank_y[filled]
        k = min(self.neighbors, len(bank_y))
        sims = F.normalize(h.detach().float(), dim=1) @ bank_h.T
        nn_idx = sims.topk(k, dim=1).indices
        return F.one_hot(bank_y[nn_idx], self.num_classes).float().mean(1)

    @torch.no_grad()
    def update(self, h_lab: torch.Tensor, y_lab: torch.Tensor) -> None:
        """Move the rows of the classes in the trusted batch towards their mean p_noisy."""
        update_class_means(self.corruption, self.seen, self.noisy_posterior(h_lab), y_lab,
                           self.momentum)

    # ------------------------------------------------------------------ one step
    def forward(self, feats: Features) -> WeighterOutput:
        h_src = feats.h_src.detach() if self.detach else feats.h_src
        noisy_loss = F.cross_entropy(self.noisy_head(h_src.float()), feats.y_src)
        logs: dict[str, torch.Tensor | float] = {"glc_noisy_ce": noisy_loss.detach()}
        if self.fixed:
            pass
        elif self.prototypes is not None:
            if feats.h_lab is not None and len(feats.h_lab):
                self.prototypes.update(feats.h_lab, feats.y_lab)
            if self.prototypes.ready:
                self.update_from_source(self.prototypes.posterior(feats.h_src), feats.y_src)
        elif self.estimator == "classifier":
            if feats.h_lab is not None and len(feats.h_lab):
                self.update_from_source(torch.softmax(feats.logits_src.detach().float(), 1),
                                        feats.y_src)
        else:
            if self.estimator == "knn":
                self.push(feats.h_src, feats.y_src)
            if feats.h_lab is not None and len(feats.h_lab):
                self.update(feats.h_lab, feats.y_lab)
        if self.ready and feats.progress >= self.warmup:
            self.active.fill_(True)
        if not bool(self.active):
            if self.warmup_source:
                return WeighterOutput(None, noisy_loss, logs)
            w = torch.zeros_like(feats.y_src, dtype=feats.logits_src.dtype)
            return WeighterOutput(w, noisy_loss, logs)  # the source is off until C is known
        C = self.C.to(feats.logits_src.dtype)
        q = torch.softmax(feats.logits_src.float(), 1) @ C
        loss = -torch.log(q.gather(1, feats.y_src[:, None]).squeeze(1).clamp(min=1e-12))
        logs["glc_diag"] = torch.diagonal(C).mean().detach()
        return WeighterOutput(None, noisy_loss, logs, source_loss=loss)

    # ------------------------------------------------------------------ outside a step
    @torch.no_grad()
    def clean_posterior(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """P(y = ỹ | x, ỹ) ∝ p(ỹ | x) C[ỹ, ỹ], normalised over the true class."""
        p = torch.softmax(logits.float(), 1)
        C = self.C.to(p.device)
        joint = p * C[:, y].T  # [n, K]: p(k | x) C[k, ỹ]
        num = joint.gather(1, y[:, None]).squeeze(1)
        return num / joint.sum(1).clamp(min=1e-12)

    @torch.no_grad()
    def score_batch(self, h: torch.Tensor, logits: torch.Tensor, y: torch.Tensor,
                    index: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """``weight``: P(y = ỹ | x, ỹ), the clean posterior (low = wrong label);
        ``noisy_p``: the noisy head's p(ỹ | x)."""
        noisy = torch.softmax(self.noisy_head(h.float()), 1).gather(1, y[:, None]).squeeze(1)
        return {"weight": self.clean_posterior(logits, y), "noisy_p": noisy}
