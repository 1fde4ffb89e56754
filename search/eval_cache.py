"""Evaluating sub-networks once: a process-safe cache keyed by config hash, and the evaluator that uses it.

Optuna's samplers propose the same config again and again (NSGA-II children often equal a parent,
TPE re-samples its modes), and several workers share one study: every (config, split, fidelity) is
evaluated once, ever, per run dir. The cache is an append-only JSONL file; a per-key file lock (`filelock`:
`flock` on POSIX, `msvcrt.locking` on Windows) makes a second process wait for the first one's result
instead of evaluating the same config twice. Workers on other machines (their own copy of the run dir)
share results through the study instead (`search.objective.Objective._from_study`).
"""
from __future__ import annotations

import json
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from filelock import FileLock

from elastic.model.config import SubnetConfig

# (cfg, split, n_examples or None for the whole split) -> primary metric in %.
MetricFn = Callable[[SubnetConfig, str, "int | None"], float]


@contextmanager
def _flock(path: Path) -> Iterator[None]:
    """An exclusive lock on `path` (created, with its folder), held by any process of this host."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(path):
        yield


class EvalCache:
    """Append-only JSONL cache shared by every process that evaluates sub-networks of one run.

    Args:
        path: the `.jsonl` file (created on first write); per-key lock files, and the lock of the file
            itself (`_jsonl.lock`), live in `<path>.locks/`.
        namespace: prefix of every key (e.g. the checkpoint's stage: another checkpoint's results
            must not be reused).
    """

    def __init__(self, path: str | os.PathLike, *, namespace: str = ""):
        self.path = Path(path)
        self.namespace = namespace
        self._lock_dir = self.path.with_name(self.path.name + ".locks")
        self._records: dict[str, dict[str, Any]] = {}
        self._offset = 0

    def key(self, cfg: SubnetConfig, split: str, n_examples: int | None) -> str:
        """Cache key: namespace, split, fidelity (example count or `full`), the config's canonical hash."""
        return f"{self.namespace}{split}:{'full' if n_examples is None else n_examples}:{cfg.hash}"

    def _file_lock(self) -> Any:
        """The lock of the JSONL file (keys always hold ':', made '_', so no key's lock file has this name)."""
        return _flock(self._lock_dir / "_jsonl.lock")

    def _refresh(self) -> None:
        """Read lines appended since the last call (by any process)."""
        if not self.path.exists():
            return
        with self._file_lock(), open(self.path, "rb") as fh:
            fh.seek(self._offset)
            data = fh.read()
        end = data.rfind(b"\n") + 1  # a torn last line (killed writer) is left for no one
        for line in data[:end].splitlines():
            try:
                rec = json.loads(line)
                self._records[rec["key"]] = rec
            except (json.JSONDecodeError, KeyError, TypeError):
                continue
        self._offset += end

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored record for `key`, or None."""
        if key not in self._records:
            self._refresh()
        return self._records.get(key)

    def put(self, key: str, record: dict[str, Any]) -> None:
        """Append one record (a JSON-serialisable dict; `key` is added)."""
        rec = {**record, "key": key}
        line = (json.dumps(rec, sort_keys=True) + "\n").encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._file_lock(), open(self.path, "ab") as fh:
            fh.write(line)  # one write of one whole line under the lock: never interleaved
            fh.flush()
        self._records[key] = rec

    def __len__(self) -> int:
        self._refresh()
        return len(self._records)

    def get_or_compute(self, key: str, compute: Callable[[], dict[str, Any]]) -> tuple[dict[str, Any], bool]:
        """The record for `key`, computing and storing it once across all processes.

        Returns:
            (record, hit): hit is True when no computation ran in this call.
        """
        rec = self.get(key)
        if rec is not None:
            return rec, True
        safe = key.replace(":", "_").replace("/", "_")
        with _flock(self._lock_dir / f"{safe}.lock"):
            rec = self.get(key)  # another process may have finished it while we waited
            if rec is not None:
                return rec, True
            rec = compute()
            self.put(key, rec)
            return self._records[key], False


@dataclass
class CachedEvaluator:
    """`cfg -> dev metric (%)`, evaluated once per config and fidelity, with statistics.

    Args:
        metric_fn: (cfg, split, n_examples or None) -> metric in %; the expensive part.
        cache: where results persist; None keeps them in memory only.
        subset: examples of the dev subset for the low-fidelity pass (None: no multi-fidelity).
    """

    metric_fn: MetricFn
    cache: EvalCache | None = None
    subset: int | None = None
    n_calls: int = field(default=0, init=False)
    n_evals: int = field(default=0, init=False)
    eval_seconds: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        if self.subset is not None and self.subset < 1:
            raise ValueError(f"subset must be >= 1 examples, got {self.subset}")
        if self.cache is None:
            self.cache = _MemoryCache()

    def metric(self, cfg: SubnetConfig, split: str = "dev", n_examples: int | None = None
               ) -> tuple[float, bool]:
        """(metric in %, cache hit) of `cfg` on `split` (first `n_examples` of it, or all)."""
        self.n_calls += 1

        def compute() -> dict[str, Any]:
            t0 = time.perf_counter()
            value = float(self.metric_fn(cfg, split, n_examples))
            seconds = time.perf_counter() - t0
            self.n_evals += 1
            self.eval_seconds += seconds
            return {"config_json": cfg.to_json(), "split": split, "n_examples": n_examples,
                    "metric": value, "seconds": round(seconds, 4), "pid": os.getpid()}

        rec, hit = self.cache.get_or_compute(self.cache.key(cfg, split, n_examples), compute)
        return float(rec["metric"]), hit

    def __call__(self, cfg: SubnetConfig, split: str = "dev") -> float:
        """Full-fidelity metric (%) of `cfg` on `split`."""
        return self.metric(cfg, split)[0]


class _MemoryCache(EvalCache):
    """The same interface without a file (for tests and one-off scripts)."""

    def __init__(self) -> None:
        self.namespace = ""
        self._records = {}

    def get(self, key: str) -> dict[str, Any] | None:
        return self._records.get(key)

    def put(self, key: str, record: dict[str, Any]) -> None:
        self._records[key] = {**record, "key": key}

    def __len__(self) -> int:
        return len(self._records)

    def get_or_compute(self, key, compute):
        if key in self._records:
            return self._records[key], True
        self.put(key, compute())
        return self._records[key], False
