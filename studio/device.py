"""Which device the studio computes on: one policy for ``studio.load``, the app and the benchmark.

``resolve_device(None)`` is ``$STUDIO_DEVICE`` when set, else the first CUDA GPU when there is one,
else Apple's MPS, else the CPU. An explicit device that this machine does not have (``"cuda"``
without CUDA, ``"cuda:7"`` on a one-GPU machine, an unknown name) is a ``StudioError`` that lists
the devices there are.

The rest of the policy, which every sampler follows (``tests/test_device.py`` checks it on a
stand-in device, since these machines have no GPU):

* Random numbers come from CPU generators, one per sample (``studio.langevin.make_generators``):
  the noise is drawn on the host and moved to the model's device. A seed then gives the same
  numbers on every device (a CUDA generator runs another algorithm, so device generators would make
  images depend on the hardware), and the images agree across devices up to float tolerance.
* Everything else a sampler makes (masks, known pixels, latents, rays, cameras, step indices) is
  created on, or moved to, the model's device before it meets the model's tensors.
* Results come back to the host once per request: the Langevin engine keeps energies, gradient
  norms and frames on the device and copies each list once at the end of a chain.
* Float32 throughout. Half precision is never used for EBM chains: a Langevin step moves each pixel
  by step size x gradient, often below 1e-3 of its value, which float16 (11-bit mantissa) and
  bfloat16 (8-bit) round away, so the chain stalls. TF32 is switched off on CUDA for the same reason
  and for reproducibility: it rounds matrix products and convolutions to a 10-bit mantissa, so a
  seed's image would drift from the CPU's over hundreds of steps, and the studio's small networks
  (well under 10M parameters) gain little from it.
"""
from __future__ import annotations

import os

import torch
from torch import nn

from .errors import StudioError

ENV = "STUDIO_DEVICE"
SUPPORTED = ("cpu", "cuda", "mps")


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def available_devices() -> list[str]:
    """The devices this machine offers, e.g. ``["cpu", "cuda:0", "cuda:1"]``."""
    out = ["cpu"]
    if torch.cuda.is_available():
        out += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if _mps_available():
        out.append("mps")
    return out


def default_device() -> torch.device:
    """CUDA when available, then MPS, else the CPU (``STUDIO_DEVICE`` not consulted)."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """The device to compute on: ``device`` if given, else ``$STUDIO_DEVICE``, else ``default_device()``.

    Raises ``StudioError`` (naming the available devices) for a device this machine does not have.
    """
    where = "device"
    if device is None:
        env = os.environ.get(ENV, "").strip()
        if not env:
            return _configured(default_device())
        device, where = env, ENV
    if isinstance(device, torch.device):
        dev = device
    elif isinstance(device, str):
        try:
            dev = torch.device(device.strip())
        except RuntimeError:
            raise StudioError(f"{where}={device!r} is not a device name. Available here: {', '.join(available_devices())}.") from None
    else:
        raise StudioError(f"{where} must be a device name such as 'cpu' or 'cuda:0'; got {type(device).__name__}.")
    available = ", ".join(available_devices())
    if dev.type not in SUPPORTED:
        raise StudioError(f"{where}={str(dev)!r}: the studio runs on {', '.join(SUPPORTED)}. Available here: {available}.")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise StudioError(f"{where}={str(dev)!r}, but CUDA is not available on this machine. Available here: {available}.")
        count = torch.cuda.device_count()
        if dev.index is not None and not 0 <= dev.index < count:
            raise StudioError(f"{where}={str(dev)!r}, but this machine has {count} GPU{'' if count == 1 else 's'}. "
                              f"Available here: {available}.")
    if dev.type == "mps" and not _mps_available():
        raise StudioError(f"{where}={str(dev)!r}, but MPS is not available on this machine. Available here: {available}.")
    return _configured(dev)


def _configured(dev: torch.device) -> torch.device:
    if dev.type == "cuda":
        full_float32_precision()
    return dev


def full_float32_precision() -> None:
    """Turn TF32 off for CUDA matrix products and convolutions (process-wide; see the module docstring)."""
    matmul, conv = torch.backends.cuda.matmul, getattr(torch.backends.cudnn, "conv", None)
    if hasattr(matmul, "fp32_precision") and conv is not None and hasattr(conv, "fp32_precision"):
        matmul.fp32_precision = "ieee"
        conv.fp32_precision = "ieee"
    else:  # torch before the fp32_precision settings
        matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False


def module_device(module: nn.Module) -> torch.device:
    """Where a module's parameters (or, without parameters, its buffers) live; the CPU for neither."""
    for tensor in module.parameters():
        return tensor.device
    for tensor in module.buffers():
        return tensor.device
    return torch.device("cpu")


def describe(device: torch.device) -> str:
    """One sentence for the app's header: what the models run on."""
    if device.type == "cuda":
        try:
            name = torch.cuda.get_device_name(device)
        except (RuntimeError, AssertionError):  # pragma: no cover (a driver problem)
            name = "CUDA"
        return f"Running on GPU ({name})."
    if device.type == "mps":
        return "Running on the Apple GPU (MPS)."
    return "Running on CPU: image models take a few seconds per batch."
