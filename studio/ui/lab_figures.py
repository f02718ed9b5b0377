"""Figures of the energy lab and the playground's sampler comparison (plotly), and the lab's point canvas (PIL).

Nothing here trains or samples; it draws what ``studio.lab`` streamed and what the samplers recorded.
"""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import torch
from PIL import Image, ImageDraw
from torch import Tensor

from ..hmc import HMCTrace
from ..langevin import Trace
from ..pointsets import CANVAS

CANVAS_PIXELS = 400  # the clickable canvas is CANVAS_PIXELS x CANVAS_PIXELS
MAX_DRAWN_POINTS = 1500  # points drawn over a landscape (the rest are training data all the same)
ENERGY_RANGE = 12.0  # the heat map shows E - min E clipped here, so the basins keep their contrast


def _thin(points: Tensor, limit: int = MAX_DRAWN_POINTS) -> np.ndarray:
    x = points.detach().cpu().numpy()
    return x if len(x) <= limit else x[np.linspace(0, len(x) - 1, limit).astype(int)]


def landscape_figure(axis: Tensor, energy: Tensor, data: Tensor, negatives: Tensor | None = None, title: str = "",
                     negatives_name: str = "negative samples") -> go.Figure:
    """The energy as a heat map (low = dark = probable), the data on top (white) and the samples (orange)."""
    e = energy.detach().cpu().numpy()
    e = np.clip(e - np.nanmin(e), 0, ENERGY_RANGE)
    ax = axis.cpu().numpy()
    fig = go.Figure(go.Heatmap(x=ax, y=ax, z=e, colorscale="Viridis", zmin=0, zmax=ENERGY_RANGE, hoverinfo="skip",
                               colorbar=dict(title="E - min E", thickness=12)))
    d = _thin(data)
    fig.add_trace(go.Scatter(x=d[:, 0], y=d[:, 1], mode="markers", name="data",
                             marker=dict(size=4, color="white", line=dict(width=0.5, color="black"))))
    if negatives is not None and len(negatives):
        n = _thin(negatives)
        fig.add_trace(go.Scatter(x=n[:, 0], y=n[:, 1], mode="markers", name=negatives_name,
                                 marker=dict(size=5, color="rgb(255,140,0)", symbol="x")))
    fig.update_layout(title=title, xaxis=dict(range=[-CANVAS, CANVAS], scaleanchor="y", constrain="domain"),
                      yaxis=dict(range=[-CANVAS, CANVAS]), margin=dict(l=10, r=10, t=40, b=10), height=460,
                      legend=dict(orientation="h", y=-0.05), uirevision="lab")  # keep the user's zoom across updates
    return fig


def loss_figure(losses: list[float], title: str = "Training loss") -> go.Figure:
    fig = go.Figure()
    if losses:
        y = np.asarray(losses, dtype=np.float64)
        fig.add_trace(go.Scatter(x=np.arange(1, len(y) + 1), y=y, mode="lines", name="loss", line=dict(width=1)))
        if len(y) >= 20:  # a running mean, because per-step losses of short-run training are noisy
            k = max(5, len(y) // 40)
            smooth = np.convolve(y, np.ones(k) / k, mode="valid")
            fig.add_trace(go.Scatter(x=np.arange(k, len(y) + 1), y=smooth, mode="lines", name=f"mean of {k}",
                                     line=dict(width=2)))
    fig.update_layout(title=title, xaxis_title="step", yaxis_title="loss", height=260, margin=dict(l=10, r=10, t=40, b=10),
                      legend=dict(orientation="h", y=-0.3), uirevision="loss")
    return fig


def sampler_comparison_figure(langevin_trace: Trace, hmc_trace: HMCTrace, title: str = "") -> go.Figure:
    """Mean energy against gradient evaluations for both samplers (equal cost at equal x), and HMC's
    acceptance rate per step on a second axis."""
    fig = go.Figure()
    if langevin_trace.num_steps:
        e = langevin_trace.energy_matrix().mean(1).numpy()
        fig.add_trace(go.Scatter(x=np.arange(len(e)), y=e, mode="lines", name="Langevin: mean energy"))
    if hmc_trace.num_steps:
        e = hmc_trace.energy_matrix().mean(1).numpy()
        evals = np.arange(len(e)) * hmc_trace.leapfrog_steps
        fig.add_trace(go.Scatter(x=evals, y=e, mode="lines+markers", name="HMC: mean energy", marker=dict(size=4)))
        fig.add_trace(go.Scatter(x=evals, y=hmc_trace.acceptance_rate().numpy(), mode="lines", yaxis="y2",
                                 name="HMC: acceptance rate", line=dict(dash="dot")))
    fig.update_layout(title=title or "Energy per gradient evaluation", xaxis_title="gradient evaluations per chain",
                      yaxis_title="mean energy", yaxis2=dict(title="acceptance", overlaying="y", side="right", range=[0, 1.05],
                                                             showgrid=False),
                      height=320, margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.3))
    return fig


def to_pixels(points: Tensor) -> np.ndarray:
    """Canvas coordinates -> pixel coordinates of the canvas image (y grows downwards there)."""
    p = points.detach().cpu().numpy()
    scale = CANVAS_PIXELS / (2 * CANVAS)
    return np.stack([(p[:, 0] + CANVAS) * scale, (CANVAS - p[:, 1]) * scale], 1)


def from_pixels(px: float, py: float) -> tuple[float, float]:
    """A click on the canvas image (pixels) -> canvas coordinates."""
    scale = (2 * CANVAS) / CANVAS_PIXELS
    return -CANVAS + px * scale, CANVAS - py * scale


def canvas_image(points: Tensor | None) -> Image.Image:
    """The clickable canvas: a grid at integer coordinates, the axes, and the points."""
    size = CANVAS_PIXELS
    img = Image.new("RGB", (size, size), (250, 250, 252))
    draw = ImageDraw.Draw(img)
    step = size / (2 * CANVAS)
    for k in range(int(2 * CANVAS) + 1):
        colour = (150, 150, 160) if k == CANVAS else (222, 222, 230)
        draw.line([(k * step, 0), (k * step, size)], fill=colour)
        draw.line([(0, k * step), (size, k * step)], fill=colour)
    if points is not None and len(points):
        for x, y in to_pixels(points):
            draw.ellipse([x - 2.5, y - 2.5, x + 2.5, y + 2.5], fill=(31, 95, 180))
    return img
