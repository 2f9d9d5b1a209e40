"""``create_model`` / ``list_models``: a timm-like registry of F/C models."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from ..errors import TransferGuardError
from ..registry import Registry
from . import lenet as _lenet
from . import torchvision_models as _tv
from .base import TransferModel

ModelFn = Callable[..., TransferModel]
MODELS: Registry[ModelFn] = Registry("model")

MODELS.add("lenet", _lenet.lenet, "LeNet-style CNN for digits (conv32-BN-conv48-BN-fc100)")
MODELS.add("resnet18", _tv.resnet18, "torchvision ResNet-18 (local weights only)")
MODELS.add("resnet50", _tv.resnet50, "torchvision ResNet-50 (local weights only)")
MODELS.add("mobilenet_v2", _tv.mobilenet_v2, "torchvision MobileNetV2 (local weights only)")


def register_model(name: str, description: str = "") -> Callable[[ModelFn], ModelFn]:
    """Decorator: register ``fn(num_classes, in_channels, input_size, **kw) -> TransferModel``."""
    return MODELS.register(name, description)


def list_models() -> list[str]:
    return MODELS.names()


def create_model(
    name: str, num_classes: int, in_channels: int = 3, input_size: int = 32, **kwargs: Any
) -> TransferModel:
    """Build a registered model with a ``num_classes``-way head.

    Unknown keyword arguments stop with the list of those the model accepts.
    """
    fn = MODELS.get(name)
    if int(num_classes) < 2:
        raise TransferGuardError(f"num_classes must be at least 2, got {num_classes}.")
    accepted = set(inspect.signature(fn).parameters) - {"num_classes", "in_channels", "input_size"}
    bad = sorted(set(kwargs) - accepted)
    if bad:
        raise TransferGuardError(
            f"model {name!r} does not take {bad}; it accepts {sorted(accepted) or 'no options'}."
        )
    return fn(num_classes=int(num_classes), in_channels=in_channels, input_size=input_size,
              **kwargs)
