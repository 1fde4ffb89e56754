"""GPU timing: CUDA events recorded around each call, read after the device has synchronized.

A host clock around an asynchronous CUDA launch measures the launch, not the kernels; CUDA events are
recorded on the stream and their elapsed time is read only after `torch.cuda.synchronize()`, so every
figure is the GPU's own time for one call. The statistics have the keys of `time_runner`'s CPU ones.
"""
from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np
import torch


def time_cuda_events(fn: Callable[[], Any], *, min_run_time_s: float = 1.0, warmup: int = 10,
                     min_calls: int = 20, max_calls: int = 10_000) -> dict[str, float | int]:
    """Time a callable that launches CUDA work, one pair of events per call.

    Args:
        fn: launches one forward pass on the current CUDA device (it may or may not synchronize).
        min_run_time_s: keep calling until this much wall time has passed (and `min_calls` calls).
        warmup: untimed calls first (cuBLAS heuristics, allocator, lazy module loading).
        min_calls / max_calls: bounds on the timed calls.

    Returns:
        {"median_ms", "p90_ms", "iqr_ms", "min_ms", "n"} with n = timed calls.

    Raises:
        ValueError: no CUDA device, or a non-positive `min_run_time_s`.
    """
    if not torch.cuda.is_available():
        raise ValueError("CUDA timing needs a CUDA device (torch.cuda.is_available() is False)")
    if min_run_time_s <= 0:
        raise ValueError(f"min_run_time_s must be > 0, got {min_run_time_s}")
    for _ in range(max(1, warmup)):
        fn()
    torch.cuda.synchronize()
    pairs: list[tuple[torch.cuda.Event, torch.cuda.Event]] = []
    start = time.perf_counter()
    while len(pairs) < max_calls and (len(pairs) < min_calls or time.perf_counter() - start < min_run_time_s):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        pairs.append((a, b))
        if len(pairs) % 50 == 0:
            b.synchronize()  # bound the queue so the wall-clock budget means GPU time, not launches
    torch.cuda.synchronize()
    times = np.asarray([a.elapsed_time(b) for a, b in pairs])  # ms
    q25, q50, q75, q90 = np.percentile(times, [25, 50, 75, 90])
    return {"median_ms": float(q50), "p90_ms": float(q90), "iqr_ms": float(q75 - q25),
            "min_ms": float(times.min()), "n": int(len(times))}
