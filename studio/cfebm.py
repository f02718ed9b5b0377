"""CF-EBM: a coarse-to-fine EBM that grows from 8x8 to 16x16 to 32x32 (Zhao, Xie and Li, ICLR 2021).

The energy E(x) (lower = more probable; the paper uses the same sign) is a
bottom-up ConvNet with SiLU activations and spectral norm. Growing a stage adds
a new FromRGB and Primal block at twice the resolution, faded in with beta:

    Expand(x) = beta * Primal(FromRGB_new(x)) + (1 - beta) * FromRGB_old(avgpool(x))

so at beta = 0 the grown model equals the old one on the average-pooled image.

Langevin mapping onto ``studio.langevin``: the paper's Eq. 3 is
x <- x - (eta/2) grad E + sqrt(eta) eps, but its appendix A.2 (what was run)
uses a gradient step of 1.0 and a decaying noise *variance*
eta_t = eta0 - eta0 / (T - t + 1). The appendix wins here:
``step_size = grad_step`` (default 1.0) and ``noise_std(t) = sqrt(eta_t)``.
Chains start from U(-1, 1); sampling uses the trained number of steps (more
steps oversaturate, a known pitfall). Multi-scale sampling keeps a frozen copy
of each finished stage and runs ``scale_steps`` steps per scale, upsampling 2x
in between (appendix A.8).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import checks
from .errors import SamplingError
from .kinds import register_model
from .langevin import Trace, langevin, make_generators, parse_seeds
from .nn import sn_conv, sn_linear
from .protocol import EnergySpec, SampleOutput, StudioModel, TaskSpec, relative_noise, seeds_for_images

MAX_STEPS = 1000  # Langevin steps per call (per scale): far past any trained T, still bounded work
MAX_ETA0 = 10.0  # initial noise variance (images live in [-1, 1])


@dataclass
class CFEBMConfig:
    channels: int = 1
    width: int = 32  # c: channels at the finest resolution; coarser blocks use 2c
    base_resolution: int = 8
    resolution: int = 8  # current (grown) resolution
    fading: bool = False  # a Fade branch exists (the last stage is blending in)
    coarse_resolutions: list[int] = field(default_factory=list)  # frozen finished stages kept for multi-scale sampling
    steps: dict[str, int] = field(default_factory=lambda: {"8": 15, "16": 30, "32": 40})  # trained T per resolution
    grad_step: float = 1.0
    eta0: float = 0.02
    scale_steps: int = 15
    # Clean ending (chosen by train/cfebm_choose_sampler.py on validation FD; see its docstring): the trained
    # schedule still injects noise of std sqrt(eta0 / 2) = 0.1 at its last step, which is the speckle on
    # every sample. ``final_steps`` noise-free steps of the same dynamics follow the trained chain.
    final_steps: int = 12
    # Multi-scale: the upsampled coarse sample is blended with fresh U(-1, 1) noise as in training's explicit
    # smooth sampling, x0 = sqrt(1 - b^2) up(x) + b noise; b = 0 is plain upsampling (appendix A.8).
    multiscale_blend: float = 0.0
    multiscale_steps: list[int] = field(default_factory=list)  # steps per scale, coarse to fine; [] = scale_steps each
    # Denoising runs a short stretch of the learned dynamics without injected noise: on Fashion-MNIST
    # validation images (noise std 0.3) PSNR peaks at 2-3 steps and falls below the input's by T = 30.
    denoise_steps: int = 3
    denoise_eta0: float = 0.0
    # Translation models (CF-EBM section 6): the energy of target_domain, chains start at source_domain images.
    source_domain: str = ""
    target_domain: str = ""
    # Translating follows the learned drift without injected noise: on 200 Twitter/Google *training*
    # pairs, PSNR to the true target was 11.93 dB at eta0 = 0 vs 11.77 dB at the training eta0 = 0.02.
    translate_eta0: float = 0.0


def noise_schedule(eta0: float, steps: int):
    """sqrt(eta_t) with eta_t = eta0 - eta0 / (T - t + 1): the noise decays to zero at the last step."""
    return lambda t: math.sqrt(max(eta0 - eta0 / (steps - t + 1), 0.0))


class Primal(nn.Module):
    """Two 3x3 convs (the second with stride 2) plus a residual branch (1x1 conv + 2x2 avg-pool)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1 = sn_conv(cin, cout, 3)
        self.conv2 = spectral_strided(cout, cout)
        self.skip = sn_conv(cin, cout, 1)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv2(F.silu(self.conv1(F.silu(x))))
        return h + F.avg_pool2d(self.skip(x), 2)


def spectral_strided(cin: int, cout: int) -> nn.Module:
    return nn.utils.parametrizations.spectral_norm(nn.Conv2d(cin, cout, 3, stride=2, padding=1))


class Top(nn.Module):
    """4x4 features -> scalar: 3x3 conv, 4x4 valid conv, linear."""

    def __init__(self, c: int):
        super().__init__()
        self.conv = sn_conv(c, c, 3)
        self.conv4 = nn.utils.parametrizations.spectral_norm(nn.Conv2d(c, c, 4))
        self.out = sn_linear(c, 1)

    def forward(self, h: Tensor) -> Tensor:
        h = self.conv4(F.silu(self.conv(F.silu(h))))
        return self.out(F.silu(h).flatten(1)).squeeze(1)


class GrowingEnergy(nn.Module):
    """The trunk for one resolution: FromRGB at the top resolution, Primal blocks down to 4x4, Top."""

    def __init__(self, channels: int, width: int, base: int, resolution: int, fading: bool):
        super().__init__()
        self.resolution = resolution
        _resolutions(base, resolution)  # validates the sizes
        # The trunk always reaches 4x4 through Primal blocks at every scale from 8 px up, whatever
        # resolution training started at (a 16 px first stage starts with the 16 and 8 px blocks).
        res_list = _resolutions(8, resolution)
        self.from_rgb = nn.Conv2d(channels, width_at(resolution, width), 1)
        self.blocks = nn.ModuleDict({str(r): Primal(width_at(r, width), width_at(r // 2, width)) for r in res_list})
        self.top = Top(width_at(4, width))
        # Fade: the previous stage's FromRGB applied to the 2x average-pooled image.
        self.fade = nn.Conv2d(channels, width_at(resolution // 2, width), 1) if fading else None
        self.register_buffer("beta", torch.tensor(1.0 if not fading else 0.0))

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1] != self.resolution:
            raise SamplingError(f"This CF-EBM works at {self.resolution}x{self.resolution}; got {tuple(x.shape[-2:])}.")
        h = self.blocks[str(self.resolution)](self.from_rgb(x))
        if self.fade is not None and float(self.beta) < 1:
            h = self.beta * h + (1 - self.beta) * self.fade(F.avg_pool2d(x, 2))
        r = self.resolution // 2
        while r >= 8:
            h = self.blocks[str(r)](h)
            r //= 2
        return self.top(h)


def width_at(resolution: int, c: int) -> int:
    """Channels at a resolution, fixed across stages so grown blocks keep their shapes: 2c up to 16 px, then halving."""
    return max(1, min(2 * c, c * 32 // resolution))


def _resolutions(base: int, resolution: int) -> list[int]:
    if resolution < base or resolution & (resolution - 1) or base < 8:
        raise ValueError(f"resolution {resolution} must be a power of two >= base {base} >= 8")
    out, r = [], base
    while r <= resolution:
        out.append(r)
        r *= 2
    return out


@register_model("cfebm")
class CFEBM(nn.Module, StudioModel):
    """A grown CF-EBM with its frozen coarse stages; generation, restoration and OOD scoring."""

    config_class = CFEBMConfig

    def __init__(self, config: CFEBMConfig):
        super().__init__()
        self.config = config
        c = config
        self.net = GrowingEnergy(c.channels, c.width, c.base_resolution, c.resolution, c.fading)
        self.coarse = nn.ModuleDict({str(r): GrowingEnergy(c.channels, c.width, c.base_resolution, r, False)
                                     for r in c.coarse_resolutions})

    # -- energies --------------------------------------------------------------------------

    def energy(self, x: Tensor) -> Tensor:
        """E(x) at the current resolution (lower = more probable)."""
        if not isinstance(x, Tensor) or x.dim() != 4:
            raise SamplingError(f"energy expects a tensor [N, C, H, W]; got {tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__}.")
        return self.net(x)

    def ood_score(self, x: Tensor) -> Tensor:
        """-E(x): higher = more in-distribution. Inputs must be at the model's resolution."""
        res = self.config.resolution
        x = checks.images("Images", x, (self.config.channels, res, res))
        if not torch.isfinite(x).all():
            raise SamplingError("Images contain NaN or infinite values.")
        with torch.no_grad():
            return -self.energy(x.to(next(self.parameters()).device))

    def trained_steps(self, resolution: int | None = None) -> int:
        return int(self.config.steps[str(resolution or self.config.resolution)])

    # -- growth (used by train/cfebm.py) ------------------------------------------------------

    def expanded_config(self) -> CFEBMConfig:
        c = self.config
        coarse = sorted(set(c.coarse_resolutions) | {c.resolution})
        return CFEBMConfig(**{**c.__dict__, "resolution": c.resolution * 2, "fading": True, "coarse_resolutions": coarse})

    def expand(self) -> CFEBM:
        """A new model at twice the resolution whose energy at beta = 0 equals this one's on avg-pooled input.

        The trunk (Primal blocks below the new resolution and Top) is copied; the
        old FromRGB becomes the Fade branch; this stage is frozen into ``coarse``.
        """
        new = CFEBM(self.expanded_config()).to(next(self.parameters()).device)
        old_net, new_net = self.net, new.net
        for r, block in old_net.blocks.items():
            new_net.blocks[r].load_state_dict(block.state_dict())
        new_net.top.load_state_dict(old_net.top.state_dict())
        new_net.fade.load_state_dict(old_net.from_rgb.state_dict())
        for r, m in self.coarse.items():
            new.coarse[r].load_state_dict(m.state_dict())
        new.coarse[str(self.config.resolution)].load_state_dict(old_net.state_dict(), strict=False)
        new.coarse[str(self.config.resolution)].beta.fill_(1.0)
        new.net.beta.fill_(0.0)
        return new

    def drop_fade(self) -> CFEBM:
        """At beta = 1 the Fade branch is dead weight: return the model without it."""
        cfg = CFEBMConfig(**{**self.config.__dict__, "fading": False})
        new = CFEBM(cfg).to(next(self.parameters()).device)
        state = {k: v for k, v in self.state_dict().items() if not k.startswith("net.fade.")}
        state["net.beta"] = torch.tensor(1.0)
        new.load_state_dict(state)
        return new

    # -- sampling ------------------------------------------------------------------------------

    def _chain(self, energy_fn, x0, steps, gens, eta0=None, record_every=0, mask=None, known=None, progress=False, desc="CF-EBM"):
        eta0 = self.config.eta0 if eta0 is None else eta0
        return langevin(energy_fn, x0, steps=steps, step_size=self.config.grad_step, noise_std=noise_schedule(eta0, steps),
                        generator=gens, mask=mask, known=known, clamp=(-1.0, 1.0), record_every=record_every,
                        progress=progress, desc=desc, modules=[self])

    def _uniform(self, gens, resolution: int) -> Tensor:
        shape = (len(gens), self.config.channels, resolution, resolution)
        return (torch.stack([torch.rand(shape[1:], generator=g) for g in gens]) * 2 - 1).to(next(self.parameters()).device)

    def generate(self, seeds="0-15", steps: int | None = None, eta0: float | None = None, multiscale: bool = False,
                 final_steps: int | None = None, blend: float | None = None, record_every: int = 0,
                 progress: bool = False) -> SampleOutput:
        """Algorithm 2 (single scale, T trained steps from U(-1,1)) or the coarse-to-fine chain, then
        ``final_steps`` noise-free steps (default ``config.final_steps``; 0 ends where the trained chain ends,
        with its last injected noise). ``blend`` (multi-scale only; default ``config.multiscale_blend``) is the
        share of fresh noise mixed into each upsampled coarse sample. The Trace has one segment per scale
        (multi-scale) and a "clean" segment for the final steps."""
        gens = make_generators(parse_seeds(seeds, max_count=1024))
        eta0 = None if eta0 is None else checks.number("eta0", eta0, 0, MAX_ETA0)
        final = self.config.final_steps if final_steps is None else checks.integer("final_steps", final_steps, 0, MAX_STEPS)
        if not multiscale:
            k = self.trained_steps() if steps is None else checks.integer("steps", steps, 1, MAX_STEPS)
            x, trace = self._chain(self.energy, self._uniform(gens, self.config.resolution), k, gens, eta0, record_every,
                                   progress=progress)
            if final:
                trace = Trace().extend(trace, f"{self.config.resolution}px")
        else:
            x, trace = self._multiscale(gens, steps, eta0, blend, record_every, progress)
        if final:
            # eta0 = 0 makes the schedule zero at every step: plain gradient descent on E from the chain's end.
            x, clean = self._chain(self.energy, x, final, gens, 0.0, record_every, progress=progress, desc="CF-EBM clean")
            trace.extend(clean, "clean")
        return SampleOutput(x, trace)

    def scales(self) -> list[int]:
        """The multi-scale chain's resolutions, coarse to fine."""
        return [*sorted(map(int, self.coarse)), self.config.resolution]

    def _multiscale(self, gens, steps, eta0, blend, record_every, progress) -> tuple[Tensor, Trace]:
        per_scale, b = self._multiscale_plan(steps, blend)
        x, trace = self.multiscale_start(gens, per_scale, eta0, b, record_every, progress)
        r = str(self.config.resolution)
        if per_scale[-1]:
            x, chain = self._chain(self.energy, x, per_scale[-1], gens, eta0, record_every, progress=progress, desc=f"CF-EBM {r}px")
            trace.extend(chain, f"{r}px")
        return x, trace

    def _multiscale_plan(self, steps, blend) -> tuple[list[int], float]:
        """Steps per scale (coarse to fine) and the blend, from the arguments or the config's defaults."""
        if not self.coarse:
            raise SamplingError("This model has no coarse stages (it was trained at a single scale): use multiscale=False.")
        scales = [str(r) for r in self.scales()]
        if isinstance(steps, (list, tuple)):
            if len(steps) != len(scales):
                raise SamplingError(f"Give one step count per scale ({', '.join(scales)} px) or one for all; got {len(steps)}.")
            per_scale = [checks.integer("steps", k, 0 if i else 1, MAX_STEPS) for i, k in enumerate(steps)]
        else:
            default = self.config.multiscale_steps or [self.config.scale_steps] * len(scales)
            per_scale = list(default) if steps is None else [checks.integer("steps", steps, 1, MAX_STEPS)] * len(scales)
        b = self.config.multiscale_blend if blend is None else checks.number("blend", blend, 0, 1)
        return per_scale, b

    def multiscale_start(self, gens, per_scale: list[int], eta0=None, blend: float = 0.0, record_every: int = 0,
                         progress: bool = False) -> tuple[Tensor, Trace]:
        """The coarse part of the multi-scale chain: U(-1, 1) at the coarsest scale, each coarse stage's chain, and
        upsampling (blended with ``blend`` fresh noise) up to this model's resolution. Where the finest chain
        starts, in sampling and in training with ``multiscale_fraction`` (train/cfebm.py)."""
        scales = [str(r) for r in self.scales()]
        trace = Trace()
        x = self._uniform(gens, int(scales[0]))
        for i, r in enumerate(scales):
            if i > 0:
                x = F.interpolate(x, scale_factor=2, mode="nearest")
                if blend > 0:
                    x = (math.sqrt(1 - blend**2) * x + blend * self._uniform(gens, int(r))).clamp(-1, 1)
            if i == len(scales) - 1 or not per_scale[i]:
                continue  # the finest scale's chain is the caller's; a 0 is an upsampling-only scale
            x, chain = self._chain(self.coarse[r], x, per_scale[i], gens, eta0, record_every, progress=progress,
                                   desc=f"CF-EBM {r}px")
            trace.extend(chain, f"{r}px")
        return x, trace

    def denoise(self, noisy: Tensor, seeds="0", steps: int | None = None, eta0: float | None = None,
                record_every: int = 0, progress: bool = False) -> SampleOutput:
        """Run the learned dynamics from the noisy image (one chain per seed; one image or one per seed).
        Defaults: ``config.denoise_steps`` steps with ``config.denoise_eta0`` (see the config)."""
        steps = self.config.denoise_steps if steps is None else steps
        eta0 = self.config.denoise_eta0 if eta0 is None else eta0
        return self._from_images(noisy, seeds, steps, eta0, record_every, progress, "denoise")

    def translate(self, images: Tensor, seeds="0", steps: int | None = None, eta0: float | None = None,
                  record_every: int = 0, progress: bool = False) -> SampleOutput:
        """Pixel-space translation: the chain starts at the source-domain images under the target-domain
        energy; ``trace.saliency()`` is the paper's generative saliency (summed energy gradients)."""
        if not self.config.target_domain:
            raise SamplingError("This model was not trained for translation (it has no target domain).")
        eta0 = self.config.translate_eta0 if eta0 is None else eta0
        return self._from_images(images, seeds, steps, eta0, record_every, progress, "translate")

    def _from_images(self, images, seeds, steps, eta0, record_every, progress, desc) -> SampleOutput:
        gens = make_generators(self._image_seeds(images, seeds, max_count=1024))
        k = self.trained_steps() if steps is None else checks.integer("steps", steps, 1, MAX_STEPS)
        eta0 = checks.number("eta0", eta0, 0, MAX_ETA0)
        x0 = self._batch(images, len(gens))
        return SampleOutput(*self._chain(self.energy, x0, k, gens, eta0, record_every, progress=progress, desc=desc))

    @staticmethod
    def _image_seeds(images, seeds, max_count: int = 4096) -> list[int]:
        """Seeds paired with input images as everywhere (``studio.protocol.seeds_for_images``): one seed for
        several images means s, s+1, ..."""
        seed_list = parse_seeds(seeds, max_count=max_count)
        if isinstance(images, Tensor) and images.dim() == 4 and images.shape[0] > 1:
            return seeds_for_images(seed_list, images.shape[0])
        return seed_list

    def inpaint(self, image: Tensor, mask: Tensor, seeds="0-3", steps: int | None = None, record_every: int = 0,
                progress: bool = False) -> SampleOutput:
        """Fill ``mask == 0`` from U(-1,1) and sample while resetting known pixels after every step."""
        gens = make_generators(self._image_seeds(image, seeds))
        steps = self.trained_steps() if steps is None else checks.integer("steps", steps, 1, MAX_STEPS)
        known = self._batch(image, len(gens))
        res = self.config.resolution
        if not isinstance(mask, Tensor):
            raise SamplingError(f"Mask must be a 0/1 tensor of size {res}x{res} (1 = known pixel); got {type(mask).__name__}.")
        m = mask.float().reshape(1, 1, res, res) if mask.numel() == res * res else None
        if m is None or not ((m == 0) | (m == 1)).all():
            raise SamplingError(f"Mask must be 0/1 of size {res}x{res} (1 = known pixel); got shape {tuple(mask.shape)}.")
        m = m.to(known.device)
        x0 = m * known + (1 - m) * self._uniform(gens, res)
        return SampleOutput(*self._chain(self.energy, x0, steps, gens, record_every=record_every, mask=m, known=known,
                                         progress=progress, desc="CF-EBM inpaint"))

    def _batch(self, images: Tensor, n: int) -> Tensor:
        res, ch = self.config.resolution, self.config.channels
        x = checks.images("Images", images, (ch, res, res))
        if not torch.isfinite(x).all():
            raise SamplingError("Images contain NaN or infinite values.")
        if x.shape[0] not in (1, n):
            raise SamplingError(f"Got {x.shape[0]} images for {n} seeds; give one image or one per seed.")
        return x.expand(n, -1, -1, -1).float().to(next(self.parameters()).device)

    # -- training loss (used by train/cfebm.py) -----------------------------------------------

    def initial_chain_state(self, n: int, beta: float, generator: torch.Generator | None = None,
                            source: Tensor | None = None, multiscale_fraction: float = 0.0) -> tuple[Tensor, int]:
        """Explicit smooth sampling while a stage fades in: blend upsampled coarse samples into the noise init.
        Translation training passes ``source`` (source-domain images at this resolution): chains start there.
        ``multiscale_fraction`` of a finished stage's chains start where the default multi-scale sampler hands
        over to this resolution (``multiscale_start``), so the fine energy learns to finish coarse samples."""
        if source is not None:
            return source, 0
        res = self.config.resolution
        dev = next(self.parameters()).device
        noise = torch.rand(n, self.config.channels, res, res, generator=generator, device=dev) * 2 - 1
        prev = str(res // 2)
        m = round(n * multiscale_fraction) if self.coarse and (beta >= 1 or not self.config.fading) else 0
        if m:
            # Per-chain generators seeded from the step's generator, as the sampler uses per-sample seeds.
            seeds = torch.randint(0, 2**62, (m,), generator=generator, device=generator.device if generator else None)
            per_scale, b = self._multiscale_plan(None, None)
            start, _ = self.multiscale_start(make_generators([int(v) for v in seeds]), per_scale, None, b)
            return torch.cat([start.detach(), noise[m:]]), sum(per_scale[:-1])
        if not self.config.fading or beta >= 1 or prev not in self.coarse:
            return noise, 0
        k = round(self.trained_steps(res // 2) * (1 - beta))
        xc = torch.rand(n, self.config.channels, res // 2, res // 2, generator=generator, device=dev) * 2 - 1
        if k > 0:
            xc, _ = self._chain(self.coarse[prev], xc, k, generator)
        return math.sqrt(1 - beta**2) * F.interpolate(xc, scale_factor=2, mode="nearest") + beta * noise, k

    def training_loss(self, x_data: Tensor, beta: float = 1.0, generator: torch.Generator | None = None,
                      source: Tensor | None = None, multiscale_fraction: float = 0.0) -> dict[str, Tensor]:
        """MLE: mean E(data) - mean E(short-run samples); samples are detached."""
        self.net.beta.fill_(beta if self.config.fading else 1.0)
        x0, coarse_steps = self.initial_chain_state(x_data.shape[0], beta, generator, source, multiscale_fraction)
        was = self.net.training
        self.net.eval()  # no spectral-norm power iterations inside the chain
        xs, _ = self._chain(self.energy, x0, self.trained_steps(), generator)
        self.net.train(was)
        e = self.energy(torch.cat([x_data, xs.detach()]))
        e_pos, e_neg = e.chunk(2)
        return {"loss": e_pos.mean() - e_neg.mean(), "e_pos": e_pos.mean().detach(), "e_neg": e_neg.mean().detach(),
                "coarse_steps": torch.tensor(float(coarse_steps))}

    # -- the model protocol (studio.protocol) ------------------------------------------------

    title = "CF-EBM"

    @classmethod
    def task_specs(cls, config: CFEBMConfig) -> list[TaskSpec]:
        """A translation model translates (its chains start at source-domain images); others generate, inpaint and
        denoise. ``noise`` is the shared fraction (see ``_run``), here from the config's eta0 values."""
        trained = config.steps.get(str(config.resolution))
        noise = lambda eta0: math.sqrt(eta0 / (2 * config.grad_step))  # noqa: E731
        if config.target_domain:
            source, target = config.source_domain or "twitter", config.target_domain
            return [TaskSpec("translate", "translate", {"steps": trained, "noise": noise(config.translate_eta0)},
                             frozenset({"image"}), label=f"translate ({source} -> {target})", domains=(source, target),
                             saliency=True, describe=f"the chain starts at the image and descends the {target} energy")]
        return [
            TaskSpec("generate", "generate", {"steps": trained, "noise": noise(config.eta0), "multiscale": False,
                                              "final_steps": config.final_steps, "blend": config.multiscale_blend},
                     saliency=True, describe="the chain starts at uniform noise"),
            TaskSpec("inpaint", "inpaint", {"steps": trained}, frozenset({"image", "mask"}), saliency=True,
                     describe="the hole starts at uniform noise and the known pixels are reset after every step"),
            TaskSpec("denoise", "denoise", {"steps": config.denoise_steps, "noise": noise(config.denoise_eta0)},
                     frozenset({"image"}), describe="a short stretch of the learned dynamics from the noisy image"),
        ]

    @classmethod
    def image_energy_spec(cls, config: CFEBMConfig) -> EnergySpec:
        if config.target_domain:
            return EnergySpec(config.source_domain or "twitter", f" (the energy of {config.target_domain}-style images)")
        return EnergySpec()

    def image_energy(self, x: Tensor) -> Tensor:
        """E(x) of images at the model's resolution (for a translation model, the target domain's energy)."""
        return self.energy(x)

    def _run(self, spec: TaskSpec, image, mask, **kwargs):
        """The shared ``noise`` -> the appendix's eta0. The chain steps by ``grad_step`` (step_size) with noise std
        sqrt(eta_t), eta_t decaying from eta0 to 0; proper Langevin at that step size has std sqrt(2 grad_step), so
        ``eta0 = 2 grad_step noise^2`` (the schedule then decays from that std to 0)."""
        if "noise" in kwargs:
            top = math.sqrt(MAX_ETA0 / (2 * self.config.grad_step))
            kwargs["eta0"] = 2 * self.config.grad_step * relative_noise(kwargs.pop("noise"), hi=top) ** 2
        return super()._run(spec, image, mask, **kwargs)
