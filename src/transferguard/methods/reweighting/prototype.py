"""Target-prototype weighter: the labeled target judges each source label in the aligned
feature space F (issue 10; an alternative to the gate of methods reference section 1.3).

A classifier trained on the target alone judges source *images* badly across the domain gap
(the probe of issue 10: AUROC ~0.72 on pair-flip noise). Here the judgement is made in the
feature space the DA method aligns, with the labeled target as the only reference:

    μ_k   = EMA over steps of mean_{(x_l, y_l = k)} F(x_l) / ||F(x_l)||       (detached)
    p(k | x_s) = softmax_k( cos(F(x_s), μ_k) / τ )
    ω(x_s, y_s) = stopgrad( p(y_s | x_s) / mean_batch p(y | x) )   (mean 1 per batch)

A source sample whose label disagrees with the class its features sit in gets a small ω.
τ is *calibrated* on the labeled target each step it is refit (``calibrate=True``): the τ of a
small grid with the lowest cross-entropy of the labeled target batch's own prototype
posterior (so that p is a probability, not only a ranking). ω = 1 until every class has been
seen in a labeled batch (and for L = 0: without labeled target there is no reference).
``floor`` keeps every weight at least that (a soft filter); ``hard=q`` sets the lowest-p
fraction q of each batch to 0 instead of re-weighting (a filter).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ...errors import ConfigError
from .weighter import (
    Features,
    SourceWeighter,
    WeighterOutput,
    register_weighter,
    update_class_means,
)

TAUS = (0.02, 0.05, 0.1, 0.2, 0.5)


@register_weighter("prototype", "labeled-target class prototypes in F: ω ∝ p_proto(y_s | F(x_s))")
class PrototypeWeighter(SourceWeighter):
    def __init__(self, feature_dim: int, num_classes: int, *, lam: float = 1.0,
                 momentum: float = 0.9, tau: float = 0.1, calibrate: bool = True,
                 floor: float = 0.0, hard: float | None = None, lr_mult: float = 1.0) -> None:
        super().__init__(feature_dim, num_classes, lam=lam, lr_mult=lr_mult)
        if not 0.0 <= momentum < 1.0:
            raise ConfigError(f"prototype momentum must lie in [0, 1), got {momentum}.")
        if tau <= 0:
            raise ConfigError(f"prototype tau must be positive, got {tau}.")
        if hard is not None and not 0.0 <= hard < 1.0:
            raise ConfigError(f"prototype hard (the fraction filtered out) must lie in [0, 1), "
                              f"got {hard}.")
        self.momentum, self.calibrate, self.floor, self.hard = momentum, calibrate, floor, hard
        self.register_buffer("prototypes", torch.zeros(num_classes, feature_dim))
        self.register_buffer("seen", torch.zeros(num_classes, dtype=torch.bool))
        self.register_buffer("tau", torch.tensor(float(tau)))

    @property
    def ready(self) -> bool:
        return bool(self.seen.all())

    @torch.no_grad()
    def update(self, h_lab: torch.Tensor, y_lab: torch.Tensor) -> None:
        """Move the prototypes of the classes in the batch towards their normalised means."""
        z = F.normalize(h_lab.detach().float(), dim=1)
        update_class_means(self.prototypes, self.seen, z, y_lab, self.momentum)
        if self.calibrate and self.ready and len(y_lab) > 1:
            logits = z @ F.normalize(self.prototypes, dim=1).T
            nll = [F.cross_entropy(logits / t, y_lab) for t in TAUS]
            self.tau.fill_(TAUS[int(torch.stack(nll).argmin())])

    @torch.no_grad()
    def posterior(self, h: torch.Tensor) -> torch.Tensor:
        """p(k | x) from the cosine to each prototype at temperature τ."""
        z = F.normalize(h.detach().float(), dim=1)
        return torch.softmax(z @ F.normalize(self.prototypes, dim=1).T / self.tau, 1)

    def forward(self, feats: Features) -> WeighterOutput:
        if feats.h_lab is not None and len(feats.h_lab):
            self.update(feats.h_lab, feats.y_lab)
        if not self.ready:
            return WeighterOutput(None)
        p = self.posterior(feats.h_src).gather(1, feats.y_src[:, None]).squeeze(1)
        if self.hard is not None:
            k = int(self.hard * len(p))
            w = torch.ones_like(p)
            if k:
                w[torch.argsort(p)[:k]] = 0.0
        else:
            w = (p / p.mean().clamp(min=1e-12)).clamp(min=self.floor)
        return WeighterOutput(w, None, {"proto_p_mean": p.mean(), "proto_tau": self.tau})

    @torch.no_grad()
    def score_batch(self, h: torch.Tensor, logits: torch.Tensor, y: torch.Tensor,
                    index: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """``weight``: p_proto(y | x) (not normalised per batch; 1 before the prototypes exist)."""
        if not self.ready:
            return {"weight": torch.ones(len(y), device=y.device)}
        return {"weight": self.posterior(h).gather(1, y[:, None]).squeeze(1)}
