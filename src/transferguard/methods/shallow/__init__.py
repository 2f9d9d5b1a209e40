"""Shallow methods: closed-form estimators on fixed features (TCA, KMM) and linear-model
parameter transfer through a shared dictionary."""

from . import kmm, tca  # noqa: F401  (registration)
from .base import FixedFeatures, ShallowMethod
from .dictionary import SharedDictionaryTransfer
from .kmm import KMM, solve_kmm
from .tca import TCA

__all__ = [
           "KMM",
           "TCA",
           "FixedFeatures",
           "ShallowMethod",
           "SharedDictionaryTransfer",
           "solve_kmm",
]
