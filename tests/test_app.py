"""Dashboard tests with Streamlit's AppTest on a run directory made by the real commands (no browser).

The run (tests/real_run.py, session fixture `real_runs`) is written by the same writers a user's run is, so a
column renamed by a writer breaks these tests; hand-edited copies only for the malformed-file tests.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from app.dashboard import artifacts as A
from app.dashboard import charts as C

from tests.conftest import TINY
from tests.real_run import N_TRIALS, RUN, SCENARIOS

MAIN = str(Path(__file__).resolve().parents[1] / "app" / "main.py")


@pytest.fixture
def fixture_runs(real_runs: Path) -> Path:
    return real_runs


@pytest.fixture
def copy_runs(fixture_runs: Path, tmp_path: Path) -> Path:
    """A private copy of the fixture runs dir, for tests that break a file."""
    dst = tmp_path / "runs"
    shutil.copytree(fixture_runs, dst)
    return dst


def open_app(runs_dir: Path, monkeypatch: pytest.MonkeyPatch, page: str | None = None) -> AppTest:
    monkeypatch.setenv("DYNABERT_RUNS_DIR", str(runs_dir))
    at = AppTest.from_file(MAIN, default_timeout=60)
    at.run()
    if page:
        at.switch_page(f"dashboard/pages/{page}.py")
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def figure(at: AppTest, i: int = 0) -> dict:
    return json.loads(at.get("plotly_chart")[i].proto.spec)


def trace(fig: dict, name: str) -> dict:
    found = [t for t in fig["data"] if t.get("name") == name]
    assert found, f"no trace {name!r} in {[t.get('name') for t in fig['data']]}"
    return found[0]


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


# ------------------------------------------------------------------------------------------ pages
def test_runs_page_lists_the_run(fixture_runs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_app(fixture_runs, monkeypatch)
    assert at.title[0].value == "Runs"
    table = at.dataframe[0].value
    assert list(table["run"]) == [RUN]
    meta = json.loads((fixture_runs / RUN / "run.json").read_text())
    assert table["task"][0] == meta["task"]["name"] and table["missing artifacts"][0] == "none"
    assert table["stage2 (min)"][0] == pytest.approx(round(meta["stage_seconds"]["stage2"] / 60, 1))
    assert at.sidebar.selectbox[0].value == RUN
    stages = at.dataframe[1].value
    assert list(stages["stage"]) == ["teacher", "rewired", "stage1", "stage2"] and stages["complete"].sum() == 3
    curves = figure(at)
    assert {t["name"] for t in curves["data"]} >= {"stage1 loss", "stage2 loss", "stage2 dev (%)"}
    assert f"search-{SCENARIOS[0]}" in texts(at.caption)  # the Optuna study, read from study.db


def test_pareto_chart_has_expected_traces(fixture_runs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_app(fixture_runs, monkeypatch, "pareto")
    fig = figure(at)
    names = {t["name"] for t in fig["data"]}
    assert names == {C.TRACE_TRIALS, C.TRACE_FRONT, C.TRACE_GRID, C.TRACE_BASELINES, C.TRACE_KNEE, C.TRACE_BEST}
    grid = trace(fig, C.TRACE_GRID)
    assert len(grid["x"]) == 12 and "w0.5·d0.75" in grid["text"]
    front = pd.read_csv(fixture_runs / RUN / "pareto.csv")
    assert len(trace(fig, C.TRACE_FRONT)["x"]) == len(front)
    hover = trace(fig, C.TRACE_FRONT)["hovertext"][0]
    for piece in ("heads/layer", "FFN/layer", " ms", " %", "G", " M"):
        assert piece in hover
    assert "Latency (ms" in fig["layout"]["xaxis"]["title"]["text"]
    # The knee is the pareto.csv/search.json knee.
    knee = front[front.knee].iloc[0]
    assert knee.config_hash in trace(fig, C.TRACE_KNEE)["hovertext"][0]


def test_published_points_only_on_macs_and_params(fixture_runs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_app(fixture_runs, monkeypatch, "pareto")
    at.toggle(key="pareto_published").set_value(True).run()
    assert C.TRACE_PUBLISHED not in {t["name"] for t in figure(at)["data"]}
    assert "MACs and params axes only" in texts(at.caption)
    at.radio(key="pareto_x").set_value("macs").run()
    pub = trace(figure(at), C.TRACE_PUBLISHED)
    assert len(pub["x"]) > 5 and all("not measured here" in h for h in pub["hovertext"])
    assert figure(at)["layout"]["xaxis"]["type"] == "log"
    at.radio(key="pareto_metric").set_value("test").run()
    assert all("test" in h for h in trace(figure(at), C.TRACE_PUBLISHED)["hovertext"])
    assert C.TRACE_TRIALS not in {t["name"] for t in figure(at)["data"]}  # trials carry dev scores only


def test_budget_changes_highlighted_config(fixture_runs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_app(fixture_runs, monkeypatch, "pareto")
    best0 = trace(figure(at), C.TRACE_BEST)
    lat0 = best0["x"][0]
    budget = round(lat0 - 0.01, 2)  # just below the best point: the next faster front point is best now
    at.slider(key="budget_latency").set_value(budget).run()
    best1 = trace(figure(at), C.TRACE_BEST)
    assert best1["hovertext"][0] != best0["hovertext"][0]
    assert best1["x"][0] <= budget and best1["y"][0] <= best0["y"][0]
    assert "Best within budget" in texts(at.success)
    # A metric floor above every point leaves nothing: a warning, no star.
    at.slider(key="budget_metric").set_value(at.slider(key="budget_metric").max).run()
    at.slider(key="budget_latency").set_value(at.slider(key="budget_latency").min).run()
    assert "No configuration fits the budget" in texts(at.warning)
    assert C.TRACE_BEST not in {t["name"] for t in figure(at)["data"]}


def test_params_axis_and_other_scenario(fixture_runs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_app(fixture_runs, monkeypatch, "pareto")
    at.selectbox(key="pareto_scenario").set_value(SCENARIOS[1]).run()
    grid = trace(figure(at), C.TRACE_GRID)
    lat = pd.read_csv(fixture_runs / RUN / "latency.csv")
    other = lat[lat.scenario == SCENARIOS[1]]
    assert max(grid["x"]) == pytest.approx(other.median_ms.max())  # the full model, the slowest
    assert max(grid["x"]) < lat[lat.scenario == SCENARIOS[0]].median_ms.max()  # two threads: faster
    at.radio(key="pareto_x").set_value("params").run()
    fig = figure(at)
    assert fig["layout"]["xaxis"]["title"]["text"] == "Parameters (millions)"
    params = pd.read_csv(fixture_runs / RUN / "grid.csv").params.max()
    assert max(trace(fig, C.TRACE_GRID)["x"]) == pytest.approx(params / 1e6)


def test_architecture_page(fixture_runs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_app(fixture_runs, monkeypatch, "architecture")
    arch = figure(at, 0)
    assert len(arch["data"]) == 3  # A, B and their difference
    assert arch["data"][2]["colorscale"] and arch["data"][2]["zmid"] == 0
    heads = figure(at, 1)["data"][0]
    assert len(heads["z"]) == TINY.num_layers and len(heads["z"][0]) == TINY.num_heads
    ffn = figure(at, 2)
    assert sum(1 for t in ffn["data"] if t["mode"] == "lines") == TINY.num_layers
    at.selectbox(key="arch_b").set_value("(none)").run()
    assert len(figure(at, 0)["data"]) == 1


def test_search_progress_page(fixture_runs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_app(fixture_runs, monkeypatch, "search_progress")
    hv = figure(at, 0)["data"][0]
    history = json.loads((fixture_runs / RUN / "search.json").read_text())["hypervolume_history"]
    assert hv["x"] == [n for n, _ in history] and hv["x"][-1] == N_TRIALS and hv["y"][-1] >= hv["y"][0] > 0
    metrics = {m.label: m.value for m in at.metric}
    pred = json.loads((fixture_runs / RUN / "predictor.json").read_text())
    assert metrics["MAPE (held-out)"] == f"{pred['mape_pct']:.2f} %"
    assert float(metrics["Spearman ρ (MACs, latency)"]) > 0.5
    assert {t["name"] for t in figure(at, 1)["data"]} == {"y = x", "held-out configs"}
    assert at.get("download_button")
    n_all = len(at.dataframe[0].value)
    at.multiselect(key="trials_state").set_value(["FAIL"]).run()
    assert len(at.dataframe[0].value) == 1 < n_all


def test_hypervolume_recomputed_without_history(copy_runs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = copy_runs / RUN / "search.json"
    data = json.loads(p.read_text())
    del data["hypervolume_history"]
    p.write_text(json.dumps(data))
    at = open_app(copy_runs, monkeypatch, "search_progress")
    hv = figure(at, 0)["data"][0]["y"]
    assert hv[-1] > 0 and all(b >= a for a, b in zip(hv, hv[1:]))  # hypervolume never decreases
    assert "recomputed from trials.csv" in texts(at.caption)


def test_front_of_retrained_weights_is_flagged(copy_runs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = copy_runs / RUN / "search.json"
    data = json.loads(p.read_text())
    finished = json.loads((copy_runs / RUN / "stage2" / "done.json").read_text())["finished_at"]
    p.write_text(json.dumps({**data, "checkpoint": f"stage2@{finished}:"}))  # this stage2
    at = open_app(copy_runs, monkeypatch, "pareto")
    assert "earlier training" not in texts(at.warning)
    p.write_text(json.dumps({**data, "checkpoint": "stage2@2026-11-20T10:00:00+00:00:"}))  # a stage2 since retrained
    at = open_app(copy_runs, monkeypatch, "pareto")
    warning = texts(at.warning)
    assert "earlier training of `stage2`" in warning and "--study-name NEW" in warning


def test_export_page_calls_the_export_function(copy_runs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from app.workflow import export as export_mod

    calls = []

    def fake_export(opts):  # stands in for the export (needs a trained model); same options as `dynabert export`
        calls.append(opts)
        d = opts.run_dir / "exports" / opts.name
        d.mkdir(parents=True)
        (d / "README.md").write_text(f"# {opts.name}\n\nfake card for trial {opts.trial}\n")
        print(f"exported -> {d}")
        return [export_mod.Exported(path=d, config=opts.config)]

    monkeypatch.setattr(export_mod, "export", fake_export)
    at = open_app(copy_runs, monkeypatch, "export")
    knee = pd.read_csv(copy_runs / RUN / "pareto.csv").query("knee").config_hash.iloc[0]
    assert f"Config hash `{knee}`" in texts(at.markdown)  # the card `dynabert export --knee` wrote
    assert at.get("download_button")
    at.text_input(key="export_name").set_value("mine").run()
    at.checkbox(key="export_onnx").set_value(False).run()
    at.button(key="export_go").click().run()
    assert not at.exception
    assert len(calls) == 1 and calls[0].name == "mine" and not calls[0].onnx and calls[0].trial is not None
    assert "Exported" in texts(at.success)
    assert "fake card for trial" in texts(at.markdown)
    # A grid point has no trial: its config goes to the export as it is.
    grid_label = next(o for o in at.selectbox(key="export_pick").options if o.startswith("grid"))
    at.selectbox(key="export_pick").set_value(grid_label).run()
    at.text_input(key="export_name").set_value("grid1").run()
    at.button(key="export_go").click().run()
    assert calls[-1].trial is None and calls[-1].config is not None and calls[-1].config.layers


def test_export_failure_is_a_message(copy_runs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from app.workflow import export as export_mod

    def broken(opts):
        raise FileNotFoundError("no checkpoint in stage2/")

    monkeypatch.setattr(export_mod, "export", broken)
    at = open_app(copy_runs, monkeypatch, "export")
    at.button(key="export_go").click().run()
    assert not at.exception
    assert "Export failed (FileNotFoundError): no checkpoint in stage2/" in texts(at.error)


# ------------------------------------------------------------------------------ broken and empty
def test_no_runs_page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for page in (None, "pareto", "architecture", "search_progress", "export"):
        at = open_app(tmp_path, monkeypatch, page)
        assert "No runs found" in texts(at.info), page


def test_pareto_missing_column_is_a_message(copy_runs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = copy_runs / RUN / "pareto.csv"
    pd.read_csv(p).drop(columns=["knee"]).to_csv(p, index=False)
    at = open_app(copy_runs, monkeypatch, "pareto")
    msg = texts(at.error)
    assert "pareto.csv" in msg and "missing column(s) knee" in msg
    assert C.TRACE_GRID in {t["name"] for t in figure(at)["data"]}  # the rest still renders


def test_invalid_run_json_is_a_message(copy_runs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (copy_runs / RUN / "run.json").write_text('{"task": "sst2", ')
    at = open_app(copy_runs, monkeypatch)
    assert "run.json: not valid JSON" in texts(at.warning)
    assert "not valid JSON" in at.dataframe[0].value["problem"][0]
    at.switch_page("dashboard/pages/pareto.py").run()
    assert not at.exception and at.get("plotly_chart")


def test_missing_artifacts_are_named(copy_runs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (copy_runs / RUN / "predictor.json").unlink()
    (copy_runs / RUN / "importance.json").write_text(json.dumps({"head": [[1.0, 2.0]], "ffn": [[1.0], [2.0]]}))
    at = open_app(copy_runs, monkeypatch, "search_progress")
    assert "predictor.json is missing" in texts(at.info) and "dynabert profile" in texts(at.info)
    at.switch_page("dashboard/pages/architecture.py").run()
    assert not at.exception
    assert "importance.json: head has 1 layers but ffn has 2" in texts(at.error)


# ----------------------------------------------------------------------------------------- loaders
def test_loaders_name_file_and_problem(copy_runs: Path) -> None:
    run = copy_runs / RUN
    grid = pd.read_csv(run / "grid.csv", dtype=str)
    grid.loc[3, "macs"] = "lots"
    grid.to_csv(run / "grid.csv", index=False)
    with pytest.raises(A.ArtifactError, match=r"grid.csv: column macs, row 4: 'lots' is not a number"):
        A.load_csv(run / "grid.csv")
    trials = pd.read_csv(run / "trials.csv")
    trials.loc[0, "config_hash"] = "000000000000"
    trials.to_csv(run / "trials.csv", index=False)
    with pytest.raises(A.ArtifactError, match="trials.csv: row 1: config_hash 000000000000 does not match"):
        A.load_csv(run / "trials.csv")
    with pytest.raises(A.MissingArtifactError, match="written by `dynabert baselines`"):
        A.load_csv(run / "nope" / "baselines.csv")
    (run / "search.json").write_text(json.dumps({"scenario": "x", "objectives": [], "n_trials": "3"}))
    with pytest.raises(A.ArtifactError, match="search.json: key n_trials must be int"):
        A.load_search(run / "search.json")
    pub = A.load_published_reference()
    assert set(pub["split"]) == {"dev", "test"} and pub["score"].between(80, 100).all()
    assert pub["note"].str.contains("not measured here").all()
