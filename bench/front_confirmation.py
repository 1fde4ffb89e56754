"""Front confirmation benchmark on a trained run -> results/front_confirmation.json + .md.

A front chosen on dev carries a winner's curse: among many configs of nearly equal accuracy, the ones that
topped dev partly by luck make the front and score lower on test (results/search.md: the TPE fronts leave
grid points undominated on test that they beat on dev). This bench asks whether a second opinion helps: for
the default sampler and each seed, the same studies as the search benchmark (same options, same storage, so
either bench reuses the other's trials), after the small and the large budget, each front is chosen two ways

- on dev: the non-dominated trials on the values searched (what `dynabert search` does);
- confirmed: the configs whose searched dev metric lies within `--margin` points (default: one standard error
  of the full model's dev accuracy) of the best at most as slow are re-scored on the run's held-out slice of
  train (never trained on; stage selection and rewiring used it, the search never did), and the front is taken
  on the metric pooled over dev and held-out, with the searched (predicted) latency;

and both are re-measured in the same run like the search benchmark's fronts: latency as a paired ratio to the
full model (`profiling.latency.measure_front`), accuracy on dev and test. Reported per front and seed: the
hypervolume on test, the grid points strictly dominated and covered (weakly dominated: the set coverage of
Zitzler & Thiele, 1999, under which a grid config on the front counts) on test, the worst test shortfall.

Usage: python -m bench.front_confirmation --run-dir runs/sst2_dynabert [--margin PTS] [--sampler tpe]
       [any option of bench.search_bench: --scenario, --budgets 100,300, --seeds 0,1,2, --out results, ...]
"""
from __future__ import annotations

import os

# Idle OpenMP threads must sleep, not spin (shared 2-core machine): set before torch loads OpenMP.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from typing import Any, Callable, Sequence  # noqa: E402

from bench.search_bench import DEFAULT_SAMPLER, _ensure_predictor, _timing, _trials  # noqa: E402
from bench.search_bench import _args as search_bench_args  # noqa: E402
from bench.search_metrics import (Point, Trial, dedup, dominated_on_test, front_shortfall_on_test, hv,  # noqa: E402
                                  searched_front, spread, standard_error_pct)
from elastic.model.config import SubnetConfig, grid  # noqa: E402
from search.confirm import near_front_mask  # noqa: E402
from search.evaluator import HELDOUT, RunContext  # noqa: E402,F401  (HELDOUT re-exported)
from search.pareto import pareto_mask  # noqa: E402

SELECTIONS = ("dev", "confirmed")


# ---- pure functions (tests/test_front_confirmation.py) ---------------------------------------------------
def near_front(trials: Sequence[Trial], budget: int, margin: float) -> list[Trial]:
    """The candidates a confirmation re-scores: of the first `budget` completed trials (by number, one per
    config), those whose searched metric is within `margin` points of the best metric among the trials at most
    as costly on every cost (0 = the searched front itself, ties included)."""
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    done = dedup(sorted(trials, key=lambda t: t.number)[:budget], key=lambda t: t.config_hash)
    keep = near_front_mask([list(t.values) for t in done], margin)  # the product's rule (search.confirm)
    return [t for t, k in zip(done, keep) if k]


def confirmed_front(trials: Sequence[Trial], budget: int, margin: float,
                    score: Callable[[str], float]) -> list[Trial]:
    """The front chosen on a second opinion: the `near_front` candidates, non-dominated on (`score(config_hash)`,
    searched costs). With `score` = the metric pooled over dev and a held-out set the search never saw, a config
    that topped dev by luck must also do well on the held-out examples to stay on the front."""
    cands = near_front(trials, budget, margin)
    if not cands:
        return []
    mask = pareto_mask([[score(t.config_hash), *t.values[1:]] for t in cands])
    return [t for t, keep in zip(cands, mask) if keep]


def pooled(metric_a: float, n_a: int, metric_b: float, n_b: int) -> float:
    """The metric of two evaluation sets taken together, as the example-weighted mean (exact for accuracy)."""
    if n_a < 0 or n_b < 0 or n_a + n_b == 0:
        raise ValueError(f"example counts must be >= 0 and not both 0, got {n_a}, {n_b}")
    return (metric_a * n_a + metric_b * n_b) / (n_a + n_b)


def covered_on_test(grid_pts: Sequence[Point], front: Sequence[Point]) -> int:
    """How many grid points a front point weakly dominates on (test accuracy, measured latency): at least as
    accurate and at most as slow. Unlike `dominated_on_test`, a grid config that the search itself put on its
    front counts (a front that holds it cannot strictly dominate it)."""
    return sum(any(f.test >= g.test and f.latency_ms <= g.latency_ms for f in front) for g in grid_pts)


# ---- the run's held-out slice: the product's (search.evaluator: split "heldout" of every RunContext) -----------
HeldoutRunContext = RunContext  # the name this bench used before the split moved into the product


# ---- the benchmark -----------------------------------------------------------------------------------------
def _args(argv=None) -> argparse.Namespace:
    """This bench's own options; the rest (run dir, scenario, budgets, seeds, threads, timing, out) are the search
    bench's (`python -m bench.search_bench --help`)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sampler", default=DEFAULT_SAMPLER)
    ap.add_argument("--margin", type=float, help="dev points within which a config is re-scored on held-out "
                                                 "(default: one standard error of the full model's dev accuracy)")
    own, rest = ap.parse_known_args(argv)
    args = search_bench_args(rest)
    args.sampler, args.margin = own.sampler, own.margin
    return args


def main(argv=None) -> None:
    import optuna

    from profiling.latency import measure_front
    from profiling.scenario import Scenario
    from search.objective import build_objective
    from search.options import SearchOptions
    from search.study import run_search

    args = _args(argv)
    budgets = [int(x) for x in args.budgets.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    t_start = time.perf_counter()
    ctx = HeldoutRunContext(args.run_dir)
    if "test" not in ctx.task.splits:
        raise SystemExit(f"error: the task of {args.run_dir} has no test split: the fronts are compared on test")
    n_held = ctx.heldout_examples
    if n_held <= 0:
        raise SystemExit(f"error: {args.run_dir} has no held-out slice of train (trained with --importance-split "
                         "dev): nothing to confirm on")
    _ensure_predictor(ctx, args.scenario, args)

    bench_db = f"sqlite:///{(args.run_dir / 'bench_search.db').resolve()}"
    trials: dict[int, list[Trial]] = {}
    timing: dict[str, dict[str, float]] = {}
    configs: set[str] = set()
    objective = None
    for seed in seeds:  # the search bench's studies: the run's own for the default sampler's first seed
        first = args.sampler == DEFAULT_SAMPLER and seed == seeds[0]
        opts = SearchOptions(run_dir=args.run_dir, scenario=args.scenario, objectives=("metric", "latency"),
                             n_trials=max(budgets), seed=seed, sampler=args.sampler, threads=args.eval_threads,
                             fidelity_subset=args.fidelity_subset, storage=None if first else bench_db,
                             study_name=None if first else f"bench-{args.sampler}-s{seed}-{args.scenario}")
        objective = build_objective(opts, ctx)
        study = run_search(opts, objective=objective)
        trials[seed], timing[f"{args.sampler}_s{seed}"] = _trials(study), _timing(study)
        configs |= {t.user_attrs["config_json"] for t in study.get_trials(deepcopy=False)
                    if "config_json" in t.user_attrs}
        print(f"{args.sampler} seed {seed}: {timing[f'{args.sampler}_s{seed}']}", flush=True)
    by_hash = {SubnetConfig.from_json(c).hash: SubnetConfig.from_json(c) for c in configs}

    n_dev = len(ctx.task.splits["dev"])
    dev = objective.evaluator
    margin = args.margin if args.margin is not None else standard_error_pct(dev(SubnetConfig.full(ctx.arch)), n_dev)
    t0 = time.perf_counter()
    cands = sorted({t.config_hash for s in seeds for b in budgets for t in near_front(trials[s], b, margin)})
    print(f"{len(cands)} configs within {margin:.2f} dev points of a front: scoring them on {n_held} held-out "
          "examples", flush=True)
    score = {h: pooled(dev(by_hash[h]), n_dev, dev(by_hash[h], HELDOUT), n_held) for h in cands}
    scoring_s = time.perf_counter() - t0
    chosen = {("dev", b, s): searched_front(trials[s], b) for b in budgets for s in seeds}
    chosen.update({("confirmed", b, s): confirmed_front(trials[s], b, margin, score.__getitem__)
                   for b in budgets for s in seeds})

    grid_cfgs = list(grid(ctx.arch))
    to_time = {c.hash: c for c in [c for _, _, c in grid_cfgs]
               + [by_hash[t.config_hash] for f in chosen.values() for t in f]}
    scenario = Scenario.parse(args.scenario).check(ctx.arch)
    paired = measure_front(ctx.model, to_time.values(), scenario, min_time_s=args.min_run_time)

    def point(cfg: SubnetConfig) -> Point:
        return Point(cfg.hash, dev(cfg), dev(cfg, "test"), paired["latency_ms"][cfg.hash])

    grid_pts = [point(c) for _, _, c in grid_cfgs]
    n_labels = max(1, int((ctx.run.get("task") or {}).get("num_labels", 2)))
    reference = [100.0 / n_labels if n_labels > 1 else 0.0, 1.1 * grid_pts[0].latency_ms]
    fronts: dict[str, Any] = {}
    for (sel, b, s), front_trials in chosen.items():
        pts = [point(by_hash[t.config_hash]) for t in front_trials]
        row = fronts.setdefault(f"{sel}_{b}", {"hv_test": [], "hv_dev": [], "dominated": [], "covered": [],
                                               "shortfall_pts": [], "points": []})
        for k, v in (("hv_test", hv(pts, reference, "test")), ("hv_dev", hv(pts, reference, "dev")),
                     ("dominated", dominated_on_test(grid_pts, pts)), ("covered", covered_on_test(grid_pts, pts)),
                     ("shortfall_pts", front_shortfall_on_test(grid_pts, pts)), ("points", [vars(p) for p in pts])):
            row[k].append(v)
    for row in fronts.values():
        row["hv_test_over_seeds"] = spread(row["hv_test"])
    n_test = len(ctx.task.splits["test"])
    result = {
        "hv_test_grid": hv(grid_pts, reference, "test"), "hv_dev_grid": hv(grid_pts, reference, "dev"),
        "fronts": fronts, "sampler": args.sampler, "budgets": budgets, "seeds": seeds, "margin_pts": margin,
        "margin_is_default": args.margin is None, "dev_examples": n_dev, "heldout_examples": n_held,
        "test_examples": n_test, "test_standard_error_pts": standard_error_pct(grid_pts[0].test, n_test),
        "candidates": len(cands), "scoring_seconds": scoring_s, "grid_points": len(grid_pts),
        "grid": [{"width_mult": w, "depth_mult": d, **vars(p)} for (w, d, _), p in zip(grid_cfgs, grid_pts)],
        "reference_point": reference, "latency_timing": {k: v for k, v in paired.items()
                                                         if k not in ("latency_ms", "ratio", "ratio_iqr")},
        "timing": timing, "scenario": args.scenario, "run_dir": str(args.run_dir), "checkpoint": ctx.stage,
        "fidelity_subset": args.fidelity_subset, "total_seconds": time.perf_counter() - t_start,
    }
    from profiling.fingerprint import fingerprint

    result["fingerprint"] = fingerprint(int(args.scenario.split("-t")[1].split("-")[0]) if "-t" in args.scenario
                                        else 1)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "front_confirmation.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    (args.out / "front_confirmation.md").write_text(_markdown(result))
    print(_markdown(result))


def _markdown(r: dict[str, Any]) -> str:
    g, gd = r["hv_test_grid"], r["hv_dev_grid"]
    lt = r["latency_timing"]
    lines = [f"# Front confirmation ({r['sampler']}, {r['scenario']})", "",
             f"Run `{r['run_dir']}` (checkpoint {r['checkpoint']}); the search benchmark's `{r['sampler']}` studies, "
             f"seeds {r['seeds']}. Each front chosen on dev (what `dynabert search` does) and confirmed: the "
             f"{r['candidates']} configs within {r['margin_pts']:.2f} dev points of a front"
             + (" (one standard error of the full model's dev accuracy)" if r["margin_is_default"] else "")
             + f" re-scored on the run's {r['heldout_examples']} held-out train examples (not trained on; the search "
             f"never saw them), the front taken on the accuracy pooled over dev ({r['dev_examples']}) and held-out "
             f"({r['scoring_seconds']:.0f} s of scoring). Every point re-measured in this run: latency a paired ratio "
             f"to the full model times its median ({lt['full_model_ms']:.2f} ms, {lt['configs_timed']} configs "
             f"timed), accuracy on dev and test. Reference point {r['reference_point'][0]:.1f} % / "
             f"{r['reference_point'][1]:.2f} ms; units % x ms.", "",
             "| front | HV test, mean ± sd (per seed) | / grid | HV dev, mean | / grid | points per seed "
             "| grid points dominated on test | covered on test | worst test shortfall (pts) |",
             "|---|---|---|---|---|---|---|---|---|",
             f"| grid | {g:.1f} | 1.000 | {gd:.1f} | 1.000 | {r['grid_points']} | - | - | - |"]
    for b in r["budgets"]:
        for sel in SELECTIONS:
            f = r["fronts"][f"{sel}_{b}"]
            st, hd = f["hv_test_over_seeds"], spread(f["hv_dev"])["mean"]
            lines.append(f"| {sel}, {b} trials | {st['mean']:.1f} ± {st['std']:.1f} "
                         f"({', '.join(f'{v:.1f}' for v in f['hv_test'])}) | {st['mean'] / g:.3f} | {hd:.1f} | "
                         f"{hd / gd:.3f} | {', '.join(str(len(p)) for p in f['points'])} | "
                         f"{', '.join(map(str, f['dominated']))} | {', '.join(map(str, f['covered']))} | "
                         f"{', '.join('-' if v is None else f'{v:.2f}' for v in f['shortfall_pts'])} |")
    lines += ["", f"Dominated: strictly (a front point at least as accurate on test and at most as slow, better in "
              f"one); covered: weakly, so a grid config on the front counts. Worst test shortfall: for each grid "
              f"point, its test accuracy minus the best test accuracy of the front's points at most as slow, the "
              f"largest over the grid. One standard error of a test accuracy on {r['test_examples']} examples: "
              f"{r['test_standard_error_pts']:.2f} points.", "", f"Total {r['total_seconds']:.0f} s.", "",
              "Fingerprint:", "", "```json", json.dumps(r["fingerprint"], indent=1, sort_keys=True), "```"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
