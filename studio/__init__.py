"""EBM Studio: energy-based generative models you can load by name and run.

    >>> import studio
    >>> studio.list_models()                      # names and one-line descriptions
    >>> model = studio.load("toy-ring")           # local checkpoints/ first, then the Hub
    >>> x, trace = model.sample(seeds="0-63")     # every sampler returns (samples, Trace)
"""
from __future__ import annotations

from .errors import CheckpointError, DataNotFoundError, SamplingError, StudioError
from .hub import load, save_checkpoint
from .hmc import HMCTrace, hmc
from .langevin import Trace, langevin, make_generators, parse_seeds
from .publish import push_to_hub

__version__ = "0.1.0"


def list_models() -> dict[str, str]:
    """Loadable model names with a one-line description each."""
    from .registry import list_models as _list

    return _list()


__all__ = [
    "__version__",
    "load",
    "list_models",
    "save_checkpoint",
    "push_to_hub",
    "langevin",
    "hmc",
    "Trace",
    "HMCTrace",
    "make_generators",
    "parse_seeds",
    "StudioError",
    "CheckpointError",
    "DataNotFoundError",
    "SamplingError",
]
