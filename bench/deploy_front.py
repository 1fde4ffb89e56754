"""The user's outcome as a bench (issue 34, item 6) -> results/deploy_front.json + .md.

On a trained run (default the SST-2 DynaBERT run of `make bench ONLY=sst2_dynabert`; the demo with --run-dir
runs/demo --out elsewhere):

1. Profile every deployment variant of the target (fp32/int8 x eager/ort at cpu-t2-b1-s128: `dynabert profile`),
   search them together (TPE, seeded, a fixed trial budget; `search.objective`), finalize the front (confirmed on
   the run's held-out slice, re-measured, scored on test: `search.pareto.finalize`).
2. Export every front point within 2.0 (or --extra-points) dev points of the teacher in its variant through `dynabert export`'s
   workflow function (app/workflow/export.py: INT8 ORT as model.int8.onnx), re-score each written artifact on dev
   and test (`profiling.deploy.load_artifact` + `artifact_metric`), time it as a paired ratio to the fp32 eager
   teacher (same target, alternating rounds, `profiling.timing.paired_ratio`). `within_1pt` / `within_2pt`: the
   fastest artifact whose re-scored dev lies within 1.0 / 2.0 points of the teacher's dev. Test is never used to
   choose.
3. `efficiency_smallest`: (w0.25, d0.5)'s MACs ratio / latency ratio to the full model (paired, same runtime) at
   b1/s64 and b32/s64 in eager, ort and ort-int8; the runtime where it is fastest at b1/s64 is reported.
4. `optimism`: searches (fp32 eager) whose dev is a seeded 400-example subset of the run's dev (about the size of
   MRPC's 408: the cheapest ~400-example dev, no training needed), one per subset seed (--optimism-seeds, default
   0,1,2); the mean dev-minus-test gap (test: the full test split) of their non-grid front points beside the grid
   configs', on the search's dev, on the figure the front shows (the held-out slice) and on the dev examples kept
   from the subset, pooled over the replicates with a standard error.
5. `search_vs_rule`: copied from results/search.json (`make bench ONLY=search`).

Everything expensive is kept in <run>/deploy_front/ (studies, fronts, exports, profiles in the run's own
predictors/), so a re-run resumes; timings are taken afresh in every run.

Usage: python -m bench.deploy_front [--run-dir runs/sst2_dynabert] [--trials 200] [--out results]
       python -m bench.deploy_front --quick --out /tmp/x      (a tiny run, end to end in a minute or two)
"""
from __future__ import annotations

import os

# Idle OpenMP threads must sleep, not spin (shared 2-core machine): set before torch loads OpenMP.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from bench.deploy_front_report import (POINTS, TARGET_EFFICIENCY, TARGET_RATIO_1PT, TARGET_TASK,  # noqa: E402
                                       best_runtime,
                                       efficiency, fastest_within, key_of, markdown, near_teacher, optimism_gaps,
                                       pool_optimism, search_vs_rule)
from search.evaluator import RunContext, RunDirError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
WORK = "deploy_front"  # the bench's folder inside the run
EFFICIENCY_RUNTIMES = ("eager", "ort", "ort-int8")
EFFICIENCY_SHAPES = {"b1_s64": (1, 64), "b32_s64": (32, 64)}
KEPT = "dev_kept"  # the optimism study's split: the run's dev examples outside the searched subset


class DevSubsetContext(RunContext):
    """The run as a search sees it, with split `dev` replaced by a seeded subset of `n` dev examples (test and the
    held-out slice unchanged) and split `KEPT` the dev examples outside it, which neither the search nor training
    ever used; its metrics are cached under a namespace of their own (`dev<n>s<seed>:`)."""

    def __init__(self, run_dir: Path, n: int, *, seed: int = 0, **kw: Any):
        super().__init__(run_dir, **kw)
        from elastic.data.tasks import EncodedSplit, encode_split

        full = encode_split(self.task, "dev", self.tokenizer, self.max_length)
        self.dev_n = min(n, len(full))
        idx = sorted(random.Random(seed).sample(range(len(full)), self.dev_n))
        chosen = set(idx)
        rest = [i for i in range(len(full)) if i not in chosen]

        def part(ids: list[int]) -> EncodedSplit:
            return EncodedSplit([full.input_ids[i] for i in ids], [full.token_type_ids[i] for i in ids],
                                [full.labels[i] for i in ids], full.is_regression, full.pad_token_id)
        self._encoded["dev"] = part(idx)
        if rest:
            self._encoded[KEPT] = part(rest)
        self.kept_n = len(rest)
        self._tag = f"dev{self.dev_n}s{seed}:"

    def variant_namespace(self, variant: str | None = None) -> str:
        return self._tag + super().variant_namespace(variant)


def _state(work: Path) -> dict[str, Any]:
    try:
        return json.loads((work / "state.json").read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def _save_state(work: Path, state: dict[str, Any]) -> None:
    work.mkdir(parents=True, exist_ok=True)
    (work / "state.json").write_text(json.dumps(state, indent=1, default=str) + "\n")


def ensure_profiles(ctx: RunContext, variants: tuple[str, ...], args: argparse.Namespace) -> None:
    """`dynabert profile` of the variants that have no predictor yet (the run's predictors/<key>.json)."""
    from app.workflow.profile import profile_model
    from profiling.scenario import Scenario

    todo = [Scenario.parse(v) for v in variants if not (ctx.run_dir / "predictors" / f"{v}.json").exists()]
    if todo:
        print(f"profiling {', '.join(s.key for s in todo)}", flush=True)
        # profile_model makes its first scenario the run's default predictor (predictor.json): keep the run's own
        default = ctx.run_dir / "predictor.json"
        kept = default.read_bytes() if default.exists() else None
        profile_model(ctx.run_dir, ctx.model, todo, n_random=args.profile_random, n_heldout=args.profile_heldout,
                      min_run_time_s=args.min_time_profile, progress=False)
        if kept is not None:
            default.write_bytes(kept)


def searched_front(ctx: RunContext, variants: tuple[str, ...], name: str, args: argparse.Namespace, state: dict,
                   *, dev_n: int | None = None) -> list[dict[str, Any]]:
    """Run (or resume) a study of `variants` in <run>/deploy_front/<name>.db and finalize its front into
    <run>/deploy_front/<name>/ (pareto.csv, search.json) as `dynabert search` does; the finalized front is reused
    while the study and the checkpoint are unchanged. `dev_n`: dev's size when `ctx` searches a dev subset."""
    from app.workflow.search import front_timer, variant_test_fn
    from elastic.model.config import SubnetConfig, grid
    from search.confirm import run_confirmer
    from search.objective import build_objective
    from search.options import SearchOptions
    from search.pareto import finalize, read_pareto_csv
    from search.study import run_search

    work = ctx.run_dir / WORK
    opts = SearchOptions(run_dir=ctx.run_dir, scenario=",".join(variants), n_trials=args.trials, sampler=args.sampler,
                         seed=args.seed, storage=f"sqlite:///{(work / f'{name}.db').resolve()}", study_name=name,
                         fidelity_subset=args.fidelity_subset, threads=args.eval_threads, progress=False)
    work.mkdir(parents=True, exist_ok=True)
    objective = build_objective(opts, ctx)
    study = run_search(opts, objective=objective)
    stamp = {"trials": len(study.trials), "checkpoint": ctx.cache_namespace(), "variants": list(variants)}
    out = work / name
    if state.get(name) == stamp and (out / "pareto.csv").exists():
        return read_pareto_csv(out / "pareto.csv")
    fulls = [objective.costs(SubnetConfig.full(ctx.arch), v) for v in variants]
    confirmer = run_confirmer(ctx, objective.evaluators)
    if dev_n is not None:
        confirmer = dataclasses.replace(confirmer, dev_n=dev_n)  # standard errors of the subset, not of all of dev
    out.mkdir(parents=True, exist_ok=True)
    finalize(study, run_dir=out, scenario=opts.scenario, objectives=opts.objectives,
             full_costs=[max(f[o] for f in fulls) for o in opts.objectives[1:]],
             time_front={v: front_timer(ctx, v) for v in variants},
             test_fn={v: variant_test_fn(objective.evaluators[v]) for v in variants}, confirmer=confirmer,
             grid_hashes={c.hash for _, _, c in grid(ctx.arch)})
    state[name] = stamp
    _save_state(work, state)
    return read_pareto_csv(out / "pareto.csv")


def export_candidate(ctx: RunContext, row: dict[str, Any], state: dict) -> dict[str, Any]:
    """Export a front point in its variant (`dynabert export`'s workflow), re-score the written artifact on dev
    and test; kept in state.json by (checkpoint, config, variant)."""
    from app.workflow.export import ExportOptions, export
    from elastic.model.config import SubnetConfig
    from profiling.deploy import artifact_metric, load_artifact

    cfg = SubnetConfig.from_json(row["config_json"])
    key = f"{ctx.cache_namespace()}{row['scenario']}:{cfg.hash}"
    folder = ctx.run_dir / WORK / "exports" / f"{row['scenario']}-{cfg.hash}"
    done = state.setdefault("exports", {}).get(key)
    if done is None or not folder.is_dir():
        export(ExportOptions(run_dir=ctx.run_dir, config=cfg, scenario=row["scenario"], out=folder, force=True,
                             onnx=False, measure=False))
        with load_artifact(folder, row["scenario"]) as art:
            done = {split: artifact_metric(art, ctx.loader(split), ctx.task) for split in ("dev", "test")}
        state["exports"][key] = done
        _save_state(ctx.run_dir / WORK, state)
    return {"config": cfg.describe(), "config_json": cfg.to_json(), "grid_point": str(row["grid_point"]) == "True",
            "scenario": row["scenario"], "precision": row["precision"], "runtime": row["runtime"],
            "front_dev": float(row["dev_metric"]), "front_confirmed": _num(row.get("confirm_metric")),
            "confirm_split": row.get("confirm_split") or None, "dev_acc": done["dev"], "test_acc": done["test"],
            "path": str(folder)}


def _num(v: Any) -> float | None:
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def time_against_teacher(cands: list[dict[str, Any]], teacher_art: Any, scenario: Any, vocab_size: int,
                         args: argparse.Namespace) -> list[float]:
    """Each loaded artifact vs the fp32 eager teacher, paired (alternating rounds) on the target's inputs; fills
    `latency_ratio` and `ms` and returns the teacher's median per pairing (ms)."""
    from profiling.deploy import load_artifact
    from profiling.runners import make_inputs
    from profiling.timing import paired_ratio

    ids, mask = make_inputs(scenario, vocab_size)
    ref = lambda: teacher_art.predict(ids, mask)  # noqa: E731
    teacher_ms = []
    for c in cands:
        with load_artifact(c["path"], c["scenario"]) as art:
            pr = paired_ratio(lambda: art.predict(ids, mask), ref, threads=scenario.threads,
                              min_time_s=args.min_time, min_rounds=args.min_rounds, warmup=2)
        c.update(latency_ratio=pr["ratio"], ratio_iqr=pr["ratio_iqr"], ms=pr["median_ms"], rounds=pr["rounds"])
        teacher_ms.append(pr["ref_median_ms"])
    return teacher_ms


def efficiency_smallest(ctx: RunContext, threads: int, args: argparse.Namespace) -> dict[str, Any]:
    """(w0.25, d0.5) vs the full model, paired, in each runtime at each shape (`profiling.latency.measure_ratio`).

    With more than one thread, the best runtime is also measured at batch 1 / seq 64 on one thread
    (`one_thread_b1_s64`): a diagnostic, not the target's scenario. What the small config loses between one thread
    and `threads` is the thread pool's cost per operator, paid on every operator of its layers whatever their width.
    """
    from elastic.model.config import SubnetConfig

    small, full = SubnetConfig.uniform(ctx.arch, 0.25, 0.5), SubnetConfig.full(ctx.arch)
    out: dict[str, dict[str, dict[str, float]]] = {}
    for rt in EFFICIENCY_RUNTIMES:
        for shape, (b, s) in EFFICIENCY_SHAPES.items():
            out.setdefault(rt, {})[shape] = _efficiency_pair(ctx, small, full, f"cpu-{rt}-t{threads}-b{b}-s{s}", args)
    best = best_runtime(out)
    one = (_efficiency_pair(ctx, small, full, "cpu-{}-t1-b{}-s{}".format(best, *EFFICIENCY_SHAPES["b1_s64"]), args)
           if threads > 1 else None)
    return {"b1_s64": out[best]["b1_s64"]["efficiency"], "b32_s64": out[best]["b32_s64"]["efficiency"],
            "runtime": best, "config": "w0.25 d0.5", "threads": threads, "targets": TARGET_EFFICIENCY,
            "best_is": "the runtime where the smallest config is fastest at b1/s64", "all": out,
            "one_thread_b1_s64": one}


def _efficiency_pair(ctx: RunContext, small, full, scenario: str, args: argparse.Namespace) -> dict[str, Any]:
    """MACs ratio, paired latency ratio and efficiency of `small` to `full` in one scenario."""
    from profiling.flops import analytic_macs
    from profiling.latency import measure_ratio
    from profiling.runners import runner_for
    from profiling.scenario import Scenario

    sc = Scenario.parse(scenario).check(ctx.arch)
    macs = (analytic_macs(ctx.arch, small, sc.seq_len, batch=sc.batch, num_labels=ctx.model.num_labels)
            / analytic_macs(ctx.arch, full, sc.seq_len, batch=sc.batch, num_labels=ctx.model.num_labels))
    ref = runner_for(ctx.model, full, sc)[1]
    rec = measure_ratio(ctx.model, small, sc, ref, min_time_s=args.min_time, min_rounds=args.min_rounds)
    return {"scenario": sc.key, "macs_ratio": macs, "latency_ratio": rec["ratio"], "ratio_iqr": rec["ratio_iqr"],
            "efficiency": efficiency(macs, rec["ratio"]), "ms": rec["ratio"] * rec["ref_median_ms"],
            "full_ms": rec["ref_median_ms"], "rounds": rec["rounds"]}


def optimism(run_dir: Path, variant: str, args: argparse.Namespace, state: dict) -> dict[str, Any]:
    """The dev-subset searches' fronts and the grid: dev (subset) minus test (full) gaps, one replicate per subset
    seed (`--optimism-seeds`), pooled (`pool_optimism`: means over replicates, the excess with its standard error)."""
    reps = [optimism_replicate(run_dir, variant, args, state, s) for s in args.optimism_seeds]
    first = reps[0]
    seeds = ", ".join(str(s) for s in args.optimism_seeds)
    return {**{k: first[k] for k in ("task", "dev_size", "dev_full_size", "test_size", "confirm_split",
                                     "confirm_size", "kept_size")},
            "subset_seeds": list(args.optimism_seeds), "variant": variant, **pool_optimism(reps),
            "replicates": reps,
            "method": (f"{len(reps)} replicates (subset seeds {seeds}): in each, a {args.sampler} search of "
                       f"{args.trials} trials (seed {args.seed}) on {variant} whose dev is a seeded subset of "
                       f"{first['dev_size']} of the run's {first['dev_full_size']} dev examples (the cheapest dev of "
                       "about 400 examples: MRPC's 408 would need a trained MRPC run), front confirmed on the "
                       "held-out slice as `dynabert search` does; dev figures on the subset, test on the full test "
                       "split. front_gap: mean dev minus test of the front's non-grid points; grid_gap: of the 12 grid "
                       "configs; excess: front_gap - grid_gap. confirmed: the same with the figure the front shows "
                       "(confirm_metric, on the held-out slice of train, which training's model selection also read) "
                       "for the front's points and the grid's figure on that same slice. kept: the same on the "
                       f"{first['kept_size']} dev examples outside the replicate's subset, which neither training nor "
                       "the search read. Each figure is the mean over replicates; se: the standard error of the "
                       "replicates' excess.")}


def optimism_replicate(run_dir: Path, variant: str, args: argparse.Namespace, state: dict, seed: int
                       ) -> dict[str, Any]:
    """One dev-subset search (subset seed `seed`; its study `optimism-dev<n>[-s<seed>]`), its front and the grid
    scored on the subset, test, the held-out slice and the dev examples kept from the subset."""
    from elastic.model.config import SubnetConfig, grid
    from search.evaluator import HELDOUT

    ctx = DevSubsetContext(run_dir, args.optimism_dev, seed=seed)
    name = f"optimism-dev{ctx.dev_n}" + (f"-s{seed}" if seed else "")  # seed 0 keeps the study it always had
    front = searched_front(ctx, (variant,), name, args, state, dev_n=ctx.dev_n)
    ev = ctx.evaluator(variant=variant)
    held = ctx.heldout_examples > 0  # the split the front's shown figure comes from (`search.confirm`)
    kept = ctx.kept_n > 0

    def score(cfg: SubnetConfig, split: str, on: bool) -> float | None:
        return ev(cfg, split) if on else None
    grid_rows = [{"config": f"w{w:g} d{d:g}", "dev": ev(c, "dev"), "test": ev(c, "test"),
                  "confirmed": score(c, HELDOUT, held), "kept": score(c, KEPT, kept)} for w, d, c in grid(ctx.arch)]
    front_rows = [{**{k: r[k] for k in ("config_hash", "dev_metric", "confirm_metric", "test_metric", "grid_point")},
                   "kept_metric": score(SubnetConfig.from_json(r["config_json"]), KEPT, kept)} for r in front]
    task = (ctx.run.get("task") or {}).get("name") or str(ctx.run.get("task_spec"))
    return {"task": task, "subset_seed": seed, "dev_size": ctx.dev_n, "dev_full_size": len(ctx.task.splits["dev"]),
            "test_size": len(ctx.task.splits["test"]), "confirm_split": HELDOUT if held else None,
            "confirm_size": ctx.heldout_examples, "kept_size": ctx.kept_n, **optimism_gaps(front_rows, grid_rows),
            "front": front_rows, "grid": grid_rows}


def main(argv: list[str] | None = None) -> None:
    import optuna

    from app.workflow.export import RESCORE_TOLERANCE
    from elastic.model.config import SubnetConfig
    from elastic.model.extract import extract
    from profiling.deploy import deploy_small
    from profiling.fingerprint import fingerprint
    from profiling.scenario import Scenario
    from profiling.variants import expand_variants, variant_key

    args = _args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    t0 = time.perf_counter()
    if args.quick and args.run_dir is None:
        from tests.helpers_search import make_tiny_run

        root = Path(args.work_dir or tempfile.mkdtemp(prefix="deploy-front-quick-"))
        run_dir = root / "run" if (root / "run").exists() else make_tiny_run(root, heldout=10)
    else:
        run_dir = Path(args.run_dir or ROOT / "runs" / "sst2_dynabert")
    if not (run_dir / "run.json").is_file():
        raise SystemExit(f"error: {run_dir} is not a trained run (no run.json): make the SST-2 run with `make bench "
                         "ONLY=sst2_dynabert` (about an hour, resumable), or pass --run-dir of another trained run "
                         "(e.g. runs/demo from `make demo-run`)")
    variants = expand_variants(args.target, args.precisions, args.runtimes)
    target = Scenario.parse(variant_key(args.target, "fp32", "eager"))
    ctx = RunContext(run_dir)
    if "test" not in ctx.task.splits:
        raise SystemExit(f"error: the task of {run_dir} has no test split: test accuracy is reported per point")
    state = _state(run_dir / WORK)
    ensure_profiles(ctx, tuple(dict.fromkeys((*variants, target.key))), args)  # the optimism search runs fp32 eager
    front = searched_front(ctx, variants, f"variants-{args.target}-{args.sampler}-s{args.seed}", args, state)

    try:
        tctx, source = RunContext(run_dir, stage="teacher"), "the run's teacher checkpoint"
    except RunDirError:  # a run without its teacher stage: the searched model's full network stands in
        tctx, source = ctx, f"the full network of {ctx.stage} (the run has no teacher checkpoint)"
    full = SubnetConfig.full(tctx.arch)
    tev = tctx.evaluator()
    teacher = {"dev_acc": tev(full, "dev"), "test_acc": tev(full, "test"), "source": source,
               "scenario": target.key}
    points = sorted({*POINTS, *args.extra_points})
    cands = [export_candidate(ctx, r, state)
             for r in near_teacher(front, teacher["dev_acc"], max(points), slack=RESCORE_TOLERANCE)]
    cands.sort(key=lambda c: (c["scenario"], c["config"]))
    with deploy_small(extract(tctx.model, full).eval(), target) as t_art:
        teacher_ms = time_against_teacher(cands, t_art, target, tctx.arch.vocab_size, args)
    if not teacher_ms:  # nothing near the teacher: time the teacher alone for its ms
        from profiling.timing import time_runner
        from profiling.runners import runner_for

        teacher_ms = [time_runner(runner_for(tctx.model, full, target)[1], threads=target.threads,
                                  min_run_time_s=max(args.min_time, 0.05))["median_ms"]]
    teacher["ms"] = statistics.median(teacher_ms)
    chosen = {}
    for p in points:
        best = fastest_within(cands, teacher["dev_acc"], p)
        chosen[key_of(p)] = ({k: best[k] for k in ("config", "precision", "runtime", "dev_acc", "test_acc", "ms",
                                                   "latency_ratio", "scenario", "front_dev", "grid_point", "path")}
                             if best else {k: None for k in ("config", "precision", "runtime", "dev_acc", "test_acc",
                                                             "ms", "latency_ratio")}
                             | {"reason": f"no exported artifact within {p:g} dev points of the teacher"})
    r1 = chosen[key_of(1.0)].get("latency_ratio")
    task = (ctx.run.get("task") or {}).get("name") or str(ctx.run.get("task_spec"))
    from bench.common import provenance

    result = {
        "teacher": teacher, **chosen,
        "efficiency_smallest": efficiency_smallest(ctx, target.threads, args),
        "search_vs_rule": search_vs_rule(args.search_json or args.out / "search.json"),
        "optimism": optimism(run_dir, variant_key(args.target, "fp32", "eager"), args, state),
        "targets": {"ratio_1pt": None if r1 is None or task != TARGET_TASK else r1 <= TARGET_RATIO_1PT,
                    "ratio_1pt_max": TARGET_RATIO_1PT, "task": TARGET_TASK},
        "candidates": cands, "task": task,
        "points": points, "run_dir": str(run_dir), "checkpoint": ctx.stage, "variants": list(variants), "target": args.target,
        "search": {"sampler": args.sampler, "seed": args.seed, "trials": args.trials, "front_points": len(front),
                   "fidelity_subset": args.fidelity_subset,
                   "confirmation": (f"{ctx.heldout_examples} held-out train examples" if ctx.heldout_examples
                                    else "nothing (the run kept no held-out slice)")},
        "timing": {"scenario": target.key, "min_time_s": args.min_time, "min_rounds": args.min_rounds,
                   "method": "paired_ratio over the loaded artifact and the fp32 eager teacher, alternating rounds"},
        "quick": args.quick, "fingerprint": fingerprint(target.threads, "cpu"), **provenance(),
        "total_seconds": time.perf_counter() - t0,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    (args.out / f"{args.name}.md").write_text(markdown(result))
    print(markdown(result))


def _seeds(text: str) -> tuple[int, ...]:
    """`--optimism-seeds`: distinct non-negative integers, comma-separated."""
    try:
        seeds = tuple(int(t) for t in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"expected distinct non-negative integers, got {text!r}")
    return seeds


def _args(argv: list[str] | None) -> argparse.Namespace:
    from bench.common import RESULTS

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run-dir", type=Path, help="the trained run (default runs/sst2_dynabert)")
    ap.add_argument("--target", default="cpu-t2-b1-s128")
    ap.add_argument("--precisions", default="fp32,int8")
    ap.add_argument("--runtimes", default="eager,ort")
    ap.add_argument("--trials", type=int, default=200, help="trials per search (the grid in every variant first)")
    ap.add_argument("--sampler", default="tpe")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fidelity-subset", type=int, default=256, help="dev examples of the cheap first evaluation")
    ap.add_argument("--eval-threads", type=int, default=2)
    ap.add_argument("--profile-random", type=int, default=40, help="random configs fitting each variant's predictor")
    ap.add_argument("--profile-heldout", type=int, default=20, help="random configs scoring each predictor")
    ap.add_argument("--min-time-profile", type=float, default=0.5, help="seconds of timed runs per profiled config")
    ap.add_argument("--min-time", type=float, default=3.0, help="seconds of paired rounds per timed pair")
    ap.add_argument("--min-rounds", type=int, default=10)
    ap.add_argument("--optimism-dev", type=int, default=400, help="dev examples of the optimism search")
    ap.add_argument("--optimism-seeds", type=_seeds, default=(0, 1, 2),
                    help="dev-subset seeds of the optimism study, one search each (comma-separated; default 0,1,2)")
    ap.add_argument("--extra-points", type=float, nargs="*", default=[],
                    help="more dev-point windows besides 1 and 2 (--quick: 40, so that the tiny random model's front, "
                         "far below its teacher, still exercises export, re-score and timing)")
    ap.add_argument("--search-json", type=Path, help="the search bench's result (default <out>/search.json)")
    ap.add_argument("--quick", action="store_true", help="a tiny run with tiny budgets (unless --run-dir is given)")
    ap.add_argument("--work-dir", type=Path, help="--quick: where the tiny run goes (default a temporary folder)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--name", default="deploy_front", help="results file stem")
    args = ap.parse_args(argv)
    if args.quick:  # the tiny run's max length is 16; its 12 grid configs in 4 variants fill 48 trials
        for k, v in (("target", "cpu-t1-b1-s16"), ("trials", 56), ("fidelity_subset", None), ("eval_threads", 1),
                     ("profile_random", 4), ("profile_heldout", 4), ("min_time_profile", 0.01), ("min_time", 0.05),
                     ("min_rounds", 3), ("optimism_dev", 20), ("optimism_seeds", (0, 1)), ("extra_points", [40.0])):
            if getattr(args, k) == ap.get_default(k):
                setattr(args, k, v)
    return args


if __name__ == "__main__":
    main()
