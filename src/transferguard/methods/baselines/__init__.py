"""Baselines: the source alone, the target alone, and both together (joint)."""

from . import joint, source_only, target_only  # noqa: F401  (registration)
