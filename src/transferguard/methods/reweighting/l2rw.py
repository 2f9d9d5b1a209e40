"""Learning to reweight with the labeled target as the clean meta set (Ren et al., ICML 2018,
"Learning to Reweight Examples for Robust Deep Learning"; issue 10).

Each step asks, for every source sample, whether a small step on its loss would *lower* the
loss of the labeled target batch (the clean meta set), and keeps only those that would:

    θ'(ε)   = θ − α ∇_θ Σ_i ε_i ℓ(f(x_i; θ), ỹ_i)             (one virtual SGD step, ε = 0)
    g_i     = ∂/∂ε_i  E_{T_L}[ℓ(f(x_l; θ'(ε)), y_l)] |_{ε=0}   (= −α ∇ℓ_i · ∇L_meta)
    ω_i     = max(−g_i, 0) / Σ_j max(−g_j, 0)  · B_s            (mean 1; all 0 if no g_i < 0)

The virtual step runs the model functionally (``torch.func.functional_call``) on the step's
source and labeled inputs with copies of its buffers (BatchNorm statistics are not moved), and
differentiates through it; the real step then trains on λ E_S[ω ℓ] as every weighter does.
Cost: one extra forward of each batch and a double backward: 2.0x a DANN step on LeNet
(``benchmarks/prevention.py --part overhead``; Ren et al. report about 3x). α only scales g
(ε = 0, so θ' = θ), hence ω does not depend on it after the normalisation; it is kept for the
paper's form.

Per-sample score outside a step (``score_batch``): the mean ω the sample got over the steps
that drew it (1 for a sample never drawn), a by-product of training (``index_src``). Needs the
step's inputs (``Features.x_src`` / ``x_lab``, passed by the DA family's shared forward) and
labeled target batches (ω = 1 without them: L = 0 has no meta set).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch.func import functional_call

from ...errors import ConfigError
from .weighter import Features, SourceWeighter, WeighterOutput, register_weighter


@register_weighter("l2rw", "learning to reweight: ω ∝ max(0, −∂ L_meta(θ − α∇Σεℓ)/∂ε), the "
                           "labeled target as the meta set")
class LearningToReweight(SourceWeighter):
    def __init__(self, feature_dim: int, num_classes: int, *, lam: float = 1.0,
                 meta_lr: float = 0.01, lr_mult: float = 1.0) -> None:
        super().__init__(feature_dim, num_classes, lam=lam, lr_mult=lr_mult)
        if meta_lr <= 0:
            raise ConfigError(f"l2rw meta_lr (the virtual step size α) must be positive, "
                              f"got {meta_lr}.")
        self.meta_lr = meta_lr
        self._model: list[torch.nn.Module] = []  # a list: the model is not a submodule
        self.register_buffer("omega_sum", torch.zeros(0))
        self.register_buffer("omega_count", torch.zeros(0))

    def setup(self, method: Any, data: Any) -> None:
        self._model = [method.model_]
        n = int(data.source.indices.max()) + 1 if len(data.source) else 0
        dev = self.omega_sum.device
        self.omega_sum, self.omega_count = torch.zeros(n, device=dev), torch.zeros(n, device=dev)

    def meta_weights(self, x_src: torch.Tensor, y_src: torch.Tensor, x_lab: torch.Tensor,
                     y_lab: torch.Tensor) -> torch.Tensor:
        """ω of the source batch from one virtual step (see the module docstring)."""
        if not self._model:
            raise ConfigError("the l2rw weighter has no model: it is set up by a domain-"
                              "adaptation method (tg.create_method('dann', gate='l2rw')).")
        model = self._model[0]
        names = [n for n, p in model.named_parameters() if p.requires_grad]
        params = dict(model.named_parameters())
        buffers = {n: b.clone() for n, b in model.named_buffers()}
        with torch.enable_grad():
            eps = torch.zeros(len(y_src), device=x_src.device, requires_grad=True)
            logits = functional_call(model, (params, buffers), (x_src,)).float()
            inner = (eps * F.cross_entropy(logits, y_src, reduction="none")).sum()
            grads = torch.autograd.grad(inner, [params[n] for n in names], create_graph=True,
                                        allow_unused=True)
            virtual = dict(params)
            for n, g in zip(names, grads):
                if g is not None:
                    virtual[n] = params[n] - self.meta_lr * g
            meta = F.cross_entropy(functional_call(model, (virtual, buffers), (x_lab,)).float(),
                                   y_lab)
            (g_eps,) = torch.autograd.grad(meta, eps)
        w = (-g_eps).clamp(min=0).detach()
        total = w.sum()
        return w * (len(w) / total) if float(total) > 0 else w

    def forward(self, feats: Features) -> WeighterOutput:
        if (not self._model or feats.h_lab is None or feats.y_lab is None
                or len(feats.y_lab) == 0):
            return WeighterOutput(None)  # not set up by a method yet, or no meta set (L = 0)
        if feats.x_src is None or feats.x_lab is None:
            raise ConfigError("the l2rw weighter re-runs the model on the step's inputs; this "
                              "method does not pass them (Features.x_src / x_lab).")
        w = self.meta_weights(feats.x_src, feats.y_src, feats.x_lab, feats.y_lab)
        if feats.index_src is not None and self.omega_sum.numel():
            idx = feats.index_src.to(self.omega_sum.device)
            self.omega_sum.index_add_(0, idx, w.to(self.omega_sum.device))
            self.omega_count.index_add_(0, idx, torch.ones_like(self.omega_count[idx]))
        return WeighterOutput(w, None, {"l2rw_zero": (w == 0).float().mean()})

    @torch.no_grad()
    def score_batch(self, h: torch.Tensor, logits: torch.Tensor, y: torch.Tensor,
                    index: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """``weight``: the mean ω over the steps that drew the sample (1 if never drawn)."""
        if index is None or self.omega_sum.numel() == 0:
            return {"weight": torch.ones(len(y), device=y.device)}
        idx = index.to(self.omega_sum.device)
        n = self.omega_count[idx]
        w = torch.where(n > 0, self.omega_sum[idx] / n.clamp(min=1), torch.ones_like(n))
        return {"weight": w.to(y.device)}
