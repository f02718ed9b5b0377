"""Saliency and disagreement maps: which pixels an energy pushes on (no UI here; the Saliency tab draws these).

* Generative saliency of a chain is read from its ``Trace`` (``Trace.saliency``: the summed energy gradients) or,
  for a chain that does not move pixels, given by the method (``SampleOutput.saliency``).
* The disagreement map of one image is |grad_x E(x)| under a model's ``image_energy`` (``studio.protocol``): where a
  small change would lower the energy most.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .device import module_device
from .errors import SamplingError


def pixel_saliency(values: Tensor) -> Tensor:
    """[N, C, H, W] -> [N, H, W] in [0, 1]: per-pixel L2 over channels, min-max normalised per sample (the reduction
    of ``Trace.saliency``, for maps that do not come from summed gradients, e.g. a decoded difference)."""
    norm = values.detach().float().pow(2).sum(1).sqrt().cpu()
    flat = norm.flatten(1)
    lo, hi = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
    return ((flat - lo) / (hi - lo).clamp_min(1e-12)).view_as(norm)


def image_energy_gradient(model, image: Tensor) -> tuple[float, Tensor]:
    """E(x) and grad_x E(x) [C, H, W] for one image [C, H, W] under ``model.image_energy``. Gradients are taken with
    respect to the image only: the parameters stay as they are (no ``.grad``), even under a caller's no_grad."""
    if getattr(model, "image_energy", None) is None:
        raise SamplingError(f"{type(model).__name__} has no image-space energy.")
    if not isinstance(image, Tensor) or image.dim() != 3:
        raise SamplingError(f"Expected one image [C, H, W]; got {getattr(image, 'shape', type(image).__name__)}.")
    with torch.inference_mode(False), torch.enable_grad():
        x = image[None].detach().float().to(module_device(model)).clone().requires_grad_(True)
        energy = model.image_energy(x)
        (grad,) = torch.autograd.grad(energy.sum(), x)
    if not (torch.isfinite(energy).all() and torch.isfinite(grad).all()):
        raise SamplingError("The energy or its gradient is not finite for this image.")
    return float(energy.detach()[0]), grad[0].detach().cpu()


def disagreement_map(model, image: Tensor) -> tuple[Tensor, Tensor, float]:
    """Where a model disagrees with one image [C, H, W]: (|grad E(x)| per pixel [H, W] (L2 over channels), the same
    min-max normalised to [0, 1], E(x))."""
    energy, grad = image_energy_gradient(model, image)
    return grad.pow(2).sum(0).sqrt(), pixel_saliency(grad[None])[0], energy
