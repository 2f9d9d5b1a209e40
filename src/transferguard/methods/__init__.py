"""Transfer methods, grouped by family; one algorithm per file, its formula in the docstring.

- ``baselines/``: source only, target only, joint training;
- ``alignment/``: the domain-adaptation family (DANN, DAN, DCORAL, CDAN, PADA, ADDA) on the
  shared step of :mod:`.alignment.adaptation`;
- ``reweighting/``: source weighters, the slot every DA method composes (the gate first);
- ``finetuning/``: from a pre-trained source network (fine-tuning, L2-SP, DELTA, KD, BSS,
  linear probe, cut point, binary auxiliary pre-training);
- ``gradient/``: gradient rules the Trainer applies (DTNH);
- ``pruning/``: prune the source units that hurt the target, then fine-tune (prune_transfer);
- ``shallow/``: closed-form estimators on fixed features (TCA, KMM) and linear-model
  parameter transfer through a shared dictionary.

A new method goes in its family's folder, registers itself with :func:`register_method`,
and is imported below so that the registry sees it.
"""

from . import (  # noqa: F401  (registration)
    alignment,
    baselines,
    finetuning,
    pruning,
    reweighting,
    shallow,
)
from .base import METHODS, Method, create_method, list_methods, register_method
from .finetuning.finetune import pretrain_source
from .gradient.dtnh import DTNH
from .reweighting.weighter import (
    WEIGHTERS,
    SourceWeighter,
    WeighterOutput,
    create_weighter,
    list_weighters,
    register_weighter,
)

__all__ = ["DTNH", "METHODS", "WEIGHTERS", "Method", "SourceWeighter", "WeighterOutput",
           "create_method", "create_weighter", "list_methods", "list_weighters",
           "pretrain_source", "register_method", "register_weighter"]
