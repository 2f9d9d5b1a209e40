"""Feature-map knowledge distillation (the "fea_map" regulariser; DELTA without attention),
the KD regulariser of DTNH (methods reference sections 2.1 and 3.2).

    Ω(w) = α Σ_l ½ Σ_b ‖FM_l(w, x_b) − FM_l(w*, x_b)‖² / (h·w)  +  β ‖w_head‖²/2

The fine-tuned network's feature maps are kept close to the pre-trained network's on the
target batch, with every channel weighted 1.
"""

from __future__ import annotations

from ..base import register_method
from .delta import DELTA


@register_method("kd", "fine-tuning with feature-map distillation from the pre-trained model")
class FeatureMapKD(DELTA):
    attention = False
