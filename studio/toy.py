"""Analytic 2-D energies for the Langevin playground and for testing the engine.

They are real studio models: registered kinds with typed configs, saved as
checkpoints (``toy-gaussian-mixture``, ``toy-ring``), loaded with
``studio.load``, and sampled through ``studio.langevin`` like every image model.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from . import checks
from .device import module_device
from .errors import SamplingError
from .hub import register_model
from .langevin import Trace, langevin, make_generators, parse_seeds, randn


class Toy2DEnergy(nn.Module):
    """Shared sampling API of the 2-D toys. Subclasses implement ``energy``."""

    config_class: type
    init_scale = 3.0  # chains start from N(0, init_scale^2 I), wide enough to cover every mode

    def forward(self, x: Tensor) -> Tensor:
        return self.energy(x)

    def energy(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def sample(
        self,
        seeds="0-63",
        steps: int = 200,
        step_size: float = 0.01,
        noise_std: float | None = None,
        record_every: int = 1,
        progress: bool = False,
    ) -> tuple[Tensor, Trace]:
        """Run one chain per seed. ``noise_std=None`` picks sqrt(2 * step_size), exact Langevin for exp(-E)."""
        step_size = checks.number("step_size", step_size, 0, 1e3)
        if step_size <= 0:
            raise SamplingError(f"step_size must be positive; got {step_size}.")
        sigma = math.sqrt(2 * step_size) if noise_std is None else checks.number("noise_std", noise_std, 0, 1e3)
        steps = checks.integer("steps", steps, 0, 10**6)
        gens = make_generators(parse_seeds(seeds))
        x0 = self.init_scale * randn((len(gens), 2), gens, device=module_device(self))
        return langevin(self, x0, steps=steps, step_size=step_size, noise_std=sigma, generator=gens,
                        record_every=record_every, progress=progress, desc=f"{self.kind} Langevin")

    @torch.no_grad()
    def density_grid(self, lim: float = 4.0, n: int = 100) -> tuple[Tensor, Tensor, Tensor]:
        """Unnormalised density exp(-E) on an n x n grid over [-lim, lim]^2, for plots."""
        axis = torch.linspace(-lim, lim, n)  # host tensors for the plot; the energies are computed on the model's device
        gy, gx = torch.meshgrid(axis, axis, indexing="ij")
        e = self.energy(torch.stack([gx.flatten(), gy.flatten()], 1).to(module_device(self))).view(n, n)
        return axis, axis, torch.exp(-(e - e.min())).cpu()


@dataclass
class GaussianMixtureConfig:
    """Isotropic Gaussian mixture; its parameters are stored as weights in the checkpoint."""

    num_components: int = 8
    radius: float = 2.5
    std: float = 0.35


@register_model("toy-gaussian-mixture")
class GaussianMixture2D(Toy2DEnergy):
    """E(x) = -log sum_k w_k N(x; mu_k, s_k^2 I) (up to a constant)."""

    config_class = GaussianMixtureConfig

    def __init__(self, config: GaussianMixtureConfig):
        super().__init__()
        self.config = config
        k = config.num_components
        angles = torch.arange(k, dtype=torch.float32) * (2 * math.pi / k)
        self.means = nn.Parameter(config.radius * torch.stack([angles.cos(), angles.sin()], 1))
        self.log_std = nn.Parameter(torch.full((k,), math.log(config.std)))
        self.logits = nn.Parameter(torch.zeros(k))

    def energy(self, x: Tensor) -> Tensor:
        var = torch.exp(2 * self.log_std)  # [K]
        d2 = (x[:, None, :] - self.means[None]).pow(2).sum(-1)  # [B, K]
        log_comp = -d2 / (2 * var) - 2 * self.log_std - math.log(2 * math.pi)
        return -torch.logsumexp(torch.log_softmax(self.logits, 0) + log_comp, dim=1)


@dataclass
class RingConfig:
    radius: float = 2.0
    width: float = 0.25


@register_model("toy-ring")
class Ring2D(Toy2DEnergy):
    """E(x) = (|x| - r)^2 / (2 w^2): a thin ring, hard for chains to cross the centre."""

    config_class = RingConfig

    def __init__(self, config: RingConfig):
        super().__init__()
        self.config = config
        self.radius = nn.Parameter(torch.tensor(float(config.radius)))
        self.width = nn.Parameter(torch.tensor(float(config.width)))

    def energy(self, x: Tensor) -> Tensor:
        r = x.pow(2).sum(-1).add(1e-12).sqrt()
        return (r - self.radius).pow(2) / (2 * self.width**2)
