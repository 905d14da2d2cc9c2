"""Plotly figures for every page: trajectories, live transfers, results, fine-tuning, landscapes."""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from lt_core.landscape import Barrier, PlaneResult, UnitMatching
from lt_core.runs import RunRecord

METHOD_COLORS = {"gmt": "#d62728", "fgmt": "#ff7f0e", "naive": "#7f7f7f", "oracle": "#2ca02c"}
SOURCE_COLOR = "#1f77b4"
TARGET_COLOR = "#9467bd"
DASHES = ("solid", "dot", "dash", "longdash", "dashdot", "longdashdot")
METRIC_LABELS = {"val_acc": "validation accuracy", "val_loss": "validation loss", "train_acc": "train accuracy",
                 "train_loss": "train loss"}


def _layout(fig: go.Figure, title: str | None = None, height: int = 420) -> go.Figure:
    fig.update_layout(title=title, height=height, margin=dict(l=10, r=10, t=50 if title else 20, b=10),
                      hovermode="x unified", legend=dict(groupclick="toggleitem"), template="plotly_white")
    return fig


def _legend(method: str, name: str, by_method_only: bool) -> dict:
    """Legend entries: just the method when every line shares one init, else grouped under the method."""
    if by_method_only:
        return {"name": method, "legendgroup": method}
    return {"name": name, "legendgroup": method, "legendgrouptitle_text": method}


def metrics_figure(rows: Sequence[dict], x: str = "epoch", title: str | None = None) -> go.Figure:
    """Accuracy (left axis) and losses (right axis) per checkpoint or epoch."""
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    xs = [r.get(x) for r in rows]
    for key, color, secondary, dash in (("val_acc", SOURCE_COLOR, False, "solid"),
                                        ("val_loss", "#e377c2", True, "solid"),
                                        ("train_loss", "#bcbd22", True, "dot")):
        ys = [r.get(key) for r in rows]
        if any(v is not None for v in ys):
            fig.add_trace(go.Scatter(x=xs, y=ys, name=METRIC_LABELS[key], mode="lines+markers",
                                     line=dict(color=color, dash=dash)), secondary_y=secondary)
    fig.update_xaxes(title_text=x.replace("_", " "))
    fig.update_yaxes(title_text="accuracy", secondary_y=False, rangemode="tozero")
    fig.update_yaxes(title_text="loss", secondary_y=True, rangemode="tozero", showgrid=False)
    return _layout(fig, title)


def transfer_figure(curves: dict[int, dict], x: str = "step", metric: str = "val_acc",
                    title: str | None = None) -> go.Figure:
    """Live transfer curves, one line per run, coloured by method (legend grouped by method)."""
    fig = go.Figure()
    seen: dict[str, int] = {}
    one_init = len({c["label"].split(" · ", 1)[-1] for c in curves.values()}) <= 1
    for _, c in sorted(curves.items()):
        k = seen.get(c["method"], 0)
        seen[c["method"]] = k + 1
        fig.add_trace(go.Scatter(x=c[x], y=c[metric], mode="lines+markers", marker=dict(size=5),
                                 line=dict(color=METHOD_COLORS.get(c["method"]), dash=DASHES[k % len(DASHES)]),
                                 hovertemplate=f"{c['label']}: %{{y:.3f}}<extra></extra>",
                                 **_legend(c["method"], c["label"].split(" · ", 1)[-1], one_init)))
    fig.update_xaxes(title_text="transfer step t" if x == "step" else "λ (fraction of the source trajectory)")
    fig.update_yaxes(title_text=METRIC_LABELS[metric], rangemode="tozero")
    return _layout(fig, title)


def run_curve(record: RunRecord) -> pd.DataFrame:
    """A stored run's curve including step 0 (the new init): step, lam, val_acc, val_loss."""
    s = record.summary
    n = len(s["accuracies"])
    return pd.DataFrame({"step": list(range(n + 1)), "lam": [0.0] + list(s["lambdas"][:n]),
                         "val_acc": [s["target_init_accuracy"]] + list(s["accuracies"]),
                         "val_loss": [s["target_init_loss"]] + list(s["losses"])})


def _reference_lines(fig: go.Figure, records: Sequence[RunRecord], metric: str) -> None:
    inits = {}
    for r in records:
        key = "target_init_accuracy" if metric == "val_acc" else "target_init_loss"
        inits.setdefault(r.init_label, r.summary[key])
    values = list(inits.items())
    if len(values) > 3:
        values = [(f"mean of {len(values)} inits", float(np.mean([v for _, v in values])))]
    for label, value in values:
        fig.add_hline(y=value, line=dict(color=TARGET_COLOR, dash="dot", width=1),
                      annotation_text=f"target init ({label}): {value:.3f}", annotation_position="bottom right")
    targets = {}
    for r in records:
        target = r.data.get("target") or {}
        value = (target.get("final_metrics") or {}).get(metric)
        if value is not None:
            targets.setdefault(target.get("name", "target"), value)
    for name, value in targets.items():
        fig.add_hline(y=value, line=dict(color=TARGET_COLOR, dash="dash", width=1.5),
                      annotation_text=f"target trained ({name}): {value:.3f}", annotation_position="top right")


def results_figure(records: Sequence[RunRecord], x: str = "lam", metric: str = "val_acc", show_source: bool = True,
                   show_references: bool = True) -> go.Figure:
    """Accuracy (or loss) along the trajectory for several stored runs, with reference curves and lines."""
    fig = go.Figure()
    seen: dict[str, int] = {}
    one_init = len({(r.init_label, r.source_name) for r in records}) <= 1
    for r in records:
        curve = run_curve(r)
        k = seen.get(r.method, 0)
        seen[r.method] = k + 1
        stopped = " (stopped)" if r.stopped else ""
        fig.add_trace(go.Scatter(x=curve[x], y=curve[metric], mode="lines+markers", marker=dict(size=4),
                                 **_legend(r.method, f"{r.init_label}{stopped}", one_init and not stopped),
                                 line=dict(color=METHOD_COLORS.get(r.method), dash=DASHES[k % len(DASHES)]),
                                 customdata=curve["step"],
                                 hovertemplate=f"{r.label} — step %{{customdata}}: %{{y:.3f}}<extra></extra>"))
    if show_source:
        sources = {}
        for r in records:
            src = r.data.get("source") or {}
            sources.setdefault(src.get("hash", src.get("name")), (src, r.summary.get("planned_steps", 1)))
        for src, planned in sources.values():
            curve = pd.DataFrame(src.get("curve") or [])
            if curve.empty or metric not in curve:
                continue
            xs = curve["lam"] if x == "lam" else curve["lam"] * planned
            fig.add_trace(go.Scatter(x=xs, y=curve[metric], mode="lines+markers", name=f"source: {src.get('name')}",
                                     legendgroup="source",
                                     line=dict(color=SOURCE_COLOR, width=3), marker=dict(symbol="diamond", size=7),
                                     hovertemplate=f"source {src.get('name')}: %{{y:.3f}}<extra></extra>"))
    if show_references and records:
        _reference_lines(fig, records, metric)
    fig.update_xaxes(title_text="λ (fraction of the source trajectory)" if x == "lam" else "transfer step t")
    fig.update_yaxes(title_text=METRIC_LABELS[metric], rangemode="tozero")
    return _layout(fig, f"{METRIC_LABELS[metric].capitalize()} along the transferred trajectories", height=520)


def finetune_figure(curves: dict, title: str | None = None) -> go.Figure:
    """Validation accuracy per epoch when training from the transferred point and from the init."""
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=curves["epochs"], y=curves["acc_transferred"], mode="lines+markers",
                             name="from the transferred parameters", line=dict(color=METHOD_COLORS["gmt"])))
    fig.add_trace(go.Scatter(x=curves["epochs"], y=curves["acc_init"], mode="lines+markers",
                             name="from the new init (plain training)", line=dict(color=TARGET_COLOR, dash="dash")))
    fig.update_xaxes(title_text="fine-tuning epoch", dtick=1)
    fig.update_yaxes(title_text="validation accuracy", rangemode="tozero")
    return _layout(fig, title, height=380)


def interpolation_figure(curve: pd.DataFrame, barriers: dict[str, Barrier]) -> go.Figure:
    """Loss and accuracy along (1−α)·a + α·b, with the barrier heights written on the chart."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("loss", "accuracy"), horizontal_spacing=0.1)
    for col, kind in ((1, "loss"), (2, "acc")):
        for split, dash in (("val", "solid"), ("train", "dot")):
            column = f"{split}_{kind}"
            if column not in curve or curve[column].isna().all():
                continue
            fig.add_trace(go.Scatter(x=curve["alpha"], y=curve[column], mode="lines+markers", name=METRIC_LABELS[column],
                                     line=dict(color=SOURCE_COLOR if split == "val" else "#ff7f0e", dash=dash),
                                     marker=dict(size=4), legendgroup=split), row=1, col=col)
            b = barriers.get(column)
            if b is not None:
                ends = curve[(curve["alpha"] >= 0) & (curve["alpha"] <= 1)]
                fig.add_trace(go.Scatter(x=[0, 1], y=[b.start, b.end], mode="lines", showlegend=False,
                                         line=dict(color="#aaaaaa", dash="dash", width=1), hoverinfo="skip"),
                              row=1, col=col)
                peak = float(ends.loc[(ends["alpha"] - b.alpha).abs().idxmin(), column])
                fig.add_annotation(x=b.alpha, y=peak, text=f"{split} barrier {b.height:.3f}", showarrow=True,
                                   arrowhead=2, ax=-25 if split == "val" else 25, ay=-35 if split == "val" else 35,
                                   row=1, col=col, font=dict(size=12), bgcolor="rgba(255,255,255,0.8)")
    fig.update_xaxes(title_text="α   (0 = a, 1 = b)", range=[float(curve["alpha"].min()) - 0.02,
                                                        float(curve["alpha"].max()) + 0.02])
    fig.update_yaxes(rangemode="tozero")
    _layout(fig, None, height=440)
    fig.update_layout(legend=dict(orientation="h", yanchor="top", y=-0.18, x=0))
    return fig


def _log_colorbar(values: np.ndarray, title: str) -> dict:
    """A colour bar for log₁₀-scaled values whose ticks read as the values themselves."""
    finite = values[np.isfinite(values)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (1e-3, 1.0)
    nice = [m * 10.0 ** e for e in range(-4, 4) for m in (1, 2, 5)]
    ticks = [v for v in nice if lo <= v <= hi] or [lo, hi]
    return dict(title=title, tickvals=[math.log10(v) for v in ticks], ticktext=[f"{v:g}" for v in ticks])


def plane_figure(result: PlaneResult, metric: str, labels: dict[str, str]) -> go.Figure:
    """A heat map of ``metric`` over the plane through a, b, c with the three points marked.

    Losses are coloured on a log scale (the colour bar shows the loss values themselves).
    """
    grid = getattr(result, metric)
    if metric.endswith("loss"):
        z = np.log10(np.maximum(grid, 1e-6))
        colorbar, colorscale = _log_colorbar(np.maximum(grid, 1e-6), METRIC_LABELS[metric]), "Viridis_r"
    else:
        z, colorbar, colorscale = grid, dict(title=METRIC_LABELS[metric]), "Viridis"
    fig = go.Figure(go.Contour(x=result.x, y=result.y, z=z, colorscale=colorscale, colorbar=colorbar,
                               contours=dict(coloring="heatmap", showlines=True), customdata=grid,
                               hovertemplate=f"{METRIC_LABELS[metric]} %{{customdata:.3f}}<extra></extra>"))
    names = list(result.points)
    fig.add_trace(go.Scatter(x=[result.points[n][0] for n in names], y=[result.points[n][1] for n in names],
                             mode="markers+text", text=[f"<b>{labels.get(n, n)}</b>" for n in names],
                             textposition="middle right", marker=dict(size=14, color="white",
                                                                      line=dict(color="black", width=2)),
                             textfont=dict(color="black", size=16), showlegend=False, hoverinfo="text"))
    fig.update_xaxes(title_text="along b − a", scaleanchor="y", scaleratio=1, constrain="domain")
    fig.update_yaxes(title_text="towards c")
    fig.update_layout(hovermode="closest")
    return _layout(fig, None, height=560)


def matching_figure(matching: UnitMatching, max_units: int = 128) -> go.Figure:
    """Unit correlation before and after alignment, side by side (at most ``max_units`` shown)."""
    n = min(max_units, matching.before.shape[0])
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.08,
                        subplot_titles=(f"before alignment (mean diagonal {matching.diagonal_before:.2f})",
                                        f"after alignment (mean diagonal {matching.diagonal_after:.2f})"))
    for col, m in ((1, matching.before), (2, matching.after)):
        fig.add_trace(go.Heatmap(z=m[:n, :n], zmin=-1, zmax=1, colorscale="RdBu_r", showscale=col == 2,
                                 colorbar=dict(title="correlation"),
                                 hovertemplate="unit %{y} of a vs unit %{x} of b: %{z:.2f}<extra></extra>"), row=1, col=col)
    fig.update_yaxes(autorange="reversed", title_text="unit of a", scaleanchor="x", constrain="domain")
    fig.update_xaxes(title_text="unit of b", constrain="domain")
    fig.update_layout(hovermode="closest")
    return _layout(fig, None, height=460)


def figure_html(fig: go.Figure) -> str:
    """A standalone HTML file of the figure (plotly.js included, so it works offline)."""
    return fig.to_html(include_plotlyjs=True, full_html=True)


def figure_png(fig: go.Figure) -> bytes:
    """PNG through kaleido (needs a Chrome/Chromium on the machine; raises if it cannot run)."""
    return fig.to_image(format="png", width=1200, height=600, scale=2)


def curves_table(records: Iterable[RunRecord]) -> pd.DataFrame:
    """Long table of every run's curve: run, label, method, init, source, step, λ, accuracy, loss."""
    frames = []
    for r in records:
        curve = run_curve(r)
        curve.insert(0, "source", r.source_name)
        curve.insert(0, "init", r.init_label)
        curve.insert(0, "method", r.method)
        curve.insert(0, "run_id", r.id)
        frames.append(curve)
    if not frames:
        return pd.DataFrame(columns=["run_id", "method", "init", "source", "step", "lam", "val_acc", "val_loss"])
    return pd.concat(frames, ignore_index=True)


def fmt_seconds(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "–"
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"
