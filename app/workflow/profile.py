"""The profiling action: MACs, parameters and measured latency of the grid and of random per-layer
sub-networks on each scenario, and the latency predictor the search uses (latency.csv, predictor.json,
predictors/<scenario>.json, run.json's `profile`)."""
from __future__ import annotations

import random
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional, Sequence

from elastic.training.device import DEFAULT_DEVICE, DEFAULT_PRECISION
from elastic.training.option_fields import option
from elastic.training.options import TIMINGS, Timing
from elastic.rundir import RunDir
from profiling.scenario import Runtime as ScenarioRuntime, Scenario

AUTO_CHECKPOINTS: tuple[str, ...] = ("stage2", "stage1", "rewired", "teacher")
CHECKPOINT_CHOICES: tuple[str, ...] = ("stage3", *AUTO_CHECKPOINTS)


@dataclass(frozen=True)
class ProfileOptions:
    """Options of `dynabert profile`; each field's help is its flag's (app/cli/profile.py generates the flags
    from these fields).

    Attributes:
        scenarios: scenario keys (the flags --scenario, or --target with --precisions/--runtimes); empty: one
            scenario from device/precision/runtime/threads/batch_size and max_length (None: the run's, else 128).
        device, precision: the scenario's device and the timed model's dtype (the flags --device/--precision).
    """

    run_dir: Path = option(help="run directory, e.g. runs/sst2")
    checkpoint: str = option("auto", help=f"stage whose weights to load ({', '.join(CHECKPOINT_CHOICES)}) or a "
                             "checkpoint dir; auto: the latest of stage2, stage1, rewired, teacher")
    teacher: Optional[str] = option(None, help="HF BERT dir to profile when the run has no checkpoint (default then: "
                                    "the embedded all-MiniLM-L6-v2)")
    scenarios: tuple[str, ...] = ()
    device: str = DEFAULT_DEVICE
    precision: str = DEFAULT_PRECISION
    runtime: ScenarioRuntime = option("eager", help="the scenario's runtime")
    threads: int = option(2, help="intra-op threads", min=1)
    batch_size: int = option(1, help="sequences per forward pass", min=1)
    max_length: Optional[int] = option(None, help="tokens per sequence (default: the run's max_length, else 128)",
                                       min=1)
    n_random: int = option(50, help="random per-layer configs to fit on", min=0)
    n_heldout: int = option(50, help="other random configs to score the predictor", min=2)
    reference_every: int = option(10, help="re-time the full model every K measured configs; >5% drift is flagged",
                                  min=1)
    min_run_time_s: float = option(0.5, help="seconds of timed runs per config", above=0)
    timing: Timing = option("interleaved", help="what the predictor is fitted and scored on: interleaved (each "
                            "config's time = its ratio to the full model from alternating calls x the full model's "
                            "median, robust on a machine shared with other jobs) or blocked (each config's own "
                            "blocked_autorange median, as in latency.csv)")
    seed: int = option(0, help="seed of the random configs")
    progress: bool = option(True, help="no progress bar")

    def __post_init__(self) -> None:
        if self.timing not in TIMINGS:
            raise ValueError(f"timing must be 'interleaved' or 'blocked', got '{self.timing}'")
        if self.n_random < 0 or self.n_heldout < 2:
            raise ValueError(f"--n-random must be >= 0 and --n-heldout >= 2, got {self.n_random} and "
                             f"{self.n_heldout}")
        for key in self.scenarios:  # before anything is written
            Scenario.parse(key)


@dataclass
class ProfileResult:
    """Every measured record, each scenario's predictor report, the grid, where the model came from."""

    records: list[dict[str, Any]]
    reports: dict[str, dict[str, Any]]
    grid: list
    scenarios: list = field(default_factory=list)
    source: str = ""

    def lines(self) -> list[str]:
        """The tables the command line prints: the grid per scenario and the predictor's error."""
        out = []
        by_key = {(r["scenario"], r["config_hash"]): r for r in self.records}
        for s in self.scenarios:
            full = None
            out += [f"\n{s.key}  (latency of the extracted model: median over timed blocks, ms)",
                    f"{'width':>5} {'depth':>5} {'MACs (M)':>10} {'params (M)':>10} {'median ms':>10} {'p90 ms':>8} "
                    f"{'speedup':>8} {'MACs ratio':>10}"]
            for w, d, cfg in self.grid:
                r = by_key[(s.key, cfg.hash)]
                full = full or r
                out.append(f"{w:>5.2f} {d:>5.2f} {r['macs'] / 1e6:>10.1f} {r['params'] / 1e6:>10.2f} "
                           f"{r['median_ms']:>10.3f} {r['p90_ms']:>8.3f} {full['median_ms'] / r['median_ms']:>7.2f}x "
                           f"{r['macs'] / full['macs']:>10.3f}")
            rep = self.reports[s.key]
            flagged = sum(bool(r.get("drift_flagged")) for r in self.records if r["scenario"] == s.key)
            out.append(f"predictor ({rep['kind']}, {rep.get('timing', 'blocked')} timing): MAPE "
                       f"{rep['mape_pct']:.2f}%, Kendall tau {rep['kendall_tau']:.3f} on {rep['n_heldout']} held-out "
                       f"random configs; {flagged} records flagged for >5% reference drift")
        return out


def load_model_for_profile(run_dir: Path, checkpoint: str, teacher: str | None):
    """(elastic model, description of where it came from)."""
    from elastic.rundir import find_stage, read_run
    from elastic.model.weights import load_checkpoint, load_default_teacher, load_hf_bert

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


def scenario_device(spec: str) -> str:
    """The latency scenario's device for a `--device` value (auto: cuda when present); one clear error
    for a device this machine lacks or that latency scenarios do not cover (mps)."""
    from elastic.training.device import resolve_device
    kind = resolve_device(spec).type
    if kind not in ("cpu", "cuda"):
        raise ValueError(f"--device {spec}: latency scenarios are measured on cpu or cuda, not {kind}")
    return kind


def scenarios_for(opts: ProfileOptions, run: dict[str, Any]) -> list:
    """The `Scenario`s of `opts`: its keys, else the one its device/runtime/threads/batch/length describe."""

    if opts.scenarios:
        return [Scenario.parse(k) for k in opts.scenarios]
    seq = opts.max_length or int(run.get("max_length") or 128)
    return [Scenario(device=scenario_device(opts.device), runtime=opts.runtime, threads=opts.threads,
                     batch=opts.batch_size, seq_len=seq, dtype=opts.precision)]


def _ratio_key(model, cfg, scenario) -> str:
    from profiling.latency_cache import cache_key

    return cache_key(model, cfg, scenario) + "|ratio-to-full"


def _interleaved_ms(model, cfgs: Sequence, scenario, cache, full_ms: float, *, min_time_s: float,
                    progress: bool, workdir: Optional[str] = None) -> list[float]:
    """Each config's ratio to the full model (alternating calls, cached) x the full model's median (ONNX exports
    of ORT runtimes reused from `workdir`)."""
    from tqdm.auto import tqdm

    from elastic.model.config import SubnetConfig
    from profiling.latency import measure_ratio, runner_for

    reference = None
    out = []
    for cfg in tqdm(cfgs, desc=f"ratios {scenario.key}", unit="cfg", disable=not progress):
        if reference is None:  # built lazily: a fully cached run needs no model at all
            key_hit = cache.get(_ratio_key(model, cfg, scenario))
            if key_hit is not None:
                out.append(key_hit["ratio"] * full_ms)
                continue
            reference = runner_for(model, SubnetConfig.full(model.arch), scenario, workdir=workdir)[1]
        rec = measure_ratio(model, cfg, scenario, reference, cache=cache, min_time_s=min_time_s, workdir=workdir)
        out.append(rec["ratio"] * full_ms)
    return out


def profile_model(run_dir: Path, model, scenarios: Sequence, *, n_random: int = 50, n_heldout: int = 50,
                  reference_every: int = 10, min_run_time_s: float = 0.5, seed: int = 0,
                  progress: bool = True, timing: Timing = "interleaved") -> ProfileResult:
    """Measure grid + random configs of `model` on each scenario, fit and score the predictors, write the
    artifacts into `run_dir` (rows of scenarios not profiled now are kept).

    Args:
        timing: "interleaved" fits and scores the predictor on ratio-to-full-model x full-model median
            (robust to other jobs); "blocked" on each config's own median. latency.csv always holds the
            blocked statistics.
    """
    from elastic.model.config import SubnetConfig, grid
    from profiling.latency_cache import LatencyCache
    from profiling.latency import measure_many
    from profiling.latency_csv import read_latency_csv, write_latency_csv
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
    rd = RunDir(run_dir)
    cache = LatencyCache(rd.latency_cache)
    records, reports = [], {}
    # One fp32 ONNX export per config for the whole profile (ORT runtimes): the blocked and the interleaved timing
    # and the fp32 and INT8 variants all start from it; the folder (a few GB for a BERT-base grid) goes at the end.
    onnx_dir = tempfile.TemporaryDirectory(prefix="dynabert-onnx-") if any(s.uses_ort for s in scenarios) else None
    workdir = onnx_dir.name if onnx_dir else None
    kw = dict(reference_every=reference_every, progress=progress, min_run_time_s=min_run_time_s, workdir=workdir)
    try:
        for s in scenarios:
            grid_recs = measure_many(model, grid_cfgs, s, cache, count_fvcore=True, **kw)
            rand_recs = measure_many(model, train + held, s, cache, count_fvcore=False, **kw)
            fit_cfgs = grid_cfgs + train
            if timing == "blocked":
                all_ms = [r["median_ms"] for r in grid_recs + rand_recs]
            else:
                full_ms = grid_recs[0]["median_ms"]  # grid(arch)[0] is the full model
                all_ms = _interleaved_ms(model, fit_cfgs + held, s, cache, full_ms, workdir=workdir,
                                         min_time_s=max(min_run_time_s, 0.05), progress=progress)
            pred = LatencyPredictor.fit(fit_cfgs, all_ms[:len(fit_cfgs)], arch=arch, scenario=s.key, seed=seed)
            report = evaluate_predictor(pred, held, all_ms[len(fit_cfgs):])
            pred.report.update(report)
            pred.report["timing"] = timing
            pred.save(rd.predictor(s.key))
            if s is scenarios[0]:
                pred.save(rd.predictor_json)
            reports[s.key] = pred.to_json()
            seen = set()
            for r in grid_recs + rand_recs:  # the grid and random sets can share a config
                if r["config_hash"] not in seen:
                    seen.add(r["config_hash"])
                    records.append(r)
    finally:
        if onnx_dir is not None:
            onnx_dir.cleanup()
    path = rd.latency_csv
    keys = {s.key for s in scenarios}
    old = [r for r in read_latency_csv(path) if r["scenario"] not in keys] if path.exists() else []
    write_latency_csv(old + records, path)
    return ProfileResult(records=records, reports=reports, grid=grid(arch), scenarios=list(scenarios))


def profile(opts: ProfileOptions) -> ProfileResult:
    """Profile a run's latest (or chosen) checkpoint on the options' scenarios; record it in run.json."""
    from elastic.rundir import read_run, write_run

    run_dir = Path(opts.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    scenarios = scenarios_for(opts, read_run(run_dir))
    model, source = load_model_for_profile(run_dir, opts.checkpoint, opts.teacher)
    model.eval()
    print(f"profiling {source}: {model.arch.num_layers} layers, hidden {model.arch.hidden_size}; "
          f"scenarios {', '.join(s.key for s in scenarios)}")
    result = profile_model(run_dir, model, scenarios, n_random=opts.n_random, n_heldout=opts.n_heldout,
                           reference_every=opts.reference_every, min_run_time_s=opts.min_run_time_s,
                           seed=opts.seed, progress=opts.progress, timing=opts.timing)
    result.source = source
    run = read_run(run_dir)  # again: profiling took minutes, a stage may have written it meanwhile
    run["profile"] = {"checkpoint": source, "scenarios": [s.key for s in scenarios], "n_random": opts.n_random,
                      "n_heldout": opts.n_heldout, "reference_every": opts.reference_every,
                      "min_run_time_s": opts.min_run_time_s, "seed": opts.seed, "timing": opts.timing,
                      "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    write_run(run_dir, run)
    return result
