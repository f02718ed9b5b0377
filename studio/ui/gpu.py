"""Where the app's models run, and ZeroGPU.

The models load on ``studio.device.resolve_device()`` (``STUDIO_DEVICE``, else CUDA, then MPS, else
the CPU); the header says which (``notice``).

ZeroGPU Spaces attach a GPU only while a function decorated with ``spaces.GPU`` runs, for at most
the duration it declares, in a worker process forked from the app. So (following the ``spaces``
package's documentation):

* every handler that runs a model is decorated with ``on_gpu(cpu_seconds)``: ``spaces.GPU`` with
  a duration sized from that handler's request caps (``studio/ui/limits.py`` and the tab's own);
  outside ZeroGPU ``spaces.GPU`` returns the function unchanged;
* the models are loaded in the main process at start-up (``preload``), before the app launches:
  ``spaces`` defers their move to CUDA and the forked workers inherit them, whereas a model loaded
  lazily inside a request would be loaded again by every worker;
* handlers return host data only (images, numbers, host tensors in ``gr.State``): results cross
  the process boundary by pickling (``tests/test_device.py`` checks the outputs of every handler).

Durations: ZeroGPU stops a call when its duration runs out, and a shorter duration costs the
visitor less quota, so each handler asks for an upper bound of its heaviest request. The bound is
the request's cost at the caps on the reference machine of the README's Performance table (a
2-core x86 CPU, no GPU), from the per-unit costs measured there (below) and the drawing of the
result (which runs inside the GPU call too), plus ``ATTACH_SECONDS``: any GPU slice runs these
batched convolutions faster than that CPU, so the bound holds there.
"""
from __future__ import annotations

import math
import os
from typing import Callable

from . import limits

# Reference-CPU seconds per unit of work. From the README's Performance table (`python -m tools.bench`,
# wall time, 2 threads), or, where marked "CPU time", measured here with one thread (time.process_time;
# the EGC, CoopFlow and pixel-translation rows are timed against CDRL's on the same loaded machine and
# scaled to the table's CDRL number).
CDRL_SAMPLE_STEP = 1.85 / (16 * 15)  # one CDRL sample, one Langevin step K at each of its 6 levels, guided (2 evaluations)
DRL_STEPS = 30  # drl-fmnist's trained K: the CDRL tab's comparison runs DRL at it (unguided: half a guided step)
CFEBM_SAMPLE_STEP = 0.20 / (16 * 30)  # one 32 px CF-EBM sample, one Langevin step
MULTISCALE = 1 + 1 / 4 + 1 / 16  # CF-EBM's coarse-to-fine chain: 8, 16 and 32 px, the same steps at each
PIXEL_STEP_64 = 0.053 / 30  # one 64 px CF-EBM translation chain, one step (cfebm-emoji-t2g)
LETIT_STEP = 0.044 / 24  # one LETIT translation, one latent step (with encoding and decoding)
EGC_SAMPLE_STEP = 0.49 / (16 * 20)  # one EGC sample, one DDIM step (one input-gradient pass)
COOPFLOW_SAMPLE_STEP = 3.5e-3  # one CoopFlow sample, one Langevin step (CPU time, the width-16 EBM of issue 20)
NERF_VIEW_64, NERF_VIEW_128 = 0.027, 0.21  # one NeRF-LEBM view of one object (the 128 px one: CPU time)
NERF_REFINE_STEP = 0.073  # one step of NeRF-LEBM's gradient refinement in "Infer from image" (CPU time)
TOY_STEP_512 = 0.0045  # one playground step of 512 2-D chains, with the plot (CPU time)
DRAW_GIF = 4.9  # a trajectory GIF of 64 samples x 307 frames, as the CDRL and CF-EBM tabs draw (CPU time)
DRAW_TRAJECTORY = 8.4  # the Trajectory tab's GIF, frames and zip of 240 frames at 64x64 RGB (CPU time)
ATTACH_SECONDS = 10  # attaching the GPU and the first move of the weights in a worker
MIN_SECONDS = 15


def on_zero_gpu() -> bool:
    """True on a ZeroGPU Space (the variable the ``spaces`` package and Gradio read)."""
    return os.environ.get("SPACES_ZERO_GPU", "").lower() in ("1", "t", "true")


def gpu_seconds(cpu_seconds: float) -> int:
    """The ZeroGPU duration of a handler whose heaviest request costs ``cpu_seconds`` on the reference CPU:
    that plus ``ATTACH_SECONDS``, at least ``MIN_SECONDS``, at most the request time limit."""
    return int(min(limits.REQUEST_TIMEOUT_SECONDS, max(MIN_SECONDS, math.ceil(ATTACH_SECONDS + cpu_seconds))))


def on_gpu(cpu_seconds: float) -> Callable[[Callable], Callable]:
    """Decorator: run the handler with a GPU on ZeroGPU (``spaces.GPU``, duration ``gpu_seconds(cpu_seconds)``);
    a no-op elsewhere. The duration is also kept as ``handler.gpu_duration`` for tests and the docs."""
    duration = gpu_seconds(cpu_seconds)

    def decorate(fn: Callable) -> Callable:
        try:
            import spaces
        except ImportError:  # the app also runs without the package (it is a no-op off ZeroGPU anyway)
            wrapped = fn
        else:
            wrapped = spaces.GPU(duration=duration)(fn)
        wrapped.gpu_duration = duration
        return wrapped

    return decorate


def preload() -> list[str]:
    """On ZeroGPU, load every local checkpoint now, in the main process (see the module docstring);
    elsewhere models keep loading lazily on first use, which keeps the app's start fast. Returns the names loaded."""
    if not on_zero_gpu():
        return []
    from ..registry import local_names
    from .common import cached_model

    names = local_names()
    for name in names:
        cached_model(name)
    return names


def notice() -> str:
    """The header's sentence about where the models run."""
    from ..device import describe, resolve_device

    text = describe(resolve_device())
    if on_zero_gpu():
        text += " ZeroGPU: a GPU is attached to each request while it runs, so the first request may wait for one."
    return text
