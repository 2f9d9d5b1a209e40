"""LeNet-style CNN for digits: the DANN / negative-transfer digits backbone.

F = conv(32, 5x5) - BN - ReLU - maxpool - conv(48, 5x5) - BN - ReLU - maxpool - fc(100) - ReLU,
the conv32-conv48-fc100 extractor of the methods reference's field notes (section 1.3b) with
batch normalisation after each convolution. Without it (``batch_norm=False``) the network
stays at chance on ``syndigits`` for hundreds of steps under the standard recipe (SGD 0.01
with the DANN schedule); with it, source-only training reaches 67% on mnist in 600 steps
(about 1.35x the step time on CPU).
C = linear(100 -> K). Works for any input of at least 16x16 pixels: the flatten size is
computed from the input spec. The blocks ``conv1`` and ``conv2`` output (B, C, H, W) feature
maps (what DELTA and feature-map distillation regularise), ``fc`` the 100-d features.
"""

from __future__ import annotations

from torch import nn

from .base import TransferModel


class LeNetBackbone(nn.Sequential):
    def __init__(self, in_channels: int = 3, input_size: int = 32, width: int = 1,
                 feature_dim: int = 100, batch_norm: bool = True) -> None:
        c1, c2 = 32 * width, 48 * width
        s = ((input_size - 4) // 2 - 4) // 2
        if s < 1:
            raise ValueError(f"lenet needs inputs of at least 16x16 pixels, got {input_size}.")

        def norm(c: int) -> nn.Module:
            return nn.BatchNorm2d(c) if batch_norm else nn.Identity()

        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(in_channels, c1, 5), norm(c1), nn.ReLU(inplace=True),
                                   nn.MaxPool2d(2))
        self.conv2 = nn.Sequential(nn.Conv2d(c1, c2, 5), norm(c2), nn.ReLU(inplace=True),
                                   nn.MaxPool2d(2))
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(c2 * s * s, feature_dim),
                                nn.ReLU(inplace=True))


def lenet(num_classes: int, in_channels: int = 3, input_size: int = 32, width: int = 1,
          feature_dim: int = 100, batch_norm: bool = True) -> TransferModel:
    backbone = LeNetBackbone(in_channels, input_size, width, feature_dim, batch_norm)
    return TransferModel(backbone, feature_dim, num_classes, ["conv1", "conv2", "fc"], "lenet")
