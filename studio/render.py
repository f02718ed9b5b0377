"""Cameras, rays and volume rendering for radiance fields, with the conventions of ``studio.data.shapes3d``.

* World frame: +y up; objects live inside the box [-BOUND, BOUND]^3.
* Cameras sit on a sphere (azimuth about +y from +z towards +x, elevation above the x-z plane) and look
  at the origin; ``c2w`` columns are the camera's right, up, backward axes and its centre.
* Pixel (i, j) looks along ((j + 0.5 - W/2) / f, -(i + 0.5 - H/2) / f, -1) in camera coordinates; ray
  directions are unit length, so depth is the distance along the ray (0 on the background).

A field is any callable ``field(points [B, P, 3]) -> (sigma [B, P], rgb [B, P, 3])`` for a batch of B
objects. Rays are cut to the object box, sampled at ``samples`` stratified depths, composited over a
white background, and rendered in chunks so any resolution fits in memory.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from . import checks
from .data.shapes3d import FOV_DEG, RADIUS, camera_to_world, focal_from_fov, get_rays
from .errors import StudioError
from .runtime import check_deadline

__all__ = ["Camera", "camera_to_world", "get_rays", "focal_from_fov", "project", "box_intervals", "stratified_depths",
           "composite", "render_rays", "render_image", "check_resolution", "BOUND", "MAX_RESOLUTION"]

BOUND = 1.0  # objects are inside [-1, 1]^3 (shapes3d builds them inside the unit sphere, cars poke out a little)
MAX_RESOLUTION = 256  # renders above this are refused (a 256x256 frame is already ~2M field queries)
MAX_SAMPLES = 1024  # depths per ray
MAX_ORBIT_FRAMES = 3600  # a turntable of 0.1 degree steps; more is a request for a huge list, not a render
Field = Callable[[Tensor], tuple[Tensor, Tensor]]


@dataclass
class Camera:
    """A camera on a sphere looking at the origin (degrees)."""

    azimuth: float = 0.0
    elevation: float = 20.0
    radius: float = RADIUS
    fov: float = FOV_DEG

    def __post_init__(self) -> None:
        # NaN or infinite angles would give NaN rays, i.e. a silently blank render.
        self.azimuth = checks.number("azimuth", self.azimuth, error=StudioError)
        self.elevation = checks.number("elevation", self.elevation, error=StudioError)
        self.radius = checks.number("radius", self.radius, 1e-6, 1e6, error=StudioError)
        self.fov = checks.number("fov", self.fov, 1e-3, 179.999, error=StudioError)

    def c2w(self) -> Tensor:
        return camera_to_world(self.azimuth, self.elevation, self.radius)

    def focal(self, resolution: int) -> float:
        return focal_from_fov(self.fov, check_resolution(resolution))

    def rays(self, resolution: int) -> tuple[Tensor, Tensor]:
        """Origins and unit directions [H, W, 3]."""
        resolution = check_resolution(resolution)
        return get_rays(self.c2w(), resolution, self.focal(resolution))


def check_resolution(resolution) -> int:
    """A whole number of pixels in [1, MAX_RESOLUTION] (a typo like 8000 would allocate 64M rays)."""
    if isinstance(resolution, bool) or not isinstance(resolution, int):
        raise StudioError(f"resolution must be a positive integer; got {resolution!r}.")
    if resolution < 1:
        raise StudioError(f"resolution must be a positive integer; got {resolution!r}.")
    if resolution > MAX_RESOLUTION:
        raise StudioError(f"resolution {resolution} is above the cap of {MAX_RESOLUTION} pixels; choose a smaller one.")
    return resolution


def poses_to_c2w(azimuth: Tensor, elevation: Tensor, radius: float = RADIUS) -> Tensor:
    """[B] azimuths/elevations (degrees) -> [B, 4, 4] camera-to-world matrices."""
    try:
        if isinstance(azimuth, bool) or isinstance(elevation, bool):
            raise TypeError
        azimuth, elevation = torch.as_tensor(azimuth, dtype=torch.float32), torch.as_tensor(elevation, dtype=torch.float32)
    except (TypeError, ValueError, RuntimeError, OverflowError):
        raise StudioError(f"Camera angles must be numbers or tensors of degrees; got {azimuth!r}, {elevation!r}.") from None
    if azimuth.numel() != elevation.numel() or azimuth.numel() == 0:
        raise StudioError(f"Give one elevation per azimuth; got {azimuth.numel()} azimuths and {elevation.numel()} elevations.")
    if not (torch.isfinite(azimuth).all() and torch.isfinite(elevation).all()):
        raise StudioError("Camera angles must be finite numbers (degrees).")
    return torch.stack([camera_to_world(float(a), float(e), radius) for a, e in zip(azimuth.flatten(), elevation.flatten())])


def project(points: Tensor, c2w: Tensor, resolution: int, focal: float) -> Tensor:
    """World points [..., 3] -> continuous pixel coordinates (i, j) [..., 2] (pixel centres at k + 0.5)."""
    w2c = torch.linalg.inv(c2w)
    cam = points @ w2c[:3, :3].T + w2c[:3, 3]
    x, y, z = cam.unbind(-1)
    j = focal * x / -z + resolution / 2
    i = -focal * y / -z + resolution / 2
    return torch.stack([i, j], -1)


def box_intervals(origins: Tensor, dirs: Tensor, bound: float = BOUND) -> tuple[Tensor, Tensor, Tensor]:
    """Entry/exit distances [...] of rays through the box [-bound, bound]^3 and whether they hit it."""
    safe = torch.where(dirs.abs() < 1e-9, torch.full_like(dirs, 1e-9), dirs)
    t1, t2 = (-bound - origins) / safe, (bound - origins) / safe
    near = torch.minimum(t1, t2).amax(-1).clamp_min(0)
    far = torch.maximum(t1, t2).amin(-1)
    hit = far > near
    return near, torch.where(hit, far, near), hit


def stratified_depths(near: Tensor, far: Tensor, samples: int, generator: torch.Generator | None = None,
                      jitter: bool = True) -> Tensor:
    """``samples`` depths per ray [..., S]: one per equal bin, uniformly jittered inside it (or at bin centres)."""
    samples = checks.integer("samples per ray", samples, 1, MAX_SAMPLES, error=StudioError)
    u = torch.arange(samples, dtype=near.dtype, device=near.device)
    offset = (torch.rand(*near.shape, samples, generator=generator, device=near.device, dtype=near.dtype)
              if jitter else torch.full((*near.shape, samples), 0.5, device=near.device, dtype=near.dtype))
    frac = (u + offset) / samples
    return near[..., None] + (far - near)[..., None] * frac


def composite(sigma: Tensor, rgb: Tensor, t: Tensor, far: Tensor, background: float = 1.0) -> dict[str, Tensor]:
    """Volume rendering C = sum_i T_i (1 - exp(-sigma_i delta_i)) c_i, T_i = exp(-sum_{j<i} sigma_j delta_j).

    sigma [..., S], rgb [..., S, 3], t [..., S] sorted depths, far [...] the exit distance (the last
    interval runs to it). Returns rgb [..., 3] over ``background``, depth [...] = sum_i w_i t_i (0 when
    nothing is hit, like shapes3d), opacity [...] = sum_i w_i and the weights [..., S].
    """
    delta = torch.cat([t[..., 1:] - t[..., :-1], (far[..., None] - t[..., -1:]).clamp_min(1e-4)], -1)
    alpha = 1 - torch.exp(-sigma * delta)
    # Transmittance before sample i: exclusive cumulative product of (1 - alpha).
    trans = torch.cumprod(torch.cat([torch.ones_like(alpha[..., :1]), 1 - alpha[..., :-1] + 1e-10], -1), -1)
    w = alpha * trans
    acc = w.sum(-1)
    colour = (w[..., None] * rgb).sum(-2) + (1 - acc)[..., None] * background
    return {"rgb": colour, "depth": (w * t).sum(-1), "opacity": acc, "weights": w}


def render_rays(field: Field, origins: Tensor, dirs: Tensor, samples: int, generator: torch.Generator | None = None,
                jitter: bool = False, bound: float = BOUND) -> dict[str, Tensor]:
    """Render rays [B, R, 3] of B objects through ``field``; rays that miss the box are background."""
    near, far, hit = box_intervals(origins, dirs, bound)
    t = stratified_depths(near, far, samples, generator, jitter)  # [B, R, S]
    points = origins[..., None, :] + dirs[..., None, :] * t[..., None]
    b, r = origins.shape[:2]
    sigma, rgb = field(points.reshape(b, r * samples, 3))
    sigma = sigma.reshape(b, r, samples) * hit[..., None]
    out = composite(sigma, rgb.reshape(b, r, samples, 3), t, far)
    out.pop("weights")
    return out


def render_image(field: Field | None, c2w: Tensor, resolution: int, samples: int, chunk: int = 8192,
                 fov: float = FOV_DEG, render_rays_fn: Callable | None = None) -> dict[str, Tensor]:
    """Render B objects, each from its own camera c2w [B, 4, 4]: rgb [B, 3, H, W], depth/opacity [B, H, W].

    Only rays that hit the object box are sent to the field, in chunks of ``chunk`` rays per object.
    ``render_rays_fn(origins, dirs, samples)`` replaces ``render_rays`` on ``field`` (a model's own,
    faster inference path with the same result).
    """
    resolution = check_resolution(resolution)
    samples = checks.integer("samples per ray", samples, 1, MAX_SAMPLES, error=StudioError)
    if not isinstance(c2w, Tensor) or c2w.dim() != 3 or tuple(c2w.shape[1:]) != (4, 4) or not torch.isfinite(c2w).all():
        raise StudioError(f"c2w must be finite camera-to-world matrices [B, 4, 4]; got "
                          f"{tuple(c2w.shape) if isinstance(c2w, Tensor) else type(c2w).__name__}.")
    b = c2w.shape[0]
    origins, dirs = get_rays(c2w, resolution, focal_from_fov(fov, resolution))
    origins, dirs = origins.reshape(b, -1, 3), dirs.reshape(b, -1, 3)
    _, _, hit = box_intervals(origins, dirs)
    # Rays hitting the box are the same pixels for every object only if cameras match; take the union
    # so one batched field call serves all objects (misses inside the union are masked by render_rays).
    keep = hit.any(0).nonzero().flatten()
    n = resolution * resolution
    rgb = torch.ones(b, n, 3, device=c2w.device)
    depth, opacity = torch.zeros(b, n, device=c2w.device), torch.zeros(b, n, device=c2w.device)
    step = max(1, chunk)
    for i in range(0, len(keep), step):
        check_deadline()
        idx = keep[i : i + step]
        if render_rays_fn is not None:
            out = render_rays_fn(origins[:, idx], dirs[:, idx], samples)
        else:
            out = render_rays(field, origins[:, idx], dirs[:, idx], samples)
        rgb[:, idx], depth[:, idx], opacity[:, idx] = out["rgb"], out["depth"], out["opacity"]
    return {"rgb": rgb.reshape(b, resolution, resolution, 3).permute(0, 3, 1, 2).contiguous(),
            "depth": depth.reshape(b, resolution, resolution), "opacity": opacity.reshape(b, resolution, resolution)}


def orbit_angles(frames: int, start: float = 0.0) -> list[float]:
    """Azimuths of a full turntable, wrapped to [-180, 180)."""
    try:
        frames = checks.integer("frames", frames, 1, MAX_ORBIT_FRAMES, error=StudioError)
    except StudioError:
        raise StudioError(f"An orbit needs a whole number of frames from 1 to {MAX_ORBIT_FRAMES}; got {frames!r}.") from None
    start = checks.number("start azimuth", start, error=StudioError)
    return [((start + 360.0 * k / frames + 180.0) % 360.0) - 180.0 for k in range(frames)]


def fov_of(focal: float, resolution: int) -> float:
    return math.degrees(2 * math.atan(0.5 * resolution / focal))
