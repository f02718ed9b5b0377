"""Argument checks shared by the public sampling functions.

Python callers pass anything: NaN, infinity, None, strings, numpy arrays. These turn such values into
a ``SamplingError`` (a ``ValueError``) that names the argument and its range, instead of a
``TypeError`` or a torch error from deep inside a network.
"""
from __future__ import annotations

import math
from typing import Any

import torch

from .errors import SamplingError, StudioError


def given(value: Any) -> str:
    """How a refused value is quoted in a message: an empty field (None: a number box left empty, or text a
    browser could not read as a number) is named as such instead of "None"."""
    return "nothing (the field is empty or not a number)" if value is None else repr(value)


def bound(v: float) -> str:
    """A range end as people read it: the largest torch seed is 2**63 - 1, not 9223372036854775807."""
    if v == 2**63 - 1:
        return "2**63 - 1"
    return f"{v:g}" if isinstance(v, float) else str(v)


def number_message(what: str, lo: float, hi: float, value: Any) -> str:
    """The one wording of a refused number: the field, its range and what was given."""
    return f"{what} must be between {bound(lo)} and {bound(hi)}; got {given(value)}."


def integer_message(what: str, lo: int, hi: int, value: Any) -> str:
    return f"{what} must be a whole number between {bound(lo)} and {bound(hi)}; got {given(value)}."


def number(what: str, value: Any, lo: float = -math.inf, hi: float = math.inf, error: type[StudioError] = SamplingError) -> float:
    """``value`` as a finite float in [lo, hi]; None, text, NaN, infinity and booleans are refused."""
    try:
        if isinstance(value, bool) or value is None:
            raise TypeError
        x = float(value)
    except (TypeError, ValueError, OverflowError):
        raise error(number_message(what, lo, hi, value)) from None
    if not (math.isfinite(x) and lo <= x <= hi):
        raise error(number_message(what, lo, hi, value))
    return x


def integer(what: str, value: Any, lo: int, hi: int, error: type[StudioError] = SamplingError) -> int:
    """``value`` as an int in [lo, hi]; whole floats (3.0, as JSON sends them) are accepted, 2.5 is not."""
    try:
        if isinstance(value, bool) or value is None:
            raise TypeError
        if isinstance(value, int):
            n = value
        else:
            x = float(value)
            if not x.is_integer():
                raise ValueError
            n = int(x)
    except (TypeError, ValueError, OverflowError):
        raise error(integer_message(what, lo, hi, value)) from None
    if not lo <= n <= hi:
        raise error(integer_message(what, lo, hi, value))
    return n


MAX_SEED = 2**63 - 1  # the largest seed torch generators take: the one seed limit everywhere


def seed(what: str, value: Any, error: type[StudioError] = SamplingError) -> int:
    """A torch generator seed: a whole number in [0, 2**63 - 1]."""
    return integer(what, value, 0, MAX_SEED, error=error)


def finite(what: str, x: torch.Tensor) -> torch.Tensor:
    """``x`` if every value is finite (one host sync: call it at a boundary, not inside a sampling loop)."""
    if not torch.isfinite(x).all():
        raise SamplingError(f"{what} contain NaN or infinite values.")
    return x


def images(what: str, value: Any, shape: tuple[int, ...] | None = None) -> torch.Tensor:
    """A floating-point image tensor [N, C, H, W] (a single [C, H, W] image gets a batch axis).

    ``shape`` = (C, H, W) the model needs. Integer tensors are converted; numpy arrays and
    other types are refused with a message that says what to pass."""
    if not isinstance(value, torch.Tensor):
        raise SamplingError(f"{what} must be a torch tensor [N, C, H, W] in [-1, 1]; got {type(value).__name__} "
                            "(convert numpy arrays with torch.from_numpy).")
    if value.is_complex() or value.dtype == torch.bool:
        raise SamplingError(f"{what} must hold real numbers; got {value.dtype}.")
    x = value if value.dim() == 4 else value.unsqueeze(0) if value.dim() == 3 else None
    if x is None or (shape is not None and tuple(x.shape[1:]) != tuple(shape)):
        want = f"[N, {', '.join(map(str, shape))}]" if shape is not None else "[N, C, H, W]"
        raise SamplingError(f"{what} must have shape {want}; got {tuple(value.shape)}.")
    if x.shape[0] == 0:
        raise SamplingError(f"{what} is an empty batch.")
    return x if x.is_floating_point() else x.float()
