"""DynaBERT Explorer dashboard: `streamlit run app/main.py [-- --runs-dir DIR]`.

Reads run directories (docs/ARTIFACTS.md) and never trains or searches. The runs directory comes from
`--runs-dir`, else env `DYNABERT_RUNS_DIR`, else `./runs`. The run picked in the sidebar is shared by
every page through `st.session_state["run_name"]`.
"""
from __future__ import annotations

import sys

import streamlit as st

from app.dashboard.run_index import RunSummary, list_runs, resolve_runs_dir

st.set_page_config(page_title="DynaBERT Explorer", page_icon=":material/scatter_plot:", layout="wide")

runs_dir = resolve_runs_dir(sys.argv[1:])
st.session_state["runs_dir"] = str(runs_dir)
runs = list_runs(runs_dir)  # a directory listing and a few small run.json reads: cheap, never stale


def _label(r: RunSummary) -> str:
    date = r.created[:16].replace("T", " ") if r.created else "no date"
    return f"{r.name} · {r.task} · {date}"


with st.sidebar:
    st.subheader("Run")
    if runs:
        by_name = {r.name: r for r in runs}
        wanted = st.query_params.get("run")  # ?run=NAME preselects a run (links, screenshots)
        if wanted in by_name and "run_name" not in st.session_state:
            st.session_state["run_name"] = wanted
        name = st.selectbox("Run", list(by_name), key="run_name", format_func=lambda n: _label(by_name[n]),
                            label_visibility="collapsed")
        r = by_name[name]
        if r.problem:
            st.warning(r.problem)
        st.caption(f"teacher: `{r.teacher}`")
        if r.stage_seconds:
            st.caption("stage time: " + ", ".join(f"{k} {v / 60:.1f} min" for k, v in r.stage_seconds.items()))
        st.caption("missing: " + (", ".join(r.missing) if r.missing else "nothing"))
    else:
        st.session_state.pop("run_name", None)
        st.caption(f"no runs under `{runs_dir}`")
    st.caption(f"runs directory: `{runs_dir}`")

pages = [
    st.Page("dashboard/pages/runs.py", title="Runs", icon=":material/folder_open:", default=True),
    st.Page("dashboard/pages/pareto.py", title="Pareto explorer", icon=":material/scatter_plot:"),
    st.Page("dashboard/pages/architecture.py", title="Architecture", icon=":material/view_column:"),
    st.Page("dashboard/pages/search_progress.py", title="Search progress", icon=":material/timeline:"),
    st.Page("dashboard/pages/export.py", title="Export", icon=":material/download:"),
]
st.navigation(pages).run()
