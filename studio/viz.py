"""Figures and images built from Traces: plotly charts, image grids, animations, saliency heatmaps.

Nothing here runs a sampler; it only reads what samplers recorded.
"""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import torch
from torch import Tensor

from .langevin import Trace
from .saliency import pixel_saliency


def chains_figure(density: tuple[Tensor, Tensor, Tensor], trace: Trace, final: Tensor, max_paths: int = 32, title: str = "") -> go.Figure:
    """2-D chains drawn over a density heatmap: each path faint, end points bold (tensors on any device)."""
    xs, ys, dens = (t.detach().cpu() for t in density)
    final = final.detach().cpu()
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
    """Mean energy per step with a 10-90% band, and the mean gradient norm.

    One chain: one panel, |grad E| on a second axis. A trace of several segments (CDRL's noise levels,
    CF-EBM's scales) gets one panel per segment, each with its own energy axis and a |grad E| panel under
    it: the segments' energies differ by orders of magnitude (CDRL's level 0 is near -1e6, level 5 near
    -10), so one shared axis would flatten all but one of them. The title says which view it is."""
    fig = go.Figure()
    if trace.num_steps == 0:
        fig.update_layout(title=f"{title} (no steps run)")
        return fig
    e = trace.energy_matrix().numpy()
    g = trace.grad_norm_matrix().numpy()
    if len(trace.segments) > 1:
        return _segment_panels(trace.segments, e, g, title, marker_step)
    steps = np.arange(e.shape[0])
    for trace_ in _energy_traces(steps, e, g, first=True):
        fig.add_trace(trace_)
    fig.data[-1].update(yaxis="y2")
    if marker_step is not None:
        fig.add_vline(x=min(max(marker_step, 0), e.shape[0] - 1), line=dict(color="black", width=2))
    fig.update_layout(title=_title(title), xaxis_title="step", yaxis_title="energy",
                      yaxis2=dict(title="|grad E|", overlaying="y", side="right", showgrid=False),
                      margin=dict(l=10, r=10, t=_top(title), b=10), height=320, legend=dict(orientation="h", y=-0.25))
    return fig


def _energy_traces(steps: np.ndarray, e: np.ndarray, g: np.ndarray, first: bool) -> list:
    """Band, mean energy and mean |grad E| over ``steps`` (rows of e and g); the legend shows the first set only."""
    lo, hi = np.percentile(e, 10, axis=1), np.percentile(e, 90, axis=1)
    return [go.Scatter(x=np.concatenate([steps, steps[::-1]]), y=np.concatenate([hi, lo[::-1]]), fill="toself",
                       fillcolor="rgba(31,119,180,0.2)", line=dict(width=0), name="energy 10-90%", hoverinfo="skip",
                       legendgroup="band", showlegend=first),
            go.Scatter(x=steps, y=e.mean(1), mode="lines", name="mean energy", line=dict(color="rgb(31,119,180)"),
                       legendgroup="energy", showlegend=first),
            go.Scatter(x=steps, y=g.mean(1), mode="lines", name="mean |grad E|", line=dict(color="rgb(214,39,40)", dash="dot"),
                       legendgroup="grad", showlegend=first)]


def _title(title: str) -> dict:
    return dict(text=title, font=dict(size=14))


def _top(title: str) -> int:
    """Top margin that fits the title's lines (``<br>`` breaks them)."""
    return 30 + 20 * (title.count("<br>") + 1)


def _segment_panels(segments, e: np.ndarray, g: np.ndarray, title: str, marker_step: int | None) -> go.Figure:
    from plotly.subplots import make_subplots

    n = len(segments)
    fig = make_subplots(rows=2, cols=n, row_heights=[0.65, 0.35], shared_xaxes="columns", vertical_spacing=0.06,
                        horizontal_spacing=min(0.06, 0.3 / n), subplot_titles=[label for label, _, _ in segments])
    last = e.shape[0] - 1
    marker = None if marker_step is None else min(max(marker_step, 0), last)
    for col, (label, start, end) in enumerate(segments, start=1):
        steps = np.arange(start, max(end, start + 1)).clip(max=last)
        band, mean, grad = _energy_traces(steps, e[steps], g[steps], first=col == 1)
        fig.add_trace(band, row=1, col=col)
        fig.add_trace(mean, row=1, col=col)
        fig.add_trace(grad, row=2, col=col)
        fig.update_yaxes(tickformat=".3~s", row=1, col=col)
        fig.update_yaxes(tickformat=".2~s", row=2, col=col)
        if marker is not None and start <= marker < max(end, start + 1):
            axis = "" if col == 1 else str(col)
            # One line through both panels of the column (the scrubbed step), in paper height.
            fig.add_shape(type="line", x0=marker, x1=marker, y0=0, y1=1, xref=f"x{axis}", yref="paper",
                          line=dict(color="black", width=2))
    fig.update_yaxes(title_text="energy", row=1, col=1)
    fig.update_yaxes(title_text="|grad E|", row=2, col=1)
    fig.update_xaxes(title_text="step", row=2, col=1)
    full = f"{title}<br>one panel per {_segment_kind(segments)}, each on its own energy scale"
    fig.update_layout(title=_title(full), margin=dict(l=10, r=10, t=_top(full) + 20, b=10), height=440,
                      legend=dict(orientation="h", y=-0.15))
    return fig


def _segment_kind(segments) -> str:
    """What the segments are, for the title: "level" (CDRL), "scale" (CF-EBM's 8px, 16px, ...) or "segment"."""
    labels = [str(label) for label, _, _ in segments]
    if any(label.endswith("px") for label in labels):
        return "scale"
    words = {label.split()[0] for label in labels if label.split()}
    return words.pop() if len(words) == 1 and next(iter(words)).isalpha() else "segment"


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


# ----------------------------------------------------------------------------- saliency heatmaps

# An inferno-like ramp (black -> purple -> red -> orange -> pale yellow): dark where the value is low, so an
# overlay leaves unimportant pixels dim; monotone in lightness, so it reads correctly in grey too.
HEATMAP_STOPS = np.array([0.0, 0.25, 0.5, 0.75, 1.0])
HEATMAP_COLOURS = np.array([[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]], dtype=np.float64)


def _as_map(saliency) -> np.ndarray:
    """A [H, W] map in [0, 1] (tensor or array) as float64; anything else is a ValueError."""
    s = saliency.detach().cpu().double().numpy() if isinstance(saliency, Tensor) else np.asarray(saliency, dtype=np.float64)
    if s.ndim != 2 or min(s.shape) < 1:
        raise ValueError(f"A saliency map must have shape [H, W]; got {tuple(s.shape)}.")
    if not np.isfinite(s).all():
        raise ValueError("The saliency map contains NaN or infinite values.")
    if s.min() < -1e-6 or s.max() > 1 + 1e-6:
        raise ValueError(f"Saliency values must lie in [0, 1] (normalise first); got [{s.min():.3g}, {s.max():.3g}].")
    return s.clip(0.0, 1.0)


def heatmap(saliency) -> np.ndarray:
    """[H, W] values in [0, 1] -> uint8 [H, W, 3] colours of the ramp above (0 -> near black, 1 -> pale yellow)."""
    s = _as_map(saliency)
    rgb = np.stack([np.interp(s, HEATMAP_STOPS, HEATMAP_COLOURS[:, c]) for c in range(3)], axis=-1)
    return rgb.round().astype(np.uint8)


def saliency_overlay(image, saliency, opacity: float = 0.6):
    """Blend the heatmap of ``saliency`` [H, W] (in [0, 1]) over ``image`` [C, H, W] (C = 1 or 3, in [-1, 1]).

    Returns a PIL RGB image at the map's size: ``(1 - opacity) * image + opacity * heatmap``, so opacity 0
    gives the image exactly and opacity 1 the pure heatmap.
    """
    from PIL import Image

    try:
        a = float(opacity)
    except (TypeError, ValueError):
        raise ValueError(f"Opacity must be a number between 0 and 1; got {opacity!r}.") from None
    if not 0.0 <= a <= 1.0:  # False for NaN
        raise ValueError(f"Opacity must be between 0 and 1; got {opacity!r}.")
    x = image if isinstance(image, Tensor) else torch.as_tensor(np.asarray(image, dtype=np.float32))
    if x.dim() != 3 or x.shape[0] not in (1, 3):
        raise ValueError(f"The image must have shape [C, H, W] with C = 1 or 3; got {tuple(x.shape)}.")
    if not torch.isfinite(x).all():
        raise ValueError("The image contains NaN or infinite values.")
    heat = heatmap(saliency)
    if heat.shape[:2] != tuple(x.shape[-2:]):
        raise ValueError(f"The saliency map is {heat.shape[0]}x{heat.shape[1]} but the image is {x.shape[-2]}x{x.shape[-1]}.")
    base = to_uint8(x[None])[0]
    if a == 0.0:
        return Image.fromarray(base)
    if a == 1.0:
        return Image.fromarray(heat)
    mixed = (1.0 - a) * base.astype(np.float64) + a * heat.astype(np.float64)
    return Image.fromarray(mixed.round().clip(0, 255).astype(np.uint8))


def pixel_map(values: Tensor) -> Tensor:
    """[C, H, W] -> [H, W] in [0, 1]: the per-pixel L2 norm over channels, min-max normalised.

    The same reduction as ``Trace.saliency``, for maps that do not come from a chain (an energy gradient,
    a decoded difference). A constant map becomes all zeros.
    """
    if not isinstance(values, Tensor) or values.dim() != 3:
        raise ValueError(f"Expected a [C, H, W] tensor; got {getattr(values, 'shape', type(values).__name__)}.")
    if not torch.isfinite(values).all():
        raise ValueError("The values contain NaN or infinite entries.")
    return pixel_saliency(values[None])[0]


def latent_shift_figure(per_channel: Tensor, per_location: Tensor | None = None, title: str = "Latent shift") -> go.Figure:
    """How far a latent chain moved each latent channel (bars) and, for map latents, each location (heatmap).

    ``per_channel`` [C] (or [D] for vector latents) and ``per_location`` [h, w] are sums of |z_{t+1} - z_t|.
    """
    from plotly.subplots import make_subplots

    bars = per_channel.detach().float().cpu().flatten().numpy()
    if bars.size == 0 or not np.isfinite(bars).all():
        raise ValueError("The latent shift must be a non-empty, finite vector.")
    if per_location is None:
        fig = go.Figure()
        fig.add_trace(go.Bar(x=np.arange(bars.size), y=bars, marker_color="rgb(31,119,180)", name="shift"))
        fig.update_xaxes(title_text="latent dimension")
        fig.update_yaxes(title_text="sum_t |z_(t+1) - z_t|")
    else:
        loc = per_location.detach().float().cpu().numpy()
        if loc.ndim != 2 or not np.isfinite(loc).all():
            raise ValueError(f"The per-location shift must be a finite [h, w] map; got shape {loc.shape}.")
        fig = make_subplots(rows=1, cols=2, column_widths=[0.55, 0.45],
                            subplot_titles=("per latent channel (summed over locations)", "per location (summed over channels)"))
        fig.add_trace(go.Bar(x=np.arange(bars.size), y=bars, marker_color="rgb(31,119,180)", name="shift"), row=1, col=1)
        # Row 0 at the top, like the image it was encoded from.
        fig.add_trace(go.Heatmap(z=loc, colorscale="Inferno", showscale=True, colorbar=dict(x=1.02, len=0.9),
                                 name="shift"), row=1, col=2)
        fig.update_yaxes(autorange="reversed", scaleanchor="x2", constrain="domain", row=1, col=2)
        fig.update_xaxes(title_text="latent channel", row=1, col=1)
        fig.update_yaxes(title_text="sum_t |z_(t+1) - z_t|", row=1, col=1)
    fig.update_layout(title=title, showlegend=False, margin=dict(l=10, r=10, t=60, b=10), height=340)
    return fig
