"""Export: turn a front/grid point into a standalone model (elastic.export), show cards, offer downloads."""
from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import streamlit as st

from app import artifacts as A
from app.app_pages.common import config_choices, current_run, load, stage2_grid

st.title("Export")
run = current_run()
front = load(run, "pareto.csv", quiet_missing=True)
grid = stage2_grid(load(run, "grid.csv", quiet_missing=True))
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
        st.markdown(info.card)
    else:
        st.warning(f"`{info.name}` has no model_card.md")
    total = sum(s for _, s in info.files)
    st.caption(f"{len(info.files)} files, {total / 1e6:.2f} MB, in `{info.path}`")
    for rel, size in info.files:
        c1, c2 = st.columns([3, 1])
        c1.markdown(f"`{rel}` — {size / 1e6:.3f} MB")
        c2.download_button("download", _reader(info.path / rel), file_name=Path(rel).name,
                           key=f"{key}-{rel}", on_click="ignore")
    st.download_button(f"Download all of `{info.name}` (zip)", lambda: _zip(info.path),
                       file_name=f"{info.name}.zip", mime="application/zip", key=f"{key}-zip", on_click="ignore")


# ---- new export
st.subheader("Export a configuration")
if not choices:
    st.info("Nothing to export yet: needs `pareto.csv` (dynabert search) or `grid.csv` (dynabert train).")
else:
    label = st.selectbox("Configuration", list(choices), key="export_pick")
    row = choices[label]
    default = f"trial{int(row.trial)}" if "trial" in row and row.get("trial") == row.get("trial") else \
        f"w{row.width_mult:g}-d{row.depth_mult:g}"
    name = st.text_input("Export name (folder under exports/)", value=default, key="export_name")
    force = st.checkbox("overwrite an existing export of that name", key="export_force")
    st.caption(f"`{row['config_json']}` → `{run / 'exports' / name}`. Same code as `dynabert export`: "
               "extracts the physical sub-network, writes an HF-loadable model, ONNX and a model card.")
    if st.button("Export", type="primary", key="export_go"):
        if not re.fullmatch(r"[A-Za-z0-9._-]+", name or ""):
            st.error("Export name: use letters, digits, '.', '_' or '-' only.")
        else:
            try:
                from elastic.export import export_subnet
            except ImportError as e:
                st.warning(f"Export is not available in this installation (elastic.export: {e}). "
                           "Use `dynabert export` once it is installed.")
            else:
                try:
                    with st.spinner("Exporting (extracting weights, writing ONNX)..."):
                        out = export_subnet(run, row["config"], run / "exports", name=name, force=force)
                    st.success(f"Exported to `{out}`")
                except (ValueError, FileNotFoundError, FileExistsError, TypeError) as e:
                    st.error(f"Export failed: {e}")

# ---- existing exports
st.subheader("Exports of this run")
exports = A.list_exports(run)
if not exports:
    st.info(f"No exports yet under `{run / 'exports'}`.")
for i, info in enumerate(exports):
    with st.expander(f"{info.name}", expanded=len(exports) == 1):
        _show_export(info, key=f"exp{i}")
