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
from .kinds import register_model
from .hmc import HMCTrace, hmc
from .langevin import Trace, langevin, make_generators, parse_seeds, randn
from .pointsets import moon_arcs


@dataclass(frozen=True)
class SamplerCheck:
    """One property a good sampler's output has: ``value`` within ``tolerance`` of ``target``, or, with
    ``at_least``, no lower than ``target - tolerance`` (coverage-type checks, where more is fine)."""

    name: str
    value: float
    target: float
    tolerance: float
    at_least: bool = False

    @property
    def passed(self) -> bool:
        if self.at_least:
            return self.value >= self.target - self.tolerance
        return abs(self.value - self.target) <= self.tolerance

    def __str__(self) -> str:
        want = f">= {self.target - self.tolerance:.3g}" if self.at_least else f"{self.target:.3g} +- {self.tolerance:.3g}"
        return f"{self.name}: {self.value:.3g} (want {want}) {'ok' if self.passed else 'MISSED'}"


def _samples(samples: Tensor) -> Tensor:
    if not isinstance(samples, Tensor) or samples.dim() != 2 or samples.shape[1] != 2 or samples.shape[0] == 0:
        raise SamplingError(f"samples must be a non-empty [N, 2] tensor; got {getattr(samples, 'shape', type(samples).__name__)}.")
    return samples.detach().cpu().float()


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

    # -- HMC, and the exact reference every sampler can be checked against --------------------------

    # The box and grid of the reference quadrature: the box holds all but a negligible part of the mass.
    quadrature_box: tuple[float, float, float, float] = (-4.0, 4.0, -4.0, 4.0)
    quadrature_points = 500

    def sample_hmc(self, seeds="0-63", steps: int = 100, step_size: float = 0.1, leapfrog_steps: int = 5,
                   metropolis: bool = True, record_every: int = 1, progress: bool = False) -> tuple[Tensor, HMCTrace]:
        """One HMC chain per seed (``studio.hmc``), from the same starting points as ``sample`` at the same seeds."""
        steps = checks.integer("steps", steps, 0, 10**6)
        gens = make_generators(parse_seeds(seeds))
        x0 = self.init_scale * randn((len(gens), 2), gens, device=module_device(self))
        return hmc(self, x0, steps, step_size, leapfrog_steps, generator=gens, metropolis=metropolis,
                   record_every=record_every, progress=progress, desc=f"{self.kind} HMC")

    @torch.no_grad()
    def quadrature(self) -> tuple[Tensor, Tensor, tuple[float, float]]:
        """Cell centres [N, 2] of a fine grid over ``quadrature_box``, the probability of each cell under
        exp(-E) ([N], float64, summing to 1) and the cell size (dx, dy): exact expectations up to the grid."""
        x0, x1, y0, y1 = self.quadrature_box
        n = self.quadrature_points
        dx, dy = (x1 - x0) / n, (y1 - y0) / n
        xs = torch.linspace(x0 + dx / 2, x1 - dx / 2, n, dtype=torch.float64)
        ys = torch.linspace(y0 + dy / 2, y1 - dy / 2, n, dtype=torch.float64)
        gy, gx = torch.meshgrid(ys, xs, indexing="ij")
        points = torch.stack([gx.flatten(), gy.flatten()], 1)
        e = self.energy(points.float().to(module_device(self))).double().cpu()
        w = torch.exp(-(e - e.min()))
        return points, w / w.sum(), (dx, dy)

    def expectation(self, fn) -> Tensor:
        """E_p[fn(x)] under p = exp(-E) / Z by quadrature; ``fn`` maps points [N, 2] (float64) to [N] or [N, k]."""
        points, p, _ = self.quadrature()
        values = fn(points).double()
        return (p.view(-1, *[1] * (values.dim() - 1)) * values).sum(0)

    def reference_samples(self, n: int, seed: int = 0) -> Tensor:
        """``n`` exact samples up to the quadrature grid (a cell drawn by its probability, then a uniform
        point inside it): what a perfect sampler returns, for calibrating the checks."""
        n = checks.integer("n", n, 1, 10**6)
        points, p, (dx, dy) = self.quadrature()
        g = torch.Generator().manual_seed(checks.integer("seed", seed, 0, 2**63 - 1))
        cells = torch.multinomial(p, n, replacement=True, generator=g)
        jitter = (torch.rand(n, 2, generator=g, dtype=torch.float64) - 0.5) * torch.tensor([dx, dy], dtype=torch.float64)
        return (points[cells] + jitter).float()

    def second_moments(self) -> Tensor:
        """The exact (E[x^2], E[xy], E[y^2]) of exp(-E), by quadrature unless a toy knows them in closed form."""
        return self.expectation(lambda q: torch.stack([q[:, 0] ** 2, q[:, 0] * q[:, 1], q[:, 1] ** 2], 1)).float()

    def second_moment_error(self, samples: Tensor) -> float:
        """||M_hat - M||_F / ||M||_F for the second-moment matrix M = E[x x^T] (0 is perfect)."""
        return self._second_moment_error(samples)[0]

    def _second_moment_error(self, samples: Tensor) -> tuple[float, float]:
        """The error, and what independent exact samples of the same count would typically score."""
        x = _samples(samples).double()
        per_sample = _second_moment_terms(x)
        exact = self.second_moments().double()
        weights = torch.tensor([1.0, 2.0, 1.0], dtype=torch.float64)  # the off-diagonal entry appears twice in M
        norm = ((exact**2) * weights).sum().sqrt()
        error = ((per_sample.mean(0) - exact) ** 2 * weights).sum().sqrt() / norm
        variance = self.expectation(lambda q: _second_moment_terms(q) ** 2) - exact**2  # of one exact sample's terms
        chance = (variance.clamp_min(0) * weights / len(x)).sum().sqrt() / norm
        return float(error), float(chance)

    def exact_variance(self, fn) -> float:
        """Var_p[fn(x)] by quadrature: the spread of one exact sample's value, which sets check tolerances."""
        m = self.expectation(lambda q: torch.stack([fn(q).double(), fn(q).double() ** 2], 1))
        return float((m[1] - m[0] ** 2).clamp_min(0))

    def sampler_checks(self, samples: Tensor) -> list[SamplerCheck]:
        """The known properties good samples of this energy have (each toy adds its own mode checks).
        Tolerances never go below what the sampling noise of this many independent samples allows."""
        error, chance = self._second_moment_error(samples)
        return [SamplerCheck("second-moment error", error, 0.0, max(0.1, 3 * chance))]


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


# ----------------------------------------------------------------------------- more analytic potentials
# Analytic energies without learned weights (their checkpoints hold only the config). Each knows what a good
# sampler must reach: ``sampler_checks`` compares samples with exact moments (closed form or quadrature) and
# with the mass of every mode, so a sampler that misses a mode or spreads too wide fails a named check.


def _second_moment_terms(x: Tensor) -> Tensor:
    return torch.stack([x[:, 0] ** 2, x[:, 0] * x[:, 1], x[:, 1] ** 2], 1)


def _mean_check(name: str, values: Tensor, target: float, tolerance: float, variance: float, at_least: bool = False) -> SamplerCheck:
    """The mean of per-sample ``values`` against ``target``. ``variance`` is the exact variance of one value
    under the target density: the tolerance is widened to three standard errors of the mean when the
    sample is too small for it, so exact samples pass whatever their count (and a heavy-tailed sampler
    gains no slack from its own spread)."""
    values = values.double()
    se = math.sqrt(max(variance, 0.0) / len(values))
    return SamplerCheck(name, float(values.mean()), float(target), max(tolerance, 3 * se), at_least)


def _share_checks(name: str, labels: Tensor, exact: Tensor, total: int, min_mass: float = 0.01,
                  tv_tolerance: float = 0.1) -> list[SamplerCheck]:
    """Mode coverage: how many of the modes that ``total`` samples should visit (mass >= ``min_mass`` and an
    expected count of at least 5) got a sample, and the total variation distance between the samples' mode
    shares and the exact masses (``labels`` index ``exact``; samples in no mode are left out of ``labels``)."""
    counts = torch.bincount(labels, minlength=len(exact)).double()
    share = counts / max(1, total)
    major = (exact >= min_mass) & (exact * total >= 5)
    covered = int(((counts > 0) & major).sum())
    tv = 0.5 * float((share - exact).abs().sum() + max(0.0, 1 - float(exact.sum())))
    chance = 0.5 * float((2 * exact * (1 - exact) / (math.pi * max(1, total))).sqrt().sum())  # E[TV] of exact samples
    return [SamplerCheck(f"{name} covered (of {int(major.sum())} with >= {min_mass:.0%} mass)", covered, int(major.sum()), 0, at_least=True),
            SamplerCheck(f"{name} shares: total variation from the exact masses", tv, 0.0, max(tv_tolerance, 2 * chance))]


@dataclass
class DoubleWellConfig:
    barrier: float = 2.5  # E at the saddle (0, 0) above the two minima
    separation: float = 1.5  # the minima sit at (+-separation, 0)
    width: float = 0.6  # standard deviation along y (E is quadratic in y)


@register_model("toy-double-well")
class DoubleWell2D(Toy2DEnergy):
    """E(x, y) = barrier * ((x / separation)^2 - 1)^2 + y^2 / (2 width^2): two wells, one barrier.

    Checks: each well holds exactly half the mass (symmetry), E[y^2] = width^2 exactly, E[x^2] by quadrature."""

    config_class = DoubleWellConfig
    init_scale = 1.5  # covers both wells; the quartic walls past |x| ~ 4 would need far smaller steps

    def __init__(self, config: DoubleWellConfig):
        super().__init__()
        self.config = config

    def energy(self, x: Tensor) -> Tensor:
        c = self.config
        return c.barrier * ((x[:, 0] / c.separation) ** 2 - 1) ** 2 + x[:, 1] ** 2 / (2 * c.width**2)

    def sampler_checks(self, samples: Tensor) -> list[SamplerCheck]:
        x = _samples(samples)
        exact = self.second_moments()
        w2 = self.config.width**2
        return [_mean_check("share in the right well", (x[:, 0] > 0).float(), 0.5, 0.05, 0.25),
                _mean_check("E[x^2]", x[:, 0].pow(2), float(exact[0]), 0.1 * float(exact[0]), self.exact_variance(lambda q: q[:, 0] ** 2)),
                _mean_check("E[y^2]", x[:, 1].pow(2), w2, 0.1 * w2, 2 * w2**2)]


@dataclass
class RosenbrockConfig:
    a: float = 0.0
    b: float = 10.0
    temperature: float = 1.0


@register_model("toy-rosenbrock")
class Rosenbrock2D(Toy2DEnergy):
    """The Rosenbrock banana E(x, y) = ((a - x)^2 + b (y - x^2)^2) / temperature.

    exp(-E) factorises exactly: x ~ N(a, T/2) and y | x ~ N(x^2, T/(2b)), so its moments are known in
    closed form; the narrow curved ridge is what makes it hard for gradient samplers."""

    config_class = RosenbrockConfig
    init_scale = 1.0  # wider starts reach |x| ~ 3, where the ridge's curvature (~12 b x^2) needs tiny steps
    quadrature_box = (-4.0, 4.0, -2.0, 14.0)

    def __init__(self, config: RosenbrockConfig):
        super().__init__()
        self.config = config

    def energy(self, x: Tensor) -> Tensor:
        c = self.config
        return ((c.a - x[:, 0]) ** 2 + c.b * (x[:, 1] - x[:, 0] ** 2) ** 2) / c.temperature

    def second_moments(self) -> Tensor:
        a, v, w = self.config.a, self.config.temperature / 2, self.config.temperature / (2 * self.config.b)
        ex2, ex3, ex4 = a**2 + v, a**3 + 3 * a * v, a**4 + 6 * a**2 * v + 3 * v**2
        return torch.tensor([ex2, ex3, w + ex4])

    def reference_samples(self, n: int, seed: int = 0) -> Tensor:
        """Exact samples: x ~ N(a, T/2), then y ~ N(x^2, T/(2b))."""
        n = checks.integer("n", n, 1, 10**6)
        g = torch.Generator().manual_seed(checks.integer("seed", seed, 0, 2**63 - 1))
        c = self.config
        x = c.a + math.sqrt(c.temperature / 2) * torch.randn(n, generator=g)
        y = x**2 + math.sqrt(c.temperature / (2 * c.b)) * torch.randn(n, generator=g)
        return torch.stack([x, y], 1)

    def sampler_checks(self, samples: Tensor) -> list[SamplerCheck]:
        x = _samples(samples)
        exact = self.second_moments()
        per_sample = _second_moment_terms(x).unbind(1)
        variances = (self.expectation(lambda q: _second_moment_terms(q) ** 2) - exact.double() ** 2).tolist()
        scale = float(exact.abs().max())
        names = ("E[x^2]", "E[xy]", "E[y^2]")
        return [_mean_check(n, v, float(t), 0.1 * scale, var) for n, v, t, var in zip(names, per_sample, exact, variances)] + \
            super().sampler_checks(samples)


@dataclass
class RastriginConfig:
    amplitude: float = 1.5
    temperature: float = 1.0


@register_model("toy-rastrigin")
class Rastrigin2D(Toy2DEnergy):
    """E(x) = sum_i (x_i^2 + A (1 - cos(2 pi x_i))) / T: a lattice of local minima near the integer points.

    exp(-E) is a product of two identical 1-D densities, so the mass of every lattice mode (the cell of
    width 1 around an integer point) and E[x_i^2] follow from a 1-D quadrature."""

    config_class = RastriginConfig

    def __init__(self, config: RastriginConfig):
        super().__init__()
        self.config = config

    def energy(self, x: Tensor) -> Tensor:
        c = self.config
        return (x**2 + c.amplitude * (1 - torch.cos(2 * math.pi * x))).sum(-1) / c.temperature

    def _marginal(self) -> tuple[Tensor, Tensor]:
        """The 1-D marginal on a fine grid over [-6, 6]: points and their probabilities."""
        t = torch.linspace(-6, 6, 24001, dtype=torch.float64)
        c = self.config
        w = torch.exp(-(t**2 + c.amplitude * (1 - torch.cos(2 * math.pi * t))) / c.temperature)
        return t, w / w.sum()

    def mode_masses(self) -> tuple[Tensor, Tensor]:
        """The lattice modes (integer points k, in -5..5 per axis) and their exact masses ([121, 2], [121])."""
        t, p = self._marginal()
        ks = torch.arange(-5, 6)
        per_axis = torch.bincount(t.round().clamp(-5, 5).long() + 5, weights=p, minlength=11)  # [-6, 6]: tails folded in
        kx, ky = torch.meshgrid(ks, ks, indexing="xy")
        return torch.stack([kx.flatten(), ky.flatten()], 1), (per_axis[None, :] * per_axis[:, None]).flatten()

    def second_moments(self) -> Tensor:
        t, p = self._marginal()
        m2 = float((p * t**2).sum())
        return torch.tensor([m2, 0.0, m2])

    def sampler_checks(self, samples: Tensor) -> list[SamplerCheck]:
        x = _samples(samples)
        modes, masses = self.mode_masses()
        k = x.round().clamp(-5, 5).long() + 5
        m2 = float(self.second_moments()[0])
        t, p = self._marginal()
        var = float((p * t**4).sum()) - m2**2
        return [_mean_check("E[x^2] per axis", x.pow(2).mean(1), m2, 0.1 * m2, var / 2),  # mean of two independent axes
                *_share_checks("lattice modes", k[:, 1] * 11 + k[:, 0], masses, len(x))]


@dataclass
class TwoMoonsConfig:
    radius: float = 2.0  # of each half circle (scikit-learn's moons scaled by 2)
    width: float = 0.15  # standard deviation across the arcs


@register_model("toy-two-moons")
class TwoMoons2D(Toy2DEnergy):
    """E(x) = -log sum_k exp(-d_k(x)^2 / (2 width^2)), d_k the distance to half circle k of "two moons".

    The moons map onto each other by a half turn, so each holds exactly half the mass; the mass within
    two widths of an arc comes from quadrature."""

    config_class = TwoMoonsConfig

    def __init__(self, config: TwoMoonsConfig):
        super().__init__()
        self.config = config

    def arc_sq_distances(self, x: Tensor) -> Tensor:
        """Squared distance of each point to each half circle, [N, 2]."""
        out = []
        for (cx, cy), r, side in moon_arcs(self.config.radius):
            d0, d1 = x[:, 0] - cx, x[:, 1] - cy
            to_arc = (torch.sqrt(d0**2 + d1**2 + 1e-12) - r) ** 2
            to_ends = torch.minimum((d0 - r) ** 2, (d0 + r) ** 2) + d1**2  # past the arc's ends: the nearer end
            out.append(torch.where(side * d1 >= 0, to_arc, to_ends))
        return torch.stack(out, 1)

    def energy(self, x: Tensor) -> Tensor:
        return -torch.logsumexp(-self.arc_sq_distances(x) / (2 * self.config.width**2), dim=1)

    def sampler_checks(self, samples: Tensor) -> list[SamplerCheck]:
        x = _samples(samples)
        d2 = self.arc_sq_distances(x)
        band = (2 * self.config.width) ** 2
        exact_near = float(self.expectation(lambda q: (self.arc_sq_distances(q).min(1).values <= band).double()))
        # mode coverage: each moon cut into 4 equal arcs by angle, 8 parts of equal exact mass
        part = torch.zeros(len(x), dtype=torch.long)
        moon = d2.argmin(1)
        for k, ((cx, cy), _r, side) in enumerate(moon_arcs(self.config.radius)):
            angle = torch.atan2(side * (x[:, 1] - cy), x[:, 0] - cx).clamp(0, math.pi - 1e-6)
            part = torch.where(moon == k, 4 * k + (angle / (math.pi / 4)).long(), part)
        return [_mean_check("share on the upper moon", (moon == 0).float(), 0.5, 0.05, 0.25),
                _mean_check("within 2 widths of an arc", (d2.min(1).values <= band).float(), exact_near, 0.05, exact_near * (1 - exact_near)),
                *_share_checks("moon quarters", part, torch.full((8,), 1 / 8, dtype=torch.float64), len(x))]


@dataclass
class CheckerboardConfig:
    squares: int = 4  # per side
    half_width: float = 3.0  # the board covers [-half_width, half_width]^2
    height: float = 6.0  # energy of the white squares (and around the board) above the black ones
    edge: float = 0.03  # how sharp the edges are (the sigmoid's scale, in distance units)


@register_model("toy-checkerboard")
class Checkerboard2D(Toy2DEnergy):
    """A density with hard edges: E = height * sigmoid(-b(x) / edge), where b is the signed distance to the
    nearest square edge (positive inside a black square), plus a quadratic wall beyond the board.

    Flat inside every square, so a gradient sampler random-walks there and only feels the edges; the black
    squares hold equal mass by symmetry, and the mass on black comes from quadrature."""

    config_class = CheckerboardConfig

    def __init__(self, config: CheckerboardConfig):
        super().__init__()
        if config.squares < 1 or config.half_width <= 0 or config.edge <= 0:
            raise SamplingError(f"A checkerboard needs squares >= 1, half_width > 0 and edge > 0; got {config}.")
        self.config = config

    def _cells(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        c = self.config
        side = 2 * c.half_width / c.squares
        u = (x + c.half_width) / side
        cell = torch.floor(u)
        frac = u - cell
        inside = ((cell >= 0) & (cell < c.squares)).all(1)
        black = inside & ((cell[:, 0] + cell[:, 1]) % 2 == 0)
        return cell, torch.minimum(frac, 1 - frac).min(1).values * side, black

    def energy(self, x: Tensor) -> Tensor:
        c = self.config
        _, to_edge, black = self._cells(x)
        outside = torch.relu(x.abs() - c.half_width)
        signed = torch.where(black, to_edge, -torch.maximum(to_edge, outside.norm(dim=1)))
        wall = 2.0 * outside.pow(2).sum(1)
        return c.height * torch.sigmoid(-signed / c.edge) + wall

    def sampler_checks(self, samples: Tensor) -> list[SamplerCheck]:
        x = _samples(samples)
        cell, _, black = self._cells(x)
        exact_black = float(self.expectation(lambda q: self._cells(q)[2].double()))
        n = self.config.squares
        index = (cell[:, 1] * n + cell[:, 0]).long().clamp(0, n * n - 1)
        black_ids = [i for i in range(n * n) if (i % n + i // n) % 2 == 0]
        lookup = torch.full((n * n,), -1, dtype=torch.long)
        lookup[black_ids] = torch.arange(len(black_ids))
        on = black & (lookup[index] >= 0)
        masses = torch.full((len(black_ids),), exact_black / len(black_ids), dtype=torch.float64)  # equal by symmetry
        return [_mean_check("share on black squares", black.float(), exact_black, 0.05, exact_black * (1 - exact_black), at_least=True),
                *_share_checks("black squares", lookup[index[on]], masses, len(x))]


# The analytic potentials by name, buildable without a checkpoint (they have no learned weights).
POTENTIALS: dict[str, type[Toy2DEnergy]] = {
    "toy-double-well": DoubleWell2D, "toy-rosenbrock": Rosenbrock2D, "toy-rastrigin": Rastrigin2D,
    "toy-two-moons": TwoMoons2D, "toy-checkerboard": Checkerboard2D,
}


def potential(name: str, **overrides) -> Toy2DEnergy:
    """An analytic potential by kind name (see ``POTENTIALS``) with its default config, or ``overrides`` of it."""
    if name not in POTENTIALS:
        raise SamplingError(f"Unknown potential {name!r}. Choose one of: {', '.join(POTENTIALS)}.")
    cls = POTENTIALS[name]
    return cls(cls.config_class(**overrides)).eval()


def langevin_vs_hmc(model: Toy2DEnergy, seeds="0-255", gradient_evaluations: int = 1000, step_size: float = 0.01,
                    hmc_step_size: float = 0.1, leapfrog_steps: int = 10, record_every: int = 0):
    """Langevin and HMC from the same starting points at (almost) equal cost: Langevin takes
    ``gradient_evaluations`` steps, HMC ``gradient_evaluations // leapfrog_steps`` steps of L leapfrog
    steps (one gradient each). Returns ((x, Trace), (x, HMCTrace))."""
    budget = checks.integer("gradient_evaluations", gradient_evaluations, 1, 10**6)
    leap = checks.integer("leapfrog_steps", leapfrog_steps, 1, budget)
    lang = model.sample(seeds=seeds, steps=budget, step_size=step_size, record_every=record_every)
    ham = model.sample_hmc(seeds=seeds, steps=budget // leap, step_size=hmc_step_size, leapfrog_steps=leap,
                           record_every=max(1, record_every // leap) if record_every else 0)
    return lang, ham
