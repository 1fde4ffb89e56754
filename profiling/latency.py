"""Latency of PHYSICAL sub-networks (`extract(model, cfg)`) on a scenario, with a disk cache.

On the CPU, timing uses `torch.utils.benchmark.Timer.blocked_autorange` for every runtime (for ONNX Runtime
the timed statement is `session.run`); on CUDA, CUDA events around each call, read after synchronization
(`profiling/cuda_timing.py`), and every CUDA runner synchronizes before it returns, so host clocks (warm-up,
`paired_ratio`) see finished work. On the CPU: a warm-up, then blocks of runs for at least `min_run_time_s`
and 5 calls; we keep median, p90 and IQR over the blocks (ms) and n (blocks). Records carry a fingerprint and
are cached by model shape + config hash + scenario key + fingerprint hash, so a re-run measures nothing it
has. `paired_ratio` gives latency ratios from calls interleaved with a reference model (each timed call right
after untimed ones of the same model: warm caches, as in serving), which stay meaningful
on a machine shared with other jobs (there, also start Python with OMP_WAIT_POLICY=PASSIVE: spinning OpenMP
threads fighting other processes can make 2-thread timings several times slower).
"""
from __future__ import annotations

import os
from typing import Any, Callable, Iterable

from elastic.model.config import SubnetConfig
from elastic.model.modeling import ElasticBertForSequenceClassification
from profiling.fingerprint import fingerprint
from profiling.flops import analytic_macs, fvcore_macs, param_count
from profiling.scenario import Scenario
# The pieces, each in its own module. `measure*` look `runner_for`, `time_runner` and `paired_ratio` up in
# this module's namespace (tests replace them here).
from profiling.latency_cache import LatencyCache, cache_key
from profiling.runners import runner_for
from profiling.timing import paired_ratio, time_runner

DRIFT_THRESHOLD = 0.05


def measure(model: ElasticBertForSequenceClassification, cfg: SubnetConfig, scenario: Scenario, *,
            cache: LatencyCache | None = None, min_run_time_s: float = 1.0, warmup: int = 3,
            count_fvcore: bool = True, workdir: str | os.PathLike | None = None) -> dict[str, Any]:
    """Latency record of sub-network `cfg` of `model`, measured on its extracted model (or from the cache).

    Args:
        model: the elastic super-network.
        cfg: the sub-network.
        scenario: where to measure; checked against the model and this machine.
        cache: consulted first, filled after a measurement.
        min_run_time_s: seconds of timed runs (after warm-up).
        warmup: untimed calls first.
        count_fvcore: also run fvcore (a jit trace: ~1 s on a 6-layer model) for `macs_fvcore`.
        workdir: folder for ONNX files of ORT runtimes.

    Returns:
        A dict with the `latency.csv` columns (fingerprint as a dict) plus `cached` (bool).
    """
    scenario.check(model.arch)
    cfg.validate(model.arch)
    fp = fingerprint(scenario.threads, scenario.device)
    key = cache_key(model, cfg, scenario)
    if cache is not None and (hit := cache.get(key)) is not None:
        hit["cached"] = True
        return hit
    small, run = runner_for(model, cfg, scenario, workdir=workdir)
    stats = time_runner(run, threads=scenario.threads, min_run_time_s=min_run_time_s, warmup=warmup,
                        device=scenario.device)
    rec: dict[str, Any] = {
        "config_hash": cfg.hash, "config_json": cfg.to_json(),
        "macs": analytic_macs(model.arch, cfg, scenario.seq_len, batch=scenario.batch,
                              num_labels=model.num_labels),
        "macs_fvcore": fvcore_macs(small, scenario.seq_len, scenario.batch) if count_fvcore else None,
        "params": param_count(model.arch, cfg, model.num_labels),
        "scenario": scenario.key, "device": scenario.device, "runtime": scenario.runtime,
        "threads": scenario.threads, "batch": scenario.batch, "seq_len": scenario.seq_len,
        **stats, "fingerprint": fp,
    }
    if cache is not None:
        cache.put(key, rec)
    rec["cached"] = False
    return rec


def measure_ratio(model: ElasticBertForSequenceClassification, cfg: SubnetConfig, scenario: Scenario,
                  reference: Callable[[], Any], *, cache: LatencyCache | None = None, min_time_s: float = 1.0,
                  min_rounds: int = 8, workdir: str | os.PathLike | None = None) -> dict[str, Any]:
    """Latency of `cfg` relative to the full model, from calls interleaved with `reference` (cached).

    Args:
        reference: a runner of the full model in the same scenario (`runner_for(model, full, scenario)[1]`).
        min_time_s / min_rounds: how long / how many A-B rounds to run (`paired_ratio`).

    Returns:
        {"config_hash", "scenario", "ratio", "ratio_iqr", "rounds", "cached"}; ratio = t(cfg) / t(full). A
        fresh measurement (not a cache hit) also has "ref_median_ms" (the full model's median over these
        rounds) and "settle" (untimed calls before each timed one); they belong to this call and are not cached.
    """
    scenario.check(model.arch)
    key = cache_key(model, cfg, scenario) + "|ratio-to-full"
    if cache is not None and (hit := cache.get(key)) is not None:
        hit["cached"] = True
        return hit
    _, run = runner_for(model, cfg, scenario, workdir=workdir)
    pr = paired_ratio(run, reference, threads=scenario.threads, min_time_s=min_time_s, min_rounds=min_rounds,
                      warmup=1, device=scenario.device)
    rec = {"config_hash": cfg.hash, "scenario": scenario.key, "ratio": pr["ratio"], "ratio_iqr": pr["ratio_iqr"],
           "rounds": pr["rounds"]}
    if cache is not None:
        cache.put(key, rec)
    return {**rec, "cached": False, "ref_median_ms": float(pr["ref_median_ms"]), "settle": pr["settle"]}


def measure_many(model: ElasticBertForSequenceClassification, cfgs: Iterable[SubnetConfig],
                 scenario: Scenario, cache: LatencyCache | None = None, *, reference_every: int = 10,
                 drift_threshold: float = DRIFT_THRESHOLD, progress: bool = True,
                 **measure_kwargs: Any) -> list[dict[str, Any]]:
    """Measure many configs; re-time the full model every `reference_every` measured configs.

    Drift = |t_ref(now) / t_ref(first) - 1|, in %. Every measured record gets `reference_ms` (mean of the
    two reference timings around it, so `median_ms / reference_ms` is a ratio to the full model taken at
    the same time), `reference_drift_pct` (the larger drift of those two) and `drift_flagged` (above
    `drift_threshold`); flagged blocks are also printed. Cache hits keep the values stored with them.

    Returns:
        One record per config, in input order.
    """
    from tqdm.auto import tqdm

    if reference_every < 1:
        raise ValueError(f"reference_every must be >= 1, got {reference_every}")
    cfgs = list(cfgs)
    full = SubnetConfig.full(model.arch)
    ref_kwargs = {k: v for k, v in measure_kwargs.items() if k != "count_fvcore"}

    def time_reference() -> float:
        rec = measure(model, full, scenario, cache=None, count_fvcore=False, **ref_kwargs)
        return rec["median_ms"]

    ref0: float | None = None
    prev_drift, prev_ref, block, out = 0.0, 0.0, [], []

    def close_block(now_ms: float) -> float:
        drift = abs(now_ms / ref0 - 1.0)
        worst = max(prev_drift, drift)
        for rec in block:
            rec["reference_ms"] = 0.5 * (prev_ref + now_ms)
            rec["reference_drift_pct"] = round(100 * worst, 2)
            rec["drift_flagged"] = worst > drift_threshold
            if cache is not None:  # store again, now with the reference timings around it
                cache.put(cache_key(model, SubnetConfig.from_json(rec["config_json"]), scenario),
                          {k: v for k, v in rec.items() if k != "cached"})
        if worst > drift_threshold and block:
            hint = ("" if os.environ.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE" else
                    " (on a shared machine, start with OMP_WAIT_POLICY=PASSIVE so idle threads do not spin)")
            tqdm.write(f"warning: reference (full model) latency drifted {100 * worst:.1f}% "
                       f"(> {100 * drift_threshold:.0f}%) around {len(block)} configs: the machine is busy or "
                       f"throttling; these records are flagged{hint}")
        block.clear()
        return drift

    bar = tqdm(cfgs, desc=f"latency {scenario.key}", unit="cfg", disable=not progress)
    for cfg in bar:
        rec = measure(model, cfg, scenario, cache=cache, **measure_kwargs)
        if not rec["cached"]:
            if ref0 is None:
                ref0 = prev_ref = time_reference()
            block.append(rec)
            if len(block) >= reference_every:
                now = time_reference()
                prev_drift = close_block(now)
                prev_ref = now
        else:
            rec.setdefault("reference_ms", None)
            rec.setdefault("reference_drift_pct", None)
            rec.setdefault("drift_flagged", False)
        out.append(rec)
        bar.set_postfix(ms=f"{rec['median_ms']:.2f}")
    if block:
        close_block(time_reference())
    return out


def measure_front(model: ElasticBertForSequenceClassification, cfgs: Iterable[SubnetConfig], scenario: Scenario, *,
                  min_time_s: float = 1.0, min_rounds: int = 8, progress: bool = True) -> dict[str, Any]:
    """Latencies of many configs that must be compared with each other (a front, a grid), all on one clock.

    Each config is timed as its paired ratio to the full model (`paired_ratio`: alternating order, warm
    sides, at least `min_rounds` rounds and `min_time_s` seconds), and every ratio is multiplied by the full
    model's median over all rounds of the call. Blocked timings of one config after another drift with the
    machine, enough to reorder fronts (docs/RECIPES.md); ratios taken in the same rounds as the full model
    cancel that drift.
    Nothing is cached: the common full-model time belongs to this call.

    Returns:
        {"latency_ms": {hash: ms}, "ratio": {hash: ratio}, "ratio_iqr": {hash: iqr}, "full_model_ms",
        "full_model_ms_iqr", "configs_timed", "min_rounds", "min_time_s", "settle", "method", "fingerprint"}.
    """
    import numpy as np
    from tqdm.auto import tqdm

    scenario.check(model.arch)
    todo = {c.validate(model.arch).hash: c for c in cfgs}
    _, ref_fn = runner_for(model, SubnetConfig.full(model.arch), scenario)
    ratio, iqr, ref_ms, settle = {}, {}, [], None
    for h, cfg in tqdm(todo.items(), desc=f"paired latency {scenario.key}", unit="cfg", disable=not progress):
        rec = measure_ratio(model, cfg, scenario, ref_fn, min_time_s=min_time_s, min_rounds=min_rounds)
        ratio[h], iqr[h], settle = float(rec["ratio"]), float(rec["ratio_iqr"]), rec["settle"]
        ref_ms.append(rec["ref_median_ms"])
    full_ms = float(np.median(ref_ms)) if ref_ms else float("nan")
    return {"latency_ms": {h: r * full_ms for h, r in ratio.items()}, "ratio": ratio, "ratio_iqr": iqr,
            "full_model_ms": full_ms,
            "full_model_ms_iqr": float(np.subtract(*np.percentile(ref_ms, [75, 25]))) if ref_ms else float("nan"),
            "configs_timed": len(ratio), "min_rounds": min_rounds, "min_time_s": min_time_s, "settle": settle,
            "method": "paired ratio to the full model (alternating order, settle calls before each timed call) x "
                      "the full model's median over all rounds of this measurement",
            "fingerprint": fingerprint(scenario.threads, scenario.device)}
