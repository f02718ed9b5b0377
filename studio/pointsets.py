"""2-D point sets for the energy lab: the presets, and the check every user's point set goes through.

Points live on a square canvas [-CANVAS, CANVAS]^2 (the same box the 2-D toys are drawn on). A preset is
drawn from its own seeded generator, so a name, a count and a seed always give the same points.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch import Tensor

from . import checks
from .errors import StudioError

CANVAS = 4.0
MIN_POINTS, MAX_POINTS = 2, 5000

__all__ = ["CANVAS", "MIN_POINTS", "MAX_POINTS", "PRESETS", "PointSetError", "preset", "check_points", "moon_arcs"]


class PointSetError(StudioError):
    """A point set the lab cannot train on; the message says what is wrong and what is allowed."""


def moon_arcs(radius: float = 2.0) -> list[tuple[tuple[float, float], float, int]]:
    """The two half circles of "two moons" as (centre, radius, side): side +1 is the upper half of its
    circle, -1 the lower. This is scikit-learn's make_moons scaled by ``radius`` and centred on the
    origin; the two arcs map onto each other by a half turn about the origin."""
    return [((-radius / 2, -radius / 4), radius, +1), ((radius / 2, radius / 4), radius, -1)]


def _two_moons(n: int, g: torch.Generator, noise: float) -> Tensor:
    parts = []
    for k, (centre, radius, side) in enumerate(moon_arcs()):
        m = n // 2 + (n % 2 if k == 0 else 0)
        t = torch.rand(m, generator=g) * math.pi
        parts.append(torch.stack([centre[0] + radius * t.cos(), centre[1] + side * radius * t.sin()], 1))
    return torch.cat(parts) + noise * torch.randn(n, 2, generator=g)


def _rings(n: int, g: torch.Generator, noise: float) -> Tensor:
    radii = torch.tensor([1.0, 2.5])
    # points in proportion to the circumference, so both rings are equally dense
    which = (torch.rand(n, generator=g) < radii[0] / radii.sum()).long()
    r = torch.where(which == 1, radii[0], radii[1])
    t = torch.rand(n, generator=g) * 2 * math.pi
    return torch.stack([r * t.cos(), r * t.sin()], 1) + noise * torch.randn(n, 2, generator=g)


def _spiral(n: int, g: torch.Generator, noise: float) -> Tensor:
    t = torch.rand(n, generator=g).sqrt() * 3 * math.pi  # sqrt: uniform density along the growing arm
    r = 0.25 + t / (3 * math.pi) * 3.0
    return torch.stack([r * t.cos(), r * t.sin()], 1) + noise * torch.randn(n, 2, generator=g)


def _checkerboard(n: int, g: torch.Generator, noise: float) -> Tensor:
    # 4 x 4 board of side-1.5 squares over [-3, 3]^2; points fill the 8 "black" squares uniformly
    cells = torch.tensor([(i, j) for i in range(4) for j in range(4) if (i + j) % 2 == 0], dtype=torch.float32)
    pick = cells[torch.randint(0, len(cells), (n,), generator=g)]
    return -3.0 + 1.5 * (pick + torch.rand(n, 2, generator=g))


# Strokes of a capital "E" (polyline segments), drawn uniformly along their length.
_LETTER_E = [((-1.5, -2.5), (-1.5, 2.5)), ((-1.5, 2.5), (1.8, 2.5)), ((-1.5, 0.0), (1.2, 0.0)), ((-1.5, -2.5), (1.8, -2.5))]


def _letter(n: int, g: torch.Generator, noise: float) -> Tensor:
    seg = torch.tensor(_LETTER_E)  # [S, 2, 2]
    lengths = (seg[:, 1] - seg[:, 0]).norm(dim=1)
    which = torch.multinomial(lengths / lengths.sum(), n, replacement=True, generator=g)
    t = torch.rand(n, 1, generator=g)
    return seg[which, 0] + t * (seg[which, 1] - seg[which, 0]) + noise * torch.randn(n, 2, generator=g)


PRESETS: dict[str, Callable[[int, torch.Generator, float], Tensor]] = {
    "two moons": _two_moons, "rings": _rings, "spiral": _spiral, "checkerboard": _checkerboard, "letter E": _letter,
}


def preset(name: str, n: int = 500, seed: int = 0, noise: float = 0.1) -> Tensor:
    """``n`` points of the preset ``name`` (see ``PRESETS``), jittered by Gaussian ``noise``, inside the canvas."""
    if not isinstance(name, str) or name not in PRESETS:
        raise PointSetError(f"Unknown preset {name!r}. Choose one of: {', '.join(PRESETS)}.")
    n = checks.integer("Number of points", n, MIN_POINTS, MAX_POINTS, error=PointSetError)
    seed = checks.seed("Seed", seed, error=PointSetError)
    noise = checks.number("Noise", noise, 0.0, 1.0, error=PointSetError)
    g = torch.Generator().manual_seed(seed)
    return PRESETS[name](n, g, noise).clamp(-CANVAS, CANVAS)


def check_points(points: Any, what: str = "Points") -> Tensor:
    """A user's point set as a float32 [N, 2] tensor, or a ``PointSetError`` that says what is wrong:
    not N pairs of numbers, fewer than ``MIN_POINTS`` or more than ``MAX_POINTS``, NaN or infinity,
    or a point outside the canvas [-CANVAS, CANVAS]^2."""
    try:
        if isinstance(points, (str, bytes, dict)) or points is None:
            raise TypeError
        x = points.detach().cpu() if isinstance(points, Tensor) else torch.as_tensor(points)
        if x.dtype == torch.bool or x.is_complex():
            raise TypeError
        x = x.to(torch.float32)
    except (TypeError, ValueError, RuntimeError, OverflowError):
        raise PointSetError(f"{what} must be a list of (x, y) pairs of numbers; got {type(points).__name__}.") from None
    if x.dim() != 2 or x.shape[1] != 2:
        if x.numel() == 0:
            raise PointSetError(f"{what}: no points given; place at least {MIN_POINTS} (at most {MAX_POINTS:,}).")
        raise PointSetError(f"{what} must be (x, y) pairs, shape [N, 2]; got shape {tuple(x.shape)}.")
    n = x.shape[0]
    if n < MIN_POINTS:
        raise PointSetError(f"{what}: {n} point{'s' if n != 1 else ''} given; place at least {MIN_POINTS} (at most {MAX_POINTS:,}).")
    if n > MAX_POINTS:
        raise PointSetError(f"{what}: {n:,} points given; at most {MAX_POINTS:,} are allowed.")
    bad = ~torch.isfinite(x).all(1)
    if bad.any():
        i = int(bad.nonzero()[0])
        raise PointSetError(f"{what}: point {i + 1} is {tuple(x[i].tolist())}; coordinates must be finite numbers (no NaN or infinity).")
    outside = (x.abs() > CANVAS).any(1)
    if outside.any():
        i = int(outside.nonzero()[0])
        raise PointSetError(f"{what}: point {i + 1} ({x[i, 0]:.3g}, {x[i, 1]:.3g}) is outside the canvas; "
                            f"both coordinates must lie in [-{CANVAS:g}, {CANVAS:g}] ({int(outside.sum())} points are outside).")
    return x.contiguous()
