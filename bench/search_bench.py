"""Search benchmark on a trained run -> results/search.json + results/search.md.

For each sampler (NSGA-II, TPE, random) and each seed (three by default), one study of the large budget
(300 trials); its front after the small budget (100) is the front among its first 100 trials. The search
objectives are dev accuracy (max) and predicted latency (min). Every front (one row per config: a config
proposed twice counts once) is then re-measured: latency timed for real on the scenario (each config as
a paired ratio to the full model times the full model's median in this run: `profiling.latency.measure_front`),
accuracy on dev and on TEST. The headline is the hypervolume on (test accuracy, measured latency), since dev
is what the search maximised (its fronts carry a selection bias that the fixed grid does not); the dev
hypervolume stands beside it. Mean and spread over the seeds; the 12-point uniform DynaBERT grid is
measured the same way in the same run.

The Mix'n'Match rule (`search.rule`: the grid, monotone per-layer width ramps, layer-drop patterns, enumerated
without search) is a row of its own, `rule_<budget>`: its first `budget` configs (all of the family when it is
smaller) enqueued into a study that runs only them, so that its front is chosen, re-measured and scored by the
same code as a sampler's; one study per seed (the seed shifts the rule's even subsample). `search_vs_rule`
compares the default sampler with it: test hypervolume reported, the decision made on dev.

Studies live in `<run>/bench_search.db` (resumed when rerun on the same checkpoint); all share the run's
evaluation cache, so a config evaluated by one study is free for the others. Latencies are timed afresh in
every run (never cached). The default sampler's first seed is finalized into the run's `pareto.csv` and
`search.json`, with the latencies timed here.

Usage: python -m bench.search_bench --run-dir runs/sst2_dynabert [--scenario cpu-eager-t2-b1-s128]
       [--budgets 100,300] [--seeds 0,1,2] [--eval-threads 2] [--out results]
"""
from __future__ import annotations

import os
from pathlib import Path

# Idle OpenMP threads must sleep, not spin (shared 2-core machine): set before torch loads OpenMP.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from typing import Any, Callable  # noqa: E402

import optuna  # noqa: E402
from optuna.trial import TrialState  # noqa: E402

from bench.common import RESULTS  # noqa: E402
from bench.search_metrics import (Point, Trial, beats_by_one_sd, compare_with_rule,  # noqa: E402
                                  dominated_on_test, front_shortfall_on_test, hv, searched_front, spread,
                                  standard_error_pct)
from elastic.model.config import SubnetConfig, grid  # noqa: E402
from profiling.latency import measure_front  # noqa: E402
from profiling.scenario import Scenario  # noqa: E402
from search.evaluator import RunContext  # noqa: E402
from search.pareto import finalize  # noqa: E402
from elastic.training.options import SAMPLERS  # noqa: E402
from search.options import SearchOptions  # noqa: E402
from search.objective import build_objective  # noqa: E402
from search.rule import rule_configs, rule_family  # noqa: E402
from search.study import run_search  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SAMPLER = SearchOptions.__dataclass_fields__["sampler"].default  # what `dynabert search` uses


def _ensure_predictor(ctx: RunContext, scenario_key: str, args: argparse.Namespace) -> None:
    from search.evaluator import predictor_path

    try:
        predictor_path(ctx.run_dir, scenario_key)
        return
    except FileNotFoundError:
        pass
    from app.workflow.profile import profile_model
    from profiling.scenario import Scenario

    print(f"no predictor for {scenario_key}: profiling the run first (dynabert profile)")
    profile_model(ctx.run_dir, ctx.model, [Scenario.parse(scenario_key)], n_random=args.n_random,
                  n_heldout=args.n_heldout, min_run_time_s=args.min_run_time)


def _trials(study: optuna.Study) -> list[Trial]:
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return [Trial(t.number, tuple(t.values), SubnetConfig.from_json(t.user_attrs["config_json"]).hash) for t in done]


def _timing(study: optuna.Study) -> dict[str, float]:
    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.datetime_start and t.datetime_complete]
    wall = sum((t.datetime_complete - t.datetime_start).total_seconds() for t in done)
    ev = sum(float(t.user_attrs.get("eval_seconds", 0.0)) for t in done)
    evals = sum(1 for t in done if not t.user_attrs.get("cache_hit", False))
    return {"seconds_per_trial": wall / max(len(done), 1), "eval_share": ev / wall if wall else 0.0,
            "trials": len(done), "evaluations": evals, "cache_hits": len(done) - evals}


def _args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run-dir", type=Path, required=True)
    ap.add_argument("--scenario", default="cpu-eager-t2-b1-s128")
    ap.add_argument("--budgets", default="100,300", help="two trial budgets: small,large")
    ap.add_argument("--seeds", default="0,1,2", help="sampler seeds, one study per sampler and seed")
    ap.add_argument("--samplers", default=",".join(SAMPLERS))
    ap.add_argument("--no-rule", dest="rule", action="store_false",
                    help="leave out the Mix'n'Match rule's rows (search/rule.py) and search_vs_rule")
    ap.add_argument("--fidelity-subset", type=int, help="evaluate on N dev examples first (multi-fidelity)")
    ap.add_argument("--eval-threads", type=int, default=2, help="torch threads for dev evaluation")
    ap.add_argument("--min-run-time", type=float, default=1.0, help="seconds of timed runs per re-measured config")
    ap.add_argument("--n-random", type=int, default=50, help="(only when profiling is needed) fit configs")
    ap.add_argument("--n-heldout", type=int, default=50, help="(only when profiling is needed) held-out configs")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--name", default="search", help="results file stem")
    return ap.parse_args(argv)


def main(argv=None) -> None:
    args = _args(argv)
    small, large = (int(x) for x in args.budgets.split(","))
    seeds = [int(s) for s in args.seeds.split(",")]
    samplers = args.samplers.split(",")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    t_start = time.perf_counter()

    ctx = RunContext(args.run_dir)
    if "test" not in ctx.task.splits:
        raise SystemExit(f"error: the task of {args.run_dir} has no test split: the benchmark's headline is the "
                         "hypervolume on test accuracy")
    _ensure_predictor(ctx, args.scenario, args)
    bench_db = f"sqlite:///{(args.run_dir / 'bench_search.db').resolve()}"
    studies: dict[tuple[str, int], optuna.Study] = {}
    timing: dict[str, dict[str, float]] = {}
    objective = None
    for sampler in samplers:
        for seed in seeds:
            first = sampler == DEFAULT_SAMPLER and seed == seeds[0]  # the run's own study (pareto.csv)
            opts = SearchOptions(run_dir=args.run_dir, scenario=args.scenario, objectives=("metric", "latency"),
                                 n_trials=large, seed=seed, sampler=sampler, threads=args.eval_threads,
                                 fidelity_subset=args.fidelity_subset,
                                 storage=None if first else bench_db,
                                 study_name=None if first else f"bench-{sampler}-s{seed}-{args.scenario}")
            objective = build_objective(opts, ctx)
            t0 = time.perf_counter()
            studies[sampler, seed] = run_search(opts, objective=objective)
            timing[f"{sampler}_s{seed}"] = {**_timing(studies[sampler, seed]),
                                            "wall_seconds_this_run": time.perf_counter() - t0}
            print(f"{sampler} seed {seed}: {timing[f'{sampler}_s{seed}']}", flush=True)
    rows = samplers + (["rule"] if args.rule else [])
    for seed in seeds if args.rule else ():  # the rule: its configs enqueued, the sampler never asked
        n_rule = len(rule_configs(ctx.arch, large, seed=seed))
        opts = SearchOptions(run_dir=args.run_dir, scenario=args.scenario, objectives=("metric", "latency"),
                             n_trials=n_rule, seed=seed, sampler="random", seed_with_rule=large,
                             threads=args.eval_threads, fidelity_subset=args.fidelity_subset, storage=bench_db,
                             study_name=f"bench-rule-s{seed}-{args.scenario}")
        t0 = time.perf_counter()
        studies["rule", seed] = run_search(opts, objective=build_objective(opts, ctx))
        timing[f"rule_s{seed}"] = {**_timing(studies["rule", seed]), "wall_seconds_this_run": time.perf_counter() - t0}
        print(f"rule seed {seed}: {n_rule} configs, {timing[f'rule_s{seed}']}", flush=True)

    configs = {t.user_attrs["config_json"] for st in studies.values() for t in st.get_trials(deepcopy=False)
               if "config_json" in t.user_attrs}
    by_hash = {SubnetConfig.from_json(c).hash: SubnetConfig.from_json(c) for c in configs}
    front_cfgs = {(sampler, budget, seed): [by_hash[t.config_hash]
                                            for t in searched_front(_trials(studies[sampler, seed]), budget)]
                  for sampler in rows for budget in (small, large) for seed in seeds}
    grid_cfgs = list(grid(ctx.arch))
    to_time = {c.hash: c for c in [c for _, _, c in grid_cfgs] + [c for f in front_cfgs.values() for c in f]}
    scenario = Scenario.parse(args.scenario).check(ctx.arch)
    paired = measure_front(ctx.model, to_time.values(), scenario, min_time_s=args.min_run_time)
    points: dict[str, Point] = {}

    def point(cfg: SubnetConfig) -> Point:  # dev, test (cached evaluator) and latency measured in this run
        if cfg.hash not in points:
            points[cfg.hash] = Point(cfg.hash, objective.evaluator(cfg), objective.evaluator(cfg, "test"),
                                     paired["latency_ms"][cfg.hash])
        return points[cfg.hash]

    grid_rows = [(w, d, point(cfg)) for w, d, cfg in grid_cfgs]
    grid_pts = [p for _, _, p in grid_rows]
    full_ms = grid_pts[0].latency_ms  # width 1.0, depth 1.0 = the full model
    n_labels = max(1, int((ctx.run.get("task") or {}).get("num_labels", 2)))
    # Fixed reference: chance-level accuracy (a sub-network below it is worthless) and 1.1 x the full model.
    reference = [100.0 / n_labels if n_labels > 1 else 0.0, 1.1 * full_ms]
    hv_test: dict[str, Any] = {"grid": hv(grid_pts, reference, "test")}
    hv_dev: dict[str, Any] = {"grid": hv(grid_pts, reference, "dev")}
    fronts: dict[str, list[list[dict[str, Any]]]] = {}
    dominated: dict[str, list[int]] = {}
    shortfall: dict[str, list[float | None]] = {}
    for sampler in rows:
        for budget in (small, large):
            key = f"{sampler}_{budget}"
            hv_test[key], hv_dev[key], fronts[key], dominated[key], shortfall[key] = [], [], [], [], []
            for seed in seeds:
                front = [point(c) for c in front_cfgs[sampler, budget, seed]]
                hv_test[key].append(hv(front, reference, "test"))
                hv_dev[key].append(hv(front, reference, "dev"))
                dominated[key].append(dominated_on_test(grid_pts, front))
                shortfall[key].append(front_shortfall_on_test(grid_pts, front))
                fronts[key].append([vars(p) for p in front])

    summary = None
    if DEFAULT_SAMPLER in samplers:
        full = objective.costs(SubnetConfig.full(ctx.arch))
        summary = finalize(studies[DEFAULT_SAMPLER, seeds[0]], run_dir=args.run_dir, scenario=args.scenario,
                           objectives=("metric", "latency"), full_costs=[full["latency"]],
                           time_front=lambda cfgs: paired if all(c.hash in paired["latency_ms"] for c in cfgs)
                           else measure_front(ctx.model, cfgs, scenario, min_time_s=args.min_run_time),
                           test_fn=lambda c: objective.evaluator(c, "test"), reference=reference)
    result = _result(args, hv_test, hv_dev, dominated, reference, grid_rows, fronts, timing, summary, ctx,
                     small, large, seeds, samplers, time.perf_counter() - t_start)
    if args.rule:
        result["rule"] = {"family_size": len(rule_family(ctx.arch)), "module": "search/rule.py",
                          "configs": {str(b): [len(rule_configs(ctx.arch, b, seed=s)) for s in seeds]
                                      for b in (small, large)}}
        if DEFAULT_SAMPLER in samplers:
            result["search_vs_rule"] = compare_with_rule(hv_test, hv_dev, DEFAULT_SAMPLER, (small, large))
    result["latency_timing"] = {k: v for k, v in paired.items() if k not in ("latency_ms", "ratio", "ratio_iqr")}
    n_test = len(ctx.task.splits["test"]) if "test" in ctx.task.splits else 0
    result.update(test_shortfall_pts=shortfall, test_examples=n_test,
                  test_standard_error_pts=standard_error_pct(grid_pts[0].test, n_test) if n_test else None)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    (args.out / f"{args.name}.md").write_text(_markdown(result))
    print(_markdown(result))


def _result(args, hv_test, hv_dev, dominated, reference, grid_rows, fronts, timing, summary, ctx, small, large,
            seeds, samplers, seconds) -> dict[str, Any]:
    """search.json: the issue's keys first, then the detail."""
    from profiling.fingerprint import fingerprint

    spread_of: Callable[[dict], dict] = lambda d: {k: spread(v) for k, v in d.items() if k != "grid"}  # noqa: E731
    best = max((s for s in samplers), key=lambda s: spread(hv_test[f"{s}_{large}"])["mean"])
    grid_n = len(grid_rows)
    targets: dict[str, Any] = {
        f"best_{large}_ge_1.05x_grid_test": spread(hv_test[f"{best}_{large}"])["mean"] >= 1.05 * hv_test["grid"]}
    if DEFAULT_SAMPLER in samplers and "random" in samplers and DEFAULT_SAMPLER != "random":
        for b in (small, large):
            targets[f"default_beats_random_{b}_by_1sd_test"] = beats_by_one_sd(
                hv_test[f"{DEFAULT_SAMPLER}_{b}"], hv_test[f"random_{b}"])
    if DEFAULT_SAMPLER in samplers:
        targets[f"every_grid_point_dominated_on_test_{large}"] = all(
            n == grid_n for n in dominated[f"{DEFAULT_SAMPLER}_{large}"])
    sc_threads = int(args.scenario.split("-t")[1].split("-")[0]) if "-t" in args.scenario else 1
    return {
        "hv_test": hv_test, "hv_dev": hv_dev, "default_sampler": DEFAULT_SAMPLER,
        "grid_points_dominated_on_test": dominated.get(f"{DEFAULT_SAMPLER}_{large}"),
        "reference_point": reference,
        "reference_point_meaning": "[accuracy %: chance level, latency ms: 1.1 x the measured full model]",
        "hv_test_over_seeds": spread_of(hv_test), "hv_dev_over_seeds": spread_of(hv_dev),
        "best_sampler_test": best, "targets_met": targets, "grid_points_dominated_on_test_by": dominated,
        "grid_points": grid_n, "budgets": [small, large], "seeds": seeds, "samplers": samplers,
        "grid": [{"width_mult": w, "depth_mult": d, **vars(p)} for w, d, p in grid_rows], "fronts": fronts,
        "timing": timing, "scenario": args.scenario, "run_dir": str(args.run_dir), "checkpoint": ctx.stage,
        "metric": ctx.run.get("metric"), "run_search_json": summary, "eval_threads": args.eval_threads,
        "fidelity_subset": args.fidelity_subset, "fingerprint": fingerprint(sc_threads),
        "total_seconds": seconds,
    }


def _markdown(r: dict[str, Any]) -> str:
    ht, hd, ref, g = r["hv_test"], r["hv_dev"], r["reference_point"], r["hv_test"]["grid"]
    lines = [f"# Search benchmark ({r['scenario']}, {r['metric']})", "",
             f"Run `{r['run_dir']}` (checkpoint {r['checkpoint']}). Each study searched dev {r['metric']} (max) and "
             "predicted latency (min); its front (one row per config) is then re-measured in this run: latency "
             "timed, accuracy on dev and on test. Headline: hypervolume on (TEST accuracy, measured latency), "
             f"since dev is the search's own objective; fixed reference point {ref[0]:.1f} % / {ref[1]:.2f} ms "
             f"({r['reference_point_meaning']}). Units: % x ms. Seeds: {r['seeds']}; default sampler "
             f"`{r['default_sampler']}`."
             + (f" Latency of each point: its paired ratio to the full model times the full model's median in this "
                f"run ({lt['full_model_ms']:.2f} ms, IQR {lt['full_model_ms_iqr']:.2f}, {lt['configs_timed']} "
                "configs timed)." if (lt := r.get("latency_timing")) else ""), "",
             "| front | HV test, mean ± sd (per seed) | / grid | HV dev, mean ± sd | / grid | points per seed "
             "| grid points dominated on test | worst test shortfall vs grid (pts) |",
             "|---|---|---|---|---|---|---|---|",
             f"| grid | {g:.1f} | 1.000 | {hd['grid']:.1f} | 1.000 | {r['grid_points']} | - | - |"]
    for k, vals in ht.items():
        if k == "grid":
            continue
        st, sd = r["hv_test_over_seeds"][k], r["hv_dev_over_seeds"][k]
        per = ", ".join(f"{v:.1f}" for v in vals)
        lines.append(f"| {k} | {st['mean']:.1f} ± {st['std']:.1f} ({per}) | {st['mean'] / g:.3f} | "
                     f"{sd['mean']:.1f} ± {sd['std']:.1f} | {sd['mean'] / hd['grid']:.3f} | "
                     f"{', '.join(str(len(f)) for f in r['fronts'][k])} | "
                     f"{', '.join(map(str, r['grid_points_dominated_on_test_by'][k]))} | "
                     f"{', '.join('-' if v is None else f'{v:.2f}' for v in r['test_shortfall_pts'][k])} |")
    lines += ["", "Targets (test hypervolume): " + "; ".join(f"{k}: **{v}**" for k, v in r["targets_met"].items())
              + f". Best sampler at {r['budgets'][1]} trials on test: `{r['best_sampler_test']}`."
              + (f" Worst test shortfall: for each grid point, its test accuracy minus the best test accuracy of "
                 f"the front's points at most as slow, the largest over the grid (0 = every grid point matched or "
                 f"beaten). One standard error of the full model's test accuracy on {r['test_examples']} test "
                 f"examples: {se:.2f} points; the fronts are chosen on dev, so a grid point that scores above "
                 "its dev rank on test stays unbeaten." if (se := r.get("test_standard_error_pts")) else ""), "",
              *_rule_lines(r),
              "| study | trials | evaluations | cache hits | s / trial | share evaluating |",
              "|---|---|---|---|---|---|"]
    for k, v in r["timing"].items():
        lines.append(f"| {k} | {v['trials']} | {v['evaluations']} | {v['cache_hits']} | {v['seconds_per_trial']:.2f} "
                     f"| {100 * v['eval_share']:.0f} % |")
    lines += ["", f"Total {r['total_seconds']:.0f} s.", "", "Fingerprint:", "", "```json",
              json.dumps(r["fingerprint"], indent=1, sort_keys=True), "```"]
    return "\n".join(lines) + "\n"


def _rule_lines(r: dict[str, Any]) -> list[str]:
    """The search against the Mix'n'Match rule, for search.md (nothing when the rule was left out)."""
    if "rule" not in r:
        return []
    fam, cfgs = r["rule"]["family_size"], r["rule"]["configs"]
    lines = [f"The rule (`search/rule.py`): {fam} configs in its family (uniform grid, monotone per-layer width ramps "
             "rising and falling with depth, layer-drop patterns), its first configs evaluated as a front of its own "
             "(`rule_<budget>` rows): " + ", ".join(f"{min(n)} at {b}" + (" (all of the family)" if min(n) == fam
                                                                           else "") for b, n in cfgs.items()) + "."]
    if (v := r.get("search_vs_rule")):
        lines[0] += (f" Search (`{v['sampler']}`) vs rule, decided on dev hypervolume (better = ahead by more than "
                     "the pooled sd over seeds):")
        lines += ["", "| budget | HV test search ± sd | HV test rule ± sd | HV dev search | HV dev rule "
                  "| better on dev | rule as good |", "|---|---|---|---|---|---|---|"]
        for b, x in v["by_budget"].items():
            lines.append(f"| {b} | {x['hv_test_search']:.1f} ± {x['sd']['search']:.1f} | {x['hv_test_rule']:.1f} ± "
                         f"{x['sd']['rule']:.1f} | {x['hv_dev_search']:.1f} | {x['hv_dev_rule']:.1f} | "
                         f"{x['better_on_dev']} | {x['rule_as_good']} |")
    return lines + [""]


if __name__ == "__main__":
    main()
