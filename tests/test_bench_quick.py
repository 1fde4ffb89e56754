"""`python -m bench.run --quick`: every bench at small sizes (or, when it cannot shrink, an import check with
the reason), into a temporary folder; results/ untouched; every written file carries its provenance."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from bench.registry import BENCHES, ROOT

PROVENANCE = ("commit", "dirty", "command", "fingerprint", "wall_seconds", "load_before", "load_after")


# Quick runs that take minutes of their own: deploy_front's runs in tests/test_deploy_front.py; the suite's (several
# CLI trainings, about 4 min) by `make bench QUICK=1 ONLY=suite`, its statistics in tests/test_suite_stats.py.
SKIPPED_HERE = ("deploy_front", "suite")


def test_quick_bench_run(tmp_path):
    before = {p.name: p.stat().st_mtime_ns for p in (ROOT / "results").iterdir()}
    out = tmp_path / "quick"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "bench.run", "--quick", "--results-dir", str(out),
                           "--skip", ",".join(SKIPPED_HERE)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    outcomes = json.loads((out / "bench_run.json").read_text())
    assert set(outcomes) == {b.name for b in BENCHES} - set(SKIPPED_HERE)
    for b in (b for b in BENCHES if b.name not in SKIPPED_HERE):
        o = outcomes[b.name]
        if not b.exists:
            assert o.startswith("missing:"), (b.name, o)
        elif b.quick:
            assert o == "ok", (b.name, o)
            for stem in b.outputs:
                data = json.loads((out / f"{stem}.json").read_text())
                assert all(k in data for k in PROVENANCE), (stem, sorted(data))
                assert data["quick"] is True and "Provenance" in (out / f"{stem}.md").read_text()
        else:
            assert o.startswith("skipped"), (b.name, o)
    assert {p.name: p.stat().st_mtime_ns for p in (ROOT / "results").iterdir()} == before
    # The latency bench's quick run asks torch's own wait policy: OMP_WAIT_POLICY (PASSIVE in bench.run's
    # environment) was unset before torch loaded, and the file says so.
    lat = json.loads((out / "latency.json").read_text())
    assert lat["omp_wait_policy"] == "default" and lat["fingerprint"]["omp_wait_policy"] == "default"

    # The search bench times every re-measured point as a paired ratio to the full model: one full-model time
    # for all points, so the full model itself sits at ratio ~1 of it.
    srch = json.loads((out / "search.json").read_text())
    lt = srch["latency_timing"]
    assert lt["configs_timed"] >= srch["grid_points"] and lt["full_model_ms"] > 0
    assert srch["grid"][0]["latency_ms"] == pytest.approx(lt["full_model_ms"], rel=0.5)
    # The Mix'n'Match rule is a front of its own at the same budgets; the default sampler against it, for deploy_front.
    vs = srch["search_vs_rule"]
    assert vs["sampler"] == srch["default_sampler"] and {"hv_test_search", "hv_test_rule", "sd"} <= set(vs)
    assert {f"rule_{b}" for b in (6, 16)} <= set(srch["hv_test"]) and set(vs["by_budget"]) == {"6", "16"}
    # The fronts chosen on dev and confirmed on the tiny run's held-out slice, side by side and scored alike.
    conf = json.loads((out / "front_confirmation.json").read_text())
    assert conf["heldout_examples"] == 10 and conf["candidates"] >= 1 and conf["margin_pts"] > 0
    assert set(conf["fronts"]) == {f"{sel}_{b}" for sel in ("dev", "confirmed") for b in (6, 16)}
    for f in conf["fronts"].values():
        assert len(f["hv_test"]) == 2 and all(len(p) >= 1 for p in f["points"])
        assert all(d <= c <= conf["grid_points"] for d, c in zip(f["dominated"], f["covered"]))


def test_quick_refuses_results_dir():
    from bench.run import main
    assert main(["--quick", "--results-dir", str(ROOT / "results")]) == 2


def test_settle_words_reads_the_recorded_values():
    from bench.report_text import settle_words
    assert settle_words([3, None, 3]) == "3 untimed calls"
    assert settle_words([1]) == "1 untimed call"
    assert settle_words([3, 1]) == "1/3 untimed calls"
    assert settle_words([None]) == "an unrecorded number of untimed calls"
