"""Analysis, not a benchmark: could any config the search studies tried dominate a grid point on test?

    python -m bench.front_feasibility --run-dir runs/sst2_dynabert --width 0.75 --depth 0.75

Reads every completed trial of the run's own study (study.db) and of the search bench's studies
(bench_search.db), keeps the configs whose predicted latency is at most the grid point's and whose dev metric
is at least --min-dev (to bound the cost), scores those on TEST and lists the ones at or above the grid point's
test metric. Scoring on test to choose would be the selection bias results/search.md avoids; this only asks
whether the search space holds such configs at all (the search bench's `every_grid_point_dominated_on_test`
target), so it writes no result file.
"""
from __future__ import annotations

import argparse
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run-dir", type=Path, default=Path("runs/sst2_dynabert"))
    ap.add_argument("--width", type=float, default=0.75)
    ap.add_argument("--depth", type=float, default=0.75)
    ap.add_argument("--scenario", default="cpu-eager-t2-b1-s128")
    ap.add_argument("--min-dev", type=float, default=85.5, help="skip configs below this dev metric (cost bound)")
    args = ap.parse_args()

    import optuna

    from app.workflow.search import SearchOptions
    from elastic.model.config import SubnetConfig
    from search.evaluator import RunContext
    from search.objective import build_objective

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    ctx = RunContext(args.run_dir)
    evaluate = ctx.evaluator()
    tried: dict[str, tuple[SubnetConfig, float, float | None]] = {}
    for name in ("study.db", "bench_search.db"):
        if not (args.run_dir / name).exists():
            continue
        db = f"sqlite:///{(args.run_dir / name).resolve()}"
        for summary in optuna.get_all_study_summaries(db):
            for t in optuna.load_study(study_name=summary.study_name, storage=db).get_trials(deepcopy=False):
                if t.state.name == "COMPLETE" and "config_json" in t.user_attrs:
                    cfg = SubnetConfig.from_json(t.user_attrs["config_json"])
                    tried[cfg.hash] = (cfg, t.values[0], t.user_attrs.get("latency_ms"))
    objective = build_objective(SearchOptions(run_dir=args.run_dir, scenario=args.scenario,
                                              objectives=("metric", "latency")), ctx)
    point = SubnetConfig.uniform(ctx.arch, args.width, args.depth)
    point_ms, point_test = objective.costs(point)["latency"], evaluate(point, "test")
    cands = [(cfg, dev, ms) for cfg, dev, ms in tried.values()
             if ms is not None and ms <= point_ms and dev >= args.min_dev and cfg.hash != point.hash]
    print(f"{len(tried)} distinct configs tried; grid point (w{args.width}, d{args.depth}) {point.hash}: test "
          f"{point_test:.2f}, predicted {point_ms:.2f} ms; {len(cands)} configs at most as slow with dev >= "
          f"{args.min_dev} scored on test")
    found = sorted(((evaluate(cfg, "test"), dev, ms, cfg.hash) for cfg, dev, ms in cands), reverse=True)
    for test, dev, ms, h in (f for f in found if f[0] >= point_test):
        print(f"  {h}: test {test:.2f}, dev {dev:.2f}, predicted {ms:.2f} ms")
    print(f"{sum(f[0] >= point_test for f in found)} of them at or above the grid point's test metric")


if __name__ == "__main__":
    main()
