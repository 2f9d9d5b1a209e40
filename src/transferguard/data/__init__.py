"""Data layer: domains, the input spec, the task specification, the perturbation protocol,
splits, batching and the transfer task.

- ``domain.py`` (Domain, InputSpec), ``catalog.py`` (the registry and ``load_domain``),
  ``builtin.py`` (the offline digit domains), ``user.py`` (``folder:`` / ``torchvision:``),
  ``cache.py`` (the ``.npz`` domain cache);
- ``spec.py`` (:class:`TaskSpec`, every task rule validated once), ``perturb.py`` (ε_x, ε_y),
  ``splits.py`` (Split, TrainData, stratified drawing), ``batching.py`` (batches by
  indexing), ``task.py`` (:class:`TransferTask`).

Nothing in this package imports models, methods or the engine.
"""

from . import builtin as _builtin  # noqa: F401  (registers the built-in domains)
from .batching import Batch, BatchStream, iterate_batches
from .catalog import (
    DOMAINS,
    describe_domain,
    describe_domains,
    list_domains,
    load_domain,
    register_domain,
)
from .domain import Domain, InputSpec
from .perturb import (
    CORRUPTIONS,
    LABEL_NOISE,
    Perturbation,
    corrupt_images,
    noise_class_map,
    perturb_source,
)
from .spec import TaskSpec
from .splits import Split, TrainData, stratified_split
from .streaming import (
    FileSplit,
    LoaderOptions,
    LoaderStream,
    StreamingTask,
    eval_batches,
    open_stream,
)
from .task import TransferTask

__all__ = [
    "CORRUPTIONS",
    "DOMAINS",
    "LABEL_NOISE",
    "Batch",
    "BatchStream",
    "Domain",
    "FileSplit",
    "InputSpec",
    "LoaderOptions",
    "LoaderStream",
    "Perturbation",
    "Split",
    "StreamingTask",
    "TaskSpec",
    "TrainData",
    "TransferTask",
    "corrupt_images",
    "describe_domain",
    "describe_domains",
    "eval_batches",
    "iterate_batches",
    "list_domains",
    "load_domain",
    "noise_class_map",
    "open_stream",
    "perturb_source",
    "register_domain",
    "stratified_split",
]
