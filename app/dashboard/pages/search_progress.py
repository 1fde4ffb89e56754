"""Search progress: hypervolume over trials, the trials table, latency-predictor error, MACs vs latency."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from app.dashboard import charts_search as C
from app.dashboard.pages.common import current_run, frame_for_display, load
from elastic.rundir import LATENCY_CSV, PREDICTOR_JSON, SEARCH_JSON, TRIALS_CSV
from search.objectives import cost_objectives

st.title("Search progress")
run = current_run()
search = load(run, SEARCH_JSON, quiet_missing=True) or {}
trials = load(run, TRIALS_CSV)

# ---- hypervolume
st.subheader("Hypervolume over trials")
history = search.get("hypervolume_history")
source = SEARCH_JSON
if not history and trials is not None:
    history, source = C.hypervolume_from_trials(trials, search.get("reference_point")), "recomputed from trials.csv"
if history:
    m1, m2, m3 = st.columns(3)
    m1.metric("Hypervolume (% × ms)", f"{history[-1][1]:.4g}")
    m2.metric("Trials", f"{search.get('n_trials', int(history[-1][0]))}")
    spt = search.get("seconds_per_trial")
    m3.metric("Time per trial", f"{spt:.1f} s" if spt is not None else "n/a")
    st.plotly_chart(C.hypervolume_figure(history), key="hv_chart")
    st.caption(f"Source: {source}; objectives {search.get('objectives', ['dev metric (max)', 'latency (min)'])}, "
               f"reference point {search.get('reference_point', 'automatic')}, scenario "
               f"`{search.get('scenario', '?')}`.")
else:
    st.info("No hypervolume history: needs `search.json` or `trials.csv` (written by `dynabert search`).")

# ---- trials table
st.subheader("Trials")
if trials is not None:
    f1, f2, f3 = st.columns(3)
    states = sorted(trials["state"].unique())
    pick_states = f1.multiselect("State", states, default=states, key="trials_state")
    feas = f2.selectbox("Feasible", ["all", "feasible only", "infeasible only"], key="trials_feasible")
    scores = trials["dev_metric"].dropna()
    lo, hi = (float(scores.min()), float(scores.max())) if len(scores) else (0.0, 100.0)
    if hi <= lo:
        hi = lo + 1.0
    rng = f3.slider("Dev metric range (%)", lo, hi, (lo, hi), key="trials_range")
    view = trials[trials["state"].isin(pick_states)]
    if feas != "all":
        view = view[view["feasible"] == (feas == "feasible only")]
    in_range = view["dev_metric"].between(rng[0], rng[1]) | (view["dev_metric"].isna() & (rng == (lo, hi)))
    view = frame_for_display(view[in_range])
    # every registered cost objective's column (search.objectives), with its unit (raw values, not axis-scaled)
    shown = ["trial", "state", "feasible", "dev_metric", *(o.column for o in cost_objectives()), "describe",
             "config_hash"]
    st.dataframe(view[[c for c in shown if c in view]].rename(columns={
        "dev_metric": "dev (%)", "describe": "config", **{o.column: f"{o.name} ({o.unit})" for o in cost_objectives()}}),
        hide_index=True)
    st.caption(f"{len(view)} of {len(trials)} trials shown; latency is the search objective's value (ms); "
               "config = kept layers L, heads per layer H, FFN neurons per layer F.")
    st.download_button("Download these trials (CSV)", view.drop(columns=["describe"]).to_csv(index=False),
                       file_name=f"{run.name}-trials.csv", mime="text/csv", key="trials_download")

# ---- latency predictor
st.subheader("Latency predictor error")
pred = load(run, PREDICTOR_JSON)
if pred is not None:
    p1, p2, p3, p4 = st.columns(4)
    p1.metric("MAPE (held-out)", f"{pred['mape_pct']:.2f} %")
    p2.metric("Kendall τ", f"{pred['kendall_tau']:.3f}" if pred["kendall_tau"] is not None else "n/a")
    p3.metric("Held-out configs", f"{pred.get('n_heldout', len(pred['points']))}")
    p4.metric("Predictor", str(pred["kind"]))
    if len(pred["points"]):
        st.plotly_chart(C.predictor_figure(pred["points"]), key="predictor_chart")
    st.caption(f"Scenario `{pred['scenario']}`. Points on the dashed line are predicted exactly.")

# ---- MACs vs latency
st.subheader("MACs vs measured latency")
lat = load(run, LATENCY_CSV)
if lat is not None and not lat.empty:
    scs = sorted(lat["scenario"].unique())
    sc = st.selectbox("Scenario", scs, key="macs_lat_scenario")
    one = lat[lat["scenario"] == sc]
    st.plotly_chart(C.macs_latency_figure(one), key="macs_latency_chart")
    if len(one) >= 3:
        rho = one["macs"].corr(one["median_ms"], method="spearman")
        tau = one["macs"].corr(one["median_ms"], method="kendall")
        c1, c2, c3 = st.columns(3)
        c1.metric("Spearman ρ (MACs, latency)", f"{rho:.3f}")
        c2.metric("Kendall τ (MACs, latency)", f"{tau:.3f}")
        # For tau without ties, the share of discordant pairs is (1 - tau) / 2.
        c3.metric("Pairs ordered differently", f"{100 * (1 - tau) / 2:.1f} %")
        st.caption("Where MACs and measured latency disagree on the order of two configs, a MACs-only search "
                   f"would pick the wrong one. {len(one)} configs measured in `{sc}` "
                   f"(medians of n = {int(one['n'].median())} runs).")
    with st.expander("Measurements (latency.csv)"):
        st.dataframe(pd.DataFrame(frame_for_display(one)), hide_index=True)
