"""Latency of PHYSICAL sub-networks (`extract(model, cfg)`) on a scenario, with a disk cache.

On the CPU, timing uses `torch.utils.benchmark.Timer.blocked_autorange` for every runtime (for ONNX Runtime
the timed statement is `session.run`); on CUDA, CUDA events around each call, read after synchronization
(`profiling/cuda_timing.py`), and every CUDA runner synchronizes before it returns, so host clocks (warm-up,
`paired_ratio`) see finished work. On the CPU: a warm-up, then blocks of runs for at least `min_run_time_s`
and 5 calls; we keep median, p90 and IQR over the blocks (ms) and n (blocks). Records carry a fingerprint and
are cached by model shape + config hash + scenario key + fingerprint hash, so a re-run measures nothing it
has. `paired_ratio` gives latency ratios from calls interleaved with a reference model, which stay meaningful
on a machine shared with other jobs (there, also start Python with OMP_WAIT_POLICY=PASSIVE: spinning OpenMP
threads fighting other processes can make 2-thread timings several times slower).
"""
from __future__ import annotations

import copy
import csv
import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch
from torch import nn

from elastic.config import SubnetConfig
from elastic.device import synchronize, torch_dtype
from elastic.extract import extract
from elastic.model import ElasticBertForSequenceClassification
from elastic.rundir import CSV_SCHEMAS, LATENCY_CSV
from profiling.fingerprint import fingerprint, fingerprint_hash
from profiling.flops import analytic_macs, fvcore_macs, param_count
from profiling.scenario import Scenario

LATENCY_COLUMNS: tuple[str, ...] = CSV_SCHEMAS[LATENCY_CSV].columns
# Ours, after the contract's columns: drift of the reference (full) model around this record.
EXTRA_COLUMNS: tuple[str, ...] = ("min_ms", "reference_ms", "reference_drift_pct", "drift_flagged")
DRIFT_THRESHOLD = 0.05


def model_key(model: ElasticBertForSequenceClassification) -> str:
    """8 hex chars identifying the architecture and label count (latency does not depend on weight values)."""
    text = json.dumps({"arch": model.arch.to_dict(), "num_labels": model.num_labels}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


class LatencyCache:
    """Append-only JSON-lines cache of latency records (`<run>/latency_cache.jsonl`).

    Args:
        path: the cache file; created on the first `put`. Broken lines (an interrupted write) are skipped.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._data: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    item = json.loads(line)
                    self._data[item["key"]] = item["record"]
                except (json.JSONDecodeError, KeyError, TypeError):
                    continue

    @staticmethod
    def key(model_id: str, cfg: SubnetConfig, scenario: Scenario, fp_hash: str) -> str:
        return f"{model_id}|{cfg.hash}|{scenario.key}|{fp_hash}"

    def get(self, key: str) -> dict[str, Any] | None:
        rec = self._data.get(key)
        return None if rec is None else dict(rec)

    def put(self, key: str, record: dict[str, Any]) -> None:
        self._data[key] = dict(record)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps({"key": key, "record": record}) + "\n")

    def __len__(self) -> int:
        return len(self._data)


def cache_key(model: ElasticBertForSequenceClassification, cfg: SubnetConfig, scenario: Scenario) -> str:
    """Cache key of a measurement on THIS machine: model shape, config hash, scenario, fingerprint hash."""
    fp = fingerprint(scenario.threads, scenario.device)
    return LatencyCache.key(model_key(model), cfg, scenario, fingerprint_hash(fp))


def make_inputs(scenario: Scenario, vocab_size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded random token ids and an all-ones mask, (batch, seq_len) int64 on the scenario's device."""
    gen = torch.Generator().manual_seed(seed)
    # Ids from 1 up: 0 is usually [PAD]; the value does not change the time, only realism.
    ids = torch.randint(1, vocab_size, (scenario.batch, scenario.seq_len), generator=gen)
    return ids.to(scenario.device), torch.ones_like(ids).to(scenario.device)


def build_runner(small: nn.Module, scenario: Scenario, *, workdir: str | os.PathLike | None = None,
                 onnx_path: str | os.PathLike | None = None) -> Callable[[], Any]:
    """A zero-argument callable running one forward pass of the extracted model in the scenario's runtime.

    Args:
        small: the extracted model (not modified; INT8 runtimes quantize a copy).
        scenario: device/runtime/threads/batch/seq_len.
        workdir: where ONNX files go (a temporary folder when None).
        onnx_path: an fp32 ONNX export of `small` to reuse (exports are slow; dynamic shapes make one
            export serve every batch and sequence length).
    """
    ids, mask = make_inputs(scenario, int(small.config.vocab_size))
    if scenario.uses_ort:
        from profiling.onnx_export import export_onnx, ort_feeds, ort_session, quantize_onnx_int8

        own = workdir is None and onnx_path is None
        folder = Path(tempfile.mkdtemp(prefix="dynabert-onnx-") if workdir is None else workdir)
        try:
            path = Path(onnx_path) if onnx_path else export_onnx(small, folder / "model.onnx")
            if scenario.int8:
                q = path.with_name(f"{path.stem}.int8.onnx")
                path = q if q.exists() else quantize_onnx_int8(path, q)
            sess = ort_session(path, threads=scenario.threads, device=scenario.device)
        finally:
            if own:  # the session holds the model in memory; a BERT export is ~100 MB of disk
                shutil.rmtree(folder, ignore_errors=True)
        feeds = ort_feeds(ids, mask)
        return lambda: sess.run(None, feeds)
    model = copy.deepcopy(small).eval().to(scenario.device, torch_dtype(scenario.dtype))
    if scenario.int8:
        try:
            from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_
        except ImportError:
            raise ValueError("runtime eager-int8 needs torchao (pip install torchao); "
                             "or measure ort-int8 instead") from None
        quantize_(model, Int8DynamicActivationInt8WeightConfig())

    sync = synchronize if scenario.device == "cuda" else (lambda _device: None)

    @torch.inference_mode()
    def run() -> torch.Tensor:
        out = model(ids, mask).logits
        sync(scenario.device)  # the call ends when the GPU is done, not when the launch returns
        return out

    return run


def runner_for(model: ElasticBertForSequenceClassification, cfg: SubnetConfig, scenario: Scenario, *,
               workdir: str | os.PathLike | None = None) -> tuple[nn.Module, Callable[[], Any]]:
    """(extracted model, its runner); ORT exports are kept in `workdir` by config and reused."""
    small = extract(model, cfg).eval()
    onnx_path = None
    if scenario.uses_ort and workdir is not None:
        # One fp32 export per config serves every batch/sequence length (dynamic shapes): reuse it.
        from profiling.onnx_export import export_onnx

        onnx_path = Path(workdir) / f"{model_key(model)}-{cfg.hash}.onnx"
        if not onnx_path.exists():
            export_onnx(small, onnx_path)
    return small, build_runner(small, scenario, workdir=workdir, onnx_path=onnx_path)


def paired_ratio(fn: Callable[[], Any], fn_ref: Callable[[], Any], *, threads: int, min_time_s: float = 3.0,
                 min_rounds: int = 5, warmup: int = 2, device: str = "cpu") -> dict[str, float | int]:
    """Latency ratio t(fn) / t(fn_ref) from interleaved calls, robust to a machine whose load changes.

    Calls alternate A B, B A, ... (so neither side always runs second); each round gives one ratio and
    the median ratio is returned. Slow drifts and bursts of other jobs hit both sides of a round alike,
    which blocked timings taken seconds apart cannot offer. On `device="cuda"` the device is synchronized
    before and after every timed call, so each host-clock interval holds exactly that call's GPU work.

    Returns:
        {"ratio", "ratio_iqr", "rounds", "median_ms", "ref_median_ms"} (times per call, ms).
    """
    if min_rounds < 1 or min_time_s < 0:
        raise ValueError(f"min_rounds must be >= 1 and min_time_s >= 0, got {min_rounds}, {min_time_s}")
    prev = torch.get_num_threads()
    torch.set_num_threads(threads)
    a_times: list[float] = []
    b_times: list[float] = []
    try:
        for _ in range(warmup):
            fn()
            fn_ref()
        start, i = time.perf_counter(), 0
        while i < min_rounds or time.perf_counter() - start < min_time_s:
            for f, sink in ((fn, a_times), (fn_ref, b_times))[:: 1 if i % 2 == 0 else -1]:
                synchronize(device)
                t0 = time.perf_counter()
                f()
                synchronize(device)
                sink.append(time.perf_counter() - t0)
            i += 1
    finally:
        torch.set_num_threads(prev)
    a, b = np.asarray(a_times) * 1e3, np.asarray(b_times) * 1e3
    ratios = a / b
    q25, q75 = np.percentile(ratios, [25, 75])
    return {"ratio": float(np.median(ratios)), "ratio_iqr": float(q75 - q25), "rounds": int(len(ratios)),
            "median_ms": float(np.median(a)), "ref_median_ms": float(np.median(b))}


def time_runner(fn: Callable[[], Any], *, threads: int, min_run_time_s: float = 1.0,
                warmup: int = 3, min_blocks: int = 5, device: str = "cpu") -> dict[str, float | int]:
    """Time `fn` with torch.utils.benchmark: `warmup` untimed calls, then blocked_autorange
    (`device="cuda"`: CUDA events after synchronization instead, `time_cuda_events`).

    The timed span is at least `min_run_time_s` and at least `min_blocks` calls long (estimated from
    the warm-up), so that slow configs (a batch of 32 can take a second) still get a median of several
    blocks rather than of one.

    Returns:
        {"median_ms", "p90_ms", "iqr_ms", "min_ms", "n"} (n = timed blocks; each block's time is per call).
    """
    from torch.utils import benchmark

    if min_run_time_s <= 0:
        raise ValueError(f"min_run_time_s must be > 0, got {min_run_time_s}")
    if device == "cuda":
        from profiling.cuda_timing import time_cuda_events
        return time_cuda_events(fn, min_run_time_s=min_run_time_s, warmup=max(warmup, 10))
    prev = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        warm = []
        for _ in range(max(1, warmup)):
            t0 = time.perf_counter()
            fn()
            warm.append(time.perf_counter() - t0)
        span = max(min_run_time_s, min_blocks * float(np.median(warm)))
        m = benchmark.Timer(stmt="fn()", globals={"fn": fn}, num_threads=threads).blocked_autorange(
            min_run_time=span)
    finally:
        torch.set_num_threads(prev)
    times = np.asarray(m.times) * 1e3
    q25, q50, q75, q90 = np.percentile(times, [25, 50, 75, 90])
    return {"median_ms": float(q50), "p90_ms": float(q90), "iqr_ms": float(q75 - q25),
            "min_ms": float(times.min()), "n": int(len(times))}


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
        {"config_hash", "scenario", "ratio", "ratio_iqr", "rounds", "cached"}; ratio = t(cfg) / t(full).
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
    return {**rec, "cached": False}


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


def write_latency_csv(records: Iterable[dict[str, Any]], path: str | os.PathLike) -> Path:
    """Write `latency.csv` (docs/ARTIFACTS.md columns, then ours); fingerprint as a JSON string."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=[*LATENCY_COLUMNS, *EXTRA_COLUMNS], extrasaction="ignore")
        w.writeheader()
        for rec in records:
            row = dict(rec)
            row["fingerprint"] = json.dumps(rec["fingerprint"], sort_keys=True)
            row["macs_fvcore"] = "" if rec.get("macs_fvcore") is None else rec["macs_fvcore"]
            w.writerow(row)
    os.replace(tmp, path)
    return path


def read_latency_csv(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Read `latency.csv` back into typed records.

    Raises:
        FileNotFoundError: no such file. ValueError: a required column is missing.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: run `dynabert profile --run-dir {path.parent}` first")
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = set(LATENCY_COLUMNS) - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path} lacks columns {sorted(missing)}; it was not written by `dynabert profile`")
        rows = list(reader)
    ints = ("macs", "params", "threads", "batch", "seq_len", "n")
    out = []
    for r in rows:
        rec: dict[str, Any] = dict(r)
        for k in ints:
            rec[k] = int(r[k])
        rec["macs_fvcore"] = int(r["macs_fvcore"]) if r.get("macs_fvcore") else None
        for k in ("median_ms", "p90_ms", "iqr_ms"):
            rec[k] = float(r[k])
        rec["fingerprint"] = json.loads(r["fingerprint"])
        for k in ("min_ms", "reference_ms", "reference_drift_pct"):
            rec[k] = float(r[k]) if r.get(k) else None
        if "drift_flagged" in r:
            rec["drift_flagged"] = r["drift_flagged"] == "True"
        out.append(rec)
    return out
