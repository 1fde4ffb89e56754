"""`dynabert search` (Optuna Pareto search over per-layer sub-networks) and `dynabert export`."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from app.cli_runtime import add_runtime_args, runtime_from_args
from elastic.options import DEFAULT_SCENARIO, SAMPLERS  # noqa: F401  (DEFAULT_SCENARIO: the benches read it here)


def register(sub) -> None:
    """Add `search` and `export` to the `dynabert` parser."""
    p = sub.add_parser("search", help="multi-objective Pareto search over per-layer sub-networks (Optuna)")
    p.add_argument("--run-dir", required=True, type=Path, help="a trained run directory")
    p.add_argument("--scenario", help="latency scenario key, e.g. cpu-eager-t2-b1-s128 (default: the "
                                      "predictor's, else cpu-eager-t2-b1-s128)")
    p.add_argument("--objectives", default="metric,latency",
                   help="metric first, then any of latency, macs, params (default metric,latency)")
    p.add_argument("--n-trials", type=int, default=100, help="total trials, kept across resumptions (default 100)")
    p.add_argument("--sampler", choices=SAMPLERS, default="nsga2")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--storage", help="Optuna RDB URL (default sqlite:///<run>/study.db); a server such as "
                                     "postgresql://user:pw@host/db lets workers on other machines join (README)")
    p.add_argument("--study-name", help="default search-<scenario>")
    p.add_argument("--n-workers", type=int, default=1,
                   help="worker processes on this machine; other machines may add workers on the same storage")
    p.add_argument("--heartbeat-interval", type=int, default=30, metavar="S",
                   help="seconds between heartbeats of a running trial (default 30)")
    p.add_argument("--grace-period", type=int, default=120, metavar="S",
                   help="a trial without heartbeat for S seconds is failed and its config re-run (default 120)")
    p.add_argument("--max-retry", type=int, default=2, help="re-runs of a dead worker's config (default 2)")
    p.add_argument("--latency-budget", type=float, metavar="MS", help="constraint: latency <= MS")
    p.add_argument("--metric-floor", type=float, metavar="PCT", help="constraint: dev metric >= PCT")
    p.add_argument("--max-params", type=int, metavar="N", help="constraint: parameters <= N")
    p.add_argument("--measure", action="store_true", help="time every trial instead of using predictor.json")
    p.add_argument("--fidelity-subset", type=int, metavar="N",
                   help="first evaluate on N dev examples; full dev only for configs that could reach the front")
    p.add_argument("--ffn-step", type=int, help="FFN sizes are multiples of this (default FFN/8)")
    p.add_argument("--population-size", type=int, default=20, help="NSGA-II population (default 20)")
    p.add_argument("--stage", help="checkpoint to search (default: latest finished of stage3/stage2/stage1)")
    p.add_argument("--threads", type=int, help="torch threads for evaluation (default: torch's)")
    p.add_argument("--no-finalize", action="store_true", help="skip re-measuring the front and pareto.csv")
    p.add_argument("--no-progress", action="store_true")
    add_runtime_args(p)  # where trials are evaluated; latency is the --scenario's
    p.set_defaults(func=cmd_search)

    e = sub.add_parser("export", help="export sub-networks as standalone Hugging Face models (+ ONNX, card)")
    e.add_argument("--run-dir", required=True, type=Path)
    which = e.add_mutually_exclusive_group(required=True)
    which.add_argument("--trial", type=int, help="a trial number of the study")
    which.add_argument("--pareto", action="store_true", help="every point of the Pareto front")
    which.add_argument("--knee", action="store_true", help="the knee point of the front")
    which.add_argument("--subnet", type=Path, help="a SubnetConfig JSON file {layers, heads, ffn}")
    e.add_argument("--out", type=Path, help="model directory (for --pareto: the folder of all of them); "
                                           "default <run>/exports/<name>")
    e.add_argument("--name", help="export name (sanitized: letters, digits, '.', '_', '-')")
    e.add_argument("--force", action="store_true", help="overwrite an existing export")
    e.add_argument("--storage", help="Optuna RDB URL (default sqlite:///<run>/study.db)")
    e.add_argument("--study-name")
    e.add_argument("--scenario", help="latency scenario of the model card (default: the search's)")
    e.add_argument("--no-onnx", action="store_true", help="skip model.onnx")
    e.add_argument("--no-measure", action="store_true", help="do not time the model for its card")
    add_runtime_args(e)  # where the card's metrics are evaluated; its latency is the --scenario's
    e.set_defaults(func=cmd_export)


def _default_scenario(run_dir: Path) -> str:
    for name, key in (("search.json", "scenario"), ("predictor.json", "scenario")):
        f = run_dir / name
        if f.exists():
            try:
                return str(json.loads(f.read_text())[key])
            except (json.JSONDecodeError, KeyError, TypeError):
                continue
    return DEFAULT_SCENARIO


def _measure_fn(ctx, scenario_key: str):
    from profiling.latency import LatencyCache, measure
    from profiling.scenario import Scenario

    scenario = Scenario.parse(scenario_key).check(ctx.arch)
    cache = LatencyCache(ctx.run_dir / "latency_cache.jsonl")
    return lambda cfg: measure(ctx.model, cfg, scenario, cache=cache, count_fvcore=False)


def cmd_search(args: argparse.Namespace) -> int:
    from elastic.config import SubnetConfig
    from search.evaluator import RunContext
    from search.pareto import finalize
    from search.study import SearchOptions, build_objective, run_search

    if not args.run_dir.is_dir():
        raise FileNotFoundError(f"run directory {args.run_dir} does not exist")
    opts = SearchOptions(
        run_dir=args.run_dir, scenario=args.scenario or _default_scenario(args.run_dir),
        objectives=tuple(o.strip() for o in args.objectives.split(",") if o.strip()), n_trials=args.n_trials,
        sampler=args.sampler, seed=args.seed, storage=args.storage, study_name=args.study_name,
        n_workers=args.n_workers, heartbeat_interval=args.heartbeat_interval, grace_period=args.grace_period,
        max_retry=args.max_retry, latency_budget_ms=args.latency_budget, metric_floor=args.metric_floor,
        max_params=args.max_params, measure=args.measure, fidelity_subset=args.fidelity_subset,
        ffn_step=args.ffn_step, population_size=args.population_size, stage=args.stage, threads=args.threads,
        progress=not args.no_progress, runtime=runtime_from_args(args))
    ctx = RunContext(opts.run_dir, stage=opts.stage, runtime=opts.runtime)
    objective = build_objective(opts, ctx)
    study = run_search(opts, objective=objective)
    print(f"study '{study.study_name}' in {opts.storage_url}: {len(study.trials)} trials, "
          f"trials.csv written to {opts.run_dir / 'trials.csv'}")
    if args.no_finalize:
        return 0
    full = objective.costs(SubnetConfig.full(ctx.arch))
    has_test = "test" in ctx.task.splits
    summary = finalize(study, run_dir=opts.run_dir, scenario=opts.scenario, objectives=opts.objectives,
                       full_costs=[full[o] for o in opts.objectives[1:]],
                       measure_fn=_measure_fn(ctx, opts.scenario),
                       test_fn=(lambda cfg: objective.evaluator(cfg, "test")) if has_test else None)
    print(f"Pareto front: {summary['n_front']} configs (re-measured on {opts.scenario}); hypervolume "
          f"{summary['hypervolume']:.4g} (reference {summary['reference_point']}); knee {summary['knee_hash']} "
          f"(trial {summary['knee_trial']}); pareto.csv and search.json in {opts.run_dir}")
    return 0


def _selection(args: argparse.Namespace, arch) -> list[tuple[str, Any, dict[str, Any]]]:
    """(default name, SubnetConfig, facts) for each config to export."""
    from elastic.config import SubnetConfig
    from search.pareto import read_pareto_csv
    from search.pareto import load_study, trial_config

    if args.subnet is not None:
        if not args.subnet.is_file():
            raise FileNotFoundError(f"--subnet {args.subnet} not found (expected a JSON file with layers, heads, ffn)")
        try:
            cfg = SubnetConfig.from_json(args.subnet.read_text()).validate(arch)
        except ValueError as e:
            raise ValueError(f"--subnet {args.subnet}: {e}") from None
        return [(f"cfg-{cfg.hash}", cfg, {"source": f"config file {args.subnet}"})]
    pareto_csv = args.run_dir / "pareto.csv"
    if (args.pareto or args.knee) and pareto_csv.exists() and args.storage is None and args.study_name is None:
        rows = read_pareto_csv(pareto_csv)
        fingerprint = _search_fingerprint(args.run_dir)
        if args.knee:
            rows = [r for r in rows if str(r["knee"]).lower() == "true"]
        out = []
        for r in rows:
            cfg = SubnetConfig.from_json(r["config_json"]).validate(arch)
            facts = {"dev_metric": _num(r["dev_metric"]), "test_metric": _num(r["test_metric"]),
                     "source": f"pareto.csv trial {r['trial']}" + (" (knee)" if args.knee else "")}
            if _num(r["latency_measured_ms"]) is not None and (args.scenario in (None, r["scenario"])):
                # The number the dashboard shows for this point, with the machine it was measured on.
                facts.update(latency_ms=_num(r["latency_measured_ms"]), scenario=r["scenario"],
                             fingerprint=fingerprint)
            out.append((f"{'knee' if args.knee else 'pareto'}-t{r['trial']}-{cfg.hash}", cfg, facts))
        if out:
            return out
    study = load_study(args.run_dir, storage=args.storage, study_name=args.study_name)
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        raise ValueError(f"study '{study.study_name}' has no completed trials: nothing to export "
                         f"(run `dynabert search --run-dir {args.run_dir}` first)")
    if args.trial is not None:
        match = [t for t in study.trials if t.number == args.trial]
        if not match or match[0].state != TrialState.COMPLETE:
            raise ValueError(f"trial {args.trial} of study '{study.study_name}' is not a completed trial "
                             f"(completed: {len(complete)} trials, numbers 0..{len(study.trials) - 1})")
        trials = match
    else:
        trials = sorted(study.best_trials, key=lambda t: t.number)
        if not trials:
            raise ValueError(f"study '{study.study_name}' has no feasible completed trial: empty Pareto front")
        if args.knee:
            from search.pareto import knee_index

            trials = [trials[knee_index([list(t.values) for t in trials])]]
    kind = "trial" if args.trial is not None else ("knee" if args.knee else "pareto")
    return [(f"{kind}-t{t.number}-{trial_config(t).hash}", trial_config(t).validate(arch),
             {"dev_metric": t.values[0], "source": f"study '{study.study_name}' trial {t.number}"}) for t in trials]


def _training_summary(run: dict[str, Any]) -> dict[str, Any]:
    """The recorded options of each training stage that say how the model was made."""
    keys = ("epochs", "max_steps", "batch_size", "lr", "teacher_width", "extra_subnets", "widths", "depths",
            "augment", "max_length", "seed")
    return {stage: {k: o[k] for k in keys if o.get(k) is not None}
            for stage, o in (run.get("options") or {}).items() if isinstance(o, dict)}


def _search_fingerprint(run_dir: Path) -> Any:
    try:
        return json.loads((run_dir / "search.json").read_text()).get("fingerprint")
    except (OSError, json.JSONDecodeError, AttributeError):
        return None


def _num(text: str) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def cmd_export(args: argparse.Namespace) -> int:
    from elastic.export import export_dir, export_subnet, sanitize_name
    from profiling.flops import analytic_macs, param_count
    from profiling.onnx_export import export_onnx
    from profiling.scenario import Scenario
    from search.evaluator import RunContext
    from search.pareto import searched_checkpoint

    ctx = RunContext(args.run_dir, runtime=runtime_from_args(args))
    items = _selection(args, ctx.arch)
    searched = searched_checkpoint(args.run_dir)
    if searched is not None and searched != ctx.cache_namespace():
        # pareto.csv's configs are architectures (still valid); its metrics belong to the old weights
        print(f"warning: the search ran on checkpoint {searched.rstrip(':')}, the run's checkpoint is now "
              f"{ctx.cache_namespace().rstrip(':')}: metrics are re-evaluated on the current weights; run "
              "`dynabert search --study-name NEW` for a front of the current weights", file=sys.stderr)
        for _, _, facts in items:
            facts.pop("dev_metric", None)
            facts.pop("test_metric", None)
    scenario_key = args.scenario or _default_scenario(args.run_dir)
    Scenario.parse(scenario_key)
    evaluator = ctx.evaluator()
    measure = None if args.no_measure else _measure_fn(ctx, scenario_key)
    onnx_writer = None if args.no_onnx else (lambda small, path: export_onnx(small, path))
    single = len(items) == 1 and not args.pareto
    run = ctx.run
    plan = []
    for default_name, cfg, facts in items:
        name = sanitize_name(args.name) if args.name and single else (
            f"{sanitize_name(args.name)}-{default_name}" if args.name else default_name)
        if single and args.out is not None:
            out = export_dir(args.out, name) if args.name else Path(args.out)
        else:
            out = export_dir(args.out if args.out is not None else args.run_dir / "exports", name)
        plan.append((out, cfg, facts))
    taken = [str(out) for out, _, _ in plan if out.exists()]
    if taken and not args.force:  # check all first: never leave half of a --pareto export behind
        raise FileExistsError(f"{', '.join(taken)} already exist(s); pass --force to overwrite, or choose "
                              "another --name/--out")
    written = []
    for out, cfg, facts in plan:
        info = dict(facts)
        sc_key = info.pop("scenario", scenario_key)
        sc = Scenario.parse(sc_key)
        info.setdefault("dev_metric", evaluator(cfg, "dev"))
        if info.get("test_metric") is None and "test" in ctx.task.splits:
            info["test_metric"] = evaluator(cfg, "test")
        info.update(num_layers=ctx.arch.num_layers, metric=run.get("metric", "metric"),
                    macs=analytic_macs(ctx.arch, cfg, sc.seq_len, batch=sc.batch, num_labels=ctx.model.num_labels),
                    macs_shape=f"batch {sc.batch}, {sc.seq_len} tokens",
                    params=param_count(ctx.arch, cfg, ctx.model.num_labels), scenario=sc_key,
                    task=(run.get("task") or {}).get("name", run.get("task_spec")), teacher=run.get("teacher"),
                    task_spec=run.get("task_spec"), pair=len((run.get("task") or {}).get("text_columns", [])) == 2,
                    stages=run.get("stage_seconds"), training=_training_summary(run))
        if measure is not None and info.get("latency_ms") is None:
            rec = measure(cfg)
            info.update(latency_ms=float(rec["median_ms"]), fingerprint=rec.get("fingerprint"))
        export_subnet(ctx.model, cfg, out, tokenizer=ctx.tokenizer, label_names=ctx.label_names or None,
                      card_info=info, onnx_writer=onnx_writer, force=args.force)
        written.append(out)
        print(f"exported {cfg.describe()} -> {out}")
    print(f"{len(written)} export(s); usage in each one's README.md: AutoModelForSequenceClassification."
          "from_pretrained(DIR, trust_remote_code=True), AutoTokenizer.from_pretrained(DIR), DIR/model.onnx")
    return 0
