"""Hardware/software fingerprint attached to every latency record (where a number was measured)."""
from __future__ import annotations

import hashlib
import json
import os
import platform
from functools import lru_cache
from typing import Any


@lru_cache(maxsize=1)
def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo (Linux), else `platform.processor()`."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(module: str) -> str | None:
    try:
        return __import__(module).__version__
    except ImportError:
        return None


def fingerprint(threads: int, device: str = "cpu") -> dict[str, Any]:
    """Where a latency was measured: CPU, cores, library versions, threads, platform (and GPU if cuda).

    Args:
        threads: intra-op threads the measurement used.
        device: "cpu" or "cuda" (adds `gpu_fingerprint()`: GPU name, capability, memory, CUDA version).

    Returns:
        A JSON-serialisable dict.
    """
    import torch

    fp: dict[str, Any] = {
        "cpu": cpu_model(),
        "logical_cores": os.cpu_count(),
        "threads": int(threads),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": _version("onnxruntime"),
        "transformers": _version("transformers"),
        # Thread-pool waiting changes timings a lot on a shared machine (spinning threads fight other jobs).
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
    }
    if device == "cuda" and torch.cuda.is_available():
        fp.update(gpu_fingerprint())
    return fp


def gpu_fingerprint(index: int | None = None) -> dict[str, Any]:
    """The GPU a CUDA figure was measured on: name, compute capability, memory, CUDA and cuDNN versions.

    Args:
        index: CUDA device index (default: the current device).
    """
    import torch

    i = torch.cuda.current_device() if index is None else index
    props = torch.cuda.get_device_properties(i)
    capability = ".".join(map(str, torch.cuda.get_device_capability(i)))
    return {"gpu": torch.cuda.get_device_name(i), "gpu_capability": capability,
            "gpu_memory_gib": round(props.total_memory / 2**30, 1), "gpu_count": torch.cuda.device_count(),
            "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version()}


def fingerprint_hash(fp: dict[str, Any]) -> str:
    """12 hex chars of SHA-256 over the canonical JSON of a fingerprint (a cache-key component)."""
    return hashlib.sha256(json.dumps(fp, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:12]
