"""The latency cache (`<run>/latency_cache.jsonl`): records keyed by model shape, config, scenario and machine.

A record is reused only on the same machine in the same state (its fingerprint hash is in the key), so a
re-run measures nothing it has and a new machine measures everything again.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from elastic.model.config import SubnetConfig
from elastic.model.modeling import ElasticBertForSequenceClassification
from profiling.fingerprint import fingerprint, fingerprint_hash
from profiling.scenario import Scenario


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


# The graph ORT runtimes time (profiling/runners.py: the ONNX Runtime-fused export) and how its sessions wait
# (`ort_session`: pool threads spin during a run only); in ORT keys, so that records timed on an earlier graph or
# session setting are measured again, not reused.
ORT_GRAPH = "ort-fused-spin-during-run"


def cache_key(model: ElasticBertForSequenceClassification, cfg: SubnetConfig, scenario: Scenario) -> str:
    """Cache key of a measurement on THIS machine: model shape, config hash, scenario, fingerprint hash (and, for
    ONNX Runtime scenarios, the graph timed)."""
    fp = fingerprint(scenario.threads, scenario.device)
    key = LatencyCache.key(model_key(model), cfg, scenario, fingerprint_hash(fp))
    return f"{key}|{ORT_GRAPH}" if scenario.uses_ort else key
