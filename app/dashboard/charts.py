"""Plot data preparation and plotly figures of the dashboard (pure functions, no Streamlit).

Units everywhere: metrics in %, latency in ms, MACs in G multiply-adds, parameters in millions.
"""
from __future__ import annotations

import math
from typing import Literal, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from app.dashboard import front_view as V
from elastic.model.config import SubnetConfig
from search.objectives import LATENCY, cost_objective, cost_objectives

XKind = str  # a registered cost objective's name (search.objectives): latency, macs, params, ...
TRACE_TRIALS = "All trials"
TRACE_FRONT = "Searched Pareto front"
TRACE_GRID = "Uniform grid (DynaBERT, stage 2)"
TRACE_BASELINES = "Baselines (same harness)"
TRACE_PUBLISHED = "Published (not measured here)"
TRACE_BEST = "Best within budget"
TRACE_KNEE = "Knee point"


def front_trace_name(precision: str, runtime: str) -> str:
    """The legend name of one variant's front points (fronts that mix variants), e.g. `front: INT8 · ONNX Runtime`."""
    return f"front: {V.variant_label(precision, runtime)}"


# ------------------------------------------------------------------------------------ preparation
def attach_latency(df: pd.DataFrame, latency: pd.DataFrame | None, scenario: str | pd.Series, *,
                   own: Sequence[tuple[str, str]] = (), own_scenario: str | pd.Series | None = None
                   ) -> pd.DataFrame:
    """Add `lat_ms`, `lat_source` and `lat_scenario` to a table with `config_hash`.

    Priority per row: the table's own columns in `own` order (each `(column, label)`), used only where
    `own_scenario` equals the row's scenario, then latency.csv's median for (config_hash, scenario).

    Args:
        df: the points (front, trials, grid, baselines).
        latency: latency.csv (or None).
        scenario: the scenario key of every row, or one per row (`front_view.row_scenarios`; None: no latency).
        own: the table's own latency columns, e.g. `[("latency_measured_ms", "measured")]`.
        own_scenario: the scenario those own columns were measured in (str or per-row Series).
    """
    out = df.copy()
    sc = scenario if isinstance(scenario, pd.Series) else pd.Series(scenario, index=out.index, dtype=object)
    mine = own_scenario if isinstance(own_scenario, pd.Series) else pd.Series(own_scenario, index=out.index, dtype=object)
    match = sc.notna() & (mine == sc)
    candidates = [(out[col].astype(float).where(match), label) for col, label in own if col in out]
    if latency is not None and "config_hash" in out:
        med = latency.groupby(["config_hash", "scenario"])["median_ms"].median().to_dict()
        candidates.append((pd.Series([med.get((h, k), np.nan) for h, k in zip(out["config_hash"], sc)],
                                     index=out.index, dtype=float), "measured (latency.csv)"))
    lat, src = pd.Series(np.nan, index=out.index), pd.Series("", index=out.index, dtype=object)
    for values, label in candidates:
        fill = lat.isna() & values.notna()
        lat, src = lat.where(~fill, values), src.where(~fill, label)
    out["lat_ms"], out["lat_source"], out["lat_scenario"] = lat, src, sc.where(lat.notna(), None)
    return out


def cost_axes() -> dict[str, str]:
    """The x axes the explorer offers: every registered cost objective, {name: axis label}."""
    return {o.name: o.label for o in cost_objectives()}


def x_title(x: XKind, scenario: str) -> str:
    """The x axis title; latency's names the scenario it was timed in."""
    label = cost_objective(x).label
    return f"{label[:-1]}, {scenario})" if x == LATENCY.name and label.endswith(")") else label


def x_values(df: pd.DataFrame, x: XKind) -> pd.Series:
    """The x column in display units (the objective's `axis_scale`: ms, G MACs, M parameters); latency is the
    attached `lat_ms` (`attach_latency`). A table without the objective's column gives NaN."""
    if x == LATENCY.name:
        return df["lat_ms"] if "lat_ms" in df else pd.Series(np.nan, index=df.index)
    o = cost_objective(x)
    col = next((c for c in (o.column, o.front_column) if c in df), None)
    return pd.Series(np.nan, index=df.index) if col is None else df[col].astype(float) / o.axis_scale


def _fmt(v: float, fmt: str, unit: str) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:{fmt}} {unit}"


def hover_text(row: pd.Series, title: str, scenario: str) -> str:
    """Hover label: title, variant, per-layer config, metrics (%, ± standard error, confirming split), latency
    (ms, in the row's `lat_scenario` else `scenario`), MACs (G), params (M)."""
    lines = [f"<b>{title}</b>"]
    if isinstance(row.get("precision"), str) and row.get("precision"):
        lines.append(f"variant: {V.row_variant(row)}")
    cfg = row.get("config")
    if isinstance(cfg, SubnetConfig):
        lines += [f"layers: {', '.join(map(str, cfg.layers))}", f"heads/layer: {', '.join(map(str, cfg.heads))}",
                  f"FFN/layer: {', '.join(map(str, cfg.ffn))}"]
    lines.append(f"dev: {V.with_se(row.get('dev_metric'), row.get('dev_se'))} · "
                 f"test: {_fmt(row.get('test_metric'), '.2f', '%')}")
    if "dev_se" in row or "confirm_metric" in row:
        lines.append(f"{'confirmed' if V.confirmed(row) else 'shown'}: {V.confirmation_text(row)}")
    if "lat_ms" in row:
        where = row.get("lat_scenario") if isinstance(row.get("lat_scenario"), str) else scenario
        lines.append(f"latency: {_fmt(row.get('lat_ms'), '.3f', 'ms')} ({row.get('lat_source') or 'none'}, {where})")
    lines.append(f"MACs: {_fmt(row.get('macs', np.nan) / 1e9, '.4g', 'G')} · "
                 f"params: {_fmt(row.get('params', np.nan) / 1e6, '.4g', 'M')}")
    if isinstance(row.get("config_hash"), str):
        lines.append(f"hash: {row['config_hash']}")
    return "<br>".join(lines)


def budget_mask(df: pd.DataFrame, *, metric_col: str, latency_max: float | None = None,
                metric_min: float | None = None, params_max: float | None = None) -> pd.Series:
    """Rows within the budget (latency <= ms, metric >= %, params <= count); NaN latency fails a latency cap."""
    mask = pd.Series(True, index=df.index)
    if latency_max is not None:
        mask &= df["lat_ms"].le(latency_max)
    if metric_min is not None:
        mask &= df[metric_col].ge(metric_min)
    if params_max is not None:
        mask &= df["params"].le(params_max)
    return mask


def best_within_budget(df: pd.DataFrame, mask: pd.Series, metric_col: str) -> int | None:
    """Index of the highest-metric row within budget (ties: lower latency, then fewer MACs); None if none."""
    cand = df[mask & df[metric_col].notna()]
    if cand.empty:
        return None
    keys = [metric_col] + [c for c in ("lat_ms", "macs") if c in cand]
    return cand.sort_values(keys, ascending=[False] + [True] * (len(keys) - 1)).index[0]


def knee_index(front: pd.DataFrame, knee_hash: str | None) -> int | None:
    """The knee row: pareto.csv's knee column (one row even when a config is on the front in two variants), else
    search.json's knee_hash."""
    if "knee" in front:
        return front.index[front["knee"]][0] if front["knee"].any() else None
    if knee_hash and (front["config_hash"] == knee_hash).any():
        return front.index[front["config_hash"] == knee_hash][0]
    return None


# ------------------------------------------------------------------------------------------ Pareto
def pareto_figure(*, x: XKind, metric_col: str, metric_title: str, scenario: str,
                  front: pd.DataFrame | None = None, trials: pd.DataFrame | None = None,
                  grid: pd.DataFrame | None = None, baselines: pd.DataFrame | None = None,
                  published: pd.DataFrame | None = None, in_budget: pd.Series | None = None,
                  best: int | None = None, knee: int | None = None, latency_max: float | None = None,
                  metric_min: float | None = None, log_x: bool = False) -> go.Figure:
    """The Pareto explorer chart; trace names are the `TRACE_*` constants.

    Args:
        x: x axis kind; frames must have `lat_ms` for "latency".
        metric_col: `dev_metric` or `test_metric` (the y axis, %).
        front, trials, grid, baselines: run tables (None or empty: trace omitted).
        published: published reference points (name, macs, params, score, split, note).
        in_budget: mask over `front`; points outside are faded.
        best, knee: index labels in `front` to highlight.
        latency_max, metric_min: budget lines drawn on the chart.
    """
    fig = go.Figure()
    title_x = x_title(x, scenario)

    def add(df: pd.DataFrame | None, name: str, title_of, text_col: str | None = None, **kw) -> None:
        if df is None or df.empty:
            return
        xs, ys = x_values(df, x), df[metric_col]
        keep = xs.notna() & ys.notna()
        if not keep.any():
            return
        d = df[keep]
        hover = [hover_text(r, title_of(r), scenario) for _, r in d.iterrows()]
        if text_col:
            kw["text"] = list(d[text_col])
        fig.add_trace(go.Scatter(x=xs[keep].tolist(), y=ys[keep].tolist(), name=name, hovertext=hover,
                                 hovertemplate="%{hovertext}<extra></extra>", **kw))

    if trials is not None and metric_col in trials:
        t = trials[trials.get("state", "COMPLETE") == "COMPLETE"]
        t = t[x_values(t, x).notna() & t[metric_col].notna()]
        add(t, TRACE_TRIALS, lambda r: f"trial {int(r.trial)}", mode="markers",
            marker=dict(color="#9aa0a6", size=6, opacity=0.35, symbol=[
                V.PRECISION_SYMBOLS.get(p, "circle") for p in t.get("precision", pd.Series("fp32", index=t.index))]))
    if front is not None and not front.empty:
        f = front.assign(_x=x_values(front, x)).sort_values("_x")
        f = f[f["_x"].notna() & f[metric_col].notna()]
        opacity = pd.Series([1.0 if in_budget is None or in_budget.get(i, True) else 0.25 for i in f.index],
                            index=f.index)
        se_col = {"dev_metric": "dev_se", "confirmed_metric": "confirmed_se"}.get(metric_col)
        se = f[se_col] if se_col in f and f[se_col].notna().any() else None  # standard error (points) where recorded
        pairs = list(dict.fromkeys(zip(f["precision"], f["runtime"]))) if "precision" in f else []

        def marks(d: pd.DataFrame, **marker) -> dict:
            kw: dict = dict(marker=dict(size=9, opacity=opacity[d.index].tolist(), **marker))
            if se is not None:
                kw["error_y"] = dict(type="data", array=se[d.index].fillna(0).tolist(), visible=True, thickness=1)
            return kw

        if len(pairs) <= 1:  # one variant: one trace, its variant in the legend's name
            add(f, TRACE_FRONT, lambda r: f"front · trial {int(r.trial)}", mode="lines+markers",
                line=dict(color="#1f77b4", width=2), **marks(f, symbol=V.PRECISION_SYMBOLS.get(
                    pairs[0][0], "circle") if pairs else "circle"))
        else:  # one front line through every variant, then each variant's points: symbol = precision, colour = runtime
            add(f, TRACE_FRONT, lambda r: f"front · trial {int(r.trial)}", mode="lines",
                line=dict(color="#7f7f7f", width=1.5), hoverinfo="skip")
            for p, rt in pairs:
                d = f[(f["precision"] == p) & (f["runtime"] == rt)]
                add(d, front_trace_name(p, rt), lambda r: f"front · trial {int(r.trial)}", mode="markers",
                    **marks(d, symbol=V.PRECISION_SYMBOLS.get(p, "circle"), color=V.RUNTIME_COLORS.get(rt, "#1f77b4"),
                            line=dict(width=1, color="white")))
    if grid is not None and not grid.empty:
        g = grid.assign(_lab=[f"w{w:g}·d{d:g}" for w, d in zip(grid["width_mult"], grid["depth_mult"])])
        add(g, TRACE_GRID, lambda r: f"uniform grid width {r.width_mult:g} × depth {r.depth_mult:g}",
            text_col="_lab", mode="markers+text", textposition="top center", textfont=dict(size=9),
            marker=dict(symbol="square", size=9, color="#ff7f0e"))
    if baselines is not None and not baselines.empty:
        add(baselines, TRACE_BASELINES, lambda r: f"baseline {r['name']} ({r.recipe})", text_col="name",
            mode="markers+text", textposition="bottom center", textfont=dict(size=9),
            marker=dict(symbol="triangle-up", size=11, color="#2ca02c"))
    if published is not None and not published.empty and x != "latency":
        p = published[x_values(published, x).notna()]
        if not p.empty:
            hover = [f"<b>{r['name']}</b> (published, not measured here)<br>{r.source}<br>"
                     f"SST-2 {r.split}: {r.score:.1f} %<br>MACs: {_fmt(r.macs / 1e9, '.2f', 'G')} · "
                     f"params: {_fmt(r.params / 1e6, '.1f', 'M')}<br><i>{r.note}</i>" for _, r in p.iterrows()]
            fig.add_trace(go.Scatter(x=x_values(p, x).tolist(), y=p["score"].tolist(), name=TRACE_PUBLISHED, mode="markers",
                                     hovertext=hover, hovertemplate="%{hovertext}<extra></extra>",
                                     marker=dict(symbol="x", size=9, color="#7f7f7f")))
    for idx, name, marker in ((knee, TRACE_KNEE, dict(symbol="diamond-open", size=18, color="#9467bd",
                                                           line=dict(width=3))),
                              (best, TRACE_BEST, dict(symbol="star", size=20, color="#d62728",
                                                      line=dict(width=1, color="white")))):
        if idx is not None and front is not None and idx in front.index:
            add(front.loc[[idx]], name, lambda r, n=name: f"{n} · trial {int(r.trial)}", mode="markers",
                marker=marker)
    if latency_max is not None and x == "latency":
        fig.add_vline(x=latency_max, line=dict(dash="dot", color="#d62728"), annotation_text="latency budget")
    if metric_min is not None:
        fig.add_hline(y=metric_min, line=dict(dash="dot", color="#d62728"), annotation_text="metric floor")
    fig.update_layout(xaxis_title=title_x, yaxis_title=metric_title, height=560, legend=dict(orientation="h", y=-0.18),
                      margin=dict(l=10, r=10, t=30, b=10), hoverlabel=dict(align="left"))
    if log_x:
        fig.update_xaxes(type="log")
    return fig


# ------------------------------------------------------------------------------------ architecture
def arch_figure(configs: dict[str, SubnetConfig], *, num_layers: int, num_heads: int, ffn_size: int) -> go.Figure:
    """Per-layer heatmaps (heads and FFN kept, as % of full; dropped layers 0) and, for two configs, B − A."""
    labels = list(configs)
    diff = len(labels) == 2
    titles = [f"{k}: {configs[k].describe()}" for k in labels] + (["difference (B − A)"] if diff else [])
    fig = make_subplots(rows=len(titles), cols=1, subplot_titles=titles, vertical_spacing=0.14)
    xs = [f"layer {i}" for i in range(num_layers)]

    def kept(cfg: SubnetConfig) -> tuple[np.ndarray, np.ndarray]:
        counts, frac = np.zeros((2, num_layers)), np.zeros((2, num_layers))
        for layer, h, n in zip(cfg.layers, cfg.heads, cfg.ffn):
            counts[:, layer] = (h, n)
            frac[:, layer] = (100 * h / num_heads, 100 * n / ffn_size)
        return counts, frac

    mats = {k: kept(c) for k, c in configs.items()}
    for row, k in enumerate(labels, start=1):
        counts, frac = mats[k]
        text = [[(f"{int(v)}" if v else "dropped") for v in r] for r in counts]
        fig.add_trace(go.Heatmap(z=frac.tolist(), x=xs, y=["heads", "FFN neurons"], text=text, texttemplate="%{text}",
                                 zmin=0, zmax=100, colorscale="Blues", showscale=row == 1,
                                 colorbar=dict(title="% kept", len=0.4, y=0.8),
                                 hovertemplate="%{x} %{y}: %{text} (%{z:.0f} % of full)<extra>" + k + "</extra>"),
                      row=row, col=1)
    if diff:
        (ca, fa), (cb, fb) = mats[labels[0]], mats[labels[1]]
        d = cb - ca
        fig.add_trace(go.Heatmap(z=(fb - fa).tolist(), x=xs, y=["heads", "FFN neurons"], zmid=0, colorscale="RdBu",
                                 text=[[f"{int(v):+d}" for v in r] for r in d], texttemplate="%{text}",
                                 colorbar=dict(title="Δ % of full", len=0.3, y=0.12),
                                 hovertemplate="%{x} %{y}: %{text} (B − A)<extra>difference</extra>"),
                      row=len(titles), col=1)
    fig.update_layout(height=200 * len(titles) + 60, margin=dict(l=10, r=10, t=40, b=10))
    return fig


def head_importance_figure(head: list[list[float]], *, normalise: bool = False) -> go.Figure:
    """Heatmap of head importance (layers × heads, original head order; optionally ÷ per-layer max)."""
    z = np.asarray(head, dtype=float)
    if normalise:
        z = z / np.where(z.max(axis=1, keepdims=True) > 0, z.max(axis=1, keepdims=True), 1)
    fig = go.Figure(go.Heatmap(z=z.tolist(), x=[f"head {i}" for i in range(z.shape[1])],
                               y=[f"layer {i}" for i in range(z.shape[0])], colorscale="Viridis",
                               colorbar=dict(title="share of layer max" if normalise else "Σ|∂L/∂gate|"),
                               hovertemplate="%{y}, %{x}: %{z:.4g}<extra></extra>"))
    fig.update_layout(height=80 + 40 * z.shape[0], margin=dict(l=10, r=10, t=30, b=10),
                      yaxis=dict(autorange="reversed"), title="Head importance (original head order)")
    return fig


def ffn_importance_figure(ffn: list[list[float]], cuts: dict[int, int] | None = None) -> go.Figure:
    """Per-layer FFN neuron importance sorted high to low; `cuts` {layer: neurons kept} marks a config."""
    fig = go.Figure()
    for layer, scores in enumerate(ffn):
        s = np.sort(np.asarray(scores, dtype=float))[::-1]
        fig.add_trace(go.Scatter(x=list(range(1, len(s) + 1)), y=s.tolist(), mode="lines", name=f"layer {layer}",
                                 hovertemplate=f"layer {layer}: rank %{{x}}, importance %{{y:.4g}}<extra></extra>"))
        if cuts and layer in cuts:
            n = cuts[layer]
            fig.add_trace(go.Scatter(x=[n], y=[float(s[min(n, len(s)) - 1])], mode="markers", showlegend=False,
                                     marker=dict(symbol="line-ns-open", size=16, line=dict(width=2)),
                                     hovertemplate=f"layer {layer}: config A keeps {n} neurons<extra></extra>"))
    fig.update_layout(xaxis_title="neuron rank after rewiring (1 = most important)",
                      yaxis_title="importance |Σ w·∂L/∂w|", yaxis_type="log", height=380,
                      margin=dict(l=10, r=10, t=30, b=10), title="FFN neuron importance per layer (sorted)")
    return fig


# ---------------------------------------------------------------------------------------- training
def training_curve_figure(logs: dict[str, pd.DataFrame]) -> go.Figure:
    """Training loss per logged step for each stage, and dev metric (%) at evaluation steps (right axis)."""
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    for stage, df in logs.items():
        fig.add_trace(go.Scatter(x=df["step"].tolist(), y=df["loss"].tolist(), mode="lines", name=f"{stage} loss",
                                 hovertemplate=f"{stage} step %{{x}}: loss %{{y:.4f}}<extra></extra>"))
        if "dev_metric" in df and df["dev_metric"].notna().any():
            ev = df[df["dev_metric"].notna()]
            fig.add_trace(go.Scatter(x=ev["step"].tolist(), y=ev["dev_metric"].tolist(), mode="markers+lines",
                                     name=f"{stage} dev (%)", line=dict(dash="dot"),
                                     hovertemplate=f"{stage} step %{{x}}: dev %{{y:.2f}} %<extra></extra>"),
                          secondary_y=True)
    fig.update_xaxes(title_text="optimizer step")
    fig.update_yaxes(title_text="training loss", secondary_y=False)
    fig.update_yaxes(title_text="dev metric (%)", secondary_y=True)
    fig.update_layout(height=340, margin=dict(l=10, r=10, t=10, b=10), legend=dict(orientation="h", y=-0.25))
    return fig


SubnetField = Literal["subnet_losses", "dev_metrics", "select_metrics"]
SUBNET_FIELD_TITLES: dict[str, str] = {"subnet_losses": "training loss", "dev_metrics": "dev metric (%)",
                                       "select_metrics": "selection metric (%)"}


def subnet_series(log: pd.DataFrame, field: SubnetField) -> dict[str, tuple[list[int], list[float]]]:
    """Per-sub-network curves of a stage log: name -> (steps, values).

    Args:
        log: `load_log` of logs/<stage>.jsonl.
        field: `subnet_losses` (each sub-network's total loss per logged step), `dev_metrics` (each grid
            sub-network's dev metric at evaluation steps) or `select_metrics` (held-out/dev metric at
            model-selection steps).

    Returns:
        Curves in first-seen order; empty when the log has no such field (older runs).
    """
    out: dict[str, tuple[list[int], list[float]]] = {}
    if field not in log:
        return out
    for step, cell in zip(log["step"], log[field]):
        if not isinstance(cell, dict):
            continue
        for name, v in cell.items():
            v = v.get("loss") if isinstance(v, dict) else v
            if isinstance(v, (int, float)):
                xs, ys = out.setdefault(name, ([], []))
                xs.append(int(step))
                ys.append(float(v))
    return out


def subnet_curve_figure(log: pd.DataFrame, field: SubnetField) -> go.Figure | None:
    """One line per sub-network (`w<width>_d<depth>` for the grid): a stuck sub-network shows at a glance."""
    series = subnet_series(log, field)
    if not series:
        return None
    fig = go.Figure()
    for name, (xs, ys) in series.items():
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers" if len(xs) < 30 else "lines", name=name,
                                 hovertemplate=f"{name} step %{{x}}: %{{y:.4g}}<extra></extra>"))
    fig.update_layout(height=340, margin=dict(l=10, r=10, t=10, b=10), xaxis_title="optimizer step",
                      yaxis_title=SUBNET_FIELD_TITLES[field], legend=dict(orientation="h", y=-0.25))
    return fig
