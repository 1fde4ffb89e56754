"""The rule in the search and in its bench: `--seed-with-rule` enqueues the rule's configs first, and the search
bench scores the rule as a front of its own and writes `search_vs_rule` (the default sampler against it)."""
from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
import torch
from optuna.trial import TrialState

from search.evaluator import RunContext
from search.options import SearchOptions
from search.rule import rule_configs
from search.study import RULE_ATTR, run_search
from tests.helpers_search import SCENARIO, make_tiny_run

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    torch.set_num_threads(1)
    return make_tiny_run(tmp_path_factory.mktemp("rule"))


def test_seed_with_rule_enqueues_the_rules_configs_first(run_dir):
    opts = SearchOptions(run_dir=run_dir, scenario=SCENARIO, objectives=("metric", "macs"), n_trials=22,
                         threads=1, progress=False, seed=1, seed_with_rule=18, study_name="rule-seeded")
    study = run_search(opts)
    done = sorted(study.get_trials(states=(TrialState.COMPLETE,)), key=lambda t: t.number)
    assert len(done) == 22 and study.user_attrs[RULE_ATTR] == 18
    expected = [c.hash for c in rule_configs(RunContext(run_dir).arch, 18, seed=1)]
    assert [t.user_attrs["config_hash"] for t in done[:18]] == expected  # the grid first, then the rule's schedules
    # without the option: the grid only, as before
    plain = run_search(SearchOptions(run_dir=run_dir, scenario=SCENARIO, objectives=("metric", "macs"), n_trials=13,
                                     threads=1, progress=False, study_name="grid-seeded"))
    assert RULE_ATTR not in plain.user_attrs
    with pytest.raises(ValueError, match="seed_with_rule"):
        SearchOptions(run_dir=run_dir, scenario=SCENARIO, seed_with_rule=-1)


def test_the_cli_passes_seed_with_rule(run_dir, monkeypatch):
    import app.workflow.search as workflow
    from app.cli.main import main

    seen = {}

    class Done:
        def lines(self):
            return []

    monkeypatch.setattr(workflow, "search", lambda opts, finalize=True: seen.setdefault("opts", opts) and Done())
    assert main(["search", "--run-dir", str(run_dir), "--scenario", SCENARIO, "--seed-with-rule", "40",
                 "--no-progress"]) == 0
    assert seen["opts"].seed_with_rule == 40
    seen.clear()
    main(["search", "--run-dir", str(run_dir), "--scenario", SCENARIO, "--no-progress"])
    assert seen["opts"].seed_with_rule == 0


def test_search_bench_scores_the_rule_and_writes_search_vs_rule(run_dir, tmp_path):
    from bench.search_bench import main

    out = tmp_path / "out"
    main(["--run-dir", str(run_dir), "--scenario", SCENARIO, "--budgets", "5,14", "--seeds", "0,1",
          "--samplers", "tpe", "--eval-threads", "1", "--min-run-time", "0.01", "--n-random", "6",
          "--n-heldout", "4", "--out", str(out)])
    r = json.loads((out / "search.json").read_text())
    v = r["search_vs_rule"]
    assert v["sampler"] == "tpe" and v["budget"] == 14
    assert {"hv_test_search", "hv_test_rule", "sd"} <= set(v) and set(v["sd"]) == {"search", "rule"}
    assert v["hv_test_rule"] == pytest.approx(sum(r["hv_test"]["rule_14"]) / 2)
    assert v["hv_test_search"] == pytest.approx(sum(r["hv_test"]["tpe_14"]) / 2)
    assert v["better_on_dev"] in ("search", "rule", "tie") and set(v["by_budget"]) == {"5", "14"}
    assert len(r["hv_test"]["rule_5"]) == 2 and r["rule"]["configs"] == {"5": [5, 5], "14": [14, 14]}
    assert "rule_14" in (out / "search.md").read_text() and "rule as good" in (out / "search.md").read_text()
