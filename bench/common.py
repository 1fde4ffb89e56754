"""Shared helpers for benchmarks: output paths and the hardware fingerprint written with every result."""
from __future__ import annotations

import json
import os
import platform
import shlex
import sys
from pathlib import Path
from typing import Any

import torch

# `make bench --quick` points the benches at a temporary folder through DYNABERT_RESULTS_DIR.
RESULTS = Path(os.environ.get("DYNABERT_RESULTS_DIR") or Path(__file__).resolve().parents[1] / "results")


def fingerprint(threads: int | None = None) -> dict[str, Any]:
    """CPU model, core count, library versions and threads: where a number was measured."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import transformers
    fp = {"cpu": cpu, "logical_cores": os.cpu_count(), "platform": platform.platform(),
          "python": platform.python_version(), "torch": torch.__version__,
          "transformers": transformers.__version__, "threads": threads or torch.get_num_threads()}
    try:
        fp["load_avg_1min"] = os.getloadavg()[0]  # other work on the machine while measuring
    except OSError:
        pass
    return fp


def fingerprint_line(fp: dict[str, Any]) -> str:
    """One report line naming the machine of `fingerprint()`."""
    load = f", load average {fp['load_avg_1min']:.2f} when written" if "load_avg_1min" in fp else ""
    return (f"Machine: {fp['cpu']} ({fp['logical_cores']} logical cores), {fp['platform']}, Python {fp['python']}, "
            f"torch {fp['torch']}, transformers {fp['transformers']}{load}.")


def write_result(name: str, data: dict[str, Any], markdown: str, directory: Path = RESULTS) -> None:
    """Write `<directory>/<name>.json` and `.md` (directory: results/ unless a smoke run writes elsewhere)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.json").write_text(json.dumps(data, indent=2) + "\n")
    (directory / f"{name}.md").write_text(markdown.rstrip() + "\n")


def load_1min() -> float | None:
    """The 1-minute load average now (other work on the machine), None where the OS has none."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def provenance() -> dict[str, Any]:
    """`commit` (HEAD of this checkout), `dirty` (uncommitted changes to tracked files outside results/, as
    `bench.run` stamps it) and `command`."""
    from bench import rundirs

    root = RESULTS.parent
    return {"commit": rundirs.git("rev-parse", "HEAD", root=root) or "unknown", "dirty": rundirs.tree_dirty(root),
            "command": shlex.join([sys.executable, *sys.argv])}


def bench_model(tiny: bool, num_labels: int = 2):
    """The model a timing bench measures, in eval mode: the embedded default teacher (all-MiniLM-L6-v2), or with
    `tiny` a seeded random 4-layer BERT (hidden 32, 4 heads, FFN 64) for quick runs."""
    from elastic.model.config import BertArch
    from elastic.model.modeling import ElasticBertForSequenceClassification
    from elastic.model.weights import load_default_teacher

    if not tiny:
        return load_default_teacher(num_labels)[0].eval()
    torch.manual_seed(0)
    return ElasticBertForSequenceClassification(BertArch(
        num_layers=4, hidden_size=32, num_heads=4, head_dim=8, intermediate_size=64, vocab_size=99,
        max_position_embeddings=512), num_labels).eval()
