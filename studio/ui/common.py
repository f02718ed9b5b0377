"""Helpers shared by the UI tabs: error translation, the device notice and the model cache."""
from __future__ import annotations

import functools
import inspect
import time
from typing import Callable

import gradio as gr

from ..errors import StudioError
from ..runtime import deadline, deadline_at
from . import limits


def user_errors(fn: Callable) -> Callable:
    """Show a studio error (bad input, failed load, diverged chain, time limit) as a gr.Error toast,
    not a trace, and run the handler under the request time limit (``limits.REQUEST_TIMEOUT_SECONDS``).
    Generator handlers stay generators (Gradio streams what they yield)."""
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def streaming(*args, **kwargs):
            seconds = limits.REQUEST_TIMEOUT_SECONDS
            end = time.monotonic() + seconds
            items = fn(*args, **kwargs)
            try:
                while True:
                    # Gradio may advance the generator from a different thread each time, so the
                    # deadline is set around every step rather than once around the whole loop.
                    with deadline_at(end, seconds):
                        try:
                            item = next(items)
                        except StopIteration:
                            return
                    yield item
            except StudioError as err:
                raise gr.Error(str(err)) from None
            finally:
                items.close()

        return streaming

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            with deadline(limits.REQUEST_TIMEOUT_SECONDS):
                return fn(*args, **kwargs)
        except StudioError as err:
            raise gr.Error(str(err)) from None

    return wrapper


def device_notice() -> str:
    """Where the models run (``studio.device``'s policy; ZeroGPU noted), for the app's header."""
    from .gpu import notice

    return notice()


@functools.lru_cache(maxsize=16)
def cached_model(name: str):
    """Load each checkpoint once per process, on first use (at start-up on ZeroGPU: ``gpu.preload``), on the
    device ``studio.device.resolve_device`` picks; the tabs share the instances (read-only)."""
    from .. import load

    return load(name)


def model_config(name: str) -> dict:
    """A checkpoint's config.json entries without loading its weights (so building the app stays fast)."""
    from ..hub import read_config, resolve

    return read_config(resolve(name).path)["config"]


def model_skeleton(name: str):
    """The checkpoint's model built from its config.json with *untrained* weights: its config and
    architecture for building controls at app start; cached_model loads the weights on first use."""
    from .. import registry  # noqa: F401  (registers every model kind)
    from ..hub import MODEL_KINDS, build_config, read_config, resolve

    payload = read_config(resolve(name).path)
    cls = MODEL_KINDS[payload["kind"]]
    return cls(build_config(cls, payload["config"], name)).eval()
