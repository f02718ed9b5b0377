"""Exception types raised at the studio's boundaries.

Every error a user can trigger with bad input is a ``StudioError``, which is a
``ValueError`` subclass, so callers can catch either. The message always says
what was tried and what to do next.
"""


class StudioError(ValueError):
    """Base class for user-facing errors in the studio."""


class CheckpointError(StudioError):
    """A checkpoint could not be resolved, read or matched to its model."""


class DataNotFoundError(StudioError, FileNotFoundError):
    """A data set is not installed; the message says how to install it."""


class SamplingError(StudioError):
    """Sampling diverged (non-finite values) or got invalid arguments."""
