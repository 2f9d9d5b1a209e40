"""DELTA: deep learning transfer using feature-map attention (Li et al., ICLR 2019),
methods reference section 3.2.

    Ω(w) = α Σ_l Σ_j W_{l,j} · ½ Σ_b ‖FM_{l,j}(w, x_b) − FM_{l,j}(w*, x_b)‖² / (h·w)
           + β ‖w_head‖² / 2

FM are the outputs of the backbone blocks in ``layers`` (default: ``model.map_blocks``; conv1
and conv2 for LeNet, layer1-4 for ResNets), computed on the current target batch by the
fine-tuned network and by a frozen copy of the pre-trained one.

Channel attention W, computed once before fine-tuning:
1. train only a new head on the target with the backbone frozen (``linear_probe``, through
   ``Trainer.fit``, ``attention_iterations`` steps);
2. for every channel j of every layer, zero it and record the loss increase ΔL_j, averaged
   over ``attention_batches`` labeled-target batches;
3. z-score ΔL within the layer, W_{l,·} = C_l · softmax(z / 5) (mean 1 over the channels).

The channel is zeroed at the block's output (a forward hook), which works for any block. This
is a deviation from the official code, which zeroes the conv filter: the two agree for a
conv-ReLU-pool block, but with batch norm after the conv (LeNet's default) a zeroed filter
still leaves BN's shift, and in a residual block the skip path; zeroing the output measures
the channel itself. ``attention=False`` gives W ≡ 1: feature-map knowledge distillation
(``kd``). Without labeled target samples there is nothing to score channels with, so W ≡ 1.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from ...data import Batch, TrainData, open_stream
from ...utils import derive_seed
from ..base import register_method
from ..components import FrozenEncoder
from .featuremaps import capture, map_distance, zero_channel
from .linear_probe import LinearProbe
from .regularized import RegularizedFineTune


@register_method("delta", "fine-tuning with attention-weighted feature-map regularisation")
class DELTA(RegularizedFineTune):
    attention = True

    def __init__(self, model: str = "lenet", model_options: Mapping[str, Any] | None = None,
                 source_free: bool = False, backbone_lr_mult: float = 0.1,
                 pretrain_iterations: int | None = None, pretrained: str | None = None,
                 pretrain_aux_weight: float = 0.0, partition_seed: int = 0,
                 alpha: float = 0.01, beta: float = 0.01, alpha_decay: float | None = None,
                 dtnh: bool = False, dtnh_mode: str = "always",
                 layers: Sequence[str] | None = None, attention_iterations: int = 200,
                 attention_batches: int = 4, temperature: float = 5.0) -> None:
        super().__init__(model, model_options, source_free, backbone_lr_mult,
                         pretrain_iterations, pretrained, pretrain_aux_weight, partition_seed,
                         alpha, beta, alpha_decay, dtnh, dtnh_mode)
        self.layers = list(layers) if layers is not None else None
        self.attention_iterations = attention_iterations
        self.attention_batches = attention_batches
        self.temperature = temperature

    def prepare_regularizer(self, data: TrainData, trainer: Any) -> None:
        self.layers_ = self.layers or list(self.model_.map_blocks)
        for name in self.layers_:
            self.model_.block(name)  # unknown names stop here, with the list of blocks
        self.extra_modules_["source_model"] = FrozenEncoder(self.model_.backbone,
                                                            follow_mode=True)
        scorable = self.attention and len(data.target_labeled) > 0
        self.channel_weights_ = self.channel_attention(data, trainer) if scorable else None

    def channel_attention(self, data: TrainData, trainer: Any) -> dict[str, torch.Tensor]:
        probe = LinearProbe(self.model, self.model_options)
        probe.initial_state_ = self.source_model_state_
        trainer.with_options(iterations=self.attention_iterations, select="last",
                             checkpoint_dir=None).fit(probe, data)
        with torch.no_grad():
            return self._channel_scores(probe.model_.eval(), data, trainer)

    def _channel_scores(self, net: Any, data: TrainData, trainer: Any
                        ) -> dict[str, torch.Tensor]:
        stream = open_stream(data.target_labeled, trainer.config.batch_size, data.spec,
                             derive_seed(trainer.config.seed, "delta-attention"),
                             next(net.parameters()).device)
        batches = [stream.next() for _ in range(self.attention_batches)]

        def loss() -> float:
            return sum(float(F.cross_entropy(net(b.x), b.y)) for b in batches) / len(batches)

        base = loss()
        weights = {}
        for name in self.layers_:
            with capture(net.backbone, [name]) as maps:
                net.backbone(batches[0].x)
            channels = maps[name].shape[1]
            delta = torch.empty(channels)
            for j in range(channels):
                with zero_channel(net.backbone, name, j):
                    delta[j] = loss() - base
            z = (delta - delta.mean()) / delta.std().clamp(min=1e-12)
            weights[name] = channels * torch.softmax(z / self.temperature, 0)
        return weights

    def regularizer(self, batch: Batch, h: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        # the fine-tuned maps come from the forward pass of this step (the hooks are set
        # before it, in training_step); the source maps from the frozen copy
        src = self.extra_modules_["source_model"]
        with capture(src.encoder, self.layers_) as maps_src:
            src(batch.x)
        total = h.new_zeros((), dtype=torch.float32)
        for name in self.layers_:
            w = None if self.channel_weights_ is None else self.channel_weights_[name]
            total = total + map_distance(self.maps_[name], maps_src[name], w)
        return self.alpha_t_ * total + self.head_l2()

    def training_step(self, batches: Mapping[str, Batch], progress: float):
        with capture(self.model_.backbone, self.layers_) as maps:
            self.maps_ = maps
            return super().training_step(batches, progress)
