"""docs/ARTIFACTS.md is exactly what `elastic.rundir.ARTIFACTS` renders to, and that list is the contract."""
from __future__ import annotations

from pathlib import Path

from elastic.rundir.doc import render
from elastic import rundir

DOC = Path(__file__).resolve().parents[1] / "docs" / "ARTIFACTS.md"


def test_artifacts_reference_in_sync():
    assert DOC.read_text() == render(), "docs/ARTIFACTS.md is stale: run `python -m elastic.rundir.doc > docs/ARTIFACTS.md`"


def test_every_csv_row_shows_its_schema_columns():
    doc = DOC.read_text()
    for name, schema in rundir.CSV_SCHEMAS.items():
        assert f"| `{name}` |" in doc and f"`{', '.join(schema.columns)}`" in doc, name
    assert set(rundir.CSV_SCHEMAS) == {rundir.GRID_CSV, rundir.LATENCY_CSV, rundir.TRIALS_CSV, rundir.PARETO_CSV,
                                       rundir.BASELINES_CSV}


def test_one_command_per_artifact():
    """A CSV's "missing" message (its schema) and the dashboard's missing list name the same command."""
    for a in rundir.ARTIFACTS:
        assert a.command.startswith("dynabert "), a.path
        if a.schema is not None:
            assert a.schema.written_by == a.command == rundir.REQUIRED[a.path]
    assert list(rundir.REQUIRED) == [rundir.RUN_JSON, rundir.IMPORTANCE_JSON, rundir.GRID_CSV, rundir.LATENCY_CSV,
                                     rundir.PREDICTOR_JSON, rundir.STUDY_DB, rundir.TRIALS_CSV, rundir.PARETO_CSV,
                                     rundir.SEARCH_JSON, rundir.BASELINES_CSV]
    assert len({a.path for a in rundir.ARTIFACTS}) == len(rundir.ARTIFACTS)
