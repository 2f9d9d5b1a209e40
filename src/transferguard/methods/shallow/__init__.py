"""Shallow methods: closed-form estimators on fixed features (TCA, KMM) and linear-model
parameter transfer through a shared dictionary."""

from . import dictionary_method, kmm, tca  # noqa: F401  (registration)
from .base import FixedFeatures, ShallowMethod
from .dictionary import SharedDictionaryTransfer
from .dictionary_method import DictionaryTransferMethod
from .kmm import KMM, solve_kmm
from .tca import TCA

__all__ = [
           "KMM",
           "TCA",
           "DictionaryTransferMethod",
           "FixedFeatures",
           "ShallowMethod",
           "SharedDictionaryTransfer",
           "solve_kmm",
]
