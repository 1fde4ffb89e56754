"""Runs: every run under the runs directory, with task, teacher, date, stage timings and what is missing."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from app import artifacts as A
from app.app_pages.common import load, no_runs_page, runs_dir

st.title("Runs")
root = runs_dir()
runs = A.list_runs(root)
if not runs:
    no_runs_page(root)
    st.stop()

stages = sorted({s for r in runs for s in r.stage_seconds})
rows = []
for r in runs:
    row = {"run": r.name, "task": r.task, "teacher": r.teacher, "created": r.created[:19].replace("T", " ")}
    row.update({f"{s} (min)": round(r.stage_seconds[s] / 60, 1) if s in r.stage_seconds else None for s in stages})
    row["total (min)"] = round(sum(r.stage_seconds.values()) / 60, 1)
    row["missing artifacts"] = ", ".join(r.missing) or "none"
    row["problem"] = r.problem
    rows.append(row)
st.caption(f"{len(runs)} run(s) under `{root}`. Pick the run to explore in the sidebar.")
st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")

name = st.session_state.get("run_name")
if name and (root / name).is_dir():
    run = root / name
    st.subheader(f"Run `{name}`")
    missing = A.missing_artifacts(run)
    if missing:
        st.warning("Missing: " + ", ".join(f"`{m}` (written by `{A.ARTIFACTS[m]}`)" for m in missing))
    ckpts = [d for d in A.CHECKPOINT_DIRS if (run / d).is_dir()]
    st.markdown("Checkpoints: " + (", ".join(f"`{d}/`" for d in ckpts) if ckpts else "none"))
    meta = load(run, "run.json")
    if meta:
        secs = meta.get("stage_seconds") or {}
        if secs:
            st.dataframe(pd.DataFrame({"stage": list(secs), "seconds (s)": [round(v, 1) for v in secs.values()],
                                       "minutes (min)": [round(v / 60, 2) for v in secs.values()]}),
                         hide_index=True)
        with st.expander("run.json (resolved options)"):
            st.json({k: v for k, v in meta.items() if k != "task_name"})
