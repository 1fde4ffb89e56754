"""Export: turn a front/grid point into a standalone model (`dynabert export`), show cards, offer downloads."""
from __future__ import annotations

import contextlib
import io
import re
import zipfile
from pathlib import Path

import streamlit as st

from app.dashboard import artifacts as A
from app.dashboard import front_view as V
from app.dashboard.pages.common import config_choices, current_run, load, stage2_grid
from elastic.rundir import GRID_CSV, PARETO_CSV, SEARCH_JSON, RunDir

st.title("Export")
run = current_run()
front = load(run, PARETO_CSV, quiet_missing=True)
grid = stage2_grid(load(run, GRID_CSV, quiet_missing=True))
search = load(run, SEARCH_JSON, quiet_missing=True) or {}
variants = V.search_variants(search, front)
choices = config_choices(front, grid)


def _zip(folder: Path) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for f in sorted(folder.rglob("*")):
            if f.is_file():
                z.write(f, f.relative_to(folder.parent))
    return buf.getvalue()


def _reader(path: Path):
    """Deferred file content: read only when the user clicks download."""
    return lambda: path.read_bytes()


def _show_export(info: A.ExportInfo, key: str) -> None:
    if info.card:
        # Demote the card's headings two levels so they sit under this page's own headings.
        st.markdown(re.sub(r"^(#{1,4}) ", lambda m: "#" * (len(m.group(1)) + 2) + " ", info.card, flags=re.M))
    else:
        st.warning(f"`{info.name}` has no model card (README.md)")
    total = sum(s for _, s in info.files)
    st.caption(f"{len(info.files)} files, {total / 1e6:.2f} MB, in `{info.path}`")
    for rel, size in info.files:
        c1, c2 = st.columns([3, 1])
        c1.markdown(f"`{rel}` — " + (f"{size / 1e6:.2f} MB" if size >= 1e6 else f"{size / 1e3:.1f} kB"))
        c2.download_button("download", _reader(info.path / rel), file_name=Path(rel).name,
                           key=f"{key}-{rel}", on_click="ignore")
    st.download_button(f"Download all of `{info.name}` (zip)", lambda: _zip(info.path),
                       file_name=f"{info.name}.zip", mime="application/zip", key=f"{key}-zip", on_click="ignore")


def run_export(run: Path, cfg, name: str, *, trial: int | None, force: bool, onnx: bool,
               measure: bool, scenario: str | None = None) -> tuple[bool, str]:
    """Export one config with the same function as `dynabert export`, in deployment variant `scenario` (a
    scenario key; None: the search's first); (succeeded, message with its output)."""
    from app.workflow.export import ExportOptions, export

    buf = io.StringIO()
    try:
        opts = ExportOptions(run_dir=run, name=name, trial=trial, config=None if trial is not None else cfg,
                             force=force, onnx=onnx, measure=measure, scenario=scenario)
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
            written = export(opts)
    except Exception as e:  # noqa: BLE001 - a button must report, never crash the page
        return False, f"Export failed ({type(e).__name__}): {e}"
    # Keep the export's own lines, drop progress-bar redraws.
    lines = [ln for ln in buf.getvalue().replace("\r", "\n").splitlines() if ln.strip() and "it/s]" not in ln]
    return True, f"Exported {len(written)} model(s).\n\n" + "\n\n".join(lines[-6:])


# ---- new export
st.subheader("Export a configuration")
if not choices:
    st.info("Nothing to export yet: needs `pareto.csv` (dynabert search) or `grid.csv` (dynabert train-stage2).")
else:
    label = st.selectbox("Configuration", list(choices), key="export_pick")
    row = choices[label]
    default = f"trial{int(row.trial)}" if "trial" in row and row.get("trial") == row.get("trial") else \
        f"w{row.width_mult:g}-d{row.depth_mult:g}"
    is_front = isinstance(row.get("scenario"), str) and bool(row.get("scenario")) and "trial" in row
    if is_front:  # a front point is exported in its own variant: what the front shows is what is written
        variant = row["scenario"]
        st.markdown(f"Deployment variant: **{V.row_variant(row)}**; metric {V.confirmation_text(row)}")
    elif variants:  # a grid point (fp32 metrics): any searched variant; the export re-scores it there
        home = V.fp32_eager_key(variants)
        variant = st.selectbox("Deployment variant", variants, key="export_variant",
                               index=variants.index(home) if home in variants else 0,
                               format_func=lambda k: f"{V.variant_label(*(V.variant_of(k) or ('', '')))} ({k})")
    else:
        variant = None
    pv = V.variant_of(variant)
    ort = pv is not None and pv[1] == "ort"
    name = st.text_input("Export name (folder under exports/)", value=default, key="export_name")
    force = st.checkbox("overwrite an existing export of that name", key="export_force")
    files = ("`model.int8.onnx` beside `model.onnx` and the fp32 weights" if pv == ("int8", "ort") else
             "`model.onnx` (run by ONNX Runtime) and the weights" if ort else "an HF-loadable model, ONNX")
    st.caption(f"`{row['config_json']}` → `{run / 'exports' / name}`. Runs `dynabert export` (same code): "
               f"loads the trained model, extracts the physical sub-network, writes {files} and a model card "
               "stating the variant's runtime, precision, latency and metrics; the written artifact is re-scored on "
               "dev and the export refused if it differs from the front's figure. Takes a while on a real run.")
    o1, o2 = st.columns(2)
    onnx = o1.checkbox("also write model.onnx", value=True, key="export_onnx", disabled=ort,
                       help="an ONNX Runtime variant always writes its ONNX file (it is the artifact)")
    measure = o2.checkbox("time it for the model card (its variant)", value=True, key="export_measure")
    if st.button("Export", type="primary", key="export_go"):
        if not re.fullmatch(r"[A-Za-z0-9._-]+", name or ""):
            st.error("Export name: use letters, digits, '.', '_' or '-' only.")
        else:
            use_trial = "trial" in row and row.get("trial") == row.get("trial") and RunDir(run).study_db.exists()
            with st.spinner("Exporting: loading the model, extracting the sub-network, writing files..."):
                ok, log = run_export(run, row["config"], name, trial=int(row.trial) if use_trial else None,
                                     force=force, onnx=onnx or ort, measure=measure, scenario=variant)
            (st.success if ok else st.error)(log)

# ---- existing exports
st.subheader("Exports of this run")
exports = A.list_exports(run)
if not exports:
    st.info(f"No exports yet under `{run / 'exports'}`.")
for i, info in enumerate(exports):
    with st.expander(f"{info.name}", expanded=len(exports) == 1):
        _show_export(info, key=f"exp{i}")
