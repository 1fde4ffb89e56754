"""Search-progress figures of the dashboard (pure functions, no Streamlit): hypervolume over trials, the latency
predictor's error, MACs against latency. Units: metrics in %, latency in ms, MACs in G multiply-adds.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go


def hypervolume_from_trials(trials: pd.DataFrame, reference_point: Sequence[float] | None) -> list[list[float]]:
    """[[n_trials, hypervolume]] of (max dev metric %, min latency ms) over completed trials, via Optuna."""
    from optuna._hypervolume import compute_hypervolume  # Optuna's own (private) hypervolume routine

    done = trials[(trials["state"] == "COMPLETE") & trials["dev_metric"].notna() & trials["latency_ms"].notna()]
    done = done.sort_values("trial")
    if done.empty:
        return []
    ref = (list(reference_point) if reference_point and len(reference_point) == 2
           else [float(done["dev_metric"].min()) - 1.0, float(done["latency_ms"].max()) * 1.1])
    # Optuna minimises: negate the metric; points worse than the reference point add nothing.
    loss = np.column_stack([-done["dev_metric"].to_numpy(), done["latency_ms"].to_numpy()])
    r = np.array([-ref[0], ref[1]], dtype=float)
    hist = []
    for n in range(1, len(loss) + 1):
        pts = loss[:n][(loss[:n] < r).all(axis=1)]
        hist.append([float(n), float(compute_hypervolume(pts, r)) if len(pts) else 0.0])
    return hist


def hypervolume_figure(history: Sequence[Sequence[float]]) -> go.Figure:
    """Hypervolume (% × ms, w.r.t. the reference point) against the number of finished trials."""
    h = np.asarray(history, dtype=float).reshape(-1, 2)
    fig = go.Figure(go.Scatter(x=h[:, 0].tolist(), y=h[:, 1].tolist(), mode="lines+markers", name="hypervolume",
                               hovertemplate="%{x:.0f} trials: %{y:.4g}<extra></extra>"))
    fig.update_layout(xaxis_title="trials finished", yaxis_title="hypervolume (metric % × latency ms)",
                      height=320, margin=dict(l=10, r=10, t=10, b=10))
    return fig


def predictor_figure(points: pd.DataFrame) -> go.Figure:
    """Predicted vs measured latency (ms) on held-out configs, with the y = x line."""
    lo = float(min(points["measured_ms"].min(), points["predicted_ms"].min())) * 0.95
    hi = float(max(points["measured_ms"].max(), points["predicted_ms"].max())) * 1.05
    fig = go.Figure([
        go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="y = x", line=dict(dash="dash", color="#7f7f7f")),
        go.Scatter(x=points["measured_ms"].tolist(), y=points["predicted_ms"].tolist(), mode="markers", name="held-out configs",
                   text=points["config_hash"].tolist(),
                   hovertemplate="%{text}<br>measured %{x:.3f} ms<br>predicted %{y:.3f} ms<extra></extra>")])
    fig.update_layout(xaxis_title="measured latency (ms)", yaxis_title="predicted latency (ms)", height=380,
                      margin=dict(l=10, r=10, t=10, b=10))
    return fig


def macs_latency_figure(lat: pd.DataFrame) -> go.Figure:
    """Measured median latency (ms, IQR as error bar) against MACs (G) for one scenario."""
    fig = go.Figure(go.Scatter(
        x=(lat["macs"] / 1e9).tolist(), y=lat["median_ms"].tolist(), mode="markers", name="measured configs",
        error_y=dict(type="data", array=(lat["iqr_ms"].fillna(0) / 2).tolist(), visible=True, thickness=1),
        text=[f"{h}<br>{d}" for h, d in zip(lat["config_hash"], lat["describe"])],
        hovertemplate="%{text}<br>MACs %{x:.3f} G<br>median %{y:.3f} ms<extra></extra>"))
    fig.update_layout(xaxis_title="MACs (G multiply-adds)", yaxis_title="median latency (ms)", height=380,
                      margin=dict(l=10, r=10, t=10, b=10))
    return fig
