"""`dynabert profile`: MACs, parameters and measured latency of grid and random sub-networks, and the
latency predictor the search uses (latency.csv, predictor.json in the run directory)."""
from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path
from typing import Any, Sequence

from app.cli_runtime import add_runtime_args
from elastic.options import TIMINGS, Timing

AUTO_CHECKPOINTS: tuple[str, ...] = ("stage2", "stage1", "rewired", "teacher")
CHECKPOINT_CHOICES: tuple[str, ...] = ("stage3", *AUTO_CHECKPOINTS)


def register(sub) -> None:
    """Add `dynabert profile`."""
    p = sub.add_parser(
        "profile", help="measure MACs, params and latency of sub-networks; fit and score the latency predictor",
        description="Profiles the 12 DynaBERT grid configs and random per-layer configs on the extracted "
                    "(physical) sub-networks, caches every timing, fits the latency predictor on the grid + "
                    "--n-random configs and reports its error (MAPE, Kendall tau) on --n-heldout other ones.")
    p.add_argument("--run-dir", required=True, type=Path, help="run directory, e.g. runs/sst2")
    p.add_argument("--checkpoint", default="auto",
                   help=f"stage whose weights to load ({', '.join(CHECKPOINT_CHOICES)}) or a checkpoint dir; "
                        "default: the latest of stage2, stage1, rewired, teacher")
    p.add_argument("--teacher", help="HF BERT dir to profile when the run has no checkpoint "
                                     "(default then: the embedded all-MiniLM-L6-v2)")
    p.add_argument("--scenario", action="append", metavar="KEY",
                   help="scenario key, e.g. cpu-eager-t2-b1-s128 or cuda-eager-fp16-b1-s128 (repeatable); "
                        "overrides the flags below")
    add_runtime_args(p)  # --device and --precision: the scenario's device and the timed model's dtype
    p.add_argument("--runtime", default="eager", choices=("eager", "eager-int8", "ort", "ort-int8"))
    p.add_argument("--threads", type=int, default=2, help="intra-op threads (default 2)")
    p.add_argument("--batch-size", type=int, default=1, help="sequences per forward pass (default 1)")
    p.add_argument("--max-length", type=int, help="tokens per sequence (default: the run's max_length, else 128)")
    p.add_argument("--n-random", type=int, default=50, help="random per-layer configs to fit on (default 50)")
    p.add_argument("--n-heldout", type=int, default=50, help="other random configs to score the predictor (50)")
    p.add_argument("--reference-every", type=int, default=10,
                   help="re-time the full model every K measured configs; >5%% drift is flagged (default 10)")
    p.add_argument("--min-run-time", type=float, default=0.5, help="seconds of timed runs per config (0.5)")
    p.add_argument("--timing", choices=TIMINGS, default="interleaved",
                   help="what the predictor is fitted and scored on: interleaved (default; each config's time "
                        "= its ratio to the full model from alternating calls x the full model's median, "
                        "robust on a machine shared with other jobs) or blocked (each config's own "
                        "blocked_autorange median, as in latency.csv)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random configs (default 0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)


def load_model_for_profile(run_dir: Path, checkpoint: str, teacher: str | None):
    """(elastic model, description of where it came from)."""
    from elastic.rundir import find_stage, read_run
    from elastic.weights import load_checkpoint, load_default_teacher, load_hf_bert

    if checkpoint not in ("auto", *CHECKPOINT_CHOICES):
        path = Path(checkpoint)
        if not path.is_dir():
            raise ValueError(f"--checkpoint: '{checkpoint}' is neither a stage ({', '.join(CHECKPOINT_CHOICES)}) "
                             "nor a checkpoint directory")
        return load_checkpoint(path)[0], str(path)
    names = AUTO_CHECKPOINTS if checkpoint == "auto" else (checkpoint,)
    found = find_stage(run_dir, names, finished=False)
    if found is not None:
        return load_checkpoint(found[1])[0], str(found[1])
    if checkpoint != "auto":
        raise FileNotFoundError(f"{run_dir / checkpoint} holds no checkpoint; train that stage first "
                                "or drop --checkpoint to use the latest one")
    run = read_run(run_dir)
    labels = int(run.get("task", {}).get("num_labels", 2))
    if teacher:
        return load_hf_bert(teacher, labels), f"{teacher} (the run has no checkpoint)"
    print(f"note: {run_dir} has no checkpoint ({', '.join(AUTO_CHECKPOINTS)}); profiling the embedded "
          "all-MiniLM-L6-v2 architecture (latency depends on shapes, not on trained weights)", file=sys.stderr)
    return load_default_teacher(labels)[0], "embedded all-MiniLM-L6-v2"


def scenarios_from_args(args: argparse.Namespace, run: dict[str, Any]) -> list:
    from profiling.scenario import Scenario

    if args.scenario:
        return [Scenario.parse(k) for k in args.scenario]
    seq = args.max_length or int(run.get("max_length") or 128)
    return [Scenario(device=scenario_device(args.device), runtime=args.runtime, threads=args.threads,
                     batch=args.batch_size, seq_len=seq, dtype=args.precision)]


def scenario_device(spec: str) -> str:
    """The latency scenario's device for a `--device` value (auto: cuda when present); one clear error
    for a device this machine lacks or that latency scenarios do not cover (mps)."""
    from elastic.device import resolve_device
    kind = resolve_device(spec).type
    if kind not in ("cpu", "cuda"):
        raise ValueError(f"--device {spec}: latency scenarios are measured on cpu or cuda, not {kind}")
    return kind


def _interleaved_ms(model, cfgs: Sequence, scenario, cache, full_ms: float, *, min_time_s: float,
                    progress: bool) -> list[float]:
    """Each config's ratio to the full model (alternating calls, cached) x the full model's median."""
    from tqdm.auto import tqdm

    from elastic.config import SubnetConfig
    from profiling.latency import measure_ratio, runner_for

    reference = None
    out = []
    for cfg in tqdm(cfgs, desc=f"ratios {scenario.key}", unit="cfg", disable=not progress):
        if reference is None:  # built lazily: a fully cached run needs no model at all
            key_hit = cache.get(_ratio_key(model, cfg, scenario))
            if key_hit is not None:
                out.append(key_hit["ratio"] * full_ms)
                continue
            reference = runner_for(model, SubnetConfig.full(model.arch), scenario)[1]
        rec = measure_ratio(model, cfg, scenario, reference, cache=cache, min_time_s=min_time_s)
        out.append(rec["ratio"] * full_ms)
    return out


def _ratio_key(model, cfg, scenario) -> str:
    from profiling.latency import cache_key

    return cache_key(model, cfg, scenario) + "|ratio-to-full"


def profile_run(run_dir: Path, model, scenarios: Sequence, *, n_random: int = 50, n_heldout: int = 50,
                reference_every: int = 10, min_run_time_s: float = 0.5, seed: int = 0,
                progress: bool = True, timing: Timing = "interleaved") -> dict[str, Any]:
    """Measure grid + random configs for each scenario, fit/score predictors, write the artifacts.

    Args:
        timing: "interleaved" fits and scores the predictor on ratio-to-full-model x full-model median
            (robust to other jobs); "blocked" on each config's own median. latency.csv always holds the
            blocked statistics.

    Returns:
        {"records": [...], "reports": {scenario_key: predictor.json dict}}.
    """
    from elastic.config import SubnetConfig, grid
    from profiling.latency import LatencyCache, measure_many, read_latency_csv, write_latency_csv
    from profiling.predictor import LatencyPredictor, evaluate_predictor

    if timing not in TIMINGS:
        raise ValueError(f"timing must be 'interleaved' or 'blocked', got '{timing}'")
    if n_random < 0 or n_heldout < 2:
        raise ValueError(f"--n-random must be >= 0 and --n-heldout >= 2, got {n_random} and {n_heldout}")
    arch = model.arch
    for s in scenarios:
        s.check(arch)
    grid_cfgs = [c for _, _, c in grid(arch)]
    # Separate generators: adding training configs never changes the held-out set.
    train_rng, held_rng = random.Random(seed), random.Random(seed + 1_000_003)
    train = [SubnetConfig.random(arch, train_rng) for _ in range(n_random)]
    held = [SubnetConfig.random(arch, held_rng) for _ in range(n_heldout)]
    cache = LatencyCache(run_dir / "latency_cache.jsonl")
    records, reports = [], {}
    # No workdir: each ONNX export lives in a temporary folder only until its session is built.
    kw = dict(reference_every=reference_every, progress=progress, min_run_time_s=min_run_time_s)
    for s in scenarios:
        grid_recs = measure_many(model, grid_cfgs, s, cache, count_fvcore=True, **kw)
        rand_recs = measure_many(model, train + held, s, cache, count_fvcore=False, **kw)
        fit_cfgs = grid_cfgs + train
        if timing == "blocked":
            all_ms = [r["median_ms"] for r in grid_recs + rand_recs]
        else:
            full_ms = grid_recs[0]["median_ms"]  # grid(arch)[0] is the full model
            all_ms = _interleaved_ms(model, fit_cfgs + held, s, cache, full_ms,
                                     min_time_s=max(min_run_time_s, 0.05), progress=progress)
        pred = LatencyPredictor.fit(fit_cfgs, all_ms[:len(fit_cfgs)], arch=arch, scenario=s.key, seed=seed)
        report = evaluate_predictor(pred, held, all_ms[len(fit_cfgs):])
        pred.report.update(report)
        pred.report["timing"] = timing
        pred.save(run_dir / "predictors" / f"{s.key}.json")
        if s is scenarios[0]:
            pred.save(run_dir / "predictor.json")
        reports[s.key] = pred.to_json()
        seen = set()
        for r in grid_recs + rand_recs:  # the grid and random sets can share a config
            if r["config_hash"] not in seen:
                seen.add(r["config_hash"])
                records.append(r)
    # Keep rows of scenarios profiled earlier and not re-run now.
    path = run_dir / "latency.csv"
    keys = {s.key for s in scenarios}
    old = [r for r in read_latency_csv(path) if r["scenario"] not in keys] if path.exists() else []
    write_latency_csv(old + records, path)
    return {"records": records, "reports": reports, "grid": grid(arch)}


def _print_tables(result: dict[str, Any], scenarios: Sequence) -> None:
    by_key = {(r["scenario"], r["config_hash"]): r for r in result["records"]}
    for s in scenarios:
        full = None
        print(f"\n{s.key}  (latency of the extracted model: median over timed blocks, ms)")
        print(f"{'width':>5} {'depth':>5} {'MACs (M)':>10} {'params (M)':>10} {'median ms':>10} {'p90 ms':>8} "
              f"{'speedup':>8} {'MACs ratio':>10}")
        for w, d, cfg in result["grid"]:
            r = by_key[(s.key, cfg.hash)]
            full = full or r
            print(f"{w:>5.2f} {d:>5.2f} {r['macs'] / 1e6:>10.1f} {r['params'] / 1e6:>10.2f} {r['median_ms']:>10.3f} "
                  f"{r['p90_ms']:>8.3f} {full['median_ms'] / r['median_ms']:>7.2f}x {r['macs'] / full['macs']:>10.3f}")
        rep = result["reports"][s.key]
        flagged = sum(bool(r.get("drift_flagged")) for r in result["records"] if r["scenario"] == s.key)
        print(f"predictor ({rep['kind']}, {rep.get('timing', 'blocked')} timing): MAPE {rep['mape_pct']:.2f}%, "
              f"Kendall tau {rep['kendall_tau']:.3f} on {rep['n_heldout']} held-out random configs; "
              f"{flagged} records flagged for >5% reference drift")


def _run(args: argparse.Namespace) -> int:
    from datetime import datetime, timezone

    from elastic.stages import read_run, write_run

    run_dir: Path = args.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    run = read_run(run_dir)
    scenarios = scenarios_from_args(args, run)
    model, source = load_model_for_profile(run_dir, args.checkpoint, args.teacher)
    model.eval()
    print(f"profiling {source}: {model.arch.num_layers} layers, hidden {model.arch.hidden_size}; "
          f"scenarios {', '.join(s.key for s in scenarios)}")
    result = profile_run(run_dir, model, scenarios, n_random=args.n_random, n_heldout=args.n_heldout,
                         reference_every=args.reference_every, min_run_time_s=args.min_run_time,
                         seed=args.seed, progress=not args.no_progress, timing=args.timing)
    _print_tables(result, scenarios)
    run = read_run(run_dir)  # again: profiling took minutes, a stage may have written it meanwhile
    run["profile"] = {"checkpoint": source, "scenarios": [s.key for s in scenarios], "n_random": args.n_random,
                      "n_heldout": args.n_heldout, "reference_every": args.reference_every,
                      "min_run_time_s": args.min_run_time, "seed": args.seed, "timing": args.timing,
                      "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    write_run(run_dir, run)
    print(f"\nwrote {run_dir / 'latency.csv'} and {run_dir / 'predictor.json'}")
    return 0
