"""Search benchmark on a trained run -> results/search.json + results/search.md.

Hypervolume of (dev metric, MEASURED latency) fronts, fixed reference point, for: the 12-point uniform
DynaBERT grid; NSGA-II after 100 and 300 trials; random search after 100 and 300; TPE after 300. The
search itself uses the run's latency predictor; every front point is then timed for real on the
scenario (batch 1 / seq 128 by default). Also: grid points dominated by searched configs, seconds per
trial and the share spent evaluating.

The NSGA-II study is the run's own (`<run>/study.db`, default study name) and is finalized into
`<run>/pareto.csv` and `search.json`; random and TPE go to `<run>/bench_search.db`. All three share the
run's evaluation cache, so a config evaluated by one sampler is free for the others (the timing columns
say how many evaluations each study really ran).

Usage: python -m bench.search_bench --run-dir runs/sst2_dynabert [--scenario cpu-eager-t2-b1-s128]
       [--budgets 100,300] [--eval-threads 2] [--out results]
"""
from __future__ import annotations

import os
from pathlib import Path

# Idle OpenMP threads must sleep, not spin (shared 2-core machine): set before torch loads OpenMP.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import optuna  # noqa: E402
import torch  # noqa: E402
from optuna.trial import TrialState  # noqa: E402

from bench.common import RESULTS  # noqa: E402
from elastic.config import SubnetConfig, grid  # noqa: E402
from search.evaluator import RunContext  # noqa: E402
from search.pareto import count_dominated, finalize, hypervolume, pareto_mask  # noqa: E402
from search.study import SearchOptions, build_objective, run_search  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _measure(ctx: RunContext, scenario_key: str, min_run_time_s: float):
    from profiling.latency import LatencyCache, measure
    from profiling.scenario import Scenario

    scenario = Scenario.parse(scenario_key).check(ctx.arch)
    cache = LatencyCache(ctx.run_dir / "latency_cache.jsonl")
    return lambda cfg: measure(ctx.model, cfg, scenario, cache=cache, count_fvcore=False,
                               min_run_time_s=min_run_time_s)


def _ensure_predictor(ctx: RunContext, scenario_key: str, args: argparse.Namespace) -> None:
    from search.evaluator import predictor_path

    try:
        predictor_path(ctx.run_dir, scenario_key)
        return
    except FileNotFoundError:
        pass
    from app.cli_profile import profile_run
    from profiling.scenario import Scenario

    print(f"no predictor for {scenario_key}: profiling the run first (dynabert profile)")
    profile_run(ctx.run_dir, ctx.model, [Scenario.parse(scenario_key)], n_random=args.n_random,
                n_heldout=args.n_heldout, min_run_time_s=args.min_run_time)


def _front_at(study: optuna.Study, n: int) -> list[optuna.trial.FrozenTrial]:
    """Feasible non-dominated trials among the first `n` completed trials (by number)."""
    done = sorted(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)), key=lambda t: t.number)[:n]
    if not done:
        return []
    mask = pareto_mask([list(t.values) for t in done])
    return [t for t, keep in zip(done, mask) if keep]


def _timing(study: optuna.Study) -> dict[str, float]:
    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.datetime_start and t.datetime_complete]
    wall = sum((t.datetime_complete - t.datetime_start).total_seconds() for t in done)
    ev = sum(float(t.user_attrs.get("eval_seconds", 0.0)) for t in done)
    evals = sum(1 for t in done if not t.user_attrs.get("cache_hit", False))
    return {"seconds_per_trial": wall / max(len(done), 1), "eval_share": ev / wall if wall else 0.0,
            "trials": len(done), "evaluations": evals, "cache_hits": len(done) - evals}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run-dir", type=Path, required=True)
    ap.add_argument("--scenario", default="cpu-eager-t2-b1-s128")
    ap.add_argument("--budgets", default="100,300", help="two trial budgets: small,large")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fidelity-subset", type=int, help="evaluate on N dev examples first (multi-fidelity)")
    ap.add_argument("--eval-threads", type=int, default=2, help="torch threads for dev evaluation")
    ap.add_argument("--min-run-time", type=float, default=1.0, help="seconds of timed runs per re-measured config")
    ap.add_argument("--n-random", type=int, default=50, help="(only when profiling is needed) fit configs")
    ap.add_argument("--n-heldout", type=int, default=50, help="(only when profiling is needed) held-out configs")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--name", default="search", help="results file stem")
    args = ap.parse_args()
    small, large = (int(x) for x in args.budgets.split(","))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    t_start = time.perf_counter()

    ctx = RunContext(args.run_dir)
    _ensure_predictor(ctx, args.scenario, args)
    measure = _measure(ctx, args.scenario, args.min_run_time)
    bench_db = f"sqlite:///{(args.run_dir / 'bench_search.db').resolve()}"
    common = dict(run_dir=args.run_dir, scenario=args.scenario, objectives=("metric", "latency"),
                  n_trials=large, seed=args.seed, threads=args.eval_threads, fidelity_subset=args.fidelity_subset)
    plans = {"nsga2": SearchOptions(**common, sampler="nsga2"),
             "random": SearchOptions(**common, sampler="random", storage=bench_db,
                                     study_name=f"bench-random-{args.scenario}"),
             "tpe": SearchOptions(**common, sampler="tpe", storage=bench_db, study_name=f"bench-tpe-{args.scenario}")}
    studies, timing, objective = {}, {}, None
    for name, opts in plans.items():
        objective = build_objective(opts, ctx)
        t0 = time.perf_counter()
        studies[name] = run_search(opts, objective=objective)
        timing[name] = {**_timing(studies[name]), "wall_seconds_this_run": time.perf_counter() - t0}
        print(f"{name}: {timing[name]}")

    # The grid: dev metric (cached evaluator) and measured latency.
    grid_pts, grid_rows = [], []
    for w, d, cfg in grid(ctx.arch):
        m, rec = objective.evaluator(cfg), measure(cfg)
        grid_pts.append([m, float(rec["median_ms"])])
        grid_rows.append({"width_mult": w, "depth_mult": d, "config_hash": cfg.hash, "dev_metric": m,
                          "latency_ms": float(rec["median_ms"])})
    full_ms = grid_pts[0][1]  # width 1.0, depth 1.0 = the full model
    n_labels = max(1, int((ctx.run.get("task") or {}).get("num_labels", 2)))
    # Fixed reference: chance-level metric (a sub-network below it is worthless) and 1.1 x the full model.
    reference = [100.0 / n_labels if n_labels > 1 else 0.0, 1.1 * full_ms]

    # Keys name the budgets (100/300); `budgets` records what was actually run.
    labels = {"nsga2_100": ("nsga2", small), "nsga2_300": ("nsga2", large), "random_100": ("random", small),
              "random_300": ("random", large), "tpe_300": ("tpe", large)}
    fronts: dict[str, list[list[float]]] = {}
    hv_predicted: dict[str, float] = {}
    for label, (name, budget) in labels.items():
        front = _front_at(studies[name], budget)
        fronts[label] = [[t.values[0], float(measure(SubnetConfig.from_json(t.user_attrs["config_json"]))["median_ms"])]
                         for t in front]
        hv_predicted[label] = hypervolume([list(t.values) for t in front], reference)
    hv = {"grid": hypervolume(grid_pts, reference), **{k: hypervolume(v, reference) for k, v in fronts.items()}}
    union = [p for pts in fronts.values() for p in pts]
    dominated_by = {k: count_dominated(grid_pts, v) for k, v in fronts.items()}

    # The run's own artifacts (pareto.csv, search.json) from the NSGA-II study.
    full = objective.costs(SubnetConfig.full(ctx.arch))
    has_test = "test" in ctx.task.splits
    summary = finalize(studies["nsga2"], run_dir=args.run_dir, scenario=args.scenario,
                       objectives=("metric", "latency"), full_costs=[full["latency"]], measure_fn=measure,
                       test_fn=(lambda c: objective.evaluator(c, "test")) if has_test else None, reference=reference)

    from profiling.fingerprint import fingerprint
    sc_threads = int(args.scenario.split("-t")[1].split("-")[0])
    result: dict[str, Any] = {
        "hypervolume": hv, "reference_point": reference,
        "hypervolume_with_predicted_latency": hv_predicted,
        "reference_point_meaning": "[dev metric %: chance level, latency ms: 1.1 x measured full model]",
        "grid_points_dominated": count_dominated(grid_pts, union),
        "grid_points_dominated_by": dominated_by, "seconds_per_trial": {k: v["seconds_per_trial"] for k, v in timing.items()},
        "eval_share": {k: v["eval_share"] for k, v in timing.items()}, "timing": timing,
        "ratios": {"nsga2_300_over_grid": hv["nsga2_300"] / hv["grid"] if hv["grid"] else None,
                   "nsga2_300_over_random_300": hv["nsga2_300"] / hv["random_300"] if hv["random_300"] else None,
                   "nsga2_100_over_random_100": hv["nsga2_100"] / hv["random_100"] if hv["random_100"] else None},
        "targets_met": {"nsga2_300_ge_1.02x_grid": hv["nsga2_300"] >= 1.02 * hv["grid"],
                        "nsga2_300_ge_random_300": hv["nsga2_300"] >= hv["random_300"],
                        "nsga2_100_ge_random_100": hv["nsga2_100"] >= hv["random_100"]},
        "grid": grid_rows, "fronts": fronts, "budgets": [small, large], "scenario": args.scenario,
        "run_dir": str(args.run_dir), "checkpoint": ctx.stage, "metric": ctx.run.get("metric"),
        "run_search_json": summary, "eval_threads": args.eval_threads, "fidelity_subset": args.fidelity_subset,
        "fingerprint": fingerprint(sc_threads), "load_avg_1min": os.getloadavg()[0],
        "total_seconds": time.perf_counter() - t_start, "torch_threads": torch.get_num_threads(),
        "command": f"python -m bench.search_bench --run-dir {args.run_dir} --scenario {args.scenario} "
                   f"--budgets {args.budgets} --eval-threads {args.eval_threads}"
                   + (f" --fidelity-subset {args.fidelity_subset}" if args.fidelity_subset else ""),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    (args.out / f"{args.name}.md").write_text(_markdown(result))
    print(_markdown(result))


def _markdown(r: dict[str, Any]) -> str:
    hv, ref = r["hypervolume"], r["reference_point"]
    lines = [f"# Search benchmark ({r['scenario']}, {r['metric']} on dev)", "",
             f"Run `{r['run_dir']}` (checkpoint {r['checkpoint']}). Search objectives: dev {r['metric']} (max) and "
             "predicted latency (min); every front is then re-measured and the hypervolume is computed on "
             f"(dev metric, measured latency) with the fixed reference point {ref[0]:.1f} % / {ref[1]:.2f} ms "
             f"({r['reference_point_meaning']}). Units: % x ms.", "",
             "| front | hypervolume | / grid | points |", "|---|---|---|---|"]
    for k, v in hv.items():
        n = len(r["grid"]) if k == "grid" else len(r["fronts"][k])
        lines.append(f"| {k} | {v:.1f} | {v / hv['grid']:.3f} | {n} |" if hv["grid"] else f"| {k} | {v:.1f} | - | {n} |")
    t = r["targets_met"]
    lines += ["", f"Budgets run: {r['budgets'][0]} and {r['budgets'][1]} trials (keys say 100/300).", "",
              f"Targets: NSGA-II 300 >= 1.02 x grid: **{t['nsga2_300_ge_1.02x_grid']}**; "
                  f"NSGA-II 300 >= random 300: **{t['nsga2_300_ge_random_300']}**; "
                  f"NSGA-II 100 >= random 100: **{t['nsga2_100_ge_random_100']}**.", "",
              f"Grid points dominated by searched configs (union of all fronts): {r['grid_points_dominated']} of "
              f"{len(r['grid'])}; by study: {r['grid_points_dominated_by']}.", "",
              "| study | trials | evaluations | cache hits | s / trial | share evaluating |", "|---|---|---|---|---|---|"]
    for k, v in r["timing"].items():
        lines.append(f"| {k} | {v['trials']} | {v['evaluations']} | {v['cache_hits']} | {v['seconds_per_trial']:.2f} "
                     f"| {100 * v['eval_share']:.0f} % |")
    lines += ["", f"Total {r['total_seconds']:.0f} s; load average {r['load_avg_1min']:.1f} at the end. "
                  f"Command: `{r['command']}`", "", "Fingerprint:", "", "```json",
              json.dumps(r["fingerprint"], indent=1, sort_keys=True), "```"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
