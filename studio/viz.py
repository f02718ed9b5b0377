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
