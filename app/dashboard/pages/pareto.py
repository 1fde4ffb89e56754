"""Pareto explorer: accuracy against latency, MACs or parameters, with budget controls."""
from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from app.dashboard import artifacts as A
from app.dashboard import charts as C
from app.dashboard import front_view as V
from app.dashboard.pages.common import (current_run, frame_for_display, load, metric_name, published_reference,
                                  stage2_grid)
from elastic.rundir import BASELINES_CSV, GRID_CSV, LATENCY_CSV, PARETO_CSV, SEARCH_JSON, TRIALS_CSV

st.title("Pareto explorer")
run = current_run()
front = load(run, PARETO_CSV)
trials = load(run, TRIALS_CSV, quiet_missing=True)
grid = stage2_grid(load(run, GRID_CSV))
baselines = load(run, BASELINES_CSV, quiet_missing=True)
latency = load(run, LATENCY_CSV, quiet_missing=True)
search = load(run, SEARCH_JSON, quiet_missing=True) or {}
metric = metric_name(run)

# The searched deployment variants (scenario keys of one target); a point's metric and latency are its variant's.
variants = V.search_variants(search, front)
if trials is not None and len(variants) == 1:  # trials.csv from before variants: the search's one variant
    p0, r0 = V.variant_of(variants[0]) or ("", "")
    trials = trials.assign(scenario=trials["scenario"].replace("", variants[0]),
                           precision=trials["precision"].replace("", p0), runtime=trials["runtime"].replace("", r0))
multi = len(variants) > 1 or (front is not None and front["scenario"].nunique() > 1)
keys = sorted((set(latency["scenario"]) if latency is not None else set())
              | (set(front["scenario"]) if front is not None else set()) | set(variants))
grid_home = V.fp32_eager_key(variants or keys)  # the uniform grid is evaluated in fp32, eager
if baselines is not None:
    baselines = baselines.assign(**{c: [(V.variant_of(k) or ("", ""))[i] for k in baselines["scenario"]]
                                    for i, c in enumerate(("precision", "runtime"))})

c1, c2, c3, c4 = st.columns([1, 1.3, 1.6, 1.2])
# A confirmed front (pareto.csv confirm_*): its points' figures on a split the search never saw, dev where unconfirmed.
has_confirm = front is not None and bool(front["confirm_split"].astype(bool).any())
if front is not None:
    ok = front["confirm_split"].astype(bool) & front["confirm_metric"].notna()
    front = front.assign(confirmed_metric=front["confirm_metric"].where(ok, front["dev_metric"]),
                         confirmed_se=front["confirm_se"].where(ok, front["dev_se"]))
which = c1.radio("Metric (y)", ["dev", "confirmed", "test"] if has_confirm else ["dev", "test"], horizontal=True,
                 key="pareto_metric", help="confirmed: each front point's figure on the split that confirmed it "
                 "(held-out), dev where unconfirmed. trials.csv has dev scores only: the trial cloud is dev only")
axes = C.cost_axes()  # every registered cost objective (search.objectives)
x_kind = c2.radio("Cost (x)", list(axes), horizontal=True, key="pareto_x",
                  format_func=lambda k: axes[k].split(" (")[0])
options = ([V.OWN] if multi else []) + keys
default = V.OWN if multi else (variants[0] if variants and variants[0] in keys else None)
scenario = c3.selectbox("Latency scenario", options or ["(none)"], key="pareto_scenario",
                        index=options.index(default) if default in options else 0,
                        help="device-runtime-threads-batch-seq_len. A point's latency is always that of its own "
                             "variant (precision, runtime): another scenario shows only the points of its variant")
show_pub = c4.toggle("Published points", key="pareto_published",
                     help="Numbers copied from papers/READMEs (SST-2): not measured here")
metric_col = f"{which}_metric"
metric_title = f"{which.capitalize()} {metric} (%)" if which != "confirmed" else f"Confirmed {metric} (%, held-out)"
target = next((V.target_of_key(k) for k in variants if V.target_of_key(k)), None)
scenario_text = f"own variant, {target or '?'}" if scenario == V.OWN else scenario

# Deployment-variant filters (all shown by default); the uniform grid is fp32 eager.
present = [d for d in (front, trials) if d is not None and "precision" in d]
precs = sorted({p for d in present for p in d["precision"] if p} | {"fp32"}, key=list(V.PRECISION_LABELS).index)
rts = sorted({r for d in present for r in d["runtime"] if r} | {"eager"}, key=list(V.RUNTIME_LABELS).index)
f1, f2 = st.columns(2)
sel_p = f1.multiselect("Precision", precs, default=precs, key="pareto_precision", format_func=V.PRECISION_LABELS.get)
sel_r = f2.multiselect("Runtime", rts, default=rts, key="pareto_runtime", format_func=V.RUNTIME_LABELS.get)
if front is not None:
    front = front[V.variant_mask(front, sel_p, sel_r)]
if trials is not None:
    trials = trials[V.variant_mask(trials, sel_p, sel_r)]
if grid is not None and not ("fp32" in sel_p and "eager" in sel_r):
    grid = grid.iloc[0:0]
if baselines is not None:
    baselines = baselines[V.variant_mask(baselines, sel_p, sel_r)]
if which == "confirmed":  # only front points have a confirmed figure: nothing else is drawn on this axis
    grid = baselines = None

# Latency for every point set: its own variant's (measured where available), never another variant's.
if front is not None:
    front = C.attach_latency(front, latency, V.row_scenarios(front["scenario"], scenario),
                             own_scenario=front["scenario"],
                             own=[("latency_measured_ms", "measured (pareto.csv)"),
                                  ("latency_pred_ms", "predicted (pareto.csv)")])
if trials is not None:
    trials = C.attach_latency(trials, latency, V.row_scenarios(trials["scenario"], scenario),
                              own=[("latency_ms", "search objective (trials.csv)")], own_scenario=trials["scenario"])
if grid is not None:
    grid = C.attach_latency(grid, latency, V.row_scenarios(pd.Series(grid_home, index=grid.index, dtype=object),
                                                           scenario))
if baselines is not None:
    baselines = C.attach_latency(baselines, latency, V.row_scenarios(baselines["scenario"], scenario),
                                 own=[("latency_ms", "measured (baselines.csv)")], own_scenario=baselines["scenario"])
if multi:
    st.caption("Each front point is a sub-network in one deployment variant (marker symbol = precision, colour = "
               "runtime): its metric and latency are measured on that variant's artifact. The uniform grid is fp32 "
               "eager. Error bars: ± one standard error of the dev metric, where the search recorded it.")

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
lat_max = b1.slider(f"Latency ≤ (ms, {scenario_text})", lat_lo, lat_hi, lat_hi, step=0.01, key="budget_latency",
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
        published = published[published["split"] == which]  # none for "confirmed"
    if x_kind == "latency":
        st.caption("Published points have no latency on this hardware: they appear on the MACs and params axes only.")
    else:
        st.caption("Published points are SST-2 numbers of BERT-base-scale models from papers (not measured here, "
                   f"{which} split only); compare relative drops from each teacher, not absolute accuracy.")
auto_log = bool(show_pub and x_kind != "latency")  # published BERT-base points are ~10x our sizes
if x_kind == "latency":  # variants' latencies can differ by orders of magnitude (e.g. torchao INT8 vs ORT)
    xs = pd.concat([d["lat_ms"] for d in (front, trials, grid, baselines) if d is not None and len(d)]).dropna()
    auto_log = bool(len(xs) and xs.min() > 0 and xs.max() / xs.min() > 30)
log_x = st.checkbox("log x axis", value=auto_log, key=f"pareto_logx_{auto_log}")
if which == "test":
    st.caption("The trial cloud is hidden: the search recorded dev scores only.")
elif which == "confirmed":
    st.caption("Front points only: each at the figure that confirmed it (held-out split; dev where not confirmed). "
               "Trials, grid and baselines have dev/test scores only.")

fig = C.pareto_figure(
    x=x_kind, metric_col=metric_col, metric_title=metric_title, scenario=scenario_text,
    front=front if front is not None else None, trials=trials if which == "dev" else None,
    grid=grid, baselines=baselines, published=published,
    in_budget=mask if cand is front else None, best=best if cand is front else None, knee=knee,
    latency_max=lat_max if not cand["lat_ms"].isna().all() else None, metric_min=met_min, log_x=log_x)
if cand is grid and best is not None:  # highlight the grid point instead
    hi = grid.loc[[best]]
    fig.add_scatter(x=C.x_values(hi, x_kind).tolist(), y=hi[metric_col].tolist(), name=C.TRACE_BEST, mode="markers",
                    marker=dict(symbol="star", size=20, color="#d62728"),
                    hovertext=[C.hover_text(hi.iloc[0], C.TRACE_BEST, scenario_text)],
                    hovertemplate="%{hovertext}<extra></extra>")
st.plotly_chart(fig, key="pareto_chart")


def _summary(r: pd.Series) -> str:
    trial = f"trial {int(r.trial)}" if "trial" in r and not pd.isna(r.get("trial")) else \
        f"grid width {r.width_mult:g} × depth {r.depth_mult:g}"
    lat = f"{r.lat_ms:.3f} ms ({r.lat_scenario})" if not pd.isna(r.lat_ms) else "no latency"
    variant = f" · variant **{V.row_variant(r)}**" if r.get("precision") else ""
    shown = V.confirmation_text(r) if which != "test" else f"test {r[metric_col]:.2f} %"
    return (f"{trial}{variant} · `{r['describe']}` · {shown} · {lat} · "
            f"{r.macs / 1e9:.3f} G MACs · {r.params / 1e6:.2f} M params · hash `{r.config_hash}`")


if best is None:
    st.warning("No configuration fits the budget: loosen one of the limits.")
else:
    over = f" (over {len(set(zip(cand['precision'], cand['runtime'])))} variants shown)" \
        if cand is front and "precision" in cand and multi else ""
    st.success(f"**Best within budget{over}:** {_summary(cand.loc[best])}")
if cand is front and x_kind == "latency" and (n_other := int(front["lat_ms"].isna().sum())):
    st.caption(f"{n_other} front point(s) have no latency in {scenario_text} (another variant, or not measured): "
               f"not drawn" + (f"; choose '{V.OWN}' to see every point in its own variant." if multi else "."))
if knee is not None:
    st.info(f"**Knee point:** {_summary(cand.loc[knee])}")
st.caption(f"{int(mask.sum())} of {len(cand)} {'front' if cand is front else 'grid'} points within budget.")

with st.expander("Front points (table)"):
    cols = ["trial", "variant", "describe", "dev_metric", "dev_se", "confirmed", "test_metric", "lat_ms",
            "lat_source", "lat_scenario", "macs", "params", "config_hash", "knee", "width_mult", "depth_mult"]
    tab = frame_for_display(cand.assign(in_budget=mask))
    if "precision" in tab:
        tab = tab.assign(variant=[V.row_variant(r) for _, r in tab.iterrows()],
                         confirmed=[V.confirmation_text(r) for _, r in tab.iterrows()])
    st.dataframe(tab[[c for c in cols if c in tab] + ["in_budget"]].rename(
        columns={"dev_metric": "dev (%)", "dev_se": "dev SE (points)", "confirmed": "metric (split)",
                 "test_metric": "test (%)", "lat_ms": "latency (ms)", "lat_scenario": "latency scenario",
                 "macs": "MACs", "params": "params"}), hide_index=True)
if trials is not None and which == "dev":
    n_no_lat = int((trials["state"] == "COMPLETE").sum() - trials["lat_ms"].notna().sum())
    if x_kind == "latency" and n_no_lat > 0:
        st.caption(f"{n_no_lat} completed trials have no latency in scenario {scenario_text} and are not drawn.")
