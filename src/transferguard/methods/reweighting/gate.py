"""The discriminator gate of Wang et al. (CVPR 2019), methods reference section 1.3.

Negative transfer comes from the divergence of the *joint* distributions P_S(X, Y) and
P_T(X, Y). The gate re-weights every source sample by the joint density ratio, estimated by a
label-conditioned discriminator whose optimum is D*(h, y) = P_T / (P_T + P_S):

    ω(x_s, y_s) = stopgrad( D(F(x_s), y_s) / (1 − D(F(x_s), y_s)) )
    L_CLF^gate  = E_{T_L}[ℓ(C(F(x_l)), y_l)] + λ E_S[ω(x_s, y_s) ℓ(C(F(x_s)), y_s)]
    L_ADV^aug   = E_{T_U}[log D(F(x_u), nil)] + E_S[log(1 − D(F(x_s), nil))]      (marginal)
                + E_{T_L}[log D(F(x_l), y_l)] + E_S[log(1 − D(F(x_s), y_s))]      (joint)
    min_{F,C} max_D  L_CLF^gate − μ L_ADV^aug

One network D serves both roles: with the extra ``nil`` label (index K) it is a marginal
discriminator, with a class label a joint one. The marginal term goes through a gradient
reversal layer of coefficient μ (the DANN alignment). Documented, configurable choices
(the paper's details are unverified, reference section 12):

- ``kind="projection"`` (default): D(h, y) = ψ(φ(h)) + e_yᵀ φ(h), with e_nil learned: the
  label interacts with the features multiplicatively, which a few hundred labeled target
  pairs can fit; ``kind="concat"``: MLP on [h, onehot_{K+1}(y)] (the reference's default).
- ``joint_grad="detach"`` (default): the joint term trains D on detached features, so it
  estimates the ratio without pushing F (the field notes of section 1.3b: through the
  reversal the gate collapsed to 8.8%); ``"reverse"``: through the reversal as written.
- Corrections: D is clipped into [1e-3, 1 − 1e-3] before forming D/(1 − D); ω is clipped
  at ``clip`` (10); with ``joint_loss="pooled"`` (one BCE mean over B_s source and B_l target
  pairs, for which D* = B_l P_T / (B_l P_T + B_s P_S)) ω is multiplied by the batch-size
  ratio B_s / B_l, while the default ``"balanced"`` form (a mean per side, as in the formula)
  needs no correction; ``normalize=True`` rescales ω to mean 1 per source batch.
- ω is always queried with the *labeled* pair D(F(x_s), y_s), never the nil one, and with D
  in eval mode (no dropout noise in the weights). Without labeled target pairs (L = 0) the
  labeled query is never trained and says nothing about P_T(y|x), so ω = 1: the gate
  reduces to its marginal term, i.e. to DANN (as in the paper's L = 0 row); the posterior
  input is then blanked too, so that D sees F(x) only, as DANN's does (with the posterior,
  two of three seeds of unsupervised syndigits -> mnist half-collapsed: 31.5% against DANN's
  57.1%; blanked, 49.7%. With labeled pairs the posterior stays on the marginal pairs as well:
  blanking it there cost 0.6 to 2.2 points in 3 of 4 cells and gained 0.1 in the fourth).
- Each term is a mean BCE over its pairs, ½(E_T + E_S), as DANN's domain loss is (see
  :mod:`.dann`); the scale does not change D's optimum, hence not ω.
- ``posterior=True`` (default; an extension of the paper, ``posterior=False`` is the
  paper's D): D also sees the classifier's detached log-posterior log p_C(·|x). The ratio
  factorises as [P_T(x)/P_S(x)]·[P_T(y|x)/P_S(y|x)], and the second factor is what a wrong
  label changes; with the posterior as input D need not relearn a classifier from the few
  labeled target pairs. Measured (docs/results/gate_tables.md, ablation) on syndigits ->
  mnist, 3 seeds, 600 iterations: the default beat ``posterior=False`` in 4 of 4 cells
  (ε in {0.7, 0.9} x L in {30, 50}%), by 0.3 to 1.0 points. The method passes the logits.
- ``lr_mult`` scales the learning rate of the gate's discriminator (default 1; 3x made
  training collapse in our digits runs, so raise it with care).
- ``pseudo_label=τ`` (an extension, off by default): unlabeled target samples whose predicted
  class has probability >= τ join the target side of the joint term with that class, so D
  sees many more target pairs than the few labeled ones.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ConfigError
from ..components import grad_reverse
from .weighter import Features, SourceWeighter, WeighterOutput, register_weighter

GATE_KINDS = ("projection", "concat")
JOINT_GRADS = ("detach", "reverse")
JOINT_LOSSES = ("balanced", "pooled")


class GateDiscriminator(nn.Module):
    """D(h, y) -> logit, for y in {0, ..., K-1} and nil = K."""

    def __init__(self, in_features: int, num_classes: int, hidden: int = 1024,
                 dropout: float = 0.5, kind: str = "projection") -> None:
        super().__init__()
        if kind not in GATE_KINDS:
            raise ConfigError(f"gate kind must be one of {GATE_KINDS}, got {kind!r}.")
        self.kind, self.num_classes, self.nil = kind, num_classes, num_classes
        extra = 0 if kind == "projection" else num_classes + 1
        self.body = nn.Sequential(
            nn.Linear(in_features + extra, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
        )
        self.out = nn.Linear(hidden, 1)
        if kind == "projection":
            self.embed = nn.Embedding(num_classes + 1, hidden)
            nn.init.normal_(self.embed.weight, std=0.01)

    def forward(self, h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.kind == "projection":
            f = self.body(h)
            return self.out(f).squeeze(-1) + (self.embed(y) * f).sum(-1)
        onehot = F.one_hot(y, self.num_classes + 1).to(h.dtype)
        return self.out(self.body(torch.cat([h, onehot], 1))).squeeze(-1)


@register_weighter("gate", "the discriminator gate of Wang et al.: ω = D(h, y)/(1 − D(h, y))")
class Gate(SourceWeighter):
    """The first source weighter: its discriminator, the ω weights and the augmented
    adversarial loss (its weighter loss).

    ``lam`` (λ) scales the weighted source loss; the reversal coefficient is μ_p times
    ``mu_max`` with the DANN ramp (given by the method each step).
    """

    needs_unlabeled = True
    replaces_alignment = True

    def __init__(self, feature_dim: int, num_classes: int, *, lam: float = 1.0,
                 mu_max: float = 1.0, hidden: int = 1024, dropout: float = 0.5,
                 kind: str = "projection", clip: float | None = 10.0, normalize: bool = False,
                 joint_grad: str = "detach", joint_loss: str = "balanced",
                 eps: float = 1e-3, posterior: bool = True,
                 pseudo_label: float | None = None, lr_mult: float = 1.0) -> None:
        super().__init__(feature_dim, num_classes, lam=lam, lr_mult=lr_mult)
        if joint_grad not in JOINT_GRADS:
            raise ConfigError(f"gate joint_grad must be one of {JOINT_GRADS}, got {joint_grad!r}.")
        if joint_loss not in JOINT_LOSSES:
            raise ConfigError(f"gate joint_loss must be one of {JOINT_LOSSES}, got {joint_loss!r}.")
        if clip is not None and clip <= 0:
            raise ConfigError(f"gate clip must be positive or None, got {clip}.")
        self.posterior = posterior
        if pseudo_label is not None and not 0 < pseudo_label <= 1:
            raise ConfigError(f"gate pseudo_label must be a probability in (0, 1], got "
                              f"{pseudo_label}.")
        self.pseudo_label = pseudo_label
        in_features = feature_dim + (num_classes if posterior else 0)
        self.discriminator = GateDiscriminator(in_features, num_classes, hidden, dropout, kind)
        self.mu_max, self.clip, self.normalize = mu_max, clip, normalize
        self.joint_grad, self.joint_loss, self.eps = joint_grad, joint_loss, eps
        self.nil = num_classes
        # whether the labeled query has ever been trained (on labeled or pseudo-labeled target
        # pairs); until then it says nothing about P_T(y|x) and every ω is 1
        self.register_buffer("joint_trained", torch.zeros((), dtype=torch.bool))

    # ------------------------------------------------------------------ ω
    def inputs(self, h: torch.Tensor, logits: torch.Tensor | None) -> torch.Tensor:
        """What D sees of a sample: F(x), plus log p_C(·|x) (detached) with ``posterior``."""
        if not self.posterior:
            return h
        if logits is None:
            raise ConfigError("a gate with posterior=True needs the classifier's logits.")
        return torch.cat([h, F.log_softmax(logits.detach().float(), 1).to(h.dtype)], 1)

    @torch.no_grad()
    def weights(self, h_src: torch.Tensor, y_src: torch.Tensor, n_lab: int | None = None,
                normalize: bool | None = None) -> torch.Tensor:
        """ω = D/(1 − D) of the labeled query, with the documented corrections."""
        d = self.discriminator
        was = d.training
        d.eval()
        logit = d(h_src.detach(), y_src).float()
        d.train(was)
        return self.ratio(logit, len(h_src), n_lab, normalize)

    def ratio(self, logit: torch.Tensor, n_src: int, n_lab: int | None,
              normalize: bool | None = None) -> torch.Tensor:
        """D/(1 − D) from D's logit, clipped into [eps, 1 − eps], then corrected; 1 while
        the labeled query is untrained."""
        if not bool(self.joint_trained):
            return torch.ones_like(logit)
        prob = torch.sigmoid(logit).clamp(self.eps, 1 - self.eps)
        w = prob / (1 - prob)
        if self.joint_loss == "pooled" and n_lab:
            w = w * (n_src / n_lab)  # D was fit with B_s source and B_l target pairs
        if self.clip is not None:
            w = w.clamp(max=self.clip)
        if self.normalize if normalize is None else normalize:
            w = w / w.mean().clamp(min=1e-12)
        return w

    def _features_only(self, x: torch.Tensor) -> torch.Tensor:
        """D's input with the posterior part blanked (zeros): a marginal pair seen as F(x) only."""
        k = self.num_classes
        return torch.cat([x[:, :-k], torch.zeros_like(x[:, -k:])], 1)

    @torch.no_grad()
    def score_batch(self, h: torch.Tensor, logits: torch.Tensor, y: torch.Tensor,
                    index: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """ω without per-batch normalisation (so weights of different batches compare), and
        log D/(1 − D) of the labeled and the nil query (their difference estimates
        log P_T(y|x)/P_S(y|x), the part a wrong label changes). D must be in eval mode."""
        x = self.inputs(h, logits)
        joint = self.discriminator(x, y).float()
        marginal = self.discriminator(x, torch.full_like(y, self.nil)).float()
        return {"weight": self.ratio(joint, len(h), None, normalize=False),
                "log_joint": joint, "log_marginal": marginal}

    # ------------------------------------------------------------------ L_ADV^aug
    def forward(self, feats: Features) -> WeighterOutput:
        """ω for the source batch and L_ADV^aug (the reversal inside) as the weighter loss."""
        h_lab = None if feats.h_lab is None else self.inputs(feats.h_lab, feats.logits_lab)
        return self.adversarial(
            self.inputs(feats.h_src, feats.logits_src), feats.y_src, h_lab, feats.y_lab,
            self.inputs(feats.h_unl, feats.logits_unl), feats.mu, feats.logits_unl)

    def adversarial(self, h_src: torch.Tensor, y_src: torch.Tensor, h_lab: torch.Tensor | None,
                    y_lab: torch.Tensor | None, h_unl: torch.Tensor, mu: float,
                    logits_unl: torch.Tensor | None = None) -> WeighterOutput:
        coeff = mu * self.mu_max
        labeled_target = h_lab is not None and len(h_lab) > 0  # before pseudo-labels join
        n_pseudo = 0
        if self.pseudo_label is not None and logits_unl is not None:
            conf, pred = torch.softmax(logits_unl.detach().float(), 1).max(1)
            keep = conf >= self.pseudo_label
            n_pseudo = int(keep.sum())
            if n_pseudo:
                h_lab = h_unl[keep] if h_lab is None else torch.cat([h_lab, h_unl[keep]])
                y_lab = pred[keep] if y_lab is None else torch.cat([y_lab, pred[keep]])
        dev = h_src.device
        nil = lambda n: torch.full((n,), self.nil, dtype=torch.long, device=dev)  # noqa: E731
        # marginal (nil) pairs go through the reversal: D separates domains, F aligns them
        m_src, m_unl = h_src, h_unl
        if self.posterior and not labeled_target:  # L = 0: D sees what DANN's D sees
            m_src, m_unl = self._features_only(h_src), self._features_only(h_unl)
        parts = [grad_reverse(m_src, coeff), grad_reverse(m_unl, coeff)]
        labels = [nil(len(h_src)), nil(len(h_unl))]
        n_lab = 0 if h_lab is None else len(h_lab)
        if n_lab:  # joint (labeled) pairs
            self.joint_trained.fill_(True)
            if self.joint_grad == "detach":
                parts += [h_src.detach(), h_lab.detach()]
            else:
                parts += [grad_reverse(h_src, coeff), grad_reverse(h_lab, coeff)]
            labels += [y_src, y_lab]
        # one discriminator call over all pairs
        logits = self.discriminator(torch.cat(parts), torch.cat(labels)).float()
        sizes = [len(p) for p in parts]
        chunks = torch.split(logits, sizes)
        marginal = 0.5 * (_bce(chunks[0], 0.0) + _bce(chunks[1], 1.0))
        logs = {"gate_marginal": marginal.detach()}
        joint = marginal.new_zeros(())
        if n_lab:
            j_src, j_lab = chunks[2], chunks[3]
            if self.joint_loss == "balanced":
                joint = 0.5 * (_bce(j_src, 0.0) + _bce(j_lab, 1.0))
            else:
                target = torch.cat([torch.zeros_like(j_src), torch.ones_like(j_lab)])
                joint = F.binary_cross_entropy_with_logits(torch.cat([j_src, j_lab]), target)
            logs["gate_joint"] = joint.detach()
        # ω = 1 until labeled (or pseudo-labeled) target pairs have trained the labeled query
        w = self.weights(h_src, y_src, n_lab)
        logs["gate_w_mean"] = w.mean()
        if self.pseudo_label is not None:
            logs["gate_pseudo"] = float(n_pseudo)
        return WeighterOutput(w, marginal + joint, logs)


def _bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def gate_weight_formula(d: float, eps: float = 1e-3) -> float:
    """ω for a discriminator output d (no corrections): the reference formula, for tests."""
    d = min(max(d, eps), 1 - eps)
    return d / (1 - d) if not math.isnan(d) else math.nan
