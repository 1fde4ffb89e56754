"""The search loop: evaluation cache, multi-fidelity, constraints, two workers, kill-and-resume."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest
import torch
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from elastic.model.config import SubnetConfig
from search.budget import StudyBudget
from search.eval_cache import CachedEvaluator, EvalCache
from search.evaluator import RunContext, RunDirError
from search.fidelity import could_reach_front
from search.objective import Objective, build_objective
from search.options import SearchOptions
from search.space import params_for, suggest_subnet
from search.study import open_study, run_search
from tests.helpers_search import SCENARIO, make_tiny_run

optuna.logging.set_verbosity(optuna.logging.WARNING)
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    torch.set_num_threads(1)  # the tiny model is far faster on one thread of a busy machine
    return make_tiny_run(tmp_path_factory.mktemp("search"))


def _opts(run: Path, **kw) -> SearchOptions:
    base = dict(run_dir=run, scenario=SCENARIO, objectives=("metric", "macs"), n_trials=16, threads=1,
                progress=False)
    return SearchOptions(**{**base, **kw})


def _cache_keys(run: Path) -> list[str]:
    path = run / "eval_cache.jsonl"
    return [json.loads(line)["key"] for line in path.read_text().splitlines()] if path.exists() else []


def test_cache_hit_skips_evaluation(tmp_path):
    calls = []

    def metric(cfg, split, n):
        calls.append((cfg.hash, split, n))
        return 50.0 + len(cfg.layers)

    cfg = SubnetConfig((0, 2), (2, 2), (16, 16))
    ev = CachedEvaluator(metric, cache=EvalCache(tmp_path / "c.jsonl"))
    assert ev(cfg) == 52.0 and ev(cfg) == 52.0
    assert calls == [(cfg.hash, "dev", None)]
    # a fresh evaluator (another process) on the same file: still no call
    ev2 = CachedEvaluator(metric, cache=EvalCache(tmp_path / "c.jsonl"))
    assert ev2.metric(cfg) == (52.0, True)
    assert ev2.n_evals == 0 and len(calls) == 1
    ev2(cfg, "test")  # another split is another entry
    assert len(calls) == 2 and len(EvalCache(tmp_path / "c.jsonl")) == 2
    # another namespace (another checkpoint) must not reuse the results
    ev3 = CachedEvaluator(metric, cache=EvalCache(tmp_path / "c.jsonl", namespace="stage3:"))
    assert ev3.metric(cfg) == (52.0, False)


def test_torn_cache_line_is_ignored(tmp_path):
    path = tmp_path / "c.jsonl"
    cfg = SubnetConfig((0,), (1,), (8,))
    EvalCache(path).put("a", {"metric": 1.0})
    with open(path, "a") as fh:
        fh.write('{"key": "b", "metr')  # a writer killed mid-line
    cache = EvalCache(path)
    assert cache.get("a")["metric"] == 1.0 and cache.get("b") is None
    assert cache.key(cfg, "dev", 10) == f"dev:10:{cfg.hash}"


def test_could_reach_front():
    done = [(80.0, [10.0]), (70.0, [5.0])]
    assert not could_reach_front(60.0, [6.0], 2.0, done)   # (70, 5) is cheaper and clearly better
    assert could_reach_front(69.0, [6.0], 2.0, done)       # within the subset's margin: finish it
    assert could_reach_front(60.0, [4.0], 2.0, done)       # cheapest so far


def test_options_are_checked_eagerly(tmp_path):
    with pytest.raises(ValueError, match="objectives"):
        SearchOptions(run_dir=tmp_path, objectives=("latency",))
    with pytest.raises(ValueError, match="objectives"):
        SearchOptions(run_dir=tmp_path, objectives=("metric", "flops"))
    with pytest.raises(ValueError, match="sampler"):
        SearchOptions(run_dir=tmp_path, sampler="cmaes")
    with pytest.raises(ValueError, match="scenario"):
        SearchOptions(run_dir=tmp_path, scenario="fast")
    with pytest.raises(ValueError, match="n_trials"):
        SearchOptions(run_dir=tmp_path, n_trials=0)


def test_run_dir_errors(tmp_path, run_dir):
    (tmp_path / "run.json").write_text(json.dumps({"task_spec": "x"}))
    with pytest.raises(RunDirError, match="no trained DynaBERT checkpoint"):
        RunContext(tmp_path)
    with pytest.raises(FileNotFoundError, match="dynabert profile.*--measure"):
        run_search(_opts(run_dir, objectives=("metric", "latency"), study_name="needs-predictor"))


def test_search_grid_first_cache_and_trials_csv(run_dir):
    opts = _opts(run_dir, study_name="basic", n_trials=20)
    study = run_search(opts)
    done = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(done) == 20
    from elastic.model.config import grid
    assert [t.user_attrs["config_hash"] for t in done[:12]] == [c.hash for _, _, c in grid(run_dir and
                                                                                           RunContext(run_dir).arch)]
    # one evaluation per distinct config, however often the sampler proposed it
    keys = _cache_keys(run_dir)
    assert len(keys) == len(set(keys))
    assert {t.user_attrs["config_hash"] for t in done} <= {k.rsplit(":", 1)[1] for k in keys}
    rows = (run_dir / "trials.csv").read_text().splitlines()
    assert rows[0] == ("trial,config_hash,config_json,dev_metric,latency_ms,macs,params,state,feasible,"
                       "scenario,precision,runtime")
    assert rows[1].endswith(f",{SCENARIO},fp32,eager")
    assert len(rows) == 21
    # the full model is best on dev and the grid is on or below the front
    assert max(t.values[0] for t in done) == done[0].values[0]
    assert all(isinstance(v, (str, int, float, bool)) for t in done for v in t.user_attrs.values())


def test_constraints_and_multifidelity(run_dir):
    opts = _opts(run_dir, study_name="constrained", n_trials=24, max_params=30000, fidelity_subset=10,
                 sampler="tpe")
    study = run_search(opts)
    done = study.get_trials(states=(TrialState.COMPLETE,))
    infeasible = [t for t in done if t.constraints["max_params"] > 0]
    assert infeasible and all(t.user_attrs["params"] > 30000 for t in infeasible)
    front = study.best_trials
    assert front and all(t.user_attrs["params"] <= 30000 for t in front)
    fid = Counter(t.user_attrs["fidelity"] for t in done)
    assert set(fid) <= {"full", "subset-10"}
    assert all(t.user_attrs["fidelity"] == "full" for t in front)  # subset-only configs never reach it


class _WaitForPeer(Objective):
    """Worker 0's objective in the test: after two trials it waits until the spawned worker has
    started trials too (process start-up takes seconds here), so both really run side by side."""

    def __call__(self, trial):
        if trial.number >= 2:
            deadline = time.time() + 120
            while time.time() < deadline and not any(
                    t.user_attrs.get("worker") not in (None, f"{socket.gethostname()}:{os.getpid()}")
                    for t in trial.study.get_trials(deepcopy=False)):
                time.sleep(0.2)
        return super().__call__(trial)


def test_two_workers_share_storage_without_duplicates(run_dir):
    opts = _opts(run_dir, study_name="two-workers", n_trials=30, n_workers=2, sampler="random", seed=3)
    # The same configs proposed again and again (as samplers do), possibly by both workers at once.
    repeated = [SubnetConfig((0, 1), (2, 3), (24, 40)), SubnetConfig((1, 2, 3), (4, 1, 2), (8, 64, 16))]
    study0 = open_study(opts)
    for _ in range(4):
        for cfg in repeated:
            study0.enqueue_trial(params_for(cfg, RunContext(run_dir).arch))
    base = build_objective(opts)
    objective = _WaitForPeer(opts, base.arch, base.evaluator, base.costs)
    study = run_search(opts, objective=objective)
    trials = study.get_trials()
    assert Counter(t.state for t in trials)[TrialState.COMPLETE] == 30  # exactly N, none lost
    assert len({t.number for t in trials}) == len(trials)
    # (a trial given back after a lost race for the last slot stays WAITING, never run: only COMPLETE ones ran)
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len({t.user_attrs["worker"] for t in done}) == 2  # both workers did trials
    keys = Counter(_cache_keys(run_dir))
    assert all(n == 1 for n in keys.values())  # no config was ever evaluated twice
    assert {t.user_attrs["config_hash"] for t in done} <= {k.rsplit(":", 1)[1] for k in keys}
    assert sum(t.user_attrs["config_hash"] == repeated[0].hash for t in done) >= 4


def test_kill_and_resume_keeps_completed_trials(run_dir):
    db = run_dir / "study.db"
    name = "killed"
    cmd = [sys.executable, "-m", "app.cli", "search", "--run-dir", str(run_dir), "--scenario", SCENARIO,
           "--objectives", "metric,macs", "--n-trials", "400", "--study-name", name, "--threads", "1",
           "--no-finalize", "--no-progress", "--sampler", "random", "--heartbeat-interval", "1", "--grace-period", "2"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    opts = _opts(run_dir, study_name=name, sampler="random", heartbeat_interval=1, grace_period=2)
    deadline = time.time() + 90
    try:
        while time.time() < deadline:
            time.sleep(0.3)
            if db.exists() and name in optuna.get_all_study_names(f"sqlite:///{db}"):
                if len(open_study(opts).get_trials(states=(TrialState.COMPLETE,))) >= 6:
                    break
        assert proc.poll() is None, "the search finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    study = open_study(opts)
    killed = {t.number: t.values for t in study.get_trials(states=(TrialState.COMPLETE,))}
    # The kill may land between two trials; make sure a trial of the dead process is left RUNNING and
    # beating no more, as when it dies mid-evaluation.
    orphan = study.ask()
    suggest_subnet(orphan, RunContext(run_dir).arch)
    orphan.set_user_attr("worker", f"{socket.gethostname()}:{proc.pid}")
    StudyBudget(opts.make_storage(), study, 10**6).admit(orphan)  # its heartbeat, recorded once
    target = len(killed) + 5
    time.sleep(2.5)  # longer than the grace period
    study = run_search(_opts(run_dir, study_name=name, sampler="random", n_trials=target, heartbeat_interval=1,
                             grace_period=2))
    after = study.get_trials()
    done = {t.number: t.values for t in after if t.state == TrialState.COMPLETE}
    assert all(done[n] == v for n, v in killed.items())  # every completed trial kept, unchanged
    assert len(done) == target
    assert not [t for t in after if t.state == TrialState.RUNNING]
    assert after[orphan.number].state == TrialState.FAIL  # the dead worker's trial was failed ...
    retry = [t for t in after if RetryHeartbeatStaleTrialCallback.retried_trial_number(t) == orphan.number]
    assert retry and retry[0].params == after[orphan.number].params  # ... and its config re-run


def test_study_opens_in_optuna_dashboard(run_dir):
    dashboard = pytest.importorskip("optuna_dashboard")
    import threading
    import urllib.request
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    from search.storage import make_storage

    opts = _opts(run_dir, study_name="for-dashboard", n_trials=12)
    run_search(opts)

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args):
            pass

    server = make_server("127.0.0.1", 0, dashboard.wsgi(make_storage(opts.storage_url)), handler_class=Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        summaries = json.load(urllib.request.urlopen(f"{base}/api/studies"))["study_summaries"]
        sid = next(s["study_id"] for s in summaries if s["study_name"] == "for-dashboard")
        detail = json.load(urllib.request.urlopen(f"{base}/api/studies/{sid}?after=0"))
    finally:
        server.shutdown()
    assert len(detail["trials"]) == 12 and detail["best_trials"]
    assert {a["key"] for a in detail["trials"][0]["user_attrs"]} >= {"config_json", "dev_metric", "macs"}


def test_resuming_with_other_objectives_is_refused(run_dir):
    run_search(_opts(run_dir, study_name="objs", n_trials=12))
    with pytest.raises(ValueError, match="was run with objectives"):
        open_study(_opts(run_dir, study_name="objs", objectives=("metric", "params")))


def test_resuming_with_another_sampler_is_refused(run_dir):
    run_search(_opts(run_dir, study_name="smp", n_trials=6, sampler="random"))
    with pytest.raises(ValueError, match="was run with sampler random, not nsga2.*--sampler random"):
        open_study(_opts(run_dir, study_name="smp", sampler="nsga2"))
    assert open_study(_opts(run_dir, study_name="smp", sampler="random")).user_attrs["sampler"] == "random"


def test_a_retrained_checkpoint_refuses_the_old_study(tmp_path, capsys):
    from app.cli.main import main
    from search.pareto import searched_checkpoint

    run = make_tiny_run(tmp_path)  # its own run: this test retrains (re-stamps) stage2
    opts = _opts(run, study_name="ck", n_trials=6, sampler="random")
    study = run_search(opts)
    stamp = "stage2@2026-01-01T00:00:00+00:00:"
    assert study.user_attrs["checkpoint"] == stamp
    complete = lambda st: len(st.get_trials(states=(TrialState.COMPLETE,)))  # noqa: E731
    assert complete(run_search(_opts(run, study_name="ck", n_trials=8, sampler="random"))) == 8  # same weights resume
    done = json.loads((run / "stage2" / "done.json").read_text())
    (run / "stage2" / "done.json").write_text(json.dumps({**done, "finished_at": "2026-02-02T00:00:00+00:00"}))
    with pytest.raises(ValueError, match="holds trials of checkpoint stage2@2026-01-01.*--study-name NEW"):
        run_search(_opts(run, study_name="ck", n_trials=10, sampler="random"))
    assert complete(open_study(opts)) == 8  # nothing was added to the old study
    code = main(["search", "--run-dir", str(run), "--scenario", SCENARIO, "--objectives", "metric,macs",
                 "--n-trials", "10", "--study-name", "ck", "--threads", "1", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: study 'ck'") and err.strip().count("\n") == 0
    # a new study of the current weights runs, and its search.json names the checkpoint it searched
    code = main(["search", "--run-dir", str(run), "--scenario", SCENARIO, "--objectives", "metric,macs",
                 "--n-trials", "6", "--study-name", "ck2", "--threads", "1", "--no-progress"])
    assert code == 0, capsys.readouterr().err
    assert searched_checkpoint(run) == "stage2@2026-02-02T00:00:00+00:00:"


def test_a_config_completed_on_another_machine_is_not_evaluated_again(run_dir, tmp_path):
    import shutil

    # Machine B has its own copy of the run dir (its own evaluation cache) and joins A's study.
    run_b = tmp_path / "machine-b"
    shutil.copytree(run_dir, run_b, ignore=shutil.ignore_patterns("eval_cache.jsonl*", "study*", "*.csv"))
    url = f"sqlite:///{run_dir / 'shared.db'}"
    a = run_search(_opts(run_dir, study_name="two-machines", storage=url, n_trials=12))  # the grid, on A
    grid_cfg = SubnetConfig.full(RunContext(run_dir).arch)
    assert any(t.user_attrs["config_hash"] == grid_cfg.hash for t in a.trials)
    opts_b = _opts(run_b, study_name="two-machines", storage=url, n_trials=13)
    objective = build_objective(opts_b)
    open_study(opts_b).enqueue_trial(params_for(grid_cfg, objective.arch))  # B draws a config A completed
    study = run_search(opts_b, objective=objective)
    last = study.trials[-1]
    assert last.user_attrs["config_hash"] == grid_cfg.hash and last.user_attrs["cache_hit"]
    assert objective.evaluator.n_evals == 0  # taken from the study, not evaluated on B
    assert last.values[0] == next(t.values[0] for t in a.trials if t.user_attrs["config_hash"] == grid_cfg.hash)
    keys = _cache_keys(run_b)  # B's cache now holds it too, marked as read from the study
    assert len(keys) == 1 and keys[0].endswith(grid_cfg.hash)
    assert json.loads((run_b / "eval_cache.jsonl").read_text())["source"].startswith("study trial ")
