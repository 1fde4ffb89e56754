"""Runs: every run under the runs directory, with task, teacher, date, stage timings and what is missing."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from app.dashboard import charts as C
from app.dashboard import run_index
from app.dashboard.pages.common import load, no_runs_page, runs_dir
from elastic.rundir import CHECKPOINT_DIRS, DONE_JSON, LOGS_DIR, REQUIRED, RUN_JSON, STUDY_DB, RunDir

st.title("Runs")
root = runs_dir()
runs = run_index.list_runs(root)
if not runs:
    no_runs_page(root)
    st.stop()

stages = list(dict.fromkeys(s for r in runs for s in r.stage_seconds))  # pipeline order, as recorded
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
    missing = run_index.missing_artifacts(run)
    if missing:
        st.warning("Missing: " + ", ".join(f"`{m}` (written by `{REQUIRED[m]}`)" for m in missing))
    ckpts = [d for d in CHECKPOINT_DIRS if (run / d).is_dir()]
    st.markdown("Checkpoints: " + (", ".join(f"`{d}/`" for d in ckpts) if ckpts else "none"))
    meta = load(run, RUN_JSON) or {}
    secs = meta.get("stage_seconds") or {}
    stage_rows = []
    for stage in dict.fromkeys([*secs, *ckpts]):
        done = load(run, f"{stage}/{DONE_JSON}", quiet_missing=True) if (run / stage).is_dir() else None
        stage_rows.append({"stage": stage, "time (min)": round(secs[stage] / 60, 2) if stage in secs else None,
                           "complete": bool(done), "steps": (done or {}).get("steps"),
                           "epochs": (done or {}).get("epochs"), "finished": (done or {}).get("finished_at")})
    if stage_rows:
        st.dataframe(pd.DataFrame(stage_rows), hide_index=True)
    logs = {p.stem: load(run, f"{LOGS_DIR}/{p.name}") for p in sorted(RunDir(run).logs.glob("*.jsonl"))}
    logs = {k: v for k, v in logs.items() if v is not None and not v.empty}
    if logs:
        st.markdown("**Training curves** (logs/*.jsonl)")
        st.plotly_chart(C.training_curve_figure(logs), key="training_curves")
        per_subnet = [s for s, df in logs.items() if "subnet_losses" in df]
        if per_subnet:
            st.markdown("**Per sub-network** (loss terms every logged step; metrics at evaluation and "
                        "selection steps)")
            stage = st.selectbox("Stage", per_subnet, index=len(per_subnet) - 1, key="subnet_stage")
            for field in ("subnet_losses", "dev_metrics", "select_metrics"):
                fig = C.subnet_curve_figure(logs[stage], field)
                if fig is not None:
                    st.caption(C.SUBNET_FIELD_TITLES[field])
                    st.plotly_chart(fig, key=f"subnet_{field}")
    studies = load(run, STUDY_DB, quiet_missing=True)
    if studies:
        st.caption("Optuna studies in study.db: " + ", ".join(
            f"`{s['name']}` ({s['n_trials']} trials, {'/'.join(d.lower() for d in s['directions'])})" for s in studies))
    if meta:
        with st.expander("run.json (resolved options)"):
            st.json({k: v for k, v in meta.items() if k != "task_name"})
