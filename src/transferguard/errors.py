"""Error types.

Every error a user can trigger with bad input derives from :class:`TransferGuardError`, which
is also a :class:`ValueError`, so callers that already catch ``ValueError`` keep working. The
message always names the problem *and* the fix: a user reading only the last line of a
traceback should know what to change.
"""

from __future__ import annotations


class TransferGuardError(ValueError):
    """Bad input or an unusable state, with a message that says how to fix it."""


class UnknownNameError(TransferGuardError, KeyError):
    """A name that no registry knows (model, method, domain, config key)."""

    def __str__(self) -> str:  # KeyError would otherwise print the repr of the message
        return str(self.args[0]) if self.args else ""


class DataError(TransferGuardError):
    """A data set that can not be used as asked: empty, wrong shape, mismatched labels."""


class ConfigError(TransferGuardError):
    """An experiment configuration with unknown keys or values of the wrong kind."""


class TrainingDivergedError(TransferGuardError, RuntimeError):
    """The loss became NaN or infinite; the run is stopped instead of reporting garbage."""


class CheckpointError(TransferGuardError):
    """A checkpoint that is missing, corrupt, or belongs to another model."""
