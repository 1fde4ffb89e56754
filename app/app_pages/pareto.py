"""Pareto explorer: accuracy against latency, MACs or parameters, with budget controls."""
from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from app import artifacts as A
from app import charts as C
from app.app_pages.common import (current_run, frame_for_display, load, metric_name, published_reference,
                                  stage2_grid)

st.title("Pareto explorer")
run = current_run()
front = load(run, "pareto.csv")
trials = load(run, "trials.csv", quiet_missing=True)
grid = stage2_grid(load(run, "grid.csv"))
baselines = load(run, "baselines.csv", quiet_missing=True)
latency = load(run, "latency.csv", quiet_missing=True)
search = load(run, "search.json", quiet_missing=True) or {}
metric = metric_name(run)

scenarios = sorted((set(latency["scenario"]) if latency is not None else set())
                   | (set(front["scenario"]) if front is not None else set())
                   | ({search["scenario"]} if search.get("scenario") else set()))
search_sc = search.get("scenario") or (front["scenario"].iloc[0] if front is not None and len(front) else None)

c1, c2, c3, c4 = st.columns([1, 1.3, 1.6, 1.2])
which = c1.radio("Metric (y)", ["dev", "test"], horizontal=True, key="pareto_metric",
                 help="trials.csv has dev scores only: the trial cloud is hidden for test")
x_kind = c2.radio("Cost (x)", ["latency", "macs", "params"], horizontal=True, key="pareto_x",
                  format_func={"latency": "latency (ms)", "macs": "MACs", "params": "params"}.get)
scenario = c3.selectbox("Latency scenario", scenarios or ["(none)"], key="pareto_scenario",
                        index=scenarios.index(search_sc) if search_sc in scenarios else 0,
                        help="device-runtime-threads-batch-seq_len; latency.csv holds the measurements")
show_pub = c4.toggle("Published points", key="pareto_published",
                     help="Numbers copied from papers/READMEs (SST-2): not measured here")
metric_col = f"{which}_metric"
metric_title = f"{which.capitalize()} {metric} (%)"

# Latency for every point set, in the selected scenario (measured where available).
if front is not None:
    front = C.attach_latency(front, latency, scenario, own_scenario=front["scenario"],
                             own=[("latency_measured_ms", "measured (pareto.csv)"),
                                  ("latency_pred_ms", "predicted (pareto.csv)")])
if trials is not None:
    trials = C.attach_latency(trials, latency, scenario, own=[("latency_ms", "search objective (trials.csv)")],
                              own_scenario=search_sc)
if grid is not None:
    grid = C.attach_latency(grid, latency, scenario)
if baselines is not None:
    baselines = C.attach_latency(baselines, latency, scenario, own=[("latency_ms", "measured (baselines.csv)")],
                                 own_scenario=baselines["scenario"])

# Budget controls act on the front (or the uniform grid when there is no searched front).
cand = front if front is not None and not front.empty else grid
if cand is None or cand.empty:
    st.warning("Nothing to plot yet: neither `pareto.csv` nor `grid.csv` is usable for this run.")
    st.stop()
if cand is grid:
    st.info("No searched front: the budget controls act on the uniform grid points.")
elif stale := A.stale_search_note(run, search):
    st.warning(stale)


def _range(s: pd.Series, pad: float) -> tuple[float, float]:
    s = s.dropna()
    if s.empty:
        return 0.0, 1.0
    lo, hi = float(s.min()), float(s.max())
    return (math.floor((lo - pad) * 100) / 100, math.ceil((hi + pad) * 100) / 100) if hi > lo else (lo - 1, hi + 1)


st.markdown("**Budget** (filters the front; the best config within it and the knee are highlighted)")
b1, b2, b3 = st.columns(3)
lat_lo, lat_hi = _range(cand["lat_ms"], 0.01)
lat_max = b1.slider(f"Latency ≤ (ms, {scenario})", lat_lo, lat_hi, lat_hi, step=0.01, key="budget_latency",
                    disabled=cand["lat_ms"].isna().all())
met_lo, met_hi = _range(cand[metric_col], 0.01)
met_min = b2.slider(f"{metric_title} ≥", met_lo, met_hi, met_lo, step=0.01, key="budget_metric")
par_lo, par_hi = _range(cand["params"] / 1e6, 0.01)
par_max = b3.slider("Parameters ≤ (millions)", par_lo, par_hi, par_hi, step=0.01, key="budget_params")

mask = C.budget_mask(cand, metric_col=metric_col,
                     latency_max=None if cand["lat_ms"].isna().all() else lat_max,
                     metric_min=met_min, params_max=par_max * 1e6)
best = C.best_within_budget(cand, mask, metric_col)
knee = C.knee_index(cand, search.get("knee_hash")) if cand is front else None

published = None
if show_pub:
    published = published_reference()
    if published is not None:
        published = published[published["split"] == which]
    if x_kind == "latency":
        st.caption("Published points have no latency on this hardware: they appear on the MACs and params axes only.")
    else:
        st.caption("Published points are SST-2 numbers of BERT-base-scale models from papers (not measured here, "
                   f"{which} split only); compare relative drops from each teacher, not absolute accuracy.")
auto_log = bool(show_pub and x_kind != "latency")  # published BERT-base points are ~10x our sizes
log_x = st.checkbox("log x axis", value=auto_log, key=f"pareto_logx_{auto_log}")
if which == "test":
    st.caption("The trial cloud is hidden: the search recorded dev scores only.")

fig = C.pareto_figure(
    x=x_kind, metric_col=metric_col, metric_title=metric_title, scenario=scenario,
    front=front if front is not None else None, trials=trials if which == "dev" else None,
    grid=grid, baselines=baselines, published=published,
    in_budget=mask if cand is front else None, best=best if cand is front else None, knee=knee,
    latency_max=lat_max if not cand["lat_ms"].isna().all() else None, metric_min=met_min, log_x=log_x)
if cand is grid and best is not None:  # highlight the grid point instead
    hi = grid.loc[[best]]
    fig.add_scatter(x=C.x_values(hi, x_kind).tolist(), y=hi[metric_col].tolist(), name=C.TRACE_BEST, mode="markers",
                    marker=dict(symbol="star", size=20, color="#d62728"),
                    hovertext=[C.hover_text(hi.iloc[0], C.TRACE_BEST, scenario)],
                    hovertemplate="%{hovertext}<extra></extra>")
st.plotly_chart(fig, key="pareto_chart")


def _summary(r: pd.Series) -> str:
    trial = f"trial {int(r.trial)}" if "trial" in r and not pd.isna(r.get("trial")) else \
        f"grid width {r.width_mult:g} × depth {r.depth_mult:g}"
    lat = f"{r.lat_ms:.3f} ms" if not pd.isna(r.lat_ms) else "no latency"
    return (f"{trial} · `{r['describe']}` · {which} {r[metric_col]:.2f} % · {lat} ({scenario}) · "
            f"{r.macs / 1e9:.3f} G MACs · {r.params / 1e6:.2f} M params · hash `{r.config_hash}`")


if best is None:
    st.warning("No configuration fits the budget: loosen one of the limits.")
else:
    st.success(f"**Best within budget:** {_summary(cand.loc[best])}")
if knee is not None:
    st.info(f"**Knee point:** {_summary(cand.loc[knee])}")
st.caption(f"{int(mask.sum())} of {len(cand)} {'front' if cand is front else 'grid'} points within budget.")

with st.expander("Front points (table)"):
    cols = ["trial", "describe", "dev_metric", "test_metric", "lat_ms", "lat_source", "macs", "params",
            "config_hash", "knee", "width_mult", "depth_mult"]
    tab = frame_for_display(cand.assign(in_budget=mask))
    st.dataframe(tab[[c for c in cols if c in tab] + ["in_budget"]].rename(
        columns={"dev_metric": "dev (%)", "test_metric": "test (%)", "lat_ms": "latency (ms)",
                 "macs": "MACs", "params": "params"}), hide_index=True)
if trials is not None and which == "dev":
    n_no_lat = int((trials["state"] == "COMPLETE").sum() - trials["lat_ms"].notna().sum())
    if x_kind == "latency" and n_no_lat > 0:
        st.caption(f"{n_no_lat} completed trials have no latency in scenario {scenario} and are not drawn.")
