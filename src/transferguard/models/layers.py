"""Layers of a TransferModel by name: the blocks of F, the head, or any module path.

What neuron impact, unit silencing and unit pictures address; an unknown name stops with the
valid ones.
"""

from __future__ import annotations

from torch import nn

from ..errors import UnknownNameError


def layer_names(model: nn.Module) -> list[str]:
    """The default layers: every block of F, then the head."""
    return [*getattr(model, "blocks", []), "head"]


def resolve_layer(model: nn.Module, name: str) -> nn.Module:
    """The module of a layer name; unknown names stop with the valid ones."""
    blocks = list(getattr(model, "blocks", []))
    if name in blocks:
        return model.backbone.get_submodule(name)
    if name == "head" and hasattr(model, "head"):
        return model.head
    try:
        return model.get_submodule(name)
    except AttributeError:
        raise UnknownNameError(
            f"{getattr(model, 'arch', type(model).__name__)} has no layer {name!r}; layers are "
            f"the blocks of F {blocks}, 'head', or a module path such as "
            f"'backbone.{blocks[0] if blocks else 'x'}'."
        ) from None
