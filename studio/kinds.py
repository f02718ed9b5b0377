"""The table of model kinds: which class loads checkpoints of which ``kind``.

It sits at the bottom of the import graph (it imports nothing from ``studio``): method modules register
their classes here without importing ``studio.hub``, and ``hub`` reads the table when it loads a checkpoint.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

from torch import nn

# kind -> model class. A model class has a ``config_class`` dataclass and an ``__init__(self, config)``.
MODEL_KINDS: dict[str, type[nn.Module]] = {}


def register_model(kind: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator: make a model loadable from checkpoints of ``kind``."""

    def wrap(cls: type[nn.Module]) -> type[nn.Module]:
        if not dataclasses.is_dataclass(getattr(cls, "config_class", None)):
            raise TypeError(f"{cls.__name__} needs a dataclass `config_class` to be registered.")
        MODEL_KINDS[kind] = cls
        cls.kind = kind
        return cls

    return wrap
