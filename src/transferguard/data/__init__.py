"""Data layer: domains, the input spec, the perturbation protocol and the transfer task.

Nothing in this package imports models, methods or the engine.
"""

from . import builtin as _builtin  # noqa: F401  (registers the built-in domains)
from .catalog import describe_domains, list_domains, load_domain, register_domain
from .domain import Domain, InputSpec
from .perturb import CORRUPTIONS, Perturbation, corrupt_images, perturb_source
from .task import Batch, BatchStream, Split, TrainData, TransferTask, iterate_batches

__all__ = [
    "CORRUPTIONS",
    "Batch",
    "BatchStream",
    "Domain",
    "InputSpec",
    "Perturbation",
    "Split",
    "TrainData",
    "TransferTask",
    "corrupt_images",
    "describe_domains",
    "iterate_batches",
    "list_domains",
    "load_domain",
    "perturb_source",
    "register_domain",
]
