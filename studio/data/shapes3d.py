"""shapes3d: the studio's own procedural multi-view 3D objects, ray-cast analytically in torch.

Six categories (car, chair, table, airplane, tree, mushroom), random proportions
and colours, on a white background. Every view comes with RGB, alpha, depth,
camera-to-world matrix, focal length, azimuth, elevation, object id and class.

Conventions (shared with ``studio.render``):

* World frame: **+y is up**; objects sit inside the unit sphere around the origin.
* Cameras sit on a sphere of radius ``RADIUS`` looking at the origin. Azimuth
  (degrees) turns about +y starting at +z towards +x; elevation (degrees) is the
  angle above the x-z plane. Camera centre = r (cos e sin a, sin e, cos e cos a).
* ``c2w`` is OpenGL/NeRF style: columns are the camera's x (right), y (up) and z
  (backwards) axes and its centre; the camera looks down its -z axis.
* Pixel (i, j) has its ray through ((j + 0.5 - W/2) / f, -(i + 0.5 - H/2) / f, -1)
  in camera coordinates; ray directions are unit length, so **depth is the
  distance along the ray** from the camera centre. Background depth is 0 (alpha 0).
"""
from __future__ import annotations

import colorsys
import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from ..errors import StudioError
from . import data_dir

CATEGORIES = ("car", "chair", "table", "airplane", "tree", "mushroom")
RADIUS = 3.0
FOV_DEG = 40.0
VIEWS = 24
IMAGE_SIZE = 64
DEFAULT_TRAIN_OBJECTS = 2000
DEFAULT_TEST_OBJECTS = 200
RENDERER_VERSION = 1
LIGHT = torch.tensor([0.45, 0.8, 0.4]) / math.sqrt(0.45**2 + 0.8**2 + 0.4**2)
BOX, ELLIPSOID, CYLINDER = 0, 1, 2
_TEST_SEED_OFFSET = 10_000_000  # test objects use a disjoint id range


# ----------------------------------------------------------------------------- cameras


def camera_to_world(azimuth: float | Tensor, elevation: float | Tensor, radius: float = RADIUS) -> Tensor:
    """4x4 camera-to-world matrix for a camera on the sphere looking at the origin (see module docstring)."""
    try:  # one finite angle each: text, lists or NaN would fail deep in torch or give a NaN (blank) camera
        if isinstance(azimuth, bool) or isinstance(elevation, bool):
            raise TypeError
        a, e = (torch.as_tensor(v, dtype=torch.float32) for v in (azimuth, elevation))
        ok = a.numel() == 1 and e.numel() == 1 and bool(torch.isfinite(a).all() and torch.isfinite(e).all())
        ok = ok and math.isfinite(float(radius)) and float(radius) > 0
    except (TypeError, ValueError, RuntimeError, OverflowError):
        ok = False
    if not ok:
        raise StudioError(f"A camera needs one finite azimuth and elevation (degrees) and a positive radius; "
                          f"got {azimuth!r}, {elevation!r}, {radius!r}.")
    a, e = torch.deg2rad(a.reshape(())), torch.deg2rad(e.reshape(()))
    centre = radius * torch.stack([e.cos() * a.sin(), e.sin(), e.cos() * a.cos()])
    z = centre / centre.norm()
    up = torch.tensor([0.0, 1.0, 0.0])
    x = torch.linalg.cross(up, z)
    if x.norm() < 1e-6:  # looking straight down/up: any right vector works
        x = torch.tensor([1.0, 0.0, 0.0])
    x = x / x.norm()
    y = torch.linalg.cross(z, x)
    c2w = torch.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = x, y, z, centre
    return c2w


def focal_from_fov(fov_deg: float, size: int) -> float:
    """Focal length in pixels for a horizontal field of view over ``size`` pixels."""
    if not 0 < fov_deg < 180:
        raise StudioError(f"fov must be between 0 and 180 degrees; got {fov_deg}.")
    return 0.5 * size / math.tan(math.radians(fov_deg) / 2)


def get_rays(c2w: Tensor, size: int, focal: float) -> tuple[Tensor, Tensor]:
    """Ray origins and unit directions [H, W, 3] (or [..., H, W, 3] for a batch of c2w)."""
    if size <= 0:
        raise StudioError(f"size must be positive; got {size}.")
    idx = torch.arange(size, dtype=torch.float32, device=c2w.device) + 0.5 - size / 2
    i, j = torch.meshgrid(idx, idx, indexing="ij")
    dirs_cam = torch.stack([j / focal, -i / focal, -torch.ones_like(i)], -1)  # [H, W, 3]
    rot = c2w[..., :3, :3]
    dirs = torch.einsum("...ab,hwb->...hwa", rot, dirs_cam)
    dirs = dirs / dirs.norm(dim=-1, keepdim=True)
    origins = c2w[..., None, None, :3, 3].expand_as(dirs)
    return origins, dirs


# ----------------------------------------------------------------------------- objects


@dataclass
class ShapeObject:
    """A union of analytic primitives: kind (box/ellipsoid/cylinder), centre, half-extents, axis, colour."""

    category: str
    kinds: list[int] = field(default_factory=list)
    centres: list[list[float]] = field(default_factory=list)
    halves: list[list[float]] = field(default_factory=list)  # box half-sizes / ellipsoid radii / cylinder (r, half-length, r)
    axes: list[int] = field(default_factory=list)  # cylinder axis (0 = x, 1 = y, 2 = z)
    colours: list[list[float]] = field(default_factory=list)

    def add(self, kind: int, centre, half, colour, axis: int = 1) -> None:
        self.kinds.append(kind)
        self.centres.append([float(c) for c in centre])
        self.halves.append([float(h) for h in half])
        self.axes.append(axis)
        self.colours.append([float(c) for c in colour])


def _colour(rng: np.random.Generator, sat=(0.45, 0.95), val=(0.5, 0.95)) -> list[float]:
    return list(colorsys.hsv_to_rgb(rng.random(), rng.uniform(*sat), rng.uniform(*val)))


def _car(o: ShapeObject, rng) -> None:
    length, width, height = rng.uniform(0.7, 0.95), rng.uniform(0.32, 0.45), rng.uniform(0.13, 0.2)
    wheel = rng.uniform(0.11, 0.16)
    paint = _colour(rng)
    axle = -0.5 + wheel
    o.add(BOX, [0, axle + height * 0.7, 0], [length, height, width], paint)
    cabin_len = length * rng.uniform(0.35, 0.6)
    glass = list(colorsys.hsv_to_rgb(0.58, 0.35, rng.uniform(0.25, 0.45)))
    o.add(BOX, [rng.uniform(-0.2, 0.1) * length, axle + height * 1.7 + 0.1, 0], [cabin_len, 0.12, width * 0.85],
          paint if rng.random() < 0.4 else glass)
    for sx in (-1, 1):
        for sz in (-1, 1):
            o.add(CYLINDER, [sx * length * 0.6, axle, sz * width * 0.92], [wheel, 0.05, wheel], [0.1, 0.1, 0.1], axis=2)


def _chair(o: ShapeObject, rng) -> None:
    half = rng.uniform(0.4, 0.6)
    seat_y = rng.uniform(-0.1, 0.05)
    seat = _colour(rng)
    legs = _colour(rng, sat=(0.05, 0.5), val=(0.25, 0.65)) if rng.random() < 0.7 else seat
    t = rng.uniform(0.04, 0.07)
    o.add(BOX, [0, seat_y, 0], [half, 0.05, half], seat)
    back_h = rng.uniform(0.3, 0.5)
    o.add(BOX, [-half + 0.04, seat_y + 0.05 + back_h, 0], [0.04, back_h, half], seat)
    leg_half = (seat_y + 0.9) / 2
    for sx in (-1, 1):
        for sz in (-1, 1):
            o.add(BOX, [sx * (half - t), seat_y - 0.05 - leg_half + 0.05, sz * (half - t)], [t, leg_half, t], legs)


def _table(o: ShapeObject, rng) -> None:
    top = _colour(rng, sat=(0.2, 0.8))
    legs = _colour(rng, sat=(0.0, 0.5), val=(0.2, 0.6))
    top_y = rng.uniform(0.0, 0.25)
    if rng.random() < 0.5:
        a, b = rng.uniform(0.6, 0.9), rng.uniform(0.4, 0.65)
        o.add(BOX, [0, top_y, 0], [a, 0.05, b], top)
        t = rng.uniform(0.04, 0.07)
        leg_half = (top_y + 0.9) / 2
        for sx in (-1, 1):
            for sz in (-1, 1):
                o.add(BOX, [sx * (a - 2 * t), top_y - leg_half, sz * (b - 2 * t)], [t, leg_half, t], legs)
    else:
        r = rng.uniform(0.5, 0.85)
        o.add(CYLINDER, [0, top_y, 0], [r, 0.04, r], top)
        stem_half = (top_y + 0.9) / 2
        o.add(CYLINDER, [0, top_y - stem_half, 0], [rng.uniform(0.05, 0.09), stem_half, 0], legs)
        o.add(CYLINDER, [0, -0.88, 0], [r * rng.uniform(0.4, 0.6), 0.02, 0], legs)


def _airplane(o: ShapeObject, rng) -> None:
    body = _colour(rng, sat=(0.0, 0.5), val=(0.7, 0.95))
    trim = _colour(rng)
    length, r = rng.uniform(0.75, 0.95), rng.uniform(0.1, 0.15)
    o.add(ELLIPSOID, [0, 0, 0], [length, r, r], body)
    span, chord = rng.uniform(0.7, 0.95), rng.uniform(0.14, 0.24)
    wing_x = rng.uniform(-0.15, 0.1)
    o.add(BOX, [wing_x, -0.02, 0], [chord, 0.02, span], trim)
    o.add(BOX, [-length * 0.85, 0.0, 0], [0.1, 0.015, span * 0.35], trim)
    o.add(BOX, [-length * 0.85, r + 0.12, 0], [0.1, 0.14, 0.015], trim)
    if rng.random() < 0.6:
        for sz in (-1, 1):
            o.add(CYLINDER, [wing_x + 0.05, -0.1, sz * span * 0.45], [0.06, 0.12, 0.06], [0.5, 0.5, 0.55], axis=0)


def _tree(o: ShapeObject, rng) -> None:
    bark = list(colorsys.hsv_to_rgb(rng.uniform(0.05, 0.1), rng.uniform(0.4, 0.7), rng.uniform(0.25, 0.45)))
    leaves = list(colorsys.hsv_to_rgb(rng.uniform(0.22, 0.4), rng.uniform(0.5, 0.9), rng.uniform(0.35, 0.8)))
    trunk_h = rng.uniform(0.25, 0.45)
    o.add(CYLINDER, [0, -0.9 + trunk_h, 0], [rng.uniform(0.06, 0.11), trunk_h, 0], bark)
    y = -0.9 + 2 * trunk_h
    for k in range(int(rng.integers(1, 4))):
        rad = rng.uniform(0.3, 0.55) * (1 - 0.25 * k)
        ry = rad * rng.uniform(0.8, 1.3)
        o.add(ELLIPSOID, [rng.uniform(-0.05, 0.05), min(y + ry * 0.8, 0.95 - ry), rng.uniform(-0.05, 0.05)], [rad, ry, rad], leaves)
        y += ry * 1.1


def _mushroom(o: ShapeObject, rng) -> None:
    stem = list(colorsys.hsv_to_rgb(rng.uniform(0.08, 0.14), rng.uniform(0.05, 0.3), rng.uniform(0.8, 0.97)))
    cap = _colour(rng, sat=(0.5, 0.95), val=(0.5, 0.9))
    stem_h = rng.uniform(0.3, 0.5)
    o.add(CYLINDER, [0, -0.9 + stem_h, 0], [rng.uniform(0.1, 0.2), stem_h, 0], stem)
    cap_r = rng.uniform(0.45, 0.8)
    o.add(ELLIPSOID, [0, -0.9 + 2 * stem_h, 0], [cap_r, cap_r * rng.uniform(0.35, 0.6), cap_r], cap)


_BUILDERS = {"car": _car, "chair": _chair, "table": _table, "airplane": _airplane, "tree": _tree, "mushroom": _mushroom}


def random_object(category: str, rng: np.random.Generator) -> ShapeObject:
    if category not in _BUILDERS:
        raise StudioError(f"Unknown category '{category}'; choose one of {CATEGORIES}.")
    obj = ShapeObject(category)
    _BUILDERS[category](obj, rng)
    return obj


def make_object(object_id: int, seed: int = 0) -> tuple[ShapeObject, int]:
    """Object ``object_id`` of a seeded collection: category id % 6, shape from its own RNG stream."""
    label = object_id % len(CATEGORIES)
    rng = np.random.default_rng([seed, object_id])
    return random_object(CATEGORIES[label], rng), label


# ----------------------------------------------------------------------------- ray casting


def _intersect(obj: ShapeObject, origins: Tensor, dirs: Tensor) -> tuple[Tensor, Tensor]:
    """Nearest hit distance [R] (inf = miss) and primitive index [R] for rays [R, 3]."""
    centres = torch.tensor(obj.centres)
    halves = torch.tensor(obj.halves)
    hits = []
    for p, kind in enumerate(obj.kinds):
        o = origins - centres[p]
        if kind == BOX:
            inv = 1.0 / torch.where(dirs.abs() < 1e-9, torch.full_like(dirs, 1e-9), dirs)
            t1, t2 = (-halves[p] - o) * inv, (halves[p] - o) * inv
            near = torch.minimum(t1, t2).amax(-1)
            far = torch.maximum(t1, t2).amin(-1)
            t = torch.where((far >= near) & (far > 0), near.clamp_min(0), torch.full_like(near, math.inf))
        elif kind == ELLIPSOID:
            os_, ds = o / halves[p], dirs / halves[p]
            a, b, c = (ds * ds).sum(-1), 2 * (os_ * ds).sum(-1), (os_ * os_).sum(-1) - 1
            disc = b * b - 4 * a * c
            t = (-b - disc.clamp_min(0).sqrt()) / (2 * a)
            t = torch.where((disc >= 0) & (t > 0), t, torch.full_like(t, math.inf))
        else:
            t = _cylinder(o, dirs, obj.axes[p], float(halves[p][0]), float(halves[p][1]))
        hits.append(t)
    dist = torch.stack(hits, -1)
    best, which = dist.min(-1)
    return best, which


def _cylinder(o: Tensor, d: Tensor, axis: int, radius: float, half_len: float) -> Tensor:
    """Capped cylinder along a coordinate axis: side wall within the caps, or a cap within the radius."""
    others = [k for k in range(3) if k != axis]
    ox, oz, dx, dz = o[:, others[0]], o[:, others[1]], d[:, others[0]], d[:, others[1]]
    a = dx * dx + dz * dz
    b = 2 * (ox * dx + oz * dz)
    c = ox * ox + oz * oz - radius**2
    disc = b * b - 4 * a * c
    t_side = (-b - disc.clamp_min(0).sqrt()) / (2 * a.clamp_min(1e-12))
    y_side = o[:, axis] + t_side * d[:, axis]
    inf = torch.full_like(t_side, math.inf)
    t_side = torch.where((disc >= 0) & (t_side > 0) & (y_side.abs() <= half_len) & (a > 1e-12), t_side, inf)
    dy = torch.where(d[:, axis].abs() < 1e-9, torch.full_like(d[:, axis], 1e-9), d[:, axis])
    best = t_side
    for cap in (-half_len, half_len):
        t_cap = (cap - o[:, axis]) / dy
        px, pz = ox + t_cap * dx, oz + t_cap * dz
        ok = (t_cap > 0) & (px * px + pz * pz <= radius**2)
        best = torch.minimum(best, torch.where(ok, t_cap, inf))
    return best


def _normals(obj: ShapeObject, points: Tensor, which: Tensor) -> Tensor:
    """Surface normals at hit points (for Lambertian shading)."""
    centres = torch.tensor(obj.centres)[which]
    halves = torch.tensor(obj.halves)[which]
    kinds = torch.tensor(obj.kinds)[which]
    axes = torch.tensor(obj.axes)[which]
    q = points - centres
    # Box: the axis along which the point is closest to a face.
    rel = q / halves.clamp_min(1e-6)
    face = rel.abs().argmax(-1)
    n_box = torch.nn.functional.one_hot(face, 3).float() * rel.sign()
    n_ell = q / halves.clamp_min(1e-6).pow(2)
    # Cylinder: radial unless on a cap.
    axis_hot = torch.nn.functional.one_hot(axes, 3).float()
    along = (q * axis_hot).sum(-1)
    on_cap = along.abs() >= halves[:, 1] - 1e-4
    n_cyl = torch.where(on_cap[:, None], axis_hot * along.sign()[:, None], q * (1 - axis_hot))
    n = torch.where((kinds == BOX)[:, None], n_box, torch.where((kinds == ELLIPSOID)[:, None], n_ell, n_cyl))
    return n / n.norm(dim=-1, keepdim=True).clamp_min(1e-9)


def render_rays(obj: ShapeObject, origins: Tensor, dirs: Tensor) -> dict[str, Tensor]:
    """Shade rays [..., 3]: rgb [..., 3] in [0, 1] (white background), alpha [...], depth [...] (0 = miss)."""
    shape = origins.shape[:-1]
    o, d = origins.reshape(-1, 3), dirs.reshape(-1, 3)
    dist, which = _intersect(obj, o, d)
    hit = torch.isfinite(dist)
    depth = torch.where(hit, dist, torch.zeros_like(dist))
    points = o + depth[:, None] * d
    normals = _normals(obj, points, which)
    # Two-sided Lambert plus ambient, so thin parts seen from below are not black.
    shade = 0.45 + 0.55 * (normals @ LIGHT).abs()
    colour = torch.tensor(obj.colours)[which] * shade[:, None]
    rgb = torch.where(hit[:, None], colour, torch.ones_like(colour)).clamp(0, 1)
    return {"rgb": rgb.reshape(*shape, 3), "alpha": hit.float().reshape(shape), "depth": depth.reshape(shape)}


def render_object(obj: ShapeObject, c2w: Tensor, size: int = IMAGE_SIZE, focal: float | None = None) -> dict[str, Tensor]:
    """Render one or more views (c2w [4, 4] or [V, 4, 4]) -> rgb [(V,) 3, H, W], alpha/depth [(V,) H, W]."""
    focal = focal_from_fov(FOV_DEG, size) if focal is None else focal
    origins, dirs = get_rays(c2w, size, focal)
    out = render_rays(obj, origins, dirs)
    out["rgb"] = out["rgb"].movedim(-1, -3)
    return out


# ----------------------------------------------------------------------------- dataset


def view_angles(object_id: int, views: int, seed: int) -> tuple[Tensor, Tensor]:
    """Azimuths evenly spread over 360 degrees with a seeded jitter; elevations in [10, 40] degrees."""
    rng = np.random.default_rng([seed, object_id, 7])
    az = (np.arange(views) * 360.0 / views + rng.uniform(-5, 5, views) + rng.uniform(0, 360)) % 360
    el = rng.uniform(10, 40, views)
    return torch.tensor(az, dtype=torch.float32), torch.tensor(el, dtype=torch.float32)


@dataclass
class Shapes3DData:
    rgb: Tensor  # [N, V, 3, S, S] uint8
    alpha: Tensor  # [N, V, S, S] uint8 (0/255)
    depth: Tensor  # [N, V, S, S] float16, 0 on the background
    c2w: Tensor  # [N, V, 4, 4] float32
    azimuth: Tensor  # [N, V] degrees
    elevation: Tensor  # [N, V] degrees
    object_id: Tensor  # [N]
    label: Tensor  # [N]
    focal: float
    categories: tuple[str, ...] = CATEGORIES

    def __len__(self) -> int:
        return len(self.label)

    def subset(self, index) -> "Shapes3DData":
        pick = lambda t: t[index]  # noqa: E731
        return Shapes3DData(pick(self.rgb), pick(self.alpha), pick(self.depth), pick(self.c2w), pick(self.azimuth),
                            pick(self.elevation), pick(self.object_id), pick(self.label), self.focal)


_FIELDS = ("rgb", "alpha", "depth", "c2w", "azimuth", "elevation", "object_id", "label")


def cache_file(split: str, n_objects: int, views: int, size: int, seed: int, cache_dir: Path | None = None) -> Path:
    key = hashlib.sha1(f"{split}|{n_objects}|{views}|{size}|{seed}|{RENDERER_VERSION}".encode()).hexdigest()[:12]
    return Path(cache_dir or data_dir() / "shapes3d") / f"shapes3d-{split}-{n_objects}x{views}-{size}px-{key}.npz"


def build_dataset(split: str, n_objects: int, views: int = VIEWS, size: int = IMAGE_SIZE, seed: int = 0,
                  cache_dir: str | Path | None = None, progress: bool = False, use_cache: bool = True) -> Shapes3DData:
    """Render (or load from the .npz cache) ``n_objects`` objects x ``views`` views; deterministic from ``seed``.

    Train and test use disjoint object ids, so test objects are never seen in training.
    """
    if split not in ("train", "test"):
        raise StudioError(f"Unknown split '{split}'; choose train or test.")
    if n_objects <= 0 or views <= 0 or size <= 0:
        raise StudioError("n_objects, views and size must be positive.")
    path = cache_file(split, n_objects, views, size, seed, Path(cache_dir) if cache_dir else None)
    focal = focal_from_fov(FOV_DEG, size)
    if use_cache and path.exists():
        with np.load(path, allow_pickle=False) as z:
            return Shapes3DData(**{k: torch.from_numpy(z[k]) for k in _FIELDS}, focal=focal)
    first = _TEST_SEED_OFFSET if split == "test" else 0
    out = {k: [] for k in _FIELDS}
    for n in tqdm(range(n_objects), disable=not progress, desc=f"rendering shapes3d {split}"):
        oid = first + n
        obj, label = make_object(oid, seed)
        az, el = view_angles(oid, views, seed)
        c2w = torch.stack([camera_to_world(a, e) for a, e in zip(az, el)])
        r = render_object(obj, c2w, size, focal)
        out["rgb"].append((r["rgb"] * 255).round().to(torch.uint8))
        out["alpha"].append((r["alpha"] * 255).to(torch.uint8))
        out["depth"].append(r["depth"].half())
        out["c2w"].append(c2w)
        out["azimuth"].append(az)
        out["elevation"].append(el)
        out["object_id"].append(torch.tensor(oid))
        out["label"].append(torch.tensor(label))
    tensors = {k: torch.stack(v) for k, v in out.items()}
    if use_cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, **{k: v.numpy() for k, v in tensors.items()})
        tmp.replace(path)
    return Shapes3DData(**tensors, focal=focal)
