"""Energy lab: train a small MLP energy on a 2-D point set, live, and stream what it learns.

``train_stream(points, LabConfig(...))`` yields a ``LabUpdate`` every ``update_every`` steps: the energy
landscape on a grid over the canvas, the data, the current negative samples and the loss curve so far.
The run stops when it has done its steps, when the caller asks (``should_stop``), when it has spent its
compute budget (``max_seconds`` of CPU time, at most ``MAX_SECONDS``) or when the loss stops being finite
(it then restores the last good weights and says so). Every random number comes from one generator
seeded with ``seed``, so a run replays exactly (on the same machine and thread count).

Objectives (``OBJECTIVES``):

* ``cd``: contrastive divergence with short-run chains started from uniform noise on the canvas every step;
* ``pcd``: contrastive divergence with persistent chains (a few start afresh from noise each step);
* ``dsm``: denoising score matching: -grad E at x + sigma * eps should point back to x;
* ``ssm``: sliced score matching (variance-reduced): E_v[v^T (d s / dx) v + |s|^2 / 2] with s = -grad E.

Contrastive divergence draws its negatives with ``studio.langevin`` or ``studio.hmc`` (``sampler``), at
``sampler_steps`` gradient evaluations per training step either way.

The lab runs on the CPU whatever device the studio's image models use: one step of a 64-wide MLP on 128
points is a handful of tiny kernels, which a GPU runs no faster, and one CPU generator drives the whole run.

Why an optimiser lives here and not in train/: the rest of the studio leaves training to train/, which
runs for minutes to hours, writes checkpoints and logs, and is started from a shell. The lab trains for
seconds inside one browser request and streams its progress back to the page, which a train/ script
cannot do; this is the one documented exception. It keeps to train/'s habits otherwise: a typed config,
a seeded run, and checkpoints (``studio.lab_io.export_checkpoint``) that ``studio.load`` reads back.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

import torch
from torch import Tensor, nn

from . import checks
from .errors import StudioError
from .hmc import hmc
from .kinds import register_model
from .langevin import MAX_SEED, langevin
from .pointsets import CANVAS, check_points
from .runtime import check_deadline
from .toy import Toy2DEnergy

__all__ = ["OBJECTIVES", "SAMPLERS", "MAX_STEPS", "MAX_SECONDS", "LabConfig", "LabError", "LabUpdate", "EnergyMLP",
           "EnergyMLPConfig", "train_stream", "train", "fraction_near"]

OBJECTIVES = {
    "cd": "Contrastive divergence (short-run chains from noise)",
    "pcd": "Contrastive divergence (persistent chains)",
    "dsm": "Denoising score matching",
    "ssm": "Sliced score matching",
}
SAMPLERS = {"langevin": "Langevin", "hmc": "HMC"}
MAX_STEPS = 2000  # training steps per run
MAX_SECONDS = 10.0  # CPU seconds of compute per run
BUDGET_CHECK_EVERY = 10  # steps between two reads of the compute clock (a run overshoots its budget by < 10 steps)


class LabError(StudioError):
    """A lab setting or point set the lab cannot use; the message names it and its range."""


# ----------------------------------------------------------------------------- the model


@dataclass
class EnergyMLPConfig:
    width: int = 64
    depth: int = 2  # hidden layers
    canvas: float = CANVAS  # the wall starts at |x_i| = canvas
    wall: float = 10.0  # stiffness of the wall


@register_model("lab-mlp")
class EnergyMLP(Toy2DEnergy):
    """E(x) = MLP(x) + wall * sum_i max(0, |x_i| - canvas)^2, an MLP with SiLU activations (smooth, so score
    matching can take its second derivatives). The fixed wall keeps exp(-E) normalisable and chains on
    the canvas wherever the MLP, which grows linearly far from the data, would slope away."""

    config_class = EnergyMLPConfig
    init_scale = 2.0

    def __init__(self, config: EnergyMLPConfig):
        super().__init__()
        if not (1 <= config.width <= 1024 and 1 <= config.depth <= 8 and config.canvas > 0 and config.wall >= 0):
            raise LabError(f"An energy MLP needs width 1-1024, depth 1-8, canvas > 0 and wall >= 0; got {config}.")
        self.config = config
        layers, size = [], 2
        for _ in range(config.depth):
            layers += [nn.Linear(size, config.width), nn.SiLU()]
            size = config.width
        layers.append(nn.Linear(size, 1))
        self.net = nn.Sequential(*layers)

    def energy(self, x: Tensor) -> Tensor:
        c = self.config
        return self.net(x).squeeze(-1) + c.wall * torch.relu(x.abs() - c.canvas).pow(2).sum(-1)

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator) -> None:
        """PyTorch's default Linear initialisation, drawn from ``generator`` (the global RNG is left alone,
        so concurrent runs cannot disturb each other's seeds)."""
        for layer in self.net:
            if isinstance(layer, nn.Linear):
                bound = 1 / math.sqrt(layer.in_features)
                layer.weight.copy_(torch.rand(layer.weight.shape, generator=generator) * 2 * bound - bound)
                layer.bias.copy_(torch.rand(layer.bias.shape, generator=generator) * 2 * bound - bound)

    @torch.no_grad()
    def landscape(self, size: int = 64, lim: float = CANVAS) -> tuple[Tensor, Tensor]:
        """(axis [size], energies [size, size]) on a grid over [-lim, lim]^2; row i is y = axis[i]."""
        axis = torch.linspace(-lim, lim, size)
        gy, gx = torch.meshgrid(axis, axis, indexing="ij")
        e = self.energy(torch.stack([gx.flatten(), gy.flatten()], 1).to(next(self.parameters()).device))
        return axis, e.view(size, size).cpu()


# ----------------------------------------------------------------------------- the run


# (low, high) of every numeric setting; the tab's sliders use the same numbers.
RANGES: dict[str, tuple[float, float]] = {
    "steps": (1, MAX_STEPS), "seed": (0, MAX_SEED), "learning_rate": (1e-5, 0.1), "batch_size": (8, 1024),
    "sampler_steps": (1, 100), "step_size": (1e-5, 0.1), "hmc_step_size": (1e-3, 1.0), "leapfrog_steps": (1, 50),
    "energy_reg": (0.0, 10.0), "reinit": (0.0, 1.0), "noise_scale": (0.01, 1.0), "width": (4, 256), "depth": (1, 4),
    "update_every": (1, MAX_STEPS), "grid_size": (8, 200), "max_seconds": (0.01, MAX_SECONDS),
}


@dataclass
class LabConfig:
    """One lab run. Step sizes: Langevin moves x <- x - step_size grad E + sqrt(2 step_size) eps (it
    samples exp(-E)); HMC takes leapfrog steps of ``hmc_step_size``."""

    # Defaults: short-run chains from noise moved by HMC. On two moons (seeds 0-2) its energies put 0.92-0.95 of
    # long Langevin runs within 0.2 of the data; with Langevin negatives (5 steps of 0.003) the chains barely leave
    # their uniform start and the gap between the moons keeps a basin (0.55), and persistent chains mix too
    # slowly to find it (0.68-0.85).
    objective: str = "cd"
    sampler: str = "hmc"  # draws the negatives of cd / pcd, and the samples shown for dsm / ssm
    steps: int = 2000
    seed: int = 0
    learning_rate: float = 3e-3
    batch_size: int = 128
    sampler_steps: int = 4  # gradient evaluations per training step for the negatives
    step_size: float = 0.003
    hmc_step_size: float = 0.1
    leapfrog_steps: int = 4  # with sampler_steps 4: one HMC step (trajectory length 0.4) per training step
    energy_reg: float = 0.03  # cd / pcd: weight of mean E^2 on data and negatives (keeps energies bounded)
    reinit: float = 0.05  # pcd: fraction of chains restarted from noise each step
    noise_scale: float = 0.1  # dsm: sigma of the noise
    width: int = 64
    depth: int = 2
    update_every: int = 50  # stream an update every this many steps
    grid_size: int = 64
    max_seconds: float = MAX_SECONDS

    def checked(self) -> "LabConfig":
        """This config with every field checked (a ``LabError`` names the first bad one and its range)."""
        if self.objective not in OBJECTIVES:
            raise LabError(f"Unknown objective {self.objective!r}. Choose one of: {', '.join(OBJECTIVES)}.")
        if self.sampler not in SAMPLERS:
            raise LabError(f"Unknown sampler {self.sampler!r}. Choose one of: {', '.join(SAMPLERS)}.")
        values = {}
        for f in dataclasses.fields(self):
            if f.name in RANGES:
                lo, hi = RANGES[f.name]
                value = getattr(self, f.name)
                values[f.name] = (checks.integer(f.name, value, int(lo), int(hi), error=LabError) if f.type in ("int", int)
                                  else checks.number(f.name, value, lo, hi, error=LabError))
        return dataclasses.replace(self, **values)


@dataclass
class LabUpdate:
    """What the run looks like now. ``energy[i, j]`` is E at (axis[j], axis[i])."""

    step: int
    total_steps: int
    losses: list[float]
    axis: Tensor
    energy: Tensor
    data: Tensor
    negatives: Tensor
    seconds: float  # compute spent so far (CPU seconds of the training thread)
    done: bool = False
    message: str = ""  # why the run ended early; "" when it ran all its steps
    diverged: bool = False
    model: EnergyMLP | None = field(default=None, repr=False)  # the trained model, on the last update only
    config: LabConfig | None = field(default=None, repr=False)


def _uniform(n: int, g: torch.Generator) -> Tensor:
    return (torch.rand(n, 2, generator=g) * 2 - 1) * CANVAS


def _cd_loss(model: EnergyMLP, data: Tensor, negatives: Tensor, reg: float) -> Tensor:
    e = model(torch.cat([data, negatives]))
    pos, neg = e[: len(data)], e[len(data):]
    return pos.mean() - neg.mean() + reg * (pos.pow(2).mean() + neg.pow(2).mean())


def _dsm_loss(model: EnergyMLP, data: Tensor, sigma: float, g: torch.Generator) -> Tensor:
    noise = torch.randn(data.shape, generator=g)
    noisy = (data + sigma * noise).requires_grad_(True)
    (grad,) = torch.autograd.grad(model(noisy).sum(), noisy, create_graph=True)
    # The score of the noising kernel at x + sigma eps is -eps / sigma; the model's score is -grad E.
    # Weighted by sigma^2 (Vincent 2011), the loss is 0.5 |sigma grad E - eps|^2.
    return 0.5 * (sigma * grad - noise).pow(2).sum(1).mean()


def _ssm_loss(model: EnergyMLP, data: Tensor, g: torch.Generator) -> Tensor:
    x = data.clone().requires_grad_(True)
    v = torch.randn(data.shape, generator=g)
    (grad,) = torch.autograd.grad(model(x).sum(), x, create_graph=True)
    (hv,) = torch.autograd.grad((grad * v).sum(), x, create_graph=True)
    # s = -grad E, so v^T (ds/dx) v = -v^T H v; the |s|^2 / 2 term is the variance-reduced form for Gaussian v.
    return (-(v * hv).sum(1) + 0.5 * grad.pow(2).sum(1)).mean()


def _chains(model: EnergyMLP, x0: Tensor, cfg: LabConfig, g: torch.Generator, budget: int) -> Tensor:
    """Advance chains by ``budget`` gradient evaluations with the configured sampler."""
    if cfg.sampler == "hmc":
        x, _ = hmc(model, x0, max(1, budget // cfg.leapfrog_steps), cfg.hmc_step_size, cfg.leapfrog_steps, generator=g,
                   check_finite=False)
    else:
        x, _ = langevin(model, x0, steps=budget, step_size=cfg.step_size, noise_std=math.sqrt(2 * cfg.step_size),
                        generator=g, check_finite=False)
    return x


def train_stream(points, config: LabConfig | None = None,
                 should_stop: Callable[[], bool] | None = None) -> Iterator[LabUpdate]:
    """Train an ``EnergyMLP`` on ``points`` ([N, 2] inside the canvas) and yield what it looks like: first the
    untrained landscape, then every ``update_every`` steps, then a final update with ``done=True`` and the
    model. See the module docstring for the objectives and the stopping rules."""
    cfg = (config or LabConfig()).checked()
    data = check_points(points)
    g = torch.Generator().manual_seed(cfg.seed)
    model = EnergyMLP(EnergyMLPConfig(width=cfg.width, depth=cfg.depth))
    model.reset_parameters(g)
    model.train()
    chains = _uniform(cfg.batch_size if cfg.objective in ("cd", "pcd") else 256, g)
    losses: list[float] = []
    spent = 0.0
    clock = time.thread_time()  # compute time: CPU time of this thread, summed between yields

    def update(step: int, negatives: Tensor, **kw) -> LabUpdate:
        axis, energy = model.landscape(cfg.grid_size)
        return LabUpdate(step, cfg.steps, list(losses), axis, energy, data, negatives.detach().clone(), spent, config=cfg, **kw)

    good = update(0, chains)
    good_state = {k: v.clone() for k, v in model.state_dict().items()}
    yield good
    clock = time.thread_time()  # the consumer may resume us on another thread
    # Made after the first update: the first Adam of a process imports torch._dynamo (~2 s of CPU here).
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate)
    # Cosine decay to zero over the planned steps: the last weights average out the noise of the short-run
    # negatives instead of carrying the last step's.
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: 0.5 * (1 + math.cos(math.pi * min(i, cfg.steps) / cfg.steps)))
    message, diverged, step = "", False, 0
    for step in range(1, cfg.steps + 1):
        check_deadline()
        if should_stop is not None and should_stop():
            message, step = f"Stopped on request after {step - 1} steps.", step - 1
            break
        batch = data[torch.randint(0, len(data), (cfg.batch_size,), generator=g)]
        if cfg.objective in ("cd", "pcd"):
            if cfg.objective == "pcd":
                fresh = torch.rand(len(chains), generator=g) < cfg.reinit
                x0 = torch.where(fresh[:, None], _uniform(len(chains), g), chains)
            else:
                x0 = _uniform(len(chains), g)
            chains = _chains(model, x0, cfg, g, cfg.sampler_steps)
            loss = _cd_loss(model, batch, chains, cfg.energy_reg)
        elif cfg.objective == "dsm":
            loss = _dsm_loss(model, batch, cfg.noise_scale, g)
        else:
            loss = _ssm_loss(model, batch, g)
        value = float(loss.detach())
        if not math.isfinite(value):
            model.load_state_dict(good_state)
            message = (f"Training diverged at step {step} (the loss is {value}); kept the landscape of step {good.step}. "
                       "Lower the learning rate or the sampler's step size.")
            diverged, step = True, good.step
            break
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(value)
        if step % BUDGET_CHECK_EVERY == 0 or step % cfg.update_every == 0:
            now = time.thread_time()  # a system call: under load each one can cost a trip through the scheduler
            spent, clock = spent + now - clock, now
        if spent > cfg.max_seconds:
            message = f"Stopped after {step} steps: the compute budget of {cfg.max_seconds:g} s per run is spent."
            break
        if step % cfg.update_every == 0 and step < cfg.steps:
            if cfg.objective in ("dsm", "ssm"):  # no negatives in training: show where the model's chains are
                chains = _chains(model, chains, cfg, g, 10)
            good = update(step, chains)
            good_state = {k: v.clone() for k, v in model.state_dict().items()}
            yield good
            clock = time.thread_time()
    model.eval().requires_grad_(False)
    if diverged:
        final = dataclasses.replace(good, done=True, message=message, diverged=True, model=model, losses=list(losses), seconds=spent)
    else:
        if cfg.objective in ("dsm", "ssm"):
            chains = _chains(model, chains, cfg, g, 10)
        spent += time.thread_time() - clock
        final = update(step, chains, done=True, message=message, model=model)
    yield final


def train(points, config: LabConfig | None = None) -> LabUpdate:
    """Run ``train_stream`` to the end and return its last update (``.model`` is the trained energy)."""
    last = None
    for last in train_stream(points, config):
        pass
    return last


def fraction_near(samples: Tensor, data: Tensor, radius: float = 0.2) -> float:
    """The fraction of ``samples`` within ``radius`` of some data point (the lab's sample-quality measure)."""
    return float((torch.cdist(samples.float(), data.float()).min(1).values <= radius).float().mean())
