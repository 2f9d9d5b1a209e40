"""torchvision's resnet18 / resnet50 / mobilenet_v2 split into F and C.

Pretrained weights come only from a local file the user names (``weights=PATH``): a
torchvision state dict (ImageNet or any other), loaded with ``weights_only=True``; its
classifier (``fc.*`` / ``classifier.*``) is dropped, because the target head is new. Nothing
is downloaded. ``small_input=True`` swaps the ResNet stem for the CIFAR one (3x3 conv, stride
1, no max-pool), which suits 32x32 inputs trained from scratch.
"""

from __future__ import annotations

import os

import torch
from torch import nn

from ..errors import CheckpointError
from .base import TransferModel


class _ResNetFeatures(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.layer1, self.layer2, self.layer3, self.layer4 = (
            net.layer1, net.layer2, net.layer3, net.layer4,
        )
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.pool(x)


class _MobileNetFeatures(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.features = net.features
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.features(x))


def _load_weights(net: nn.Module, path: str | os.PathLike[str], drop: tuple[str, ...]) -> None:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(
            f"weights file {path} does not exist; give a local .pth path."
        ) from None
    except Exception as exc:
        raise CheckpointError(
            f"could not read weights {path} ({exc}); give a torchvision state dict saved with "
            "torch.save(model.state_dict(), path)."
        ) from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    state = {k.removeprefix("module."): v for k, v in state.items() if not k.startswith(drop)}
    missing, unexpected = net.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith(drop)]
    if missing or unexpected:
        raise CheckpointError(
            f"weights {path} do not fit this architecture: {len(missing)} missing keys "
            f"(e.g. {missing[:3]}), {len(unexpected)} unexpected keys (e.g. {unexpected[:3]}); "
            "check that the file belongs to the same torchvision architecture."
        )


def _resnet(arch: str, num_classes: int, in_channels: int, weights: str | None,
            small_input: bool) -> TransferModel:
    import torchvision

    net = getattr(torchvision.models, arch)(weights=None)
    if weights:
        _load_weights(net, weights, ("fc.",))
    if small_input:
        net.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        net.maxpool = nn.Identity()
    if in_channels != 3:
        old = net.conv1
        net.conv1 = nn.Conv2d(in_channels, old.out_channels, old.kernel_size, old.stride,
                              old.padding, bias=False)
        if weights and not small_input:  # grey input: sum the RGB filters
            net.conv1.weight.data = old.weight.data.sum(1, keepdim=True)
    feat = net.fc.in_features
    blocks = ["conv1", "layer1", "layer2", "layer3", "layer4"]
    return TransferModel(_ResNetFeatures(net), feat, num_classes, blocks, arch, blocks[1:])


def resnet18(num_classes: int, in_channels: int = 3, input_size: int = 224,
             weights: str | None = None, small_input: bool = False) -> TransferModel:
    return _resnet("resnet18", num_classes, in_channels, weights, small_input)


def resnet50(num_classes: int, in_channels: int = 3, input_size: int = 224,
             weights: str | None = None, small_input: bool = False) -> TransferModel:
    return _resnet("resnet50", num_classes, in_channels, weights, small_input)


def mobilenet_v2(num_classes: int, in_channels: int = 3, input_size: int = 224,
                 weights: str | None = None) -> TransferModel:
    import torchvision

    net = torchvision.models.mobilenet_v2(weights=None)
    if weights:
        _load_weights(net, weights, ("classifier.",))
    if in_channels != 3:
        conv = net.features[0][0]
        new = nn.Conv2d(in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                        conv.padding, bias=False)
        if weights:
            new.weight.data = conv.weight.data.sum(1, keepdim=True)
        net.features[0][0] = new
    # blocks: the stem, then the 7 inverted-residual stages of the MobileNetV2 paper, then
    # the last 1x1 conv, named by their index in torchvision's ``features``
    blocks = [f"features.{i}" for i in range(len(net.features))]
    maps = ["features.3", "features.6", "features.13", "features.17"]  # one per resolution
    return TransferModel(_MobileNetFeatures(net), net.last_channel, num_classes, blocks,
                         "mobilenet_v2", maps)
