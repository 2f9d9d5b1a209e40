"""Transfer methods: one algorithm per file, each with its formula in the docstring."""

from . import (  # noqa: F401  (registration)
    adda,
    cdan,
    dan,
    dann,
    dcoral,
    finetune,
    joint,
    pada,
    source_only,
    target_only,
)
from .base import METHODS, Method, create_method, list_methods, register_method

__all__ = ["METHODS", "Method", "create_method", "list_methods", "register_method"]
