"""Domain alignment: the DA family of Wang et al.'s Table 2 on one shared step."""

from . import adda, cdan, dan, dann, dcoral, gta, pada  # noqa: F401  (registration)
from .adaptation import AdaptationMethod, Features

__all__ = ["AdaptationMethod", "Features"]
