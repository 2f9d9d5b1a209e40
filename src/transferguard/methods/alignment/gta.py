"""GTA: Generate To Adapt (Sankaranarayanan, Balaji, Castillo, Chellappa, CVPR 2018), with the
semi-supervised additions of Wang et al.'s setting and ``gate=True`` (methods reference 1.3,
1.7: Table 2's GTA and GTA_gate rows).

Networks: the embedding F and classifier C (the model), a generator G that maps
[F(x), z, onehot_{K+1}(y)] (y = nil = K for the target) to an image, and a discriminator D
with two heads on an image: D_data (real source image vs generated) and D_cls (the K-way
auxiliary classifier). One iteration runs three stages, each its own optimiser step (the
Trainer's multi-stage step: ``stages = ("d", "g", "main")``):

    d:     min_D  BCE(D_data(x_s), 1) + BCE(D_data(G(F(x_s), z, y_s)), 0)
                  + BCE(D_data(G(F(x_u), z, nil)), 0) + CE(D_cls(x_s), y_s)        (F, G fixed)
    g:     min_G  BCE(D_data(G(F(x_s), z, y_s)), 1) + CE(D_cls(G(F(x_s), z, y_s)), y_s) (F, D fixed)
    main:  min_{F,C}  E_S[ℓ(C(F(x_s)), y_s)] + E_{T_L}[ℓ(C(F(x_l)), y_l)]
                  + α CE(D_cls(G(F(x_s), z, y_s)), y_s)
                  + β μ_p BCE(D_data(G(F(x_u), z, nil)), 1)                        (G, D fixed)

α = 0.3 and β = 0.03 are the paper's weights (``cls_weight``, ``adv_weight``); μ_p is the
DANN ramp, so the alignment term grows in as the other methods' do. The last term is GTA's
domain alignment: F must embed target samples so that G turns them into images D takes for
real source images. G's output is tanh, in the normalised input range of the task's spec.

``gate=True``: the gate's augmented discriminator on F is added in the main stage (its
adversarial term and ω, as for the non-adversarial methods of reference 1.3, since GTA's own D
judges images, not features) and the source classification loss is weighted by ω.
Twin GTA_T: the source-free view (the labeled target plays the source's part, in D's "real"
images as well), the gate off.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ...data import Batch, TrainData
from ...engine import StepOutput
from ..base import register_method
from .adaptation import AdaptationMethod


class GTAGenerator(nn.Module):
    """[F(x), z, onehot_{K+1}(y)] -> an image of the task's shape (tanh, normalised range)."""

    def __init__(self, feature_dim: int, num_classes: int, channels: int, size: int,
                 noise_dim: int = 64, width: int = 64) -> None:
        super().__init__()
        self.num_classes, self.noise_dim, self.size = num_classes, noise_dim, size
        self.base = max(1, -(-size // 4))  # ceil(size / 4): two 2x up-samplings
        self.fc = nn.Sequential(
            nn.Linear(feature_dim + noise_dim + num_classes + 1, 2 * width * self.base ** 2),
            nn.BatchNorm1d(2 * width * self.base ** 2), nn.ReLU(inplace=True))
        self.up = nn.Sequential(
            nn.ConvTranspose2d(2 * width, width, 4, 2, 1), nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(width, channels, 4, 2, 1), nn.Tanh())
        self.width = width

    def forward(self, h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        z = torch.randn(len(h), self.noise_dim, device=h.device, dtype=h.dtype)
        onehot = F.one_hot(y, self.num_classes + 1).to(h.dtype)
        x = self.fc(torch.cat([h, z, onehot], 1))
        x = self.up(x.view(len(h), 2 * self.width, self.base, self.base))
        if x.shape[-1] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear",
                              align_corners=False)
        return x


class GTADiscriminator(nn.Module):
    """An image -> (real/fake logit, K class logits)."""

    def __init__(self, channels: int, num_classes: int, width: int = 64) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, width, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(width, 2 * width, 4, 2, 1), nn.BatchNorm2d(2 * width),
            nn.LeakyReLU(0.2, inplace=True), nn.AdaptiveAvgPool2d(2), nn.Flatten())
        self.data = nn.Linear(8 * width, 1)
        self.cls = nn.Linear(8 * width, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.body(x)
        return self.data(f).squeeze(-1), self.cls(f)


def _bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits.float(), torch.full_like(logits.float(),
                                                                               target))


@register_method("gta", "generate to adapt: a conditional GAN makes target embeddings "
                 "generate source-like images")
class GTA(AdaptationMethod):
    stages: ClassVar[tuple[str, ...]] = ("d", "g", "main")
    takes_combiner = False  # three stages, each its own loss and optimiser

    def __init__(self, model: str = "lenet", model_options: Mapping[str, Any] | None = None,
                 source_free: bool = False, trade_off: float = 1.0, ramp_gamma: float = 10.0,
                 gate: bool | str = False, gate_options: Mapping[str, Any] | None = None,
                 cls_weight: float = 0.3, adv_weight: float = 0.03, noise_dim: int = 64,
                 width: int = 64,
                 combine: str | None = None,
                 combine_options: Mapping[str, Any] | None = None) -> None:
        super().__init__(model, model_options, source_free, trade_off, ramp_gamma, gate,
                         gate_options, combine, combine_options)
        self.cls_weight = cls_weight
        self.adv_weight = adv_weight
        self.noise_dim = noise_dim
        self.width = width

    def build_alignment(self, data: TrainData) -> None:
        spec = data.spec
        self.extra_modules_["generator"] = GTAGenerator(
            self.model_.feature_dim, data.num_classes, spec.channels, spec.size,
            self.noise_dim, self.width)
        self.extra_modules_["image_discriminator"] = GTADiscriminator(
            spec.channels, data.num_classes, self.width)

    def param_groups(self) -> list[dict[str, Any]]:
        """D's and G's parameters in their own stages; F, C (and the gate) in "main"."""
        ex = self.extra_modules_
        groups = [{"params": list(ex["image_discriminator"].parameters()), "stage": "d"},
                  {"params": list(ex["generator"].parameters()), "stage": "g"},
                  {"params": list(self.model_.parameters()), "stage": "main"}]
        if "gate" in ex:
            groups.append({"params": list(self.weighter_.parameters()),
                           "lr_mult": self.weighter_.lr_mult, "stage": "main"})
        return groups

    def training_step(self, batches: Mapping[str, Batch], progress: float) -> StepOutput:
        raise NotImplementedError("GTA trains in stages (d, g, main): the Trainer calls "
                                  "stage_step for each.")

    def stage_step(self, stage: str, batches: Mapping[str, Batch], progress: float
                   ) -> StepOutput:
        src, unl = batches["source"], batches["target_unlabeled"]
        gen, disc = self.extra_modules_["generator"], self.extra_modules_["image_discriminator"]
        nil = torch.full((len(unl.x),), self.num_classes_, dtype=torch.long,
                         device=unl.x.device)
        if stage == "d":
            with torch.no_grad():
                h = self.model_.features(torch.cat([src.x, unl.x]))
                fake = gen(h, torch.cat([src.y, nil]))
            real_logit, real_cls = disc(src.x)
            fake_logit, _ = disc(fake)
            d_data = 0.5 * (_bce(real_logit, 1.0) + _bce(fake_logit, 0.0))
            d_cls = F.cross_entropy(real_cls.float(), src.y)
            return StepOutput(d_data + d_cls, {"d_data": d_data.detach(),
                                               "d_cls": d_cls.detach()})
        if stage == "g":
            with torch.no_grad():
                h_s = self.model_.features(src.x)
            logit, cls = disc(gen(h_s, src.y))
            g_data, g_cls = _bce(logit, 1.0), F.cross_entropy(cls.float(), src.y)
            return StepOutput(g_data + g_cls, {"g_data": g_data.detach(),
                                               "g_cls": g_cls.detach()})
        feats = self.forward_streams(batches, progress)
        out = self.step_loss(feats, lambda: feats.h_src.new_zeros(()))  # classification, gate
        _, cls = disc(gen(feats.h_src, src.y))
        logit, _ = disc(gen(feats.h_unl, nil))
        aux = F.cross_entropy(cls.float(), src.y)
        adv = _bce(logit, 1.0)
        loss = out.loss + self.cls_weight * aux + self.adv_weight * feats.mu * adv
        out.logs.update(f_cls=aux.detach(), f_adv=adv.detach())
        return StepOutput(loss, out.logs)
