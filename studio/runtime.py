"""Process-level settings for inference: how many CPU threads torch may use, and request deadlines.

Why it matters, measured on this studio's 2-core CPU while a training run kept both cores busy:
one CF-EBM translation (20 steps at 64x64) took 0.09 s with 1 thread and 4.3 s with 2 threads
(OpenMP workers spin waiting for a core the other process holds), and 16 CDRL samples 6.6 s
against 15.8 s. Threads beyond the free cores cost far more than they can ever gain.
"""
from __future__ import annotations

import contextlib
import contextvars
import os
import time

import torch

from .errors import StudioError


def usable_cores() -> int:
    """Cores this process may run on (the affinity mask, e.g. a container's CPU set)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def busy_cores() -> int:
    """Cores other processes keep busy right now (the 1-minute load average, rounded)."""
    try:
        return int(os.getloadavg()[0] + 0.5)
    except (AttributeError, OSError):
        return 0


def default_threads(jobs: int = 1) -> int:
    """Threads per job: the free cores shared among ``jobs`` concurrent jobs, at least 1."""
    free = max(1, usable_cores() - busy_cores())
    return max(1, free // max(1, jobs))


def configure_threads(jobs: int = 1, dedicated: bool = False) -> int:
    """Set torch's intra-op threads for inference and return the count.

    An explicit setting wins: ``STUDIO_THREADS=n``, else ``OMP_NUM_THREADS`` (which torch has already
    applied). Otherwise ``default_threads(jobs)``: on a dedicated machine all cores shared among
    ``jobs`` concurrent requests, on a shared one only the cores not already busy. ``dedicated=True``
    (benchmarks) takes every usable core whatever the load average says: it lags a minute behind, so
    right after other work it would hide cores that are free again.
    """
    env = os.environ.get("STUDIO_THREADS", "").strip()
    if env:
        if not env.isdigit() or int(env) < 1:
            raise StudioError(f"STUDIO_THREADS must be a positive integer; got {env!r}.")
        n = int(env)
    elif os.environ.get("OMP_NUM_THREADS", "").strip():
        return torch.get_num_threads()
    else:
        n = max(1, usable_cores() // max(1, jobs)) if dedicated else default_threads(jobs)
    torch.set_num_threads(n)
    return n


# -- request deadlines ---------------------------------------------------------------------------------
# A sampler cannot be killed safely from outside (a thread holds the model), but it can stop itself
# between two steps. The deadline lives in a ContextVar, so concurrent requests (one thread each) never
# see each other's; the Langevin engine, DDIM and chunked rendering call check_deadline() once per
# step or chunk, which costs a ContextVar read and a clock read.

_DEADLINE: contextvars.ContextVar[tuple[float, float] | None] = contextvars.ContextVar("studio_deadline", default=None)


class RequestTimeout(StudioError):
    """A request ran past its time limit and was stopped between two sampler steps."""


@contextlib.contextmanager
def deadline_at(end: float, seconds: float):
    """Within the block, check_deadline() raises RequestTimeout once ``time.monotonic() > end``."""
    token = _DEADLINE.set((end, seconds))
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def deadline(seconds: float):
    """``deadline_at`` a limit of ``seconds`` from now."""
    return deadline_at(time.monotonic() + seconds, seconds)


def check_deadline() -> None:
    limit = _DEADLINE.get()
    if limit is not None and time.monotonic() > limit[0]:
        raise RequestTimeout(f"The request was stopped after its time limit of {limit[1]:g} s. "
                             "Ask for fewer samples, fewer steps or a lower resolution.")
