"""NeRF-LEBM (Zhu, UCLA thesis 2024, ch. 3): a conditional radiance field with latent energy-based priors.

An object is a shape latent z_s and an appearance latent z_a. The generator renders it from a known
camera; each latent has its own prior p(z) ∝ exp(-E(z)) N(0, I) with a small MLP energy E (the EBM
prior), or E = 0 (the Gaussian reference: NeRF-VAE). An amortised encoder q(z | image, pose) proposes
the latents of an image; ``infer`` can refine them by gradient descent on the posterior energy.

Field design (sized for a 2-core CPU, see the model card for measured costs):

* Shape: z_s -> MLP -> 3 x 4x4 feature planes -> upsampling convs -> a triplane of 3 planes x
  ``plane_channels`` x ``plane_res``^2 over [-1, 1]^3. A point's feature h is the sum of its three
  bilinear plane lookups; a tiny MLP maps h to density sigma = softplus and a colour feature.
* Appearance: z_a -> MLP -> a per-object vector a that enters only the colour head
  rgb = sigmoid(MLP([colour feature(h), a])). So z_a changes colour and never density (the split the
  paper keeps), while colour can still vary over the parts that the shape defines.
* No view dependence: shapes3d shading is Lambertian with a fixed light, so colour is a function of
  position only.

Langevin mapping onto ``studio.langevin`` (x <- x - step_size grad E + noise_std eps): the paper's prior
chain z <- z - (s^2/2) grad[E(z) + |z|^2/2] + s eps is ``step_size = s^2/2``, ``noise_std = s``;
posterior refinement is gradient descent (``noise_std = 0``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import checks
from .data.shapes3d import FOV_DEG, RADIUS, camera_to_world, focal_from_fov
from .errors import StudioError
from .kinds import register_model
from .langevin import MAX_SEED, Trace, langevin, parse_seeds
from .protocol import SampleOutput, StudioModel, TaskSpec
from .render import BOUND, MAX_RESOLUTION, box_intervals, composite, get_rays, orbit_angles, render_image, stratified_depths

ELEVATION_RANGE = (10.0, 40.0)  # shapes3d training views (view_angles)
PRIORS = ("ebm", "gaussian")
_APPEARANCE_STREAM = 0x5A5A5A5A  # appearance seeds live in a different stream from shape seeds
# prior_trajectory's defaults: few, small renders of one pose inside the training elevations.
TRAJECTORY_FRAMES, TRAJECTORY_RES, TRAJECTORY_POSE = 16, 32, (30.0, 25.0)
MAX_OBJECTS = 4096  # sample_latents' n: parse_seeds' cap on a seed list
MAX_STEPS = 10_000  # prior chain and refinement steps (prior_trajectory's cap)
# |azimuth| in degrees: thousands of turns, where float32 still resolves 1/16 degree (1e30 is no pose).
MAX_AZIMUTH = 1e6


class NeRFError(StudioError):
    """Bad arguments for the NeRF-LEBM model (pose, resolution, image, prior)."""


def _angles(what: str, value, n: int, limit: float = math.inf) -> Tensor:
    """One angle, or one per object, as float32 degrees [n] (the renderer's precision), finite and |x| <= limit.

    Numbers go through checks.number; lists, tuples, arrays and tensors are checked element-wise, so None,
    text, dicts, booleans and complex values are a NeRFError rather than a TypeError from torch."""
    try:
        if isinstance(value, Tensor):
            if value.is_complex() or value.dtype == torch.bool:
                raise TypeError
            vals = value.detach().cpu().flatten().to(torch.float32)
        elif isinstance(value, np.ndarray):
            if not (np.issubdtype(value.dtype, np.integer) or np.issubdtype(value.dtype, np.floating)):
                raise TypeError
            vals = torch.as_tensor(value.astype(np.float64).ravel()).to(torch.float32)
        elif isinstance(value, (list, tuple)):
            vals = torch.tensor([checks.number(what, v, error=NeRFError) for v in value], dtype=torch.float32)
        else:
            vals = torch.tensor([checks.number(what, value, error=NeRFError)], dtype=torch.float32)
    except (TypeError, ValueError, RuntimeError, OverflowError):  # checks.number's NeRFError too: one message for all
        raise NeRFError(f"{what} must be a finite number of degrees, or a list/tensor of one per object; "
                        f"got {_short(value)}.") from None
    if vals.numel() == 1:
        vals = vals.expand(n)
    if vals.numel() != n:
        raise NeRFError(f"Give one {what}, or one per object/image ({n}); got {vals.numel()}.")
    if not torch.isfinite(vals).all():  # also float64 values beyond float32's range (1e300)
        raise NeRFError(f"{what} must be finite degrees within float32 range; got {_short(value)}.")
    if (vals.abs() > limit).any():
        raise NeRFError(f"{what} must be between {-limit:g} and {limit:g} degrees; got {_short(value)}.")
    return vals


def _short(value) -> str:
    """repr for an error message, cut so a long list of angles does not flood it."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


@dataclass
class NeRFLEBMConfig:
    shape_dim: int = 64
    appearance_dim: int = 32
    plane_res: int = 32
    plane_channels: int = 16
    decoder_width: int = 32  # channels of the 4x4 seed planes
    hidden: int = 64  # field MLP width
    appearance_features: int = 32
    encoder_width: int = 32
    encoder_res: int = 32  # the encoder sees views downsampled to this size
    ebm_width: int = 128
    prior: str = "ebm"  # "ebm" or "gaussian" (the NeRF-VAE baseline: energies are 0)
    sigma_eps: float = 0.05  # observation noise of the likelihood I = G(z) + eps
    samples: int = 32  # samples per ray for rendering
    train_samples: int = 24
    prior_steps: int = 60
    prior_step: float = 0.5  # s in the paper's prior chain
    prior_noise: float = 1.0  # noise weight
    refine_steps: int = 0  # default posterior refinement steps in infer()
    refine_step_size: float = 0.01
    refine_res: int = 32
    density_bias: float = -2.0


def swish(x: Tensor) -> Tensor:
    return x * torch.sigmoid(x)


class EnergyMLP(nn.Module):
    """E(z): 2 x (Linear + swish) -> Linear 1 (the paper's small prior EBM)."""

    def __init__(self, dim: int, width: int):
        super().__init__()
        self.l1, self.l2, self.out = nn.Linear(dim, width), nn.Linear(width, width), nn.Linear(width, 1)

    def forward(self, z: Tensor) -> Tensor:
        return self.out(swish(self.l2(swish(self.l1(z))))).squeeze(-1)


class TriplaneDecoder(nn.Module):
    """z_s -> three feature planes [B, 3, C, R, R] through 4x4 seeds and upsampling convs."""

    def __init__(self, c: NeRFLEBMConfig):
        super().__init__()
        if c.plane_res < 4 or c.plane_res & (c.plane_res - 1):
            raise NeRFError(f"plane_res must be a power of two >= 4; got {c.plane_res}.")
        self.c = c
        w = c.decoder_width
        self.fc = nn.Sequential(nn.Linear(c.shape_dim, 256), nn.SiLU(), nn.Linear(256, 3 * w * 16))
        ups, cin, res = [], w, 4
        while res < c.plane_res:
            cout = c.plane_channels if res * 2 == c.plane_res else w
            ups.append(nn.Conv2d(cin, cout, 3, padding=1))
            cin, res = cout, res * 2
        self.ups = nn.ModuleList(ups)
        self.skip = nn.Conv2d(w, c.plane_channels, 1) if not ups else None

    def forward(self, z: Tensor) -> Tensor:
        b, w = z.shape[0], self.c.decoder_width
        x = self.fc(z).reshape(b * 3, w, 4, 4)
        if self.skip is not None:
            x = self.skip(x)
        for i, conv in enumerate(self.ups):
            x = conv(F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False))
            if i < len(self.ups) - 1:
                x = F.silu(x)
        return x.reshape(b, 3, self.c.plane_channels, self.c.plane_res, self.c.plane_res)


class Encoder(nn.Module):
    """q(z_s, z_a | image, pose): a small CNN on a downsampled view plus the pose, Gaussian heads."""

    def __init__(self, c: NeRFLEBMConfig):
        super().__init__()
        w = c.encoder_width
        self.conv = nn.Sequential(
            nn.Conv2d(3, w, 3, 2, 1), nn.SiLU(), nn.Conv2d(w, 2 * w, 3, 2, 1), nn.SiLU(),
            nn.Conv2d(2 * w, 4 * w, 3, 2, 1), nn.SiLU(), nn.Conv2d(4 * w, 4 * w, 3, 2, 1), nn.SiLU())
        side = c.encoder_res // 16
        self.fc = nn.Sequential(nn.Linear(4 * w * side * side + 4, 256), nn.SiLU())
        out = c.shape_dim + c.appearance_dim
        self.mu, self.logvar = nn.Linear(256, out), nn.Linear(256, out)
        self.res = c.encoder_res

    def forward(self, images: Tensor, azimuth: Tensor, elevation: Tensor) -> tuple[Tensor, Tensor]:
        """images [B, 3, H, W] in [0, 1]; azimuth/elevation [B] degrees -> (mu, logvar) [B, shape+appearance]."""
        x = images * 2 - 1
        if x.shape[-1] != self.res:
            x = F.interpolate(x, size=(self.res, self.res), mode="area")
        a, e = torch.deg2rad(azimuth), torch.deg2rad(elevation)
        pose = torch.stack([a.sin(), a.cos(), e.sin(), e.cos()], -1)
        h = self.fc(torch.cat([self.conv(x).flatten(1), pose], -1))
        return self.mu(h), self.logvar(h).clamp(-10, 4)


@dataclass
class FieldState:
    """What a batch of objects needs for rendering: triplanes from z_s, appearance vectors from z_a."""

    planes: Tensor  # [B, 3, C, R, R]
    appearance: Tensor  # [B, hidden] (the appearance contribution to the colour head's first layer)


@register_model("nerf_lebm")
class NeRFLEBM(nn.Module, StudioModel):
    """Conditional triplane radiance field + two prior EBMs + amortised encoder (see the module docstring)."""

    config_class = NeRFLEBMConfig

    def __init__(self, config: NeRFLEBMConfig):
        super().__init__()
        if config.prior not in PRIORS:
            raise NeRFError(f"prior must be one of {PRIORS}; got '{config.prior}'.")
        self.config = c = config
        self.shape_decoder = TriplaneDecoder(c)
        self.appearance_net = nn.Sequential(nn.Linear(c.appearance_dim, 128), nn.SiLU(), nn.Linear(128, c.appearance_features))
        self.density = nn.Sequential(nn.Linear(c.plane_channels, c.hidden), nn.ReLU(), nn.Linear(c.hidden, 1 + c.hidden))
        self.colour_feat = nn.Linear(c.hidden, c.hidden)
        self.colour_app = nn.Linear(c.appearance_features, c.hidden, bias=False)
        self.colour_out = nn.Linear(c.hidden, 3)
        self.encoder = Encoder(c)
        self.ebm_shape = EnergyMLP(c.shape_dim, c.ebm_width)
        self.ebm_appearance = EnergyMLP(c.appearance_dim, c.ebm_width)

    # ------------------------------------------------------------------ field

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def field_state(self, z_s: Tensor, z_a: Tensor) -> FieldState:
        """Decode the latents once per object; density depends on z_s only, colour also on z_a."""
        return FieldState(self.shape_decoder(z_s), self.colour_app(self.appearance_net(z_a)))

    def features(self, state: FieldState, points: Tensor) -> Tensor:
        """Triplane features [B, P, C] of points [B, P, 3] (sum of the three bilinear plane lookups)."""
        planes = state.planes
        b, _, c, r, _ = planes.shape
        p = (points / BOUND).clamp(-1, 1)
        # Planes xy, xz, zy: grid_sample takes (x, y) pairs = (column, row) coordinates.
        coords = torch.stack([p[..., [0, 1]], p[..., [0, 2]], p[..., [2, 1]]], 1)  # [B, 3, P, 2]
        feats = F.grid_sample(planes.reshape(b * 3, c, r, r), coords.reshape(b * 3, 1, -1, 2), mode="bilinear",
                              padding_mode="border", align_corners=False)  # [B*3, C, 1, P]
        return feats.reshape(b, 3, c, -1).sum(1).transpose(1, 2)

    def _sigma(self, pre: Tensor) -> Tensor:
        # x10: densities of order 10 make a 0.1-wide part opaque from the start.
        return F.softplus(pre + self.config.density_bias) * 10.0

    def _rgb(self, colour_in: Tensor, appearance: Tensor) -> Tensor:
        col = F.relu(self.colour_feat(F.relu(colour_in)) + appearance)
        return torch.sigmoid(self.colour_out(col))

    def query(self, state: FieldState, points: Tensor) -> tuple[Tensor, Tensor]:
        """points [B, P, 3] in world coordinates -> sigma [B, P], rgb [B, P, 3]."""
        out = self.density(self.features(state, points))
        return self._sigma(out[..., 0]), self._rgb(out[..., 1:], state.appearance[:, None, :])

    @torch.no_grad()
    def occupancy(self, state: FieldState, res: int = 32, threshold: float = 0.5) -> Tensor:
        """Which cells of a res^3 grid over the object box may hold density [B, res, res, res] (bool).

        Density at the cell centres above ``threshold``, dilated by one cell so thin parts between
        centres are kept; rendering skips samples in empty cells (inference only)."""
        b = state.planes.shape[0]
        lin = ((torch.arange(res, device=state.planes.device) + 0.5) / res * 2 - 1) * BOUND
        grid = torch.stack(torch.meshgrid(lin, lin, lin, indexing="ij"), -1).reshape(1, -1, 3).expand(b, -1, -1)
        first, second = self.density[0], self.density[2]
        sigma = self._sigma(F.relu(first(self.features(state, grid))) @ second.weight[0] + second.bias[0])
        occ = (sigma > threshold).float().reshape(b, 1, res, res, res)
        return F.max_pool3d(occ, 3, 1, 1)[:, 0] > 0

    def _render_chunk(self, state: FieldState, origins: Tensor, dirs: Tensor, samples: int,
                      occupancy: Tensor | None = None, min_weight: float = 1e-4) -> dict:
        """Inference-only rendering of rays [B, R, 3]: densities only in occupied cells, colours only where
        the compositing weight is at least ``min_weight`` (most samples are empty space or hidden)."""
        near, far, hit = box_intervals(origins, dirs)
        t = stratified_depths(near, far, samples, jitter=False)
        b, r = origins.shape[:2]
        pts = (origins[..., None, :] + dirs[..., None, :] * t[..., None]).reshape(b, r * samples, 3)
        first, second = self.density[0], self.density[2]
        if occupancy is None:
            hidden = F.relu(first(self.features(state, pts)))  # [B, P, hidden]
            pre = hidden @ second.weight[0] + second.bias[0]
            sigma = self._sigma(pre)
        else:
            res = occupancy.shape[-1]
            cell = ((pts / BOUND + 1) / 2 * res).long().clamp(0, res - 1)
            busy = occupancy[torch.arange(b, device=pts.device)[:, None], cell[..., 0], cell[..., 1], cell[..., 2]]
            hidden = pts.new_zeros(b, r * samples, first.out_features)
            sigma = pts.new_zeros(b, r * samples)
            for i in range(b):
                sel = busy[i].nonzero().flatten()
                if len(sel):
                    one = FieldState(state.planes[i : i + 1], state.appearance[i : i + 1])
                    h = F.relu(first(self.features(one, pts[i : i + 1, sel])))[0]
                    hidden[i, sel] = h
                    sigma[i, sel] = self._sigma(h @ second.weight[0] + second.bias[0])
        sigma = sigma.reshape(b, r, samples) * hit[..., None]
        zeros = torch.zeros(b, r, samples, 3, device=sigma.device)
        out = composite(sigma, zeros, t, far)
        w = out["weights"].reshape(b, r * samples)
        keep = w >= min_weight
        if keep.any():
            bi = keep.nonzero()[:, 0]
            colour_in = F.linear(hidden[keep], second.weight[1:], second.bias[1:])
            rgb = self._rgb(colour_in, state.appearance[bi])
            out["rgb"] = out["rgb"] + torch.zeros(b, r * samples, 3, device=w.device).index_put(
                (bi, keep.nonzero()[:, 1]), rgb * w[keep][:, None]).reshape(b, r, samples, 3).sum(2)
        out.pop("weights")
        return out

    def render_rays(self, state: FieldState, origins: Tensor, dirs: Tensor, samples: int | None = None,
                    generator: torch.Generator | None = None, jitter: bool = False) -> dict[str, Tensor]:
        """Rays [B, R, 3] -> rgb [B, R, 3], depth, opacity [B, R]."""
        samples = samples or self.config.samples
        near, far, hit = box_intervals(origins, dirs)
        t = stratified_depths(near, far, samples, generator, jitter)
        pts = origins[..., None, :] + dirs[..., None, :] * t[..., None]
        b, r = origins.shape[:2]
        sigma, rgb = self.query(state, pts.reshape(b, r * samples, 3))
        sigma = sigma.reshape(b, r, samples) * hit[..., None]
        out = composite(sigma, rgb.reshape(b, r, samples, 3), t, far)
        out.pop("weights")
        return out

    # ------------------------------------------------------------------ priors

    def energy_shape(self, z_s: Tensor) -> Tensor:
        """E_s(z_s) (0 for the Gaussian prior): the prior is exp(-E_s) N(0, I)."""
        return self.ebm_shape(z_s) if self.config.prior == "ebm" else z_s.new_zeros(z_s.shape[0])

    def energy_appearance(self, z_a: Tensor) -> Tensor:
        return self.ebm_appearance(z_a) if self.config.prior == "ebm" else z_a.new_zeros(z_a.shape[0])

    def check_prior(self, prior: str | None) -> str:
        prior = prior or self.config.prior
        if prior not in PRIORS:
            raise NeRFError(f"prior must be one of {PRIORS}; got '{prior}'.")
        if prior == "ebm" and self.config.prior != "ebm":
            raise NeRFError("This checkpoint was trained with a Gaussian prior: it has no EBM prior to sample from.")
        return prior

    def prior_chain(self, z0: Tensor, energy, steps: int | None = None, generator=None, record_every: int = 0) -> tuple[Tensor, Trace]:
        """Langevin on E(z) + |z|^2/2 from z0 (the paper's prior chain; see the module docstring)."""
        c = self.config
        s = c.prior_step
        return langevin(lambda z: energy(z) + 0.5 * z.pow(2).sum(-1), z0, steps=c.prior_steps if steps is None else steps,
                        step_size=0.5 * s * s, noise_std=s * c.prior_noise, generator=generator,
                        modules=(self.ebm_shape, self.ebm_appearance), record_every=record_every)

    def _sample_part(self, part: str, seeds: list[int], prior: str, steps: int | None,
                     record_every: int = 0) -> tuple[Tensor, Trace]:
        if steps is not None:  # a huge or fractional step count would hang or fail inside the chain
            steps = checks.integer("steps", steps, 0, MAX_STEPS, NeRFError)
        dim = self.config.shape_dim if part == "shape" else self.config.appearance_dim
        energy = self.energy_shape if part == "shape" else self.energy_appearance
        # CPU generators, drawn on the host and moved: a seed gives the same object on every device (studio.device).
        gens = [torch.Generator().manual_seed((s if part == "shape" else s ^ _APPEARANCE_STREAM) % 2**63) for s in seeds]
        z0 = torch.stack([torch.randn(dim, generator=g) for g in gens]).to(self.device)
        if prior == "gaussian":
            return z0, Trace()
        return self.prior_chain(z0, energy, steps, gens, record_every)

    def sample_shape(self, seeds, prior: str | None = None, steps: int | None = None) -> Tensor:
        """Shape latents [n, shape_dim], one per seed (seed i's latent never depends on the others)."""
        return self._sample_part("shape", parse_seeds(seeds), self.check_prior(prior), steps)[0]

    def sample_appearance(self, seeds, prior: str | None = None, steps: int | None = None) -> Tensor:
        return self._sample_part("appearance", parse_seeds(seeds), self.check_prior(prior), steps)[0]

    def sample_latents(self, n: int | None = None, prior: str | None = None, seeds="0", steps: int | None = None) -> tuple[Tensor, Tensor]:
        """(z_s, z_a) for ``n`` objects from the EBM prior (Langevin) or the Gaussian N(0, I).

        ``seeds``: an EDM-style spec ("0-7") or list; with ``n`` set and a single seed s, seeds s..s+n-1.
        """
        seed_list = parse_seeds(seeds)
        if n is not None:
            # Capped like a seed list: a single seed with a huge n would build range(seed, seed + n).
            n = checks.integer("n", n, 1, MAX_OBJECTS, NeRFError)
            if len(seed_list) == 1 and n > 1:
                seed_list = self._seed_run(seed_list[0], n)
            elif len(seed_list) != n:
                raise NeRFError(f"Got {len(seed_list)} seeds for n = {n} objects.")
        prior = self.check_prior(prior)
        return self._sample_part("shape", seed_list, prior, steps)[0], self._sample_part("appearance", seed_list, prior, steps)[0]

    def prior_trajectory(self, seeds="0", prior: str | None = None, steps: int | None = None, record_every: int = 1,
                         max_frames: int = TRAJECTORY_FRAMES, resolution: int = TRAJECTORY_RES,
                         azimuth: float = TRAJECTORY_POSE[0], elevation: float = TRAJECTORY_POSE[1]) -> tuple[Tensor, Tensor, Trace]:
        """The EBM prior chain of ``sample_latents`` with its Trace, whose frames are renders of the latents.

        The shape and appearance chains are independent Langevin chains with the same step count and
        constants, i.e. one chain on (z_s, z_a) under E_s(z_s) + E_a(z_a) + |z|^2/2. So the Trace holds the
        joint energy (their sum) and joint gradient norm per step, and ``grad_sum`` is [B, ds + da].
        The latents at every ``record_every``-th step (and the last) are candidate frames; rendering is
        what costs (a 64 px view ~0.3 s on a 2-core CPU; the default 16 frames at 32 px ~0.5 s together),
        so at most ``max_frames`` of them, evenly spaced with the first and last kept, are rendered in one
        batch from one pose at ``resolution`` px. Frames are
        [B, 3, r, r] in [-1, 1] (the studio's image range, as other samplers' frames); ``frame_steps``
        says which step each shows, so ``len(frames) < num_steps + 1`` means the chain was subsampled.

        Returns (z_s, z_a, trace); the latents equal ``sample_latents(seeds=seeds, steps=steps)``.
        """
        # Each seed is a row of every rendered frame: a handful keeps the request to seconds.
        seed_list = parse_seeds(seeds, max_count=16)
        if self.check_prior(prior) != "ebm":
            raise NeRFError("A Gaussian prior draws z ~ N(0, I) directly: it has no Langevin chain to show. "
                            "Use prior='ebm' with a checkpoint trained with an EBM prior.")
        record_every = checks.integer("record_every", record_every, 1, 10_000, NeRFError)  # steps: _sample_part
        max_frames = checks.integer("max_frames", max_frames, 2, 64, NeRFError)
        resolution = self.check_resolution(resolution)
        z_s, shape_trace = self._sample_part("shape", seed_list, "ebm", steps, record_every)
        z_a, app_trace = self._sample_part("appearance", seed_list, "ebm", steps, record_every)
        picks = np.unique(np.linspace(0, len(shape_trace.frames) - 1, min(max_frames, len(shape_trace.frames)))
                          .round().astype(int)).tolist()
        zs_frames = torch.cat([shape_trace.frames[i] for i in picks]).to(self.device)
        za_frames = torch.cat([app_trace.frames[i] for i in picks]).to(self.device)
        # One batched render of every picked state: [F * B, 3, r, r] -> F frames of [B, 3, r, r].
        rgb = self.render(zs_frames, za_frames, azimuth, elevation, resolution)["rgb"].cpu()
        n = len(seed_list)
        trace = Trace(
            energies=[es + ea for es, ea in zip(shape_trace.energies, app_trace.energies)],
            grad_norms=[(gs.pow(2) + ga.pow(2)).sqrt() for gs, ga in zip(shape_trace.grad_norms, app_trace.grad_norms)],
            frames=list((rgb * 2 - 1).split(n)),
            frame_steps=[shape_trace.frame_steps[i] for i in picks],
            frame_labels=[shape_trace.frame_labels[i] for i in picks],
            grad_sum=None if shape_trace.grad_sum is None else torch.cat([shape_trace.grad_sum, app_trace.grad_sum], 1),
            segments=[("EBM prior", 0, shape_trace.num_steps)])
        return z_s, z_a, trace

    @staticmethod
    def _seed_run(first: int, n: int) -> list[int]:
        """Seeds first..first+n-1; refused past the largest seed rather than wrapped onto other seeds."""
        if first + n - 1 > MAX_SEED:
            raise NeRFError(f"Seeds {first}..{first + n - 1} go past the largest seed {MAX_SEED}; choose a smaller seed.")
        return list(range(first, first + n))

    def check_latents(self, z_s, z_a) -> tuple[Tensor, Tensor]:
        """Finite float latents z_s [B, shape_dim] and z_a [B, appearance_dim], B >= 1, on the model's device
        and dtype (a mismatch would otherwise fail deep inside torch)."""
        c = self.config
        for what, z, dim in (("z_s", z_s, c.shape_dim), ("z_a", z_a, c.appearance_dim)):
            if not isinstance(z, Tensor) or not z.is_floating_point():
                got = f"a {z.dtype} tensor" if isinstance(z, Tensor) else type(z).__name__
                raise NeRFError(f"{what} must be a float tensor [B, {dim}] (from sample_latents or infer); got {got}.")
            if z.dim() != 2 or z.shape[0] < 1 or z.shape[1] != dim:
                raise NeRFError(f"{what} must have shape [B, {dim}] with B >= 1; got {tuple(z.shape)}.")
            if not torch.isfinite(z).all():
                raise NeRFError(f"{what} contains non-finite values.")
        if z_s.shape[0] != z_a.shape[0]:
            raise NeRFError(f"z_s and z_a must hold the same number of objects; got {z_s.shape[0]} and {z_a.shape[0]}.")
        dtype = next(self.parameters()).dtype
        return z_s.to(self.device, dtype), z_a.to(self.device, dtype)

    def resample(self, z_s: Tensor, z_a: Tensor, part: str, seeds, prior: str | None = None) -> tuple[Tensor, Tensor]:
        """Replace only the shape (``part="shape"``) or only the appearance latents; the other is returned as is."""
        z_s, z_a = self.check_latents(z_s, z_a)
        if part not in ("shape", "appearance"):
            raise NeRFError(f"part must be 'shape' or 'appearance'; got {part!r}.")
        seeds = parse_seeds(seeds)
        b = z_s.shape[0]
        if len(seeds) == 1 and b > 1:
            seeds = self._seed_run(seeds[0], b)
        elif len(seeds) != b:  # the new latents must pair with the kept ones
            raise NeRFError(f"Got {len(seeds)} seeds for {b} objects: give one seed, or one per object.")
        if part == "shape":
            return self.sample_shape(seeds, prior), z_a
        return z_s, self.sample_appearance(seeds, prior)

    # ------------------------------------------------------------------ rendering

    @staticmethod
    def clamp_elevation(elevation: float) -> tuple[float, str]:
        """Clamp to the training range; the note says so (poses outside it were never seen)."""
        lo, hi = ELEVATION_RANGE
        try:  # None, text, lists and dicts are refused like NaN; any finite value is clamped below
            if isinstance(elevation, bool):
                raise TypeError
            e = float(elevation)
        except (TypeError, ValueError, OverflowError):
            e = math.nan
        if not math.isfinite(e):
            raise NeRFError(f"elevation must be a finite number of degrees; got {elevation!r}.")
        if e < lo or e > hi:
            clamped = min(max(e, lo), hi)
            return clamped, f"Elevation {e:g} is outside the training range {lo:g}..{hi:g} degrees; clamped to {clamped:g}."
        return e, ""

    @staticmethod
    def check_resolution(resolution: int) -> int:
        if not isinstance(resolution, (int, np.integer)) or isinstance(resolution, bool) or resolution < 8:
            raise NeRFError(f"resolution must be an integer of at least 8; got {resolution!r}.")
        if resolution > MAX_RESOLUTION:
            raise NeRFError(f"resolution {resolution} is above the cap of {MAX_RESOLUTION} pixels; choose a smaller one.")
        return int(resolution)

    def _poses(self, n: int, azimuth, elevation) -> tuple[Tensor, list[str]]:
        az = _angles("azimuth", azimuth, n, MAX_AZIMUTH)
        el = _angles("elevation", elevation, n)  # any finite elevation: clamped below, with a note
        notes, c2w = [], []
        for a, e in zip(az.tolist(), el.tolist()):
            e, note = self.clamp_elevation(e)
            if note and note not in notes:
                notes.append(note)
            c2w.append(camera_to_world(a, e, RADIUS))
        return torch.stack(c2w).to(self.device), notes

    @torch.no_grad()
    def render(self, z_s: Tensor, z_a: Tensor, azimuth=0.0, elevation=20.0, resolution: int = 64,
               samples: int | None = None, chunk: int = 4096, skip_empty: bool = True) -> dict:
        """Render objects (z_s [B, ds], z_a [B, da]) from cameras on the sphere.

        Returns rgb [B, 3, H, W] in [0, 1], depth [B, H, W] (distance along the ray, 0 = background),
        opacity [B, H, W] and ``notes`` (e.g. an elevation that was clamped to the training range).
        ``skip_empty`` skips samples in cells of a 32^3 occupancy grid with no density (see ``occupancy``).
        """
        resolution = self.check_resolution(resolution)
        z_s, z_a = self.check_latents(z_s, z_a)
        c2w, notes = self._poses(z_s.shape[0], azimuth, elevation)
        state = self.field_state(z_s, z_a)
        occ = self.occupancy(state) if skip_empty else None
        out = render_image(None, c2w, resolution, samples or self.config.samples, chunk,
                           render_rays_fn=lambda o, d, n: self._render_chunk(state, o, d, n, occ))
        out["notes"] = notes
        return out

    def orbit(self, z_s: Tensor, z_a: Tensor, frames: int = 24, elevation: float = 25.0, resolution: int = 64,
              start_azimuth: float = 0.0, samples: int | None = None) -> Tensor:
        """Turntable frames [F, B, 3, H, W] (azimuth sweeps 360 degrees at a fixed elevation)."""
        frames = checks.integer("frames", frames, 1, 360, NeRFError)  # before any render: a bad count fails fast
        return torch.stack([self.render(z_s, z_a, a, elevation, resolution, samples)["rgb"]
                            for a in orbit_angles(frames, start_azimuth)])

    # ------------------------------------------------------------------ inference

    def check_images(self, images: Tensor) -> Tensor:
        """Float images [B, 3, H, W] in [0, 1] (uint8 accepted); any square size, resized to 64."""
        if not isinstance(images, Tensor):
            raise NeRFError("images must be a tensor [B, 3, H, W].")
        if images.dim() == 3:
            images = images[None]
        if images.dim() != 4 or images.shape[1] not in (1, 3, 4):
            raise NeRFError(f"images must be [B, 3, H, W]; got {tuple(images.shape)}.")
        if images.is_complex():  # .float() would silently drop the imaginary part
            raise NeRFError(f"images must hold real numbers; got {images.dtype}.")
        if min(images.shape[0], images.shape[2], images.shape[3]) < 1:  # nothing to resize or encode
            raise NeRFError(f"images must hold at least one image of at least 1x1 pixels; got {tuple(images.shape)}.")
        x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
        if x.shape[1] == 4:  # composite RGBA onto the white background the model was trained with
            x = x[:, :3] * x[:, 3:] + (1 - x[:, 3:])
        elif x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if x.shape[-1] != 64 or x.shape[-2] != 64:
            x = F.interpolate(x, size=(64, 64), mode="area" if x.shape[-1] > 64 else "bilinear")
        if not torch.isfinite(x).all():
            raise NeRFError("images contain non-finite values.")
        return x.clamp(0, 1).to(self.device)

    def encode(self, images: Tensor, azimuth: Tensor, elevation: Tensor) -> tuple[Tensor, Tensor]:
        """Posterior mean and log-variance [B, ds + da]."""
        return self.encoder(images, azimuth, elevation)

    def split(self, z: Tensor) -> tuple[Tensor, Tensor]:
        return z[:, : self.config.shape_dim], z[:, self.config.shape_dim :]

    def infer(self, images: Tensor, azimuth=0.0, elevation=20.0, refine_steps: int | None = None,
              step_size: float | None = None, return_trace: bool = False):
        """Latents (z_s, z_a) of objects seen in ``images`` from known poses.

        Amortised: the encoder's posterior mean. With ``refine_steps`` > 0, gradient descent (through
        ``studio.langevin``, no noise) on the posterior energy
        |I - G(z)|^2 / (2 sigma^2) + E_s(z_s) + E_a(z_a) + |z|^2 / 2, rendered at ``refine_res``.
        """
        c = self.config
        x = self.check_images(images)
        n = x.shape[0]
        # One pose for all images, or one per image, checked like render's before anything runs.
        az = _angles("azimuth", azimuth, n, MAX_AZIMUTH)
        el = torch.tensor([self.clamp_elevation(e)[0] for e in _angles("elevation", elevation, n).tolist()])
        steps = c.refine_steps if refine_steps is None else checks.integer("refine_steps", refine_steps, 0, MAX_STEPS, NeRFError)
        with torch.no_grad():
            mu, _ = self.encode(x, az.to(self.device), el.to(self.device))
        trace = Trace()
        if steps:
            res = c.refine_res
            target = F.interpolate(x, size=(res, res), mode="area").permute(0, 2, 3, 1).reshape(n, -1, 3)
            c2w = torch.stack([camera_to_world(a, e, RADIUS) for a, e in zip(az.tolist(), el.tolist())]).to(self.device)
            origins, dirs = get_rays(c2w, res, focal_from_fov(FOV_DEG, res))
            origins, dirs = origins.reshape(n, -1, 3), dirs.reshape(n, -1, 3)
            scale = 64 * 64 / (res * res)  # the likelihood of the full 64x64 image, estimated at ``res``

            def energy(z: Tensor) -> Tensor:
                z_s, z_a = self.split(z)
                pred = self.render_rays(self.field_state(z_s, z_a), origins, dirs, c.train_samples)["rgb"]
                recon = scale * (pred - target).pow(2).sum((1, 2)) / (2 * c.sigma_eps**2)
                return recon + self.energy_shape(z_s) + self.energy_appearance(z_a) + 0.5 * z.pow(2).sum(-1)

            mu, trace = langevin(energy, mu, steps=steps, step_size=c.refine_step_size if step_size is None else step_size,
                                 noise_std=0.0, modules=(self,))
        z_s, z_a = self.split(mu.detach())
        return (z_s, z_a, trace) if return_trace else (z_s, z_a)

    # ------------------------------------------------------------------ training

    def elbo_loss(self, images: Tensor, azimuth: Tensor, elevation: Tensor, origins: Tensor, dirs: Tensor,
                  target: Tensor, pixels: int, generator: torch.Generator | None = None,
                  prior_steps: int | None = None) -> dict[str, Tensor]:
        """-ELBO with the EBM priors and the prior EBMs' maximum-likelihood loss, one backward pass.

        images [B, 3, H, W] (the views the encoder sees, with their poses); origins/dirs/target [B, R, 3]:
        random rays of *other* views of the same objects and their colours; ``pixels`` the number of
        pixels the rays stand for (the likelihood is scaled to the full images).
        Total = recon/(2 sigma^2) + KL(q || N(0, I)) + E_s(z_q) + E_a(z_q) - E_s(z-) - E_a(z-), where z-
        are prior Langevin samples (detached): the gradient of the EBM parameters is then the MLE
        gradient E_q[grad E] - E_prior[grad E], and the encoder/generator see -ELBO.
        """
        c = self.config
        mu, logvar = self.encode(images, azimuth, elevation)
        eps = torch.randn(mu.shape, generator=generator, device=mu.device)
        z = mu + (0.5 * logvar).exp() * eps
        z_s, z_a = self.split(z)
        out = self.render_rays(self.field_state(z_s, z_a), origins, dirs, c.train_samples, generator, jitter=True)
        b, r = target.shape[:2]
        sq = (out["rgb"] - target).pow(2).sum(-1)  # [B, R]
        recon = sq.mean(-1) * pixels / (2 * c.sigma_eps**2)
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(-1)
        e_pos = self.energy_shape(z_s) + self.energy_appearance(z_a)
        stats = {"recon": recon.mean(), "kl": kl.mean(), "mse": sq.mean() / 3}
        loss = recon.mean() + kl.mean() + e_pos.mean()
        if c.prior == "ebm":
            steps = c.prior_steps if prior_steps is None else prior_steps
            z0s = torch.randn(b, c.shape_dim, generator=generator, device=mu.device)
            z0a = torch.randn(b, c.appearance_dim, generator=generator, device=mu.device)
            zs_neg, _ = self.prior_chain(z0s, self.energy_shape, steps, generator)
            za_neg, _ = self.prior_chain(z0a, self.energy_appearance, steps, generator)
            e_neg = self.energy_shape(zs_neg.detach()) + self.energy_appearance(za_neg.detach())
            loss = loss - e_neg.mean()
            stats.update(e_pos=e_pos.mean().detach(), e_neg=e_neg.mean().detach())
        stats["loss"] = loss
        return stats

    def num_parameters(self) -> dict[str, int]:
        count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
        field = count(self.shape_decoder) + count(self.appearance_net) + count(self.density) + count(self.colour_feat) \
            + count(self.colour_app) + count(self.colour_out)
        return {"field": field, "encoder": count(self.encoder), "ebm_shape": count(self.ebm_shape),
                "ebm_appearance": count(self.ebm_appearance)}

    # ------------------------------------------------------------------ the model protocol (studio.protocol)

    title = "NeRF-LEBM"

    @classmethod
    def task_specs(cls, config: NeRFLEBMConfig) -> list[TaskSpec]:
        """generate: objects from the prior, rendered from one pose. With an EBM prior it is the latent chain of
        ``prior_trajectory`` (its frames are renders); a Gaussian prior draws z ~ N(0, I) directly (no chain)."""
        view = {"resolution": TRAJECTORY_RES, "azimuth": TRAJECTORY_POSE[0], "elevation": TRAJECTORY_POSE[1]}
        if config.prior != "ebm":
            return [TaskSpec("generate", "generate", view, chain=False, describe="z ~ N(0, I), rendered")]
        return [TaskSpec("generate", "generate", {"steps": config.prior_steps, "max_frames": TRAJECTORY_FRAMES, **view},
                         describe="the EBM prior chain of the shape and appearance latents, each frame a render")]

    def _run(self, spec: TaskSpec, image, mask, *, seeds="0", record_every: int = 0, progress: bool = False,
             resolution: int = TRAJECTORY_RES, azimuth: float = TRAJECTORY_POSE[0], elevation: float = TRAJECTORY_POSE[1],
             **chain) -> SampleOutput:
        """``images`` are renders [B, 3, r, r] in [-1, 1] of the sampled latents (``extras["z_s"]``, ``["z_a"]``); with an
        EBM prior the Trace is ``prior_trajectory``'s (``record_every`` 0 renders only the first and last state).
        ``progress`` has no bar here (the chains are short; rendering is what costs)."""
        if self.config.prior != "ebm":
            z_s, z_a = self.sample_latents(seeds=seeds)
            images = self.render(z_s, z_a, azimuth, elevation, resolution)["rgb"].cpu() * 2 - 1
            return SampleOutput(images, Trace(), {"z_s": z_s, "z_a": z_a}, ["z ~ N(0, I): a Gaussian prior has no chain."])
        z_s, z_a, trace = self.prior_trajectory(seeds, record_every=record_every or MAX_STEPS, resolution=resolution,
                                                azimuth=azimuth, elevation=elevation, **chain)
        states = trace.num_steps + 1
        shown = (f"all {states} states are rendered" if len(trace.frames) == states else
                 f"{len(trace.frames)} of its {states} states, evenly spaced, are rendered (each frame is a render)")
        note = (f"the EBM prior chain of the shape and appearance latents: {trace.num_steps} Langevin steps on "
                f"E_s(z_s) + E_a(z_a) + |z|^2/2 (the energy charted); {shown}, each at {resolution} px from azimuth "
                f"{azimuth:g}, elevation {elevation:g} degrees.")
        return SampleOutput(trace.frames[-1], trace, {"z_s": z_s, "z_a": z_a}, [note])
