"""Transfer methods: one algorithm per file, each with its formula in the docstring."""

from . import dann, finetune, joint, source_only, target_only  # noqa: F401  (registration)
from .base import METHODS, Method, create_method, list_methods, register_method

__all__ = ["METHODS", "Method", "create_method", "list_methods", "register_method"]
