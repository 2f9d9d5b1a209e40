"""Transfer methods: one algorithm per file, each with its formula in the docstring."""

from . import (  # noqa: F401  (registration)
    adda,
    aux,
    bss,
    cdan,
    cut,
    dan,
    dann,
    dcoral,
    delta,
    finetune,
    joint,
    kd,
    l2sp,
    linear_probe,
    pada,
    source_only,
    target_only,
)
from .base import METHODS, Method, create_method, list_methods, register_method
from .dtnh import DTNH
from .finetune import pretrain_source

__all__ = ["DTNH", "METHODS", "Method", "create_method", "list_methods", "pretrain_source",
           "register_method"]
