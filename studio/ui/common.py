"""Helpers shared by the UI tabs: error translation and the CPU notice."""
from __future__ import annotations

import functools
from typing import Callable

import gradio as gr
import torch

from ..errors import StudioError


def user_errors(fn: Callable) -> Callable:
    """Show a studio error (bad input, failed load, diverged chain) as a gr.Error toast, not a trace."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except StudioError as err:
            raise gr.Error(str(err)) from None

    return wrapper


def device_notice() -> str:
    return "Running on GPU." if torch.cuda.is_available() else "Running on CPU: image models take a few seconds per batch."


@functools.lru_cache(maxsize=16)
def cached_model(name: str):
    """Load each checkpoint once per process; the tabs share the instances (read-only)."""
    from .. import load

    return load(name)
