"""CoopFlow: a normalizing flow proposes, a short-run Langevin flow on an EBM refines (Xie et al., ICLR 2022;
Zhu thesis ch. 4). Notes: shared/papers/cdrl-coopflow-notes.md, part A.

Two models, trained cooperatively (Algorithm 3, see train/coopflow.py):

* **Flow** q(x): a small Glow/RealNVP-style flow at 32x32 grey. Three levels of
  [squeeze, K x (actnorm, invertible 1x1 conv, affine coupling), split]; every
  layer has an exact inverse and a closed-form log-determinant. The factored-out
  latents are concatenated into one vector z ~ N(0, I) of size 1024.
* **EBM** f(x): the paper's negative energy (Table 4.3, scaled down): 3x3 conv +
  Swish, three residual blocks (two 3x3 convs + Swish, a 3x3 conv shortcut, 2x2
  average pooling) to 4x4, a 4x4 valid conv, summed to a scalar. No normalisation.
  The studio's energy is E(x) = -f(x) (lower = more probable).

Dequantisation. Images are 8-bit; the flow is a density on y in [0, 1]^D with
y = ((x + 1)/2 * 255 + u) / 256, u ~ U(0, 1)^D (uniform dequantisation: exactly
(k + u)/256 for a data pixel k). Refined samples are continuous and clamped to
[-1, 1]; they go through the same map, so no point mass at the clamp bounds can
make the flow's likelihood unbounded. Then, as in RealNVP, p = a + (1 - 2a) y and
s = logit(p) (a = 0.05) keep the coupling layers away from the [0, 1] boundary;
the log-determinant of that map is part of log q. Flow samples are mapped back
with the inverse (u at its mean 1/2) and clipped to [-1, 1].

Langevin mapping onto ``studio.langevin``: the paper's Eq. 4.2 is
x <- x + (delta^2/2) grad f(x) + delta eps, so ``step_size = delta^2 / 2`` on
grad E = -grad f and ``noise_std = noise * delta``. The paper trains and samples
without the noise term (noise = 0, the default), with delta = 0.03 in training and
4/3 of it at test time. The authors' code also clips each update to +-0.1; the
engine has no per-update clip, so here only the [-1, 1] clamp bounds the chain.

Sampler defaults. ``sample``/``refine``/``interpolate`` called without T, delta or noise use the
checkpoint's ``sampler_defaults`` (config.json; chosen on validation images by
train/coopflow_choose_sampler.py), else the config's values. The T the EBM was trained with stays
``trained_steps``: a short-run EBM is not a convergent sampler, so chains much longer than it degrade.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import checks
from .errors import CheckpointError, SamplingError
from .kinds import register_model
from .langevin import Trace, langevin, make_generators, parse_seeds, randn
from .nn import sn_conv
from .protocol import EnergySpec, SampleOutput, StudioModel, TaskSpec, relative_noise

LOG2 = math.log(2.0)
MAX_STEPS = 1000  # Langevin steps T of one call
MAX_INTERPOLATION_FRAMES = 256  # frames of one interpolation


# ----------------------------------------------------------------------------- flow layers
# Each layer maps h -> h' in the normalising direction (data -> latent) with forward(h) -> (h', logdet [B])
# and back with inverse(h'). logdet is log|det dh'/dh| per sample.


def squeeze(h: Tensor) -> Tensor:
    """[B, C, H, W] -> [B, 4C, H/2, W/2] (space to depth); volume preserving."""
    b, c, hh, ww = h.shape
    h = h.view(b, c, hh // 2, 2, ww // 2, 2).permute(0, 1, 3, 5, 2, 4)
    return h.reshape(b, c * 4, hh // 2, ww // 2)


def unsqueeze(h: Tensor) -> Tensor:
    b, c, hh, ww = h.shape
    h = h.view(b, c // 4, 2, 2, hh, ww).permute(0, 1, 4, 2, 5, 3)
    return h.reshape(b, c // 4, hh * 2, ww * 2)


class ActNorm(nn.Module):
    """Per-channel affine h' = (h + bias) * exp(logs); data-dependent init on the first training batch (Glow)."""

    def __init__(self, channels: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.logs = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.register_buffer("initialized", torch.tensor(0, dtype=torch.uint8))

    @torch.no_grad()
    def _init(self, h: Tensor) -> None:
        mean = h.mean(dim=(0, 2, 3), keepdim=True)
        std = h.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-3)
        self.bias.copy_(-mean)
        self.logs.copy_(-std.log())
        self.initialized.fill_(1)

    def forward(self, h: Tensor) -> tuple[Tensor, Tensor]:
        if self.training and not bool(self.initialized):
            self._init(h)
        logdet = self.logs.sum() * h.shape[2] * h.shape[3]
        return (h + self.bias) * self.logs.exp(), logdet.expand(h.shape[0])

    def inverse(self, h: Tensor) -> Tensor:
        return h * (-self.logs).exp() - self.bias


class InvConv1x1(nn.Module):
    """Invertible 1x1 convolution (Glow), initialised to a random rotation; logdet = H W log|det W|."""

    def __init__(self, channels: int):
        super().__init__()
        w = torch.linalg.qr(torch.randn(channels, channels))[0]
        self.weight = nn.Parameter(w)

    def forward(self, h: Tensor) -> tuple[Tensor, Tensor]:
        logdet = torch.linalg.slogdet(self.weight)[1] * h.shape[2] * h.shape[3]
        return F.conv2d(h, self.weight[:, :, None, None]), logdet.expand(h.shape[0])

    def inverse(self, h: Tensor) -> Tensor:
        return F.conv2d(h, torch.linalg.inv(self.weight)[:, :, None, None])


class AffineCoupling(nn.Module):
    """h = (a, b): b' = (b + t(a)) * exp(log_s(a)), a unchanged, with log_s = B tanh(r(a) / B) (B = 3).

    The last conv starts at zero, so each coupling starts as the identity. The scale is bounded on *both*
    sides: sampling runs the inverse, which divides by the scale, and Glow's one-sided sigmoid scale let a
    few latents overflow to inf/NaN there."""

    max_log_scale = 3.0

    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.half = channels // 2
        self.net = nn.Sequential(sn_conv(self.half, hidden, 3, sn=False), nn.ReLU(), sn_conv(hidden, hidden, 1, sn=False),
                                 nn.ReLU(), sn_conv(hidden, 2 * (channels - self.half), 3, sn=False))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def _st(self, a: Tensor) -> tuple[Tensor, Tensor]:
        raw, t = self.net(a).chunk(2, dim=1)
        b = self.max_log_scale
        return b * torch.tanh(raw / b), t

    def forward(self, h: Tensor) -> tuple[Tensor, Tensor]:
        a, b = h[:, : self.half], h[:, self.half :]
        log_s, t = self._st(a)
        return torch.cat([a, (b + t) * log_s.exp()], 1), log_s.flatten(1).sum(1)

    def inverse(self, h: Tensor) -> Tensor:
        a, b = h[:, : self.half], h[:, self.half :]
        log_s, t = self._st(a)
        return torch.cat([a, b * (-log_s).exp() - t], 1)


class FlowStep(nn.Module):
    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.layers = nn.ModuleList([ActNorm(channels), InvConv1x1(channels), AffineCoupling(channels, hidden)])

    def forward(self, h: Tensor) -> tuple[Tensor, Tensor]:
        total = h.new_zeros(h.shape[0])
        for layer in self.layers:
            h, ld = layer(h)
            total = total + ld
        return h, total

    def inverse(self, h: Tensor) -> Tensor:
        for layer in reversed(self.layers):
            h = layer.inverse(h)
        return h


class Flow(nn.Module):
    """Multi-scale flow on s = logit(a + (1 - 2a) y): per level squeeze, K steps, then split off half the
    channels (all of them at the last level). ``encode`` returns z [B, C*H*W] and log|det dz/ds|."""

    def __init__(self, channels: int, image_size: int, levels: int, steps_per_level: int, hidden: int):
        super().__init__()
        self.channels, self.image_size = channels, image_size
        if image_size % (2**levels):
            raise ValueError(f"image_size {image_size} must be divisible by 2**levels = {2**levels}")
        self.levels = nn.ModuleList()
        self.shapes: list[tuple[int, int, int]] = []  # shape of each factored-out block
        c, r = channels, image_size
        for i in range(levels):
            c, r = c * 4, r // 2
            self.levels.append(nn.ModuleList(FlowStep(c, hidden) for _ in range(steps_per_level)))
            out = c if i == levels - 1 else c // 2
            self.shapes.append((out, r, r))
            c -= out if i < levels - 1 else 0

    @property
    def dim(self) -> int:
        return self.channels * self.image_size**2

    def encode(self, s: Tensor) -> tuple[Tensor, Tensor]:
        logdet = s.new_zeros(s.shape[0])
        h, zs = s, []
        for i, steps in enumerate(self.levels):
            h = squeeze(h)
            for step in steps:
                h, ld = step(h)
                logdet = logdet + ld
            out = self.shapes[i][0]
            if i < len(self.levels) - 1:
                zs.append(h[:, :out].flatten(1))
                h = h[:, out:]
            else:
                zs.append(h.flatten(1))
        return torch.cat(zs, 1), logdet

    def decode(self, z: Tensor) -> Tensor:
        sizes = [math.prod(s) for s in self.shapes]
        parts = list(z.split(sizes, dim=1))
        h = None
        for i in range(len(self.levels) - 1, -1, -1):
            zi = parts[i].view(z.shape[0], *self.shapes[i])
            h = zi if h is None else torch.cat([zi, h], 1)
            for step in reversed(self.levels[i]):
                h = step.inverse(h)
            h = unsqueeze(h)
        return h


# ----------------------------------------------------------------------------- EBM


class ResBlock(nn.Module):
    """Table 4.3(b): Swish(conv(Swish(conv(x)))) + Swish(conv(x)), then 2x2 average pooling."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1 = sn_conv(cin, cout, 3, sn=False)
        self.conv2 = sn_conv(cout, cout, 3, sn=False)
        self.skip = sn_conv(cin, cout, 3, sn=False)

    def forward(self, x: Tensor) -> Tensor:
        h = F.silu(self.conv2(F.silu(self.conv1(x)))) + F.silu(self.skip(x))
        return F.avg_pool2d(h, 2)


class CoopEBM(nn.Module):
    """f(x) (higher = more probable): conv + Swish, residual blocks 2c, 4c, 8c down to 4x4, 4x4 conv, sum."""

    def __init__(self, channels: int, width: int, head_channels: int, image_size: int):
        super().__init__()
        self.inp = sn_conv(channels, width, 3, sn=False)
        widths = [width, 2 * width, 4 * width, 8 * width]
        self.blocks = nn.Sequential(*(ResBlock(a, b) for a, b in zip(widths[:-1], widths[1:])))
        self.head = nn.Conv2d(widths[-1], head_channels, image_size // 8)

    def forward(self, x: Tensor) -> Tensor:
        h = self.blocks(F.silu(self.inp(x)))
        return F.silu(self.head(h)).flatten(1).sum(1)


# ----------------------------------------------------------------------------- model


@dataclass
class CoopFlowConfig:
    image_size: int = 32
    channels: int = 1
    flow_levels: int = 3
    flow_steps: int = 4  # flow steps (actnorm, 1x1 conv, coupling) per level
    flow_hidden: int = 64
    logit_alpha: float = 0.05
    ebm_width: int = 16
    ebm_head: int = 100
    langevin_steps: int = 30  # T in training
    train_step_size: float = 0.03  # delta in training
    step_size: float = 0.04  # delta for sampling (the paper: 4/3 of the training delta)
    noise: float = 0.0  # Langevin noise as a fraction of delta (the paper: none)
    # Clip of each pixel's Langevin drift per step (the authors' code: 0.1; 0 = none, the first checkpoints). With it
    # the EBM's energy scale may grow in training without a step ever throwing a pixel across the range.
    update_clip: float = 0.0


@dataclass
class CoopFlowSamples:
    """Flow proposals and the same samples after the Langevin flow, both in [-1, 1]."""

    flow: Tensor
    refined: Tensor
    trace: Trace
    seeds: list[int]


@dataclass
class CoopFlowInterpolation:
    """A straight line between two flow latents: frame i decodes z_i = (1 - a_i) z_a + a_i z_b (``flow``), then the
    Langevin flow refines every frame (``refined``); both [n, C, S, S] in [-1, 1]."""

    flow: Tensor
    refined: Tensor
    trace: Trace
    seeds: tuple[int, int]
    alphas: list[float]


def sampler_defaults_from(config: CoopFlowConfig, extra: Mapping[str, Any] | None = None) -> dict:
    """T (``steps``), delta (``step_size``) and ``noise`` for sampling: the checkpoint's ``sampler_defaults`` entry of
    config.json (``extra``) where it has one, else the config's. A malformed entry is a CheckpointError."""
    out = {"steps": config.langevin_steps, "step_size": config.step_size, "noise": config.noise}
    stored = (extra or {}).get("sampler_defaults")
    if stored is None:
        return out
    if not isinstance(stored, Mapping):
        raise CheckpointError(f"config.json: sampler_defaults must be an object; got {stored!r}.")
    where = "config.json sampler_defaults"
    if "steps" in stored:
        out["steps"] = checks.integer(f"{where}: steps", stored["steps"], 0, MAX_STEPS, error=CheckpointError)
    if "step_size" in stored:
        out["step_size"] = checks.number(f"{where}: step_size", stored["step_size"], 1e-6, 1, error=CheckpointError)
    if "noise" in stored:
        out["noise"] = checks.number(f"{where}: noise", stored["noise"], 0, 1, error=CheckpointError)
    return out


@register_model("coopflow")
class CoopFlow(nn.Module, StudioModel):
    """Normalizing flow + EBM; ``sample`` returns the flow's proposals and their Langevin refinement."""

    config_class = CoopFlowConfig

    def __init__(self, config: CoopFlowConfig):
        super().__init__()
        self.config = c = config
        self.flow = Flow(c.channels, c.image_size, c.flow_levels, c.flow_steps, c.flow_hidden)
        self.ebm = CoopEBM(c.channels, c.ebm_width, c.ebm_head, c.image_size)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def trained_steps(self) -> int:
        """T of the Langevin flow the EBM was trained with (longer chains are past what it learned)."""
        return self.config.langevin_steps

    def sampler_defaults(self) -> dict:
        """``{"steps", "step_size", "noise"}`` used when a sampling call leaves them None (see the module docstring)."""
        info = getattr(self, "checkpoint", None)  # set by studio.load; a model built in code has none
        return sampler_defaults_from(self.config, info.extra if info is not None else None)

    # -- EBM ---------------------------------------------------------------------------------

    def _images(self, x, finite: bool = False) -> Tensor:
        """A real tensor [B, C, S, S] of this model's image shape, on its device; ``finite`` also checks the values (a sync,
        so not inside the Langevin loop, which checks its own states)."""
        c = self.config
        x = checks.images("Images", x, (c.channels, c.image_size, c.image_size)).to(self.device)
        return checks.finite("Images", x) if finite else x

    def energy(self, x: Tensor) -> Tensor:
        """E(x) = -f(x) (lower = more probable)."""
        return -self.ebm(self._images(x))

    # -- flow density ------------------------------------------------------------------------

    def dequantize(self, x: Tensor, u: Tensor) -> Tensor:
        """x in [-1, 1] and u ~ U(0, 1) -> y = ((x + 1)/2 * 255 + u) / 256 in [0, 1]."""
        return ((x.clamp(-1, 1) + 1) / 2 * 255 + u) / 256

    def _to_logit(self, y: Tensor) -> tuple[Tensor, Tensor]:
        """y -> s = logit(a + (1 - 2a) y) and log|det ds/dy| per sample."""
        a = self.config.logit_alpha
        p = a + (1 - 2 * a) * y
        s = torch.log(p) - torch.log1p(-p)
        logdet = (math.log(1 - 2 * a) - torch.log(p) - torch.log1p(-p)).flatten(1).sum(1)
        return s, logdet

    def _from_logit(self, s: Tensor) -> Tensor:
        a = self.config.logit_alpha
        return (torch.sigmoid(s) - a) / (1 - 2 * a)

    def log_prob_y(self, y: Tensor) -> Tensor:
        """log q(y) per sample: the flow's density on dequantized images y in [0, 1]^D."""
        s, ld_s = self._to_logit(y)
        z, ld_z = self.flow.encode(s)
        log_pz = -0.5 * (z.pow(2) + math.log(2 * math.pi)).sum(1)
        return log_pz + ld_z + ld_s

    def nll_bits_per_dim(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Bits per dimension of 8-bit images x in [-1, 1] (one dequantisation draw; an upper bound in expectation)."""
        x = self._images(x, finite=True)
        u = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return self._bits_per_dim(self.dequantize(x, u))

    def _bits_per_dim(self, y: Tensor) -> Tensor:
        """Per-sample bits per dimension of 8-bit images from the density of their dequantised values y."""
        return -self.log_prob_y(y) / (y[0].numel() * LOG2) + 8.0

    def decode(self, z: Tensor) -> Tensor:
        """Latents [B, D] -> flow images in [-1, 1] (inverse of the dequantisation with u = 1/2, clipped)."""
        c = self.config
        if not isinstance(z, Tensor) or z.dim() != 2 or z.shape[1] != self.flow.dim or not z.is_floating_point():
            raise SamplingError(f"Latents must be a float tensor [B, {self.flow.dim}]; got "
                                f"{tuple(z.shape) if isinstance(z, Tensor) else type(z).__name__}.")
        y = self._from_logit(self.flow.decode(z))
        return (2 * (256 * y - 0.5) / 255 - 1).clamp(-1, 1).view(z.shape[0], c.channels, c.image_size, c.image_size)

    def latents(self, generators, temperature: float = 1.0) -> Tensor:
        return temperature * randn((len(generators), self.flow.dim), generators).to(self.device)

    # -- sampling ----------------------------------------------------------------------------

    def refine(self, x0: Tensor, *, steps: int | None = None, step_size: float | None = None, noise: float | None = None,
               generator=None, record_every: int = 0, progress: bool = False) -> tuple[Tensor, Trace]:
        """T Langevin steps on E = -f from x0: step_size = delta^2/2, noise_std = noise * delta, clamp [-1, 1].
        None takes the sampler default (``sampler_defaults``). Non-finite starts are refused, and a chain that turns
        non-finite raises a SamplingError (the engine checks every step), so no NaN ever comes back as an image."""
        d = self.sampler_defaults() if any(v is None for v in (steps, step_size, noise)) else {}
        x0 = self._images(x0, finite=True)
        t = d["steps"] if steps is None else checks.integer("Langevin steps", steps, 0, MAX_STEPS)
        delta = d["step_size"] if step_size is None else checks.number("Langevin step size delta", step_size, 0, 1)
        nz = d["noise"] if noise is None else checks.number("Langevin noise (a fraction of delta)", noise, 0, 1)
        if delta <= 0:
            raise SamplingError(f"Langevin step size delta must be in (0, 1]; got {step_size}.")
        return langevin(self.energy, x0, steps=t, step_size=delta**2 / 2, noise_std=nz * delta, generator=generator,
                        clamp=(-1.0, 1.0), record_every=record_every, modules=[self.ebm], progress=progress, desc="CoopFlow",
                        max_move=self.config.update_clip or None)

    def sample(self, seeds="0-15", *, steps: int | None = None, step_size: float | None = None, noise: float | None = None,
               temperature: float = 1.0, record_every: int = 0, progress: bool = False) -> CoopFlowSamples:
        """Flow proposals x_hat = g(z), z from seed i, then T Langevin steps; returns both (and the Trace)."""
        if checks.number("temperature", temperature, 0, 2) <= 0:
            raise SamplingError(f"temperature must be in (0, 2]; got {temperature}.")
        seed_list = parse_seeds(seeds, max_count=1024)
        gens = make_generators(seed_list)
        x_flow, refined, trace = self._decode_and_refine(self.latents(gens, temperature), gens, steps, step_size, noise,
                                                         record_every, progress, "")
        return CoopFlowSamples(x_flow, refined, trace, seed_list)

    def _decode_and_refine(self, z: Tensor, gens, steps, step_size, noise, record_every: int, progress: bool,
                           where: str) -> tuple[Tensor, Tensor, Trace]:
        """Flow images of latents ``z`` (refused when non-finite) and their Langevin refinement, frame 0 labelled."""
        with torch.no_grad():
            x_flow = self.decode(z)
        if not torch.isfinite(x_flow).all():
            raise SamplingError(f"The flow produced non-finite values{where}; lower the temperature.")
        refined, trace = self.refine(x_flow, steps=steps, step_size=step_size, noise=noise, generator=gens,
                                     record_every=record_every, progress=progress)
        if record_every and trace.frame_labels:
            trace.frame_labels[0] = "flow proposal"
        return x_flow, refined, trace

    def interpolate(self, seed_a, seed_b, n: int = 8, *, steps: int | None = None, step_size: float | None = None,
                    noise: float | None = None, temperature: float = 1.0, record_every: int = 0,
                    progress: bool = False) -> CoopFlowInterpolation:
        """A straight line between the latents of ``seed_a`` and ``seed_b`` (z = (1 - a) z_a + a z_b, a = linspace(0, 1, n)),
        decoded by the flow and refined by the Langevin flow. Only an invertible flow gives such a path: every frame
        is the image of one latent. Frame 0 is exactly ``sample(seed_a)`` and frame n - 1 ``sample(seed_b)`` (at
        noise 0, the default; with noise every frame's chain gets seed_a's noise, so the frames differ only by
        their start and the path stays smooth)."""
        a = checks.seed("seed_a", seed_a)
        b = checks.seed("seed_b", seed_b)
        n = checks.integer("Interpolation frames n", n, 2, MAX_INTERPOLATION_FRAMES)
        if checks.number("temperature", temperature, 0, 2) <= 0:
            raise SamplingError(f"temperature must be in (0, 2]; got {temperature}.")
        gens = make_generators([a] * n)  # each draws z_a, then serves its frame's chain (as in sample(seed_a))
        z_a = self.latents(gens, temperature)
        z_b = self.latents(make_generators([b]), temperature)
        alphas = torch.linspace(0, 1, n, dtype=z_a.dtype, device=z_a.device)[:, None]
        # (1 - a) z_a + a z_b is exactly z_a at a = 0 and z_b at a = 1 (a lerp's rounding would not be).
        x_flow, refined, trace = self._decode_and_refine((1 - alphas) * z_a + alphas * z_b, gens, steps, step_size, noise,
                                                         record_every, progress, " along the interpolation")
        return CoopFlowInterpolation(x_flow, refined, trace, (a, b), [float(v) for v in alphas.flatten()])

    def generate(self, seeds="0-15", **kwargs) -> tuple[Tensor, Trace]:
        """The studio's common sampler contract: (refined samples, Trace)."""
        out = self.sample(seeds, **kwargs)
        return out.refined, out.trace

    # -- training pieces (used by train/coopflow.py; no optimiser here) -------------------------

    def flow_loss(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Mean bits per dimension of 8-bit data x (one uniform dequantisation draw)."""
        return self.nll_bits_per_dim(x, generator).mean()

    def sample_dequantize(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Refined samples -> y for the flow's maximum likelihood step. A pixel inside (-1, 1) is continuous already: it
        gets u = 1/2, the inverse of ``decode``, so an unmoved proposal maps back to exactly the point the flow drew.
        A fresh u there would train the flow on its own samples blurred by a 1/256 box at every step, which only
        raises its entropy (measured from the shipped checkpoint, 60 cooperative steps at flow lr 1e-5: bits/dim on its
        own refined samples rose 2.9 -> 4.0 when they were rounded to 8 bits and dequantised like data, and stayed
        within 2.4-3.2 with this map). A pixel at a clamp bound has lost its position, so it is
        dequantised like data (a fresh draw in the end cell): no point mass for the flow to collapse onto."""
        u = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        inside = (x > -1) & (x < 1)
        return self.dequantize(x, torch.where(inside, torch.full_like(u, 0.5), u))

    def sample_loss(self, x_refined: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Mean bits per dimension of refined samples (Algorithm 3: MLE on the Langevin flow's output)."""
        return self._bits_per_dim(self.sample_dequantize(self._images(x_refined, finite=True), generator)).mean()

    def propose_and_refine(self, n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Algorithm 3, lines 4-6, with the training T and delta; no gradient flows between the models."""
        c = self.config
        with torch.no_grad():
            z = torch.randn(n, self.flow.dim, generator=generator, device=self.device)
            # A rare non-finite proposal must not stop a long run: pin it inside [-1, 1] (sample() raises instead).
            x_flow = torch.nan_to_num(self.decode(z), nan=0.0, posinf=1.0, neginf=-1.0)
        was = self.ebm.training
        self.ebm.eval()
        refined, _ = self.refine(x_flow, steps=c.langevin_steps, step_size=c.train_step_size, noise=c.noise, generator=generator)
        self.ebm.train(was)
        return x_flow, refined.detach()

    def ebm_loss(self, x_data: Tensor, x_refined: Tensor, energy_reg: float = 0.0) -> dict[str, Tensor]:
        """Minimise mean f(x~) - mean f(x_data), i.e. mean E(data) - mean E(refined), plus ``energy_reg`` * mean(E^2)
        over both (0, the paper's loss, by default)."""
        e = self.energy(torch.cat([x_data, x_refined]))
        e_pos, e_neg = e.chunk(2)
        loss = e_pos.mean() - e_neg.mean() + energy_reg * e.pow(2).mean()
        return {"ebm_loss": loss, "e_data": e_pos.mean().detach(), "e_refined": e_neg.mean().detach()}

    # -- the model protocol (studio.protocol) ------------------------------------------------

    title = "CoopFlow"

    @classmethod
    def task_specs(cls, config: CoopFlowConfig) -> list[TaskSpec]:
        """generate: flow proposals refined by the Langevin flow, in the shared meanings (see ``_run``): ``step_size``
        delta^2/2 and ``noise`` the fraction of delta. Defaults from the config; ``tasks()`` of a loaded checkpoint
        gives its ``sampler_defaults`` instead (what a call that leaves them out uses)."""
        return [cls._generate_spec(config.langevin_steps, config.step_size, config.noise)]

    @staticmethod
    def _generate_spec(steps: int, delta: float, noise: float) -> TaskSpec:
        return TaskSpec("generate", "generate", {"steps": steps, "step_size": delta**2 / 2, "noise": noise, "temperature": 1.0},
                        describe="frame 0 is the normalizing flow's proposal, the rest its Langevin refinement under the EBM")

    def tasks(self) -> dict[str, TaskSpec]:
        d = self.sampler_defaults()
        return {"generate": self._generate_spec(d["steps"], d["step_size"], d["noise"])}

    @classmethod
    def image_energy_spec(cls, config: CoopFlowConfig) -> EnergySpec:
        return EnergySpec(describe=" (the EBM's energy -f(x), the one its Langevin refinement descends)")

    def image_energy(self, x: Tensor) -> Tensor:
        """E(x) = -f(x) of the EBM."""
        return self.energy(x)

    def _run(self, spec: TaskSpec, image, mask, *, seeds="0-15", record_every: int = 0, progress: bool = False,
             steps: int | None = None, step_size: float | None = None, noise=None, temperature: float = 1.0) -> SampleOutput:
        """``sample`` in the shared meanings. The paper's update x <- x + (delta^2/2) grad f + delta eps has the engine's
        step size delta^2/2, so the shared ``step_size`` converts as ``delta = sqrt(2 step_size)``; CoopFlow's own
        ``noise`` is already the fraction of delta = sqrt(2 step_size), the shared meaning. ``extras["proposals"]`` are
        the flow's samples before refinement."""
        delta = None
        if step_size is not None:
            delta = (2 * checks.number("step_size", step_size, 0, 0.5)) ** 0.5
        s = self.sample(seeds, steps=steps, step_size=delta, noise=None if noise is None else relative_noise(noise),
                        temperature=temperature, record_every=record_every, progress=progress)
        note = (f"frame 0 is the normalizing flow's proposal, the rest its {s.trace.num_steps} Langevin refinement steps "
                "under the EBM")
        return SampleOutput(s.refined, s.trace, {"proposals": s.flow, "seeds": s.seeds}, [note])
