"""Fine-tuning from a pre-trained source network, with its regularisers (seed 2, DTNH)."""

from . import aux, bss, cut, delta, finetune, kd, l2sp, linear_probe  # noqa: F401
