"""Gradient-similarity gating of the source: Du et al., "Adapting Auxiliary Losses Using Gradient
Similarity" (2018), applied to domain adaptation (methods reference section 2, issue 10).

A DA objective is L = L_T + R with L_T the labeled-target cross-entropy and R everything the
source brings (the source loss, weighted or not, and the alignment term). The source is useful
for the target only while its gradient helps the target's: the model's parameters θ (F and C)
step on

    g_T = ∇_θ L_T,   g_R = ∇_θ R,   c = max(0, cos(g_T, g_R))
    d = g_T + c · g_R

so a source that pulls against the target (c = 0) leaves the step of the target-only twin, and
one that agrees adds in proportion to how much it agrees. Unlike DTNH's projection (which
keeps the orthogonal part of g_R every step), a conflicting source contributes nothing. The
cosine is taken over all of θ at once, as in the paper. Modules other than the model (the
domain discriminator, a weighter's heads) are not gated: they keep the full gradient of the
loss, so the discriminator and the weighter keep learning while the source is shut off.

Two options change the paper's rule, because of what the cosine looks like here (measured,
see docs/guide.md, "Gradient-similarity gating"): over a whole CNN it is small (0.05 to 0.15
for a source that helps, within about ±0.06 of 0 for one that hurts) and noisy from batch to batch.
``scale`` κ reads c = min(1, max(0, cos) / κ), so that a source agreeing at cos >= κ is
added whole; ``momentum`` m smooths cos over the measurements (a bias-corrected EMA) before
the rule, so that batch noise does not let a harmful source in half of the time. κ = 1 with
m = 0 is Du et al.'s rule. The defaults (every 4 steps, κ = 0.1, m = 0.9) were chosen on the
demo's two scenarios (3 seeds) and seven cells of the prevention grid: Du et al.'s rule kept
9 of a helpful source's 20 points there; these keep all of them and still shut the harmful
source out.

Cost: c needs g_T apart, a second backward pass. ``every=k`` refreshes c every k steps and
steps on ∇(L_T + c R) in between (one backward; the other modules' gradients are rescaled by
1/c, so they are exactly the full ones), which brings the step near DANN's own. On those
steps a shut source (c = 0) is floored at c = 1e-3, so that the rescaling stays exact.
"""

from __future__ import annotations

from typing import Any

import torch

from ...engine.types import StepOutput
from ...errors import ConfigError

#: c is floored here on the cheap steps so the other modules' gradients can be unscaled exactly
_FLOOR = 1e-3


class GradientSimilarity:
    """The combiner. ``mean_cosine`` / ``shut_rate`` report what it saw on refresh steps."""

    def __init__(self, every: int = 4, scale: float = 0.1, momentum: float = 0.9,
                 eps: float = 1e-12) -> None:
        if not isinstance(every, int) or every < 1:
            raise ConfigError(f"gradsim every must be an integer >= 1, got {every!r}.")
        if not 0 < scale <= 1:
            raise ConfigError(f"gradsim scale must be in (0, 1], got {scale!r}.")
        if not 0 <= momentum < 1:
            raise ConfigError(f"gradsim momentum must be in [0, 1), got {momentum!r}.")
        self.every, self.scale, self.momentum, self.eps = every, scale, momentum, eps
        self.steps = 0
        self.checked = 0
        # kept as tensors on the model's device, so that measuring c costs no host sync (on
        # CUDA the Trainer's loop avoids syncs); read as floats through the properties
        self._coef = torch.ones((), dtype=torch.float64)
        self._ema = torch.zeros((), dtype=torch.float64)
        self._shut = torch.zeros((), dtype=torch.float64)
        self._cos_sum = torch.zeros((), dtype=torch.float64)

    def state_dict(self) -> dict[str, float]:
        return {"steps": self.steps, "coef": self.coef, "checked": self.checked,
                "shut": float(self._shut), "cos_sum": float(self._cos_sum),
                "ema": float(self._ema)}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.steps, self.checked = int(state["steps"]), int(state["checked"])
        self._coef, self._shut, self._cos_sum, self._ema = (
            torch.tensor(float(state[k]), dtype=torch.float64)
            for k in ("coef", "shut", "cos_sum", "ema"))

    @property
    def coef(self) -> float:
        """The source's weight c the last measurement set."""
        return float(self._coef)

    @property
    def shut(self) -> int:
        """How many measurements found cos <= 0."""
        return int(self._shut)

    @property
    def shut_rate(self) -> float:
        """How often the source was shut off (cos <= 0) on the steps c was measured."""
        return self.shut / max(1, self.checked)

    @property
    def mean_cosine(self) -> float:
        return float(self._cos_sum) / max(1, self.checked)

    def backward(self, out: StepOutput, method: Any) -> None:
        if out.empirical is None or out.regularizer is None:
            raise ConfigError(f"{method.label}: gradient-similarity gating needs the labeled-"
                              "target loss and the source's terms apart (StepOutput.empirical "
                              "/ .regularizer); give the task labeled target samples.")
        model = [p for p in method.model_.parameters() if p.requires_grad]
        if self.steps % self.every == 0:
            g_t = torch.autograd.grad(out.empirical, model, retain_graph=True, allow_unused=True)
            g_t = [torch.zeros_like(p) if g is None else g for p, g in zip(model, g_t)]
            out.loss.backward()
            g_all = [torch.zeros_like(p) if p.grad is None else p.grad for p in model]
            g_r = torch._foreach_sub(g_all, g_t)
            dot = torch.stack([x.sum() for x in torch._foreach_mul(g_t, g_r)]).sum()
            n_t = torch.stack(torch._foreach_norm(g_t)).square().sum().sqrt()
            n_r = torch.stack(torch._foreach_norm(g_r)).square().sum().sqrt()
            cos = (dot / (n_t * n_r + self.eps)).detach().double()  # as a Python float
            self.checked += 1
            self._ema = self.momentum * self._ema.to(cos.device) + (1 - self.momentum) * cos
            smooth = self._ema / (1 - self.momentum ** self.checked)  # bias-corrected EMA
            self._coef = (smooth.clamp(min=0) / self.scale).clamp(max=1)
            self._shut = self._shut.to(cos.device) + (cos <= 0)
            self._cos_sum = self._cos_sum.to(cos.device) + cos
            d = torch._foreach_add(g_t, torch._foreach_mul(g_r, self._coef))
            for p, g in zip(model, d):
                p.grad = g
        else:
            c = self._coef.clamp(min=_FLOOR)
            (out.empirical + c * out.regularizer).backward()
            for p in (p for m in method.extra_modules_.values() for p in m.parameters()):
                if p.grad is not None:
                    p.grad.div_(c)
        self.steps += 1
