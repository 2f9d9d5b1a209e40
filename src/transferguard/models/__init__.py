"""Models: the registry and the F/C split every method relies on."""

from .base import TransferModel
from .layers import layer_names, resolve_layer
from .registry import MODELS, create_model, list_models, register_model

__all__ = ["MODELS", "TransferModel", "create_model", "layer_names", "list_models",
           "register_model", "resolve_layer"]
