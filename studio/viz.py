"""Figures and images built from Traces: plotly charts, image grids.

Nothing here runs a sampler; it only reads what samplers recorded.
"""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import torch
from torch import Tensor

from .langevin import Trace


def chains_figure(density: tuple[Tensor, Tensor, Tensor], trace: Trace, final: Tensor, max_paths: int = 32, title: str = "") -> go.Figure:
    """2-D chains drawn over a density heatmap: each path faint, end points bold."""
    xs, ys, dens = density
    fig = go.Figure()
    fig.add_trace(go.Heatmap(x=xs.numpy(), y=ys.numpy(), z=dens.numpy(), colorscale="Blues", showscale=False, hoverinfo="skip"))
    if trace.frames:
        path = torch.stack(trace.frames)  # [F, B, 2]
        for b in range(min(path.shape[1], max_paths)):
            fig.add_trace(go.Scatter(x=path[:, b, 0].numpy(), y=path[:, b, 1].numpy(), mode="lines",
                                     line=dict(width=1, color="rgba(230,120,20,0.45)"), showlegend=False, hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=final[:, 0].numpy(), y=final[:, 1].numpy(), mode="markers", name="final samples",
                             marker=dict(size=6, color="rgb(200,30,30)", line=dict(width=0.5, color="white"))))
    lim = float(xs.abs().max())
    fig.update_layout(title=title, xaxis=dict(range=[-lim, lim], scaleanchor="y", constrain="domain"), yaxis=dict(range=[-lim, lim]),
                      margin=dict(l=10, r=10, t=40, b=10), height=460, legend=dict(orientation="h"))
    return fig


def energy_figure(trace: Trace, title: str = "Energy per step", marker_step: int | None = None) -> go.Figure:
    """Mean energy per step with a 10-90% band, and the mean gradient norm on a second axis."""
    fig = go.Figure()
    if trace.num_steps == 0:
        fig.update_layout(title=f"{title} (no steps run)")
        return fig
    e = trace.energy_matrix().numpy()
    g = trace.grad_norm_matrix().numpy()
    steps = np.arange(e.shape[0])
    lo, hi = np.percentile(e, 10, axis=1), np.percentile(e, 90, axis=1)
    fig.add_trace(go.Scatter(x=np.concatenate([steps, steps[::-1]]), y=np.concatenate([hi, lo[::-1]]), fill="toself",
                             fillcolor="rgba(31,119,180,0.2)", line=dict(width=0), name="energy 10-90%", hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=steps, y=e.mean(1), mode="lines", name="mean energy", line=dict(color="rgb(31,119,180)")))
    fig.add_trace(go.Scatter(x=steps, y=g.mean(1), mode="lines", name="mean |grad E|", yaxis="y2",
                             line=dict(color="rgb(214,39,40)", dash="dot")))
    for label, start, _end in trace.segments if len(trace.segments) > 1 else []:
        fig.add_vline(x=start, line=dict(color="grey", width=1, dash="dash"), annotation_text=label, annotation_position="top left")
    if marker_step is not None:
        fig.add_vline(x=min(max(marker_step, 0), e.shape[0] - 1), line=dict(color="black", width=2))
    fig.update_layout(title=title, xaxis_title="step", yaxis_title="energy",
                      yaxis2=dict(title="|grad E|", overlaying="y", side="right", showgrid=False),
                      margin=dict(l=10, r=10, t=40, b=10), height=320, legend=dict(orientation="h", y=-0.25))
    return fig


def to_uint8(images: Tensor) -> np.ndarray:
    """[N, C, H, W] in [-1, 1] -> uint8 [N, H, W, 3] (grey images are repeated to RGB)."""
    x = ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    if x.shape[1] == 1:
        x = x.repeat(1, 3, 1, 1)
    return x.permute(0, 2, 3, 1).numpy()


def image_grid(images: Tensor, ncols: int | None = None, pad: int = 2, scale: int = 1):
    """Tile a batch into one PIL image (white padding), optionally upscaled with nearest neighbour."""
    from PIL import Image

    arr = to_uint8(images)
    n, h, w, _ = arr.shape
    ncols = ncols or int(np.ceil(np.sqrt(n)))
    nrows = int(np.ceil(n / ncols))
    canvas = np.full((nrows * (h + pad) + pad, ncols * (w + pad) + pad, 3), 255, np.uint8)
    for i in range(n):
        r, c = divmod(i, ncols)
        canvas[pad + r * (h + pad): pad + r * (h + pad) + h, pad + c * (w + pad): pad + c * (w + pad) + w] = arr[i]
    img = Image.fromarray(canvas)
    return img.resize((img.width * scale, img.height * scale), Image.NEAREST) if scale > 1 else img


def trajectory_gif(trace: Trace, path: str, ncols: int | None = None, scale: int = 3, max_frames: int = 120, duration_ms: int = 80) -> str:
    """Write the recorded frames as an animated GIF with each frame's label; return the path.

    Long traces are subsampled to ``max_frames`` (always keeping the last frame).
    """
    from PIL import Image, ImageDraw

    if not trace.frames:
        raise ValueError("This trace has no frames: sample with record_every > 0.")
    idx = np.unique(np.linspace(0, len(trace.frames) - 1, min(max_frames, len(trace.frames))).round().astype(int))
    frames = []
    for i in idx:
        grid = image_grid(trace.frames[i], ncols=ncols, scale=scale)
        canvas = Image.new("RGB", (grid.width, grid.height + 14), (255, 255, 255))
        canvas.paste(grid, (0, 14))
        ImageDraw.Draw(canvas).text((3, 1), f"{trace.frame_labels[i]} (step {trace.frame_steps[i]})", fill=(0, 0, 0))
        frames.append(canvas)
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=duration_ms, loop=0)
    return path


def line_plot_svg(xs: list[float], ys: list[float], labels: list[str], xlabel: str, ylabel: str, title: str,
                  width: int = 420, height: int = 300) -> str:
    """A small dependency-free SVG line chart with labelled points (for model cards in assets/)."""
    if not xs or len(xs) != len(ys) or len(xs) != len(labels):
        raise ValueError("xs, ys and labels must be non-empty and of equal length")
    left, right, top, bottom = 60, 20, 36, 46
    x_lo, x_hi = min(xs), max(xs)
    y_lo, y_hi = min(ys), max(ys)
    x_pad = (x_hi - x_lo) * 0.1 or 0.05
    y_pad = (y_hi - y_lo) * 0.1 or 0.05
    x_lo, x_hi, y_lo, y_hi = x_lo - x_pad, x_hi + x_pad, y_lo - y_pad, y_hi + y_pad
    px = lambda x: left + (x - x_lo) / (x_hi - x_lo) * (width - left - right)  # noqa: E731
    py = lambda y: height - bottom - (y - y_lo) / (y_hi - y_lo) * (height - top - bottom)  # noqa: E731
    pts = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in zip(xs, ys))
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
             f'<rect width="{width}" height="{height}" fill="white"/>',
             f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="14">{title}</text>',
             f'<line x1="{left}" y1="{height - bottom}" x2="{width - right}" y2="{height - bottom}" stroke="black"/>',
             f'<line x1="{left}" y1="{top}" x2="{left}" y2="{height - bottom}" stroke="black"/>',
             f'<text x="{width / 2}" y="{height - 8}" text-anchor="middle">{xlabel}</text>',
             f'<text x="14" y="{height / 2}" text-anchor="middle" transform="rotate(-90 14 {height / 2})">{ylabel}</text>']
    for frac in (0.0, 0.5, 1.0):
        xv, yv = x_lo + frac * (x_hi - x_lo), y_lo + frac * (y_hi - y_lo)
        parts.append(f'<text x="{px(xv):.1f}" y="{height - bottom + 16}" text-anchor="middle">{xv:.3g}</text>')
        parts.append(f'<text x="{left - 6}" y="{py(yv) + 4:.1f}" text-anchor="end">{yv:.3g}</text>')
    parts.append(f'<polyline points="{pts}" fill="none" stroke="rgb(31,119,180)" stroke-width="2"/>')
    for x, y, lab in zip(xs, ys, labels):
        parts.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="4" fill="rgb(214,39,40)"/>')
        parts.append(f'<text x="{px(x) + 6:.1f}" y="{py(y) - 6:.1f}">{lab}</text>')
    parts.append("</svg>")
    return "\n".join(parts)
