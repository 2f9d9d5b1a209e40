"""Joint training: one classifier on the labeled source and the labeled target together.

    min_{F,C} E_{T_L}[ℓ(C(F(x_l)), y_l)] + E_S[ℓ(C(F(x_s)), y_s)]

This is L_CLF of Wang et al. (section 1.2), i.e. DANN without its adversary: the simplest
way to use a labeled source, and the first thing to check for negative transfer. With
``gate=True`` the source loss is weighted by the gate's ω (instance re-weighting by the joint
density ratio), and the gate's discriminator needs the unlabeled target.
Twin: training on the labeled target alone.
"""

from __future__ import annotations

from ..alignment.adaptation import AdaptationMethod
from ..base import register_method


@register_method("joint", "train on labeled source + labeled target together")
class Joint(AdaptationMethod):
    needs_unlabeled = False
