"""The dashboard on a front that mixes deployment variants (fp32 eager and INT8 ONNX Runtime points) and carries
each point's standard error and confirming split (AppTest, no browser).

The run is the session's real tiny run (tests/real_run.py) with its pareto.csv extended as a variant search
with confirmation writes it: every fp32 eager front point again as INT8 in ONNX Runtime (faster, one point
lower), `dev_se` on every point and a held-out confirmation on some.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from app.dashboard import artifacts as A
from app.dashboard import charts as C
from app.dashboard import front_view as V
from tests.real_run import RUN
from tests.test_app import figure, open_app, texts, trace

FP32, INT8 = "cpu-eager-t1-b1-s16", "cpu-ort-int8-t1-b1-s16"
INT8_TRACE, FP32_TRACE = C.front_trace_name("int8", "ort"), C.front_trace_name("fp32", "eager")


@pytest.fixture
def variant_runs(real_runs: Path, tmp_path: Path) -> Path:
    """A copy of the real run whose front mixes fp32 eager and INT8 ORT points, with SE and confirmation."""
    dst = tmp_path / "runs"
    shutil.copytree(real_runs, dst)
    run = dst / RUN
    fp32 = pd.read_csv(run / "pareto.csv", dtype=str, keep_default_na=False)
    assert set(fp32["scenario"]) == {FP32}
    int8 = fp32.assign(trial=[str(1000 + int(t)) for t in fp32["trial"]], scenario=INT8, precision="int8",
                       runtime="ort", knee="False",
                       dev_metric=[f"{float(v) - 1.0:.4f}" for v in fp32["dev_metric"]],
                       latency_measured_ms=[f"{0.4 * float(v):.6f}" for v in fp32["latency_measured_ms"]],
                       latency_pred_ms="")
    both = pd.concat([fp32, int8], ignore_index=True)
    best = both["dev_metric"].astype(float).idxmax()
    both["dev_se"] = "1.5"
    both["confirm_metric"], both["confirm_se"], both["confirm_split"], both["confirm_n"] = "", "", "", ""
    both.loc[best, ["confirm_metric", "confirm_se", "confirm_split", "confirm_n"]] = ["86.4", "1.2", "heldout", "500"]
    both.to_csv(run / "pareto.csv", index=False)
    search = json.loads((run / "search.json").read_text())
    (run / "search.json").write_text(json.dumps({**search, "scenario": f"{FP32},{INT8}", "variants": [FP32, INT8]}))
    return dst


def _front(runs: Path) -> pd.DataFrame:
    return pd.read_csv(runs / RUN / "pareto.csv")


def test_mixed_front_marks_precision_and_runtime(variant_runs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_app(variant_runs, monkeypatch, "pareto")
    assert at.selectbox(key="pareto_scenario").value == V.OWN  # each point in its own variant by default
    fig = figure(at)
    front = _front(variant_runs)
    n8, n32 = int((front.precision == "int8").sum()), int((front.precision == "fp32").sum())
    t8, t32 = trace(fig, INT8_TRACE), trace(fig, FP32_TRACE)
    assert len(t8["x"]) == n8 and len(t32["x"]) == n32
    assert t8["marker"]["symbol"] == "diamond" and t32["marker"]["symbol"] == "circle"  # symbol = precision
    assert t8["marker"]["color"] != t32["marker"]["color"]  # colour = runtime
    assert len(trace(fig, C.TRACE_FRONT)["x"]) == n8 + n32  # one front line through both variants
    # Each point at its own variant's latency: INT8 at 0.4 x the fp32 point's.
    assert sorted(t8["x"]) == pytest.approx(sorted(front.query("precision == 'int8'").latency_measured_ms))
    assert sorted(t32["x"]) == pytest.approx(sorted(front.query("precision == 'fp32'").latency_measured_ms))
    hover = t8["hovertext"][0]
    assert f"variant: INT8 · ONNX Runtime ({INT8})" in hover and " ± 1.50 %" in hover and " ms" in hover
    assert "(dev, not confirmed)" in hover or "(held-out, n=500)" in hover
    assert t8["error_y"]["array"] == [1.5] * n8  # the dev metric's standard error as error bars


def test_precision_filter_removes_int8_points(variant_runs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_app(variant_runs, monkeypatch, "pareto")
    assert at.multiselect(key="pareto_precision").value == ["fp32", "int8"]  # all by default
    assert at.multiselect(key="pareto_runtime").value == ["eager", "ort"]
    at.multiselect(key="pareto_precision").set_value(["fp32"]).run()
    assert not at.exception
    fig = figure(at)
    names = {t["name"] for t in fig["data"]}
    assert INT8_TRACE not in names and FP32_TRACE not in names  # one variant left: the plain front trace
    n32 = int((_front(variant_runs).precision == "fp32").sum())
    assert len(trace(fig, C.TRACE_FRONT)["x"]) == n32
    assert all("INT8" not in h for t in fig["data"] for h in (t.get("hovertext") or []))
    # Runtime filter alone: only ORT points (INT8 here); the fp32 eager grid goes too.
    at.multiselect(key="pareto_precision").set_value(["fp32", "int8"]).run()
    at.multiselect(key="pareto_runtime").set_value(["ort"]).run()
    names = {t["name"] for t in figure(at)["data"]}
    assert C.TRACE_GRID not in names and C.TRACE_TRIALS not in names
    assert all("INT8" in h for h in trace(figure(at), C.TRACE_FRONT)["hovertext"])


def test_budget_picks_the_best_point_across_variants(variant_runs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    front = _front(variant_runs)
    fastest32 = front.query("precision == 'fp32'").latency_measured_ms.min()
    budget = round(fastest32 - 0.01, 2)  # below every fp32 point: only INT8 points fit
    fits = front[front.latency_measured_ms <= budget].sort_values(["dev_metric", "latency_measured_ms"],
                                                                   ascending=[False, True])
    assert len(fits) and set(fits.precision) == {"int8"}
    at = open_app(variant_runs, monkeypatch, "pareto")
    top = front.sort_values(["dev_metric", "latency_measured_ms"], ascending=[False, True]).iloc[0]
    assert f"trial {int(top.trial)} · variant" in texts(at.success)  # no budget: the best of all variants
    at.slider(key="budget_latency").set_value(budget).run()
    win = fits.iloc[0]
    best = trace(figure(at), C.TRACE_BEST)
    assert best["x"][0] == pytest.approx(win.latency_measured_ms) and best["y"][0] == pytest.approx(win.dev_metric)
    msg = texts(at.success)
    assert f"trial {int(win.trial)} · variant **INT8 · ONNX Runtime ({INT8})**" in msg
    assert "over 2 variants shown" in msg


def test_metric_shown_with_its_standard_error_and_split(variant_runs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_app(variant_runs, monkeypatch, "pareto")
    assert "86.40 ± 1.20 % (held-out, n=500)" in texts(at.success)  # the best point is the confirmed one
    table = at.dataframe[0].value
    shown = set(table["metric (split)"])
    assert "86.40 ± 1.20 % (held-out, n=500)" in shown
    assert sum(s.endswith("(dev, not confirmed)") and " ± 1.50 %" in s for s in shown) == len(table) - 1
    assert (table["dev SE (points)"] == 1.5).all()
    # The y axis on the confirmed figures: the confirmed point at 86.4 ± 1.2, the others at dev ± 1.5; front only.
    at.radio(key="pareto_metric").set_value("confirmed").run()
    fig = figure(at)
    points = [(y, e) for t in fig["data"] if t["name"] in (INT8_TRACE, FP32_TRACE)
              for y, e in zip(t["y"], t["error_y"]["array"])]
    assert (86.4, 1.2) in points and sum(e == 1.5 for _, e in points) == len(points) - 1
    assert {t["name"] for t in fig["data"]}.isdisjoint({C.TRACE_GRID, C.TRACE_TRIALS, C.TRACE_BASELINES})
    assert "Confirmed" in fig["layout"]["yaxis"]["title"]["text"]
    at.switch_page("dashboard/pages/export.py").run()
    assert not at.exception
    assert any("(held-out, n=500)" in o for o in at.selectbox(key="export_pick").options)


def test_other_scenario_never_shows_another_variants_latency(variant_runs: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_app(variant_runs, monkeypatch, "pareto")
    at.selectbox(key="pareto_scenario").set_value(FP32).run()
    names = {t["name"] for t in figure(at)["data"]}
    assert INT8_TRACE not in names  # INT8 metrics are never drawn at an fp32 latency
    n8 = int((_front(variant_runs).precision == "int8").sum())
    assert f"{n8} front point(s) have no latency in {FP32}" in texts(at.caption)


def test_export_page_exports_a_point_in_its_variant(variant_runs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from app.workflow import export as export_mod

    calls = []

    def fake_export(opts):  # stands in for the export (needs a trained model); same options as `dynabert export`
        calls.append(opts)
        return []

    monkeypatch.setattr(export_mod, "export", fake_export)
    at = open_app(variant_runs, monkeypatch, "export")
    pick = next(o for o in at.selectbox(key="export_pick").options if "INT8 · ONNX Runtime" in o)
    at.selectbox(key="export_pick").set_value(pick).run()
    assert "INT8 · ONNX Runtime" in texts(at.markdown) and "model.int8.onnx" in texts(at.caption)
    assert at.checkbox(key="export_onnx").disabled  # an ORT variant's artifact is its ONNX file
    at.text_input(key="export_name").set_value("int8pt").run()
    at.button(key="export_go").click().run()
    assert not at.exception
    assert calls[-1].scenario == INT8 and calls[-1].onnx
    # A grid point: the variant is chosen (default fp32 eager, where the grid's metrics were measured).
    grid_label = next(o for o in at.selectbox(key="export_pick").options if o.startswith("grid"))
    at.selectbox(key="export_pick").set_value(grid_label).run()
    assert at.selectbox(key="export_variant").value == FP32
    at.selectbox(key="export_variant").set_value(INT8).run()
    at.text_input(key="export_name").set_value("grid8").run()
    at.button(key="export_go").click().run()
    assert calls[-1].scenario == INT8 and calls[-1].trial is None


def test_older_front_without_variant_or_confirmation_columns(variant_runs: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    p = variant_runs / RUN / "pareto.csv"
    old = pd.read_csv(p).query("precision == 'fp32'").drop(
        columns=["precision", "runtime", "dev_se", "confirm_metric", "confirm_se", "confirm_split", "confirm_n"])
    old.to_csv(p, index=False)
    t = variant_runs / RUN / "trials.csv"
    pd.read_csv(t).drop(columns=["scenario", "precision", "runtime"]).to_csv(t, index=False)
    s = variant_runs / RUN / "search.json"
    search = json.loads(s.read_text())
    del search["variants"]
    s.write_text(json.dumps({**search, "scenario": FP32}))
    df = A.load_csv(p)
    assert set(df.precision) == {"fp32"} and set(df.runtime) == {"eager"}  # read from the scenario key
    assert df.dev_se.isna().all() and df.confirm_metric.isna().all() and set(df.confirm_split) == {""}
    assert set(A.load_csv(t).scenario) == {""}
    at = open_app(variant_runs, monkeypatch, "pareto")
    assert not at.error
    assert "(dev, not confirmed)" in texts(at.success) and " ± " not in texts(at.success)
    assert len(trace(figure(at), C.TRACE_TRIALS)["x"]) > 0  # trials of the one variant still drawn
