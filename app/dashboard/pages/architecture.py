"""Architecture view: per-layer picture of one or two configs, their difference, and rewiring importance."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from app.dashboard import artifacts as A
from app.dashboard import charts as C
from app.dashboard.pages.common import config_choices, current_run, load, stage2_grid
from elastic.rundir import GRID_CSV, IMPORTANCE_JSON, PARETO_CSV

st.title("Architecture")
run = current_run()
front = load(run, PARETO_CSV, quiet_missing=True)
grid = stage2_grid(load(run, GRID_CSV, quiet_missing=True))
importance = load(run, IMPORTANCE_JSON, quiet_missing=True)
choices = config_choices(front, grid)

# Full dimensions: a checkpoint's elastic_config.json, else importance.json's shape, else the configs.
arch = A.load_arch(run)
if arch is not None:
    dims = dict(num_layers=arch.num_layers, num_heads=arch.num_heads, ffn_size=arch.intermediate_size)
elif importance is not None:
    dims = dict(num_layers=len(importance["head"]), num_heads=len(importance["head"][0]),
                ffn_size=len(importance["ffn"][0]))
elif choices:
    cfgs = [r["config"] for r in choices.values()]
    dims = dict(num_layers=max(max(c.layers) for c in cfgs) + 1, num_heads=max(max(c.heads) for c in cfgs),
                ffn_size=max(max(c.ffn) for c in cfgs))
    st.caption("Full model size inferred from the largest configs seen (no checkpoint metadata found).")
else:
    dims = None

st.subheader("Per-layer configuration")
if not choices:
    st.info("No configurations to show: this view needs `pareto.csv` (dynabert search) or `grid.csv` "
            "(dynabert train-stage2).")
else:
    labels = list(choices)
    a = st.selectbox("Config A", labels, key="arch_a")
    b = st.selectbox("Config B (optional, to compare)", ["(none)"] + labels, key="arch_b",
                     index=min(len(labels), 2) if len(labels) > 1 else 0)
    picked = {"A": choices[a]["config"]}
    if b != "(none)":
        picked["B"] = choices[b]["config"]
    st.plotly_chart(C.arch_figure(picked, **dims), key="arch_chart")
    rows = []
    for key, cfg in picked.items():
        r = choices[a if key == "A" else b]
        rows.append({"config": key, "layers kept": len(cfg.layers), "heads (total)": sum(cfg.heads),
                     "FFN neurons (total)": sum(cfg.ffn), "dev (%)": r.get("dev_metric"),
                     "MACs (G)": r.get("macs", float("nan")) / 1e9, "params (M)": r.get("params", float("nan")) / 1e6,
                     "hash": r.get("config_hash")})
    st.dataframe(pd.DataFrame(rows), hide_index=True)
    st.caption(f"Full model: {dims['num_layers']} layers × {dims['num_heads']} heads, FFN {dims['ffn_size']} "
               "neurons per layer. Cells are % of full (text: count kept); heads and neurons are the first ones "
               "after rewiring, i.e. the most important.")

st.subheader("Importance from rewiring")
if importance is None:
    load(run, IMPORTANCE_JSON)  # shows why (missing or malformed)
else:
    st.caption(f"Computed on `{importance.get('split', '?')}` ({importance.get('n_examples', '?')} examples). "
               "Head importance = Σ|∂L/∂gate| (Michel et al. 2019); neuron importance as in DynaBERT.")
    norm = st.checkbox("normalise each layer to its most important head", key="arch_norm")
    st.plotly_chart(C.head_importance_figure(importance["head"], normalise=norm), key="head_importance")
    cuts = None
    if choices:
        cfg = choices[st.session_state.get("arch_a", list(choices)[0])]["config"]
        cuts = dict(zip(cfg.layers, cfg.ffn))
    st.plotly_chart(C.ffn_importance_figure(importance["ffn"], cuts), key="ffn_importance")
    if cuts:
        st.caption("Tick marks: where config A cuts each layer's FFN.")
