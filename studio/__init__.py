"""EBM Studio: energy-based generative models you can load by name and run.

    >>> import studio
    >>> studio.list_models()                      # names and one-line descriptions
    >>> model = studio.load("toy-ring")           # local checkpoints/ first, then the Hub
    >>> x, trace = model.sample(seeds="0-63")     # every sampler returns (samples, Trace)
    >>> m = studio.load("cfebm-fmnist")
    >>> m.tasks()                                  # what a model offers (studio.protocol), with defaults
    >>> out = m.run("generate", seeds="0-7")       # one interface: a SampleOutput (images, trace, extras)
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import TYPE_CHECKING

from .errors import CheckpointError, DataNotFoundError, SamplingError, StudioError

__version__ = "0.1.0"

# `import studio` stays light (no torch until a model or a sampler is used: the CLI's --help, the app's
# launcher and scripts that only need the errors start at once); each name below imports its module on
# first access (PEP 562).
_LAZY = {"load": "hub", "save_checkpoint": "hub", "hmc": "hmc", "HMCTrace": "hmc", "langevin": "langevin", "Trace": "langevin",
         "make_generators": "langevin", "parse_seeds": "langevin", "push_to_hub": "publish", "SampleOutput": "protocol",
         "StudioModel": "protocol", "TaskSpec": "protocol"}

if TYPE_CHECKING:
    from .hmc import HMCTrace, hmc
    from .hub import load, save_checkpoint
    from .langevin import Trace, langevin, make_generators, parse_seeds
    from .protocol import SampleOutput, StudioModel, TaskSpec
    from .publish import push_to_hub


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    elif importlib.util.find_spec(f"{__name__}.{name}") is not None:  # a submodule: studio.hub, studio.ui, ...
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


class _Package(types.ModuleType):
    """``studio.langevin`` and ``studio.hmc`` are the samplers, as they were when this file imported them eagerly:
    importing the submodule of the same name (which Python records on the package) must not replace the function."""

    def __setattr__(self, name: str, value) -> None:
        if name in ("langevin", "hmc") and isinstance(value, types.ModuleType):
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


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
    "SampleOutput",
    "StudioModel",
    "TaskSpec",
    "make_generators",
    "parse_seeds",
    "StudioError",
    "CheckpointError",
    "DataNotFoundError",
    "SamplingError",
]
