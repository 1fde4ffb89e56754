"""Timing a runner: blocked timings (`time_runner`) and latency ratios from interleaved calls (`paired_ratio`).

On the CPU, `torch.utils.benchmark.Timer.blocked_autorange` after a warm-up: median, p90 and IQR over the
blocks (ms); on CUDA, CUDA events after synchronization (`profiling/cuda_timing.py`).
"""
from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np
import torch

from elastic.training.device import synchronize


def paired_ratio(fn: Callable[[], Any], fn_ref: Callable[[], Any], *, threads: int, min_time_s: float = 3.0,
                 min_rounds: int = 5, warmup: int = 2, settle: int = 3,
                 device: str = "cpu") -> dict[str, float | int]:
    """Latency ratio t(fn) / t(fn_ref) from interleaved calls, robust to a machine whose load changes.

    Sides alternate A B, B A, ... (so neither side always runs second); each round gives one ratio and
    the median ratio is returned. Slow drifts and bursts of other jobs hit both sides of a round alike,
    which blocked timings taken seconds apart cannot offer. On `device="cuda"` the device is synchronized
    before and after every timed call, so each host-clock interval holds exactly that call's GPU work.

    `settle` untimed calls of a side run right before its timed call, so that each side is timed in the
    steady state of a model serving requests back to back. Without them every timed call starts with the
    caches (and the allocator) holding the *other* model's state, which slows a small model's first calls
    after a large one and inflates its ratio (docs/RECIPES.md). `settle=0` gives the cold ratio.

    Returns:
        {"ratio", "ratio_iqr", "rounds", "median_ms", "ref_median_ms", "settle"} (times per call, ms).
    """
    if min_rounds < 1 or min_time_s < 0 or settle < 0:
        raise ValueError(f"min_rounds must be >= 1, min_time_s >= 0 and settle >= 0, got {min_rounds}, "
                         f"{min_time_s}, {settle}")
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
                for _ in range(settle):  # untimed: this side's weights back in cache, as in serving
                    f()
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
            "median_ms": float(np.median(a)), "ref_median_ms": float(np.median(b)), "settle": settle}


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
