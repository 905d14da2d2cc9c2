"""The home page picture: learning transfer drawn on a made-up loss landscape."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from .charts import METHOD_COLORS, SOURCE_COLOR, TARGET_COLOR

_BASINS = ((3.0, 4.4, 1.0, 1.6, 1.0), (7.6, 1.4, 1.3, 1.0, 1.0))


def _loss(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    depth = sum(w * np.exp(-((x - cx) ** 2 / sx + (y - cy) ** 2 / sy)) for cx, cy, sx, sy, w in _BASINS)
    return 1.2 - depth + 0.02 * ((x - 5) ** 2 + (y - 4) ** 2) ** 0.5


def _path(start: tuple[float, float], control: tuple[float, float], end: tuple[float, float],
          n: int = 30) -> np.ndarray:
    t = np.linspace(0, 1, n)[:, None]
    p0, p1, p2 = (np.array(p, dtype=float) for p in (start, control, end))
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t ** 2 * p2


def learning_transfer_diagram() -> go.Figure:
    """Source trajectory θ₁⁰→θ₁ᵀ; its permuted copy from a new init θ₂⁰; the naive copy for contrast."""
    xs, ys = np.linspace(0, 10, 120), np.linspace(0, 8, 100)
    gx, gy = np.meshgrid(xs, ys)
    fig = go.Figure(go.Contour(x=xs, y=ys, z=_loss(gx, gy), colorscale="Blues_r", showscale=False, opacity=0.55,
                               contours=dict(coloring="fill", showlines=True), line=dict(width=0.5),
                               hoverinfo="skip"))
    source = _path((1.0, 1.0), (0.8, 3.9), (3.0, 4.4))
    displacement = source - source[0]
    new_init = np.array([5.4, 5.2])
    permuted = new_init + displacement * np.array([1.0, -1.0]) + np.outer(np.linspace(0, 1, len(source)), [0.2, 0.0])
    naive = new_init + displacement * np.array([1.0, 0.55])
    for path, color, dash, name in ((source, SOURCE_COLOR, "solid", "source trajectory θ₁ᵗ (trained)"),
                                    (permuted, METHOD_COLORS["gmt"], "solid", "transferred θ₂⁰ + π(θ₁ᵗ − θ₁⁰)"),
                                    (naive, METHOD_COLORS["naive"], "dot", "naive copy θ₂⁰ + (θ₁ᵗ − θ₁⁰)")):
        fig.add_trace(go.Scatter(x=path[:, 0], y=path[:, 1], mode="lines", name=name,
                                 line=dict(color=color, width=4, dash=dash), hoverinfo="skip"))
        fig.add_annotation(x=path[-1, 0], y=path[-1, 1], ax=path[-4, 0], ay=path[-4, 1], xref="x", yref="y",
                           axref="x", ayref="y", showarrow=True, arrowhead=3, arrowsize=1.2, arrowwidth=3,
                           arrowcolor=color, text="")
    points = ((source[0], "θ₁⁰  source init", SOURCE_COLOR, "bottom center"),
              (source[-1], "θ₁ᵀ  source trained", SOURCE_COLOR, "top center"),
              (new_init, "θ₂⁰  new init", TARGET_COLOR, "top center"),
              (permuted[-1], "θ₂ᵀ  low loss, no training", METHOD_COLORS["gmt"], "bottom center"),
              (naive[-1], "stuck on a high-loss slope", METHOD_COLORS["naive"], "top center"))
    for (px, py), text, color, position in points:
        fig.add_trace(go.Scatter(x=[px], y=[py], mode="markers+text", text=[text], textposition=position,
                                 marker=dict(size=13, color=color, line=dict(color="white", width=2)),
                                 textfont=dict(size=14, color="#222"), showlegend=False, hoverinfo="skip"))
    fig.add_annotation(x=0.2, y=7.7, xanchor="left", showarrow=False, text="darker = lower training loss",
                       font=dict(size=12, color="#555"))
    fig.update_xaxes(visible=False, range=[0, 10])
    fig.update_yaxes(visible=False, range=[0, 8], scaleanchor="x", scaleratio=1)
    fig.update_layout(height=430, margin=dict(l=0, r=0, t=10, b=0), template="plotly_white",
                      legend=dict(orientation="h", yanchor="top", y=-0.02, x=0, font=dict(size=13)),
                      plot_bgcolor="white")
    return fig
