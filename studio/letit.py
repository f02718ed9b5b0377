"""LETIT: latent energy transport for unpaired image translation (Zhao and Chen), Twitter <-> Google emoji.

A frozen autoencoder (Enc, Dec) is trained once on the union of both emoji styles.
Each direction has its own latent EBM: E_t2g learns the latents of Google-style
emoji, E_g2t those of Twitter-style emoji. Translating an image x runs Langevin
dynamics on its own code z_0 = Enc(x) under the target EBM and decodes the end
of the chain, y = Dec(z_T). No cycle or content loss is involved: the energy
gradient moves the "style" coordinates and leaves most others where they were,
which ``TranslationResult.latent_shift`` (sum_t |z_{t+1} - z_t|) shows.

Energy sign: ``energy(z, direction)`` is E (lower = more probable), the sign the
paper uses.

Latent design (measured): a *spatial* latent of 16x16x8 (4x downsampling, 2,048
numbers per 64x64 RGB image, 6x fewer than pixels). Three autoencoders trained
with the same recipe and the same budget (300 steps of batch 32, one CPU
thread), held-out reconstruction PSNR at 64x64 on the 1,024 test images of both
styles:

    16x16x8 spatial map   20.6 dB
    8x8x16  spatial map   17.7 dB
    256-d vector          15.0 dB   (8x8x32 map -> linear)

The shipped autoencoder (the 16x16x8 map, trained for the full stage) reaches
the ``recon_psnr`` in the model card of ``letit-emoji``. Reconstruction is the
ceiling of every translation (the chain can only reach what the decoder can
draw), and the bar the issue sets is the identity baseline (the untranslated
Twitter image against the true Google one), so a vector code that blurs every
emoji leaves no room; the map keeps outlines and small features. Reproduce the
comparison with ``python -m train.letit_latent_study``.

The EBM for a map latent is a small conv net, the paper's choice for VQ-VAE-2
maps; its receptive field covers the whole 16x16 latent, so the transport can
depend on the whole emoji, and the latent shift can be shown as a map over
locations.

Latents are normalised: ``encode`` returns (Enc(x) - mean) / std with per-channel
statistics of the training latents (buffers set once after the autoencoder
stage), so EBM step sizes mean the same thing for any autoencoder.
The autoencoder is trained with Gaussian noise added to its code (a VAE with a
fixed posterior variance, as the paper's VQ-VAE-2 had noise injection), so the
decoder draws clean images from latents a little off the encoder's outputs, which
is where Langevin chains end.

Langevin mapping onto ``studio.langevin`` (update x <- x - step_size grad E + noise_std eps):

* The paper's Eq. z <- z - (eta/2) grad E(z) + sqrt(eta) eps is
  ``step_size = eta / 2``, ``noise_std = sqrt(eta)``.
* The authors' code runs z <- z - eta grad E(z) without noise:
  ``step_size = eta``, ``noise_std = 0``.
* Here ``step_size`` and ``noise`` are passed through unchanged (the engine's
  numbers). Each direction stores the values its EBM was trained with in
  ``config.directions``; they are the defaults, because an EBM learned with
  short-run chains is only meaningful under its own sampler. The one exception is
  the number of steps: ``translate_steps``, when present, was chosen after training
  without the test pairs, on a validation fold the EBM never saw when it was trained with
  one (train/letit_choose_steps.py: among the step counts at which the evaluator surely
  sees the target style, a bootstrap lower bound of its mean probability >= 0.8, the one
  whose output is closest to the true counterpart; past the first steps that is the
  fewest, the least content drift). With a little noise the seed matters; with
  ``noise=0`` the translation is deterministic.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import checks
from .errors import SamplingError
from .kinds import register_model
from .langevin import Trace, langevin, make_generators, parse_seeds
from .metrics import psnr
from .protocol import EnergySpec, SampleOutput, StudioModel, TaskSpec, relative_noise
from .saliency import pixel_saliency

DIRECTIONS: dict[str, tuple[str, str]] = {"t2g": ("twitter", "google"), "g2t": ("google", "twitter")}
MAX_STEPS = 1000


@dataclass
class LETITConfig:
    image_size: int = 64
    channels: int = 3
    # Autoencoder: channels per resolution from image_size down (each entry after the first halves the size);
    # ae_blocks[i] residual blocks at resolution i. The latent is image_size / 2**(len(ae_widths) - 1) px.
    ae_widths: list[int] = field(default_factory=lambda: [32, 64, 96])
    ae_blocks: list[int] = field(default_factory=lambda: [0, 1, 2])
    latent_channels: int = 8
    latent_dim: int = 0  # > 0: a vector latent of this size (a linear layer on the flattened bottom map)
    latent_bound: float = 6.0  # chains are clamped to [-bound, bound] in normalised latent units
    # Latent EBM: conv net (map latents) or MLP (vector latents), SiLU, no normalisation layers.
    ebm_width: int = 64
    # Per trained direction: the sampler its EBM was trained with, {"steps", "step_size", "noise"}.
    directions: dict[str, dict] = field(default_factory=dict)
    # Translation default for the manifold projection z <- Enc(Dec(z)) (``LETIT.translate``): every this many
    # chain steps and after the last one; 0 = never.
    project_every: int = 0

    @property
    def latent_resolution(self) -> int:
        return self.image_size // 2 ** (len(self.ae_widths) - 1)

    @property
    def latent_shape(self) -> tuple[int, ...]:
        if self.latent_dim:
            return (self.latent_dim,)
        return (self.latent_channels, self.latent_resolution, self.latent_resolution)


# ----------------------------------------------------------------------------- networks


class ResBlock(nn.Module):
    """x + conv(silu(conv(silu(x)))): no normalisation (small batches, cheap on CPU)."""

    def __init__(self, width: int):
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)
        with torch.no_grad():
            self.conv2.weight.mul_(0.3)  # start close to the identity

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(F.silu(self.conv1(F.silu(x))))


class Encoder(nn.Module):
    """64x64 RGB -> a latent map (or vector). Strided 4x4 convs halve the size between resolutions."""

    def __init__(self, c: LETITConfig):
        super().__init__()
        w = c.ae_widths
        self.inp = nn.Conv2d(c.channels, w[0], 3, padding=1)
        self.stages = nn.ModuleList()
        for i, width in enumerate(w):
            layers: list[nn.Module] = []
            if i > 0:
                layers += [nn.SiLU(), nn.Conv2d(w[i - 1], width, 4, stride=2, padding=1)]
            layers += [ResBlock(width) for _ in range(c.ae_blocks[i])]
            self.stages.append(nn.Sequential(*layers))
        self.out = nn.Conv2d(w[-1], c.latent_channels, 3, padding=1)
        r = c.latent_resolution
        self.fc = nn.Linear(c.latent_channels * r * r, c.latent_dim) if c.latent_dim else None

    def forward(self, x: Tensor) -> Tensor:
        h = self.inp(x)
        for stage in self.stages:
            h = stage(h)
        z = self.out(F.silu(h))
        return self.fc(z.flatten(1)) if self.fc is not None else z


class Decoder(nn.Module):
    """The mirror of the encoder: nearest upsampling + 3x3 conv between resolutions."""

    def __init__(self, c: LETITConfig):
        super().__init__()
        w = list(reversed(c.ae_widths))
        blocks = list(reversed(c.ae_blocks))
        r = c.latent_resolution
        self.shape = (c.latent_channels, r, r)
        self.fc = nn.Linear(c.latent_dim, c.latent_channels * r * r) if c.latent_dim else None
        self.inp = nn.Conv2d(c.latent_channels, w[0], 3, padding=1)
        self.stages = nn.ModuleList()
        for i, width in enumerate(w):
            layers: list[nn.Module] = []
            if i > 0:
                layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(w[i - 1], width, 3, padding=1)]
            layers += [ResBlock(width) for _ in range(blocks[i])]
            self.stages.append(nn.Sequential(*layers))
        self.out = nn.Conv2d(w[-1], c.channels, 3, padding=1)

    def forward(self, z: Tensor) -> Tensor:
        if self.fc is not None:
            z = F.silu(self.fc(z)).view(-1, *self.shape)
        h = self.inp(z)
        for stage in self.stages:
            h = stage(h)
        return self.out(F.silu(h))


class LatentEnergy(nn.Module):
    """E(z) -> [B] (lower = more probable). Hidden layers are essential: a linear E would only add a
    constant drift, i.e. translate every emoji by the same mean shift.

    Map latents: 3x3 conv, then strided 3x3 convs down to 4x4, a 4x4 valid conv and a linear head.
    Vector latents: a two-hidden-layer MLP.
    """

    def __init__(self, c: LETITConfig):
        super().__init__()
        w = c.ebm_width
        if c.latent_dim:
            self.net = nn.Sequential(nn.Linear(c.latent_dim, w), nn.SiLU(), nn.Linear(w, w), nn.SiLU(), nn.Linear(w, 1))
            return
        layers: list[nn.Module] = [nn.Conv2d(c.latent_channels, w, 3, padding=1), nn.SiLU(), nn.Conv2d(w, w, 3, padding=1), nn.SiLU()]
        r, cin = c.latent_resolution, w
        while r > 4:
            layers += [nn.Conv2d(cin, 2 * w, 3, stride=2, padding=1), nn.SiLU()]
            r, cin = r // 2, 2 * w
        layers += [nn.Conv2d(cin, 2 * w, r), nn.SiLU(), nn.Flatten(), nn.Linear(2 * w, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z).squeeze(1)


# ----------------------------------------------------------------------------- results


@dataclass
class TranslationResult:
    """Everything one translation produced; the UI reads this, nothing is recomputed.

    * ``outputs``: Dec(z_T) in [-1, 1]; ``reconstructions``: Dec(Enc(x)), the autoencoder's ceiling.
    * ``source_latents`` z_0 and ``latents`` z_T (normalised latent units).
    * ``trace``: the latent chain (energies per step, gradient norms, latent frames).
    * ``frames``: the latent frames decoded to images, at ``frame_steps`` (every ``record_every`` steps).
    * ``latent_shift``: sum_t |z_{t+1} - z_t|, shaped like the latent ([B, C, h, w] or [B, D]).
    """

    outputs: Tensor
    reconstructions: Tensor
    source_latents: Tensor
    latents: Tensor
    trace: Trace
    frames: list[Tensor]
    frame_steps: list[int]
    latent_shift: Tensor
    direction: str
    seeds: list[int]
    steps: int
    step_size: float
    noise: float
    project_every: int = 0  # > 0: the latent was replaced by Enc(Dec(z)) every this many steps and at the end

    def shift_map(self) -> Tensor:
        """Per-location shift [B, h, w] (summed over channels) for map latents; per dimension [B, D] for vectors."""
        return self.latent_shift.sum(1) if self.latent_shift.dim() == 4 else self.latent_shift

    def shift_per_channel(self) -> Tensor:
        """Per-channel shift [B, C] (summed over locations) for map latents; per dimension [B, D] for vectors."""
        return self.latent_shift.sum((2, 3)) if self.latent_shift.dim() == 4 else self.latent_shift

    def energies(self) -> Tensor:
        """[steps, B] energy of each chain before each step."""
        return self.trace.energy_matrix()


# ----------------------------------------------------------------------------- model


def _shape(z) -> str:
    return str(tuple(z.shape)) if isinstance(z, Tensor) else type(z).__name__


@register_model("letit")
class LETIT(nn.Module, StudioModel):
    """Autoencoder + one latent EBM per direction ("t2g", "g2t")."""

    config_class = LETITConfig

    def __init__(self, config: LETITConfig):
        super().__init__()
        if len(config.ae_blocks) != len(config.ae_widths):
            raise ValueError(f"ae_blocks {config.ae_blocks} needs one entry per ae_widths entry {config.ae_widths}.")
        if config.latent_resolution < 1 or config.latent_resolution * 2 ** (len(config.ae_widths) - 1) != config.image_size:
            raise ValueError(f"image_size {config.image_size} must be divisible by 2**{len(config.ae_widths) - 1}.")
        self.config = config
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)
        self.ebms = nn.ModuleDict({d: LatentEnergy(config) for d in DIRECTIONS})
        stat_shape = (config.latent_dim,) if config.latent_dim else (config.latent_channels, 1, 1)
        self.register_buffer("latent_mean", torch.zeros(stat_shape))
        self.register_buffer("latent_std", torch.ones(stat_shape))

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def trained_directions(self) -> list[str]:
        return [d for d in DIRECTIONS if d in self.config.directions]

    # -- autoencoder ------------------------------------------------------------------------

    def check_images(self, images: Tensor) -> Tensor:
        """[B, 3, S, S] or [3, S, S] finite float images in [-1, 1] -> a float batch on the model's device."""
        s, ch = self.config.image_size, self.config.channels
        if not isinstance(images, Tensor):
            raise SamplingError(f"Images must be a torch tensor shaped [B, {ch}, {s}, {s}] in [-1, 1]; got {type(images).__name__}.")
        x = images.unsqueeze(0) if images.dim() == 3 else images
        if x.dim() != 4 or tuple(x.shape[1:]) != (ch, s, s) or x.shape[0] == 0:
            raise SamplingError(f"LETIT works on RGB {s}x{s} images shaped [B, {ch}, {s}, {s}] (or [{ch}, {s}, {s}]) in "
                                f"[-1, 1]; got shape {tuple(images.shape)}. Resize and composite RGBA on white first.")
        if x.is_complex():
            raise SamplingError(f"Images must hold real numbers; got {x.dtype}.")
        x = checks.finite("Images", x.float())
        return x.to(self.device)

    def encode_raw(self, x: Tensor) -> Tensor:
        """The encoder's output before normalisation (what the autoencoder stage trains)."""
        return self.encoder(x)

    def decode_raw(self, h: Tensor) -> Tensor:
        return self.decoder(h)

    def encode(self, images: Tensor) -> Tensor:
        """Normalised latents z = (Enc(x) - mean) / std, shaped [B, *config.latent_shape]."""
        return (self.encode_raw(self.check_images(images)) - self.latent_mean) / self.latent_std

    def decode(self, z: Tensor) -> Tensor:
        """Images in [-1, 1] from normalised latents."""
        shape = self.config.latent_shape
        if not isinstance(z, Tensor) or tuple(z.shape[1:]) != shape:
            raise SamplingError(f"Latents must be shaped [B, {', '.join(map(str, shape))}]; got {_shape(z)}.")
        return self.decode_raw(z.to(self.device) * self.latent_std + self.latent_mean).clamp(-1, 1)

    def reconstruct(self, images: Tensor) -> Tensor:
        """Dec(Enc(x)): what the autoencoder alone makes of the images."""
        with torch.no_grad():
            return self.decode(self.encode(images))

    @torch.no_grad()
    def set_latent_stats(self, raw_latents: Tensor) -> None:
        """Per-channel (map) or per-dimension (vector) mean and std of raw training latents."""
        dims = (0, 2, 3) if raw_latents.dim() == 4 else (0,)
        self.latent_mean.copy_(raw_latents.mean(dims).view_as(self.latent_mean))
        self.latent_std.copy_(raw_latents.std(dims).clamp_min(1e-4).view_as(self.latent_std))

    # -- energies ----------------------------------------------------------------------------

    def check_direction(self, direction: str) -> str:
        if not isinstance(direction, str) or direction not in DIRECTIONS:  # lists/dicts are unhashable
            raise SamplingError(f"Unknown direction {direction!r}: choose 't2g' (Twitter -> Google) or 'g2t' (Google -> Twitter).")
        return direction

    def energy(self, z: Tensor, direction: str) -> Tensor:
        """E_direction(z) [B] on normalised latents: the energy of the *target* style (lower = more probable)."""
        shape = self.config.latent_shape
        if not isinstance(z, Tensor) or tuple(z.shape[1:]) != shape:
            raise SamplingError(f"Latents must be shaped [B, {', '.join(map(str, shape))}]; got {_shape(z)}.")
        return self.ebms[self.check_direction(direction)](z)

    def sampler_defaults(self, direction: str) -> dict:
        """The step size and noise the direction's EBM was trained with, and the default number of steps:
        ``translate_steps`` when it was chosen after training (train/letit_choose_steps.py, without the
        test pairs), else the trained T."""
        self.check_direction(direction)
        if direction not in self.config.directions:
            trained = ", ".join(self.trained_directions) or "none"
            raise SamplingError(f"The {direction} latent EBM of this checkpoint has not been trained yet (trained: {trained}). "
                                f"Run `accelerate launch train/letit.py --stage ebm --direction {direction}`.")
        d = self.config.directions[direction]
        return {"steps": int(d.get("translate_steps", d["steps"])), "step_size": d["step_size"], "noise": d["noise"]}

    def project(self, z: Tensor) -> Tensor:
        """The manifold projection Enc(Dec(z)) in normalised latent units (clamped to the latent bound): the
        code of the image the decoder draws from z. A clean output is a near fixed point of it."""
        with torch.no_grad():
            p = self.encode(self.decode(z))
        b = self.config.latent_bound
        return p.clamp(-b, b) if b > 0 else p

    def reencode_psnr(self, images: Tensor, batch: int = 256) -> Tensor:
        """Per-image PSNR [B] between images and Dec(Enc(images)): how close they are to being fixed points of
        the autoencoder (the on-manifold check; real drawings give the reference level)."""
        x = self.check_images(images)
        recon = torch.cat([self.reconstruct(x[i : i + batch]) for i in range(0, len(x), batch)])
        return psnr(recon, x).cpu()

    def chain(self, z0: Tensor, direction: str, steps: int, step_size: float, noise: float, generator=None,
              record_every: int = 0, callback=None, progress: bool = False, project_every: int = 0) -> tuple[Tensor, Trace]:
        """Langevin in latent space under E_direction (used by translate and by training).

        ``project_every`` = k > 0 replaces z by ``project(z)`` = Enc(Dec(z)) after every k-th step and after the
        last one (k >= steps: once, at the end). The chain then runs as segments of at most k steps, one
        ``langevin`` call each, with the same per-sample generators (their random streams continue, so the
        noise is the same as in one long call) and one Trace over all segments (``Trace.extend``; its
        ``segments`` name them). Frames are taken every ``record_every`` global steps after any projection at
        that step, and always at the end. After a projection ``callback`` also gets ``{"step", "x",
        "projected": True}``, so a running sum over states sees the jump."""
        ebm = self.ebms[self.check_direction(direction)]
        b = self.config.latent_bound
        clamp = (-b, b) if b > 0 else None
        if not project_every:
            return langevin(ebm, z0, steps=steps, step_size=step_size, noise_std=noise, generator=generator, clamp=clamp,
                            record_every=record_every, callback=callback, progress=progress, desc=f"LETIT {direction}")
        trace, z, done = Trace(), z0, 0
        if record_every:
            trace.add_frame(z0, "start")
        while True:
            n = min(project_every, steps - done)
            frames: list[tuple[int, Tensor]] = []

            def on_step(info: dict, offset: int = done, n: int = n, frames: list = frames) -> None:
                t = offset + info["step"] + 1  # the global step just taken
                if record_every and t % record_every == 0 and info["step"] + 1 < n:  # a segment's end: framed after projecting
                    frames.append((t, info["x"].detach().to("cpu", copy=True)))
                if callback is not None:
                    callback({**info, "step": t - 1})

            z, seg = langevin(ebm, z, steps=n, step_size=step_size, noise_std=noise, generator=generator, clamp=clamp,
                              callback=on_step, progress=progress, desc=f"LETIT {direction} (projected every {project_every})")
            trace.extend(seg, label=f"steps {done + 1}-{done + n}" if n else "no steps")
            for t, f in frames:  # frames taken by the callback, in step order after the segment's energies
                trace.frames.append(f), trace.frame_steps.append(t), trace.frame_labels.append(f"step {t}")
            done += n
            z = self.project(z)
            if callback is not None:
                callback({"step": done - 1, "x": z, "projected": True})
            if record_every and (done % record_every == 0 or done == steps):
                trace.add_frame(z, f"step {done} projected")
            if done >= steps:
                return z, trace

    # -- translation -------------------------------------------------------------------------

    def translate(self, images: Tensor, direction: str = "t2g", steps: int | None = None, step_size: float | None = None,
                  noise: float | None = None, seeds="0", record_every: int = 0, progress: bool = False,
                  project_every: int | None = None) -> TranslationResult:
        """Translate images (Twitter -> Google for "t2g", Google -> Twitter for "g2t").

        One seed per image (``"0-3"``, ``[5, 9]``); a single seed with several images means
        consecutive seeds s, s+1, ...; one image with several seeds gives one chain per seed.
        ``steps``, ``step_size`` and ``noise`` default to what the direction's EBM was trained with.
        ``record_every`` > 0 decodes the latent every that many steps into ``frames``.
        ``project_every`` = k > 0 replaces the latent by Enc(Dec(z)) every k steps and after the last step
        (``chain``); 0 never; None takes ``config.project_every``.
        """
        defaults = self.sampler_defaults(direction)
        steps = defaults["steps"] if steps is None else steps
        step_size = defaults["step_size"] if step_size is None else step_size
        noise = defaults["noise"] if noise is None else noise
        if isinstance(steps, bool) or not isinstance(steps, int) and not (isinstance(steps, float) and steps.is_integer()):
            raise SamplingError(f"steps must be a whole number between 0 and {MAX_STEPS}; got {steps!r}.")
        steps = int(steps)
        if not 0 <= steps <= MAX_STEPS:
            raise SamplingError(f"steps must be between 0 and {MAX_STEPS}; got {steps}.")
        record_every = checks.integer("record_every", record_every, 0, 2**31)
        project_every = checks.integer("project_every", self.config.project_every if project_every is None else project_every,
                                       0, MAX_STEPS)
        x = self.check_images(images)
        seed_list = parse_seeds(seeds, max_count=1024)
        if len(seed_list) == 1 and x.shape[0] > 1:
            seed_list = [seed_list[0] + i for i in range(x.shape[0])]
        if x.shape[0] == 1 and len(seed_list) > 1:
            x = x.expand(len(seed_list), -1, -1, -1)
        if x.shape[0] != len(seed_list):
            raise SamplingError(f"Got {x.shape[0]} images for {len(seed_list)} seeds; give one seed per image (or one image).")
        gens = make_generators(seed_list)  # CPU generators: a seed gives the same chain on every device (studio.device)
        with torch.no_grad():
            z0 = self.encode(x)
            recon = self.decode(z0)
        shift = torch.zeros_like(z0)
        prev = [z0]

        def accumulate(info: dict) -> None:  # sum_t |z_{t+1} - z_t| without storing every state
            shift.add_((info["x"] - prev[0]).abs())
            prev[0] = info["x"]

        z, trace = self.chain(z0, direction, steps, step_size, noise, gens, record_every, accumulate, progress, project_every)
        with torch.no_grad():
            out = self.decode(z)
            # Recorded states decoded in batches of 256: a copy each way per batch, not per frame.
            decoded = [self.decode(chunk.to(self.device)).cpu() for chunk in torch.cat(trace.frames).split(256)] if trace.frames else []
            frames = list(torch.cat(decoded).split(z.shape[0])) if decoded else []
        return TranslationResult(outputs=out.cpu(), reconstructions=recon.cpu(), source_latents=z0.cpu(), latents=z.cpu(),
                                 trace=trace, frames=frames, frame_steps=list(trace.frame_steps), latent_shift=shift.cpu(),
                                 direction=direction, seeds=seed_list, steps=steps, step_size=float(step_size), noise=float(noise),
                                 project_every=project_every)

    # -- training losses (used by train/letit.py) --------------------------------------------

    def autoencoder_loss(self, x: Tensor, latent_noise: float, latent_l2: float, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        return autoencoder_loss(self.encoder, self.decoder, x, latent_noise, latent_l2, generator)

    def ebm_loss(self, z_source: Tensor, z_target: Tensor, direction: str, steps: int, step_size: float, noise: float,
                 generator=None, energy_l2: float = 0.0) -> dict[str, Tensor]:
        return ebm_loss(self.ebms[self.check_direction(direction)], z_source, z_target, steps, step_size, noise,
                        self.config.latent_bound, generator, energy_l2)

    # -- the model protocol (studio.protocol) ------------------------------------------------

    title = "LETIT"
    TASK_NAMES = {"t2g": "translate", "g2t": "translate g2t"}  # the task name of each direction

    @classmethod
    def task_specs(cls, config: LETITConfig) -> list[TaskSpec]:
        """One "translate" task per trained direction ("translate" is t2g, the direction of the pixel-space baseline
        cfebm-emoji-t2g, so both answer the same request the same way). Defaults are the direction's stored sampler,
        ``noise`` as the shared fraction (see ``_run``)."""
        specs = []
        for direction, (source, target) in DIRECTIONS.items():
            stored = config.directions.get(direction)
            if not stored:
                continue
            step = float(stored["step_size"])
            params = {"steps": int(stored.get("translate_steps", stored["steps"])), "step_size": step,
                      "noise": float(stored["noise"]) / (2 * step) ** 0.5 if step > 0 else 0.0,
                      "project_every": config.project_every}
            specs.append(TaskSpec(cls.TASK_NAMES[direction], "translate", params, frozenset({"image"}),
                                  label=f"translate ({source} -> {target})", domains=(source, target), saliency=True,
                                  describe="the latent chain, each frame decoded"))
        return specs

    @classmethod
    def _energy_direction(cls, config: LETITConfig) -> str | None:
        """The direction whose energy scores images: t2g when trained (the cfebm-emoji-t2g direction), else g2t."""
        return next((d for d in DIRECTIONS if config.directions.get(d)), None)

    @classmethod
    def image_energy_spec(cls, config: LETITConfig) -> EnergySpec | None:
        direction = cls._energy_direction(config)
        if direction is None:
            return None
        source, target = DIRECTIONS[direction]
        return EnergySpec(source, f" (the {target} latent energy of the encoded image, E_{direction}(Enc(x)))")

    def image_energy(self, x: Tensor) -> Tensor:
        """E_d(Enc(x)): pixels reach a latent EBM through the encoder (d = t2g when trained, else g2t), so the
        gradient with respect to x is the latent energy's pulled back through Enc."""
        direction = self._energy_direction(self.config)
        if direction is None:
            raise SamplingError("This checkpoint has no trained latent EBM, so it has no energy to score images with.")
        return self.energy(self.encode(x), direction)

    def _run(self, spec: TaskSpec, image, mask, *, seeds="0", record_every: int = 0, progress: bool = False,
             steps: int | None = None, step_size: float | None = None, noise=None,
             project_every: int | None = None) -> SampleOutput:
        """``translate`` in the shared meanings (``project_every`` as in ``translate``). ``step_size`` is the engine's (unchanged); LETIT's own ``noise`` is the
        engine's noise std, so the shared fraction converts as ``noise_std = noise * sqrt(2 step_size)``.

        The SampleOutput's Trace has the decoded frames (the latent chain is ``extras["latent_trace"]``); ``extras``
        also hold the reconstructions Dec(Enc(x)), the latents, the latent shift, the ``TranslationResult`` and the
        ``saliency``: the decoded difference |Dec(z_T) - Dec(z_0)| per pixel (the chain moves a latent, not pixels)."""
        direction = next(d for d, name in self.TASK_NAMES.items() if name == spec.name)
        std = None
        if noise is not None:
            step = self.sampler_defaults(direction)["step_size"] if step_size is None else checks.number("step_size", step_size, 0)
            std = relative_noise(noise, hi=10.0) * (2 * step) ** 0.5
        r = self.translate(image, direction, steps=steps, step_size=step_size, noise=std, seeds=seeds,
                           record_every=record_every, progress=progress, project_every=project_every)
        t = r.trace
        decoded = Trace(energies=list(t.energies), grad_norms=list(t.grad_norms), frames=list(r.frames),
                        frame_steps=list(r.frame_steps), frame_labels=list(t.frame_labels), grad_sum=t.grad_sum,
                        segments=list(t.segments))
        source, target = DIRECTIONS[direction]
        latent = "x".join(map(str, r.latent_shift.shape[1:]))
        seeds_used = f"seed {r.seeds[0]}" if len(r.seeds) == 1 else f"seeds {r.seeds[0]}..{r.seeds[-1]}"
        notes = [f"the image is encoded to a {latent} latent, {r.steps} Langevin steps (step size {r.step_size:g}, noise std "
                 f"{r.noise:g}, {seeds_used}) run under the {target} latent EBM, and the end of the chain is decoded",
                 "Saliency: per-pixel L2 norm over channels of the decoded difference |Dec(z_T) - Dec(z_0)|, the translation "
                 "minus the autoencoder's reconstruction (so reconstruction error does not count), min-max normalised. "
                 f"The chart shows the latent shift sum_t |z_(t+1) - z_t| (total {float(r.latent_shift[0].sum()):.4g})."]
        extras = {"reconstructions": r.reconstructions, "latents": r.latents, "source_latents": r.source_latents,
                  "latent_shift": r.latent_shift, "latent_trace": t, "result": r,
                  "saliency": pixel_saliency(r.outputs - r.reconstructions)}
        return SampleOutput(r.outputs, decoded, extras, notes)


def autoencoder_loss(encoder: nn.Module, decoder: nn.Module, x: Tensor, latent_noise: float, latent_l2: float,
                     generator: torch.Generator | None = None) -> dict[str, Tensor]:
    """MSE reconstruction from a noisy code h + sigma eps (a VAE with a fixed posterior variance sigma^2),
    plus ``latent_l2`` * mean(h^2), the matching KL term up to a constant, which fixes the code's scale."""
    h = encoder(x)
    noisy = h + latent_noise * torch.randn(h.shape, generator=generator, device=h.device) if latent_noise else h
    rec = decoder(noisy)
    mse = F.mse_loss(rec, x)
    reg = h.pow(2).mean()
    return {"loss": mse + latent_l2 * reg, "mse": mse.detach(), "latent_rms": reg.detach().sqrt()}


def robust_decoder_loss(model: "LETIT", x: Tensor, max_noise: float, generator: torch.Generator | None = None) -> dict[str, Tensor]:
    """MSE of Dec(Enc(x) + sigma * latent_std * eps) to x with the encoder frozen, sigma ~ U(0, max_noise) per image.

    The noise is in *normalised* latent units (the units the chains move in), so a decoder trained with
    max_noise near the chains' measured move (RMS 0.62-0.76) has seen codes as far off the encoder's
    manifold as translation produces, and sigma near 0 keeps plain reconstruction. The encoder and the
    latent statistics stay fixed, so EBMs trained on these latents stay valid."""
    with torch.no_grad():
        h = model.encode_raw(x)
    sigma = max_noise * torch.rand(len(x), 1, 1, 1, generator=generator).to(h.device)
    eps = torch.randn(h.shape, generator=generator).to(h.device)
    rec = model.decoder(h + sigma * model.latent_std * eps)
    mse = F.mse_loss(rec, x)
    return {"loss": mse, "mse": mse.detach()}


def ebm_loss(ebm: nn.Module, z_source: Tensor, z_target: Tensor, steps: int, step_size: float, noise: float,
             bound: float = 0.0, generator=None, energy_l2: float = 0.0) -> dict[str, Tensor]:
    """LETIT's objective: mean E(z_target) - mean E(z_T), where z_T ends a short-run chain started at the
    *source* latents (the same chain translation runs); chains are detached. ``energy_l2`` optionally adds
    energy_l2 * (E(z_target)^2 + E(z_T)^2), which keeps energies near 0 (off in the paper)."""
    z_neg, _ = langevin(ebm, z_source, steps=steps, step_size=step_size, noise_std=noise, generator=generator,
                        clamp=(-bound, bound) if bound > 0 else None)
    e = ebm(torch.cat([z_target, z_neg.detach()]))
    e_pos, e_neg = e[: len(z_target)], e[len(z_target) :]
    cd = e_pos.mean() - e_neg.mean()
    loss = cd + energy_l2 * (e_pos.pow(2).mean() + e_neg.pow(2).mean()) if energy_l2 else cd
    return {"loss": loss, "cd": cd.detach(), "e_pos": e_pos.mean().detach(), "e_neg": e_neg.mean().detach(),
            "moved": (z_neg - z_source).flatten(1).norm(dim=1).mean().detach()}
