"""Gradient rules the Trainer applies in place of a plain backward (DTNH)."""

from .dtnh import DTNH, DTNH_MODES

__all__ = ["DTNH", "DTNH_MODES"]
