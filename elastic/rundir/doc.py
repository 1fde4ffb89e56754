"""The run-directory contract (docs/ARTIFACTS.md), generated from `elastic.rundir.ARTIFACTS` so it cannot drift.

Regenerate with `python -m elastic.rundir.doc > docs/ARTIFACTS.md`; tests/test_artifacts_doc.py fails when it
is stale. The table (paths, writers, contents, every CSV's columns) comes from `elastic/rundir/contract.py`; the prose
around it lives here.
"""
from __future__ import annotations

from elastic.rundir import ARTIFACTS

INTRO = """\
# Run directory contract (`runs/<name>/`)

Generated from `elastic/rundir/contract.py` by `python -m elastic.rundir.doc > docs/ARTIFACTS.md` (a test keeps it in sync).

Every stage writes here. The dashboard reads, except its Export page: it writes `exports/<name>/` (and adds to
the latency and evaluation caches it times and re-scores with) through the `dynabert export` workflow. All
metrics are in % (accuracy, F1, MCC x100, Spearman x100). Cost columns carry their unit in the name: `macs`
(multiply-accumulates, fvcore's "flops"), `params` (count), `*_ms` (milliseconds). `config_json` is
`SubnetConfig.to_json()` (canonical), `config_hash` is `SubnetConfig.hash`. One object owns the run directory:
`elastic.rundir.RunDir` gives every path below (no other module names an artifact file), reads and writes the
JSON files against one schema each (atomic writes; one error type, `RunDirError`, naming the file and the fix),
and finds a stage's checkpoint; the list below and the schema of every CSV (used by its writer and by its
reader) live in `elastic/rundir/`; the dashboard's loaders and checks live in `app/dashboard/artifacts.py`."""

SCENARIO_KEY = """\
Scenario key (string): `{device}-{runtime}-t{threads}-b{batch}-s{seq_len}`, e.g. `cpu-eager-t2-b1-s128`;
runtime in `eager`, `eager-int8`, `ort`, `ort-int8`. A CPU dtype other than fp32 is named after the runtime
(`cpu-eager-bf16-t2-b1-s128`, eager only); CUDA keys always name the dtype and no threads:
`cuda-{runtime}-{fp32|bf16|fp16}-b{batch}-s{seq_len}`, e.g. `cuda-eager-fp16-b32-s128` (CUDA figures carry
`gpu`, `gpu_capability`, `gpu_memory_gib`, `cuda`, `cudnn` in their fingerprint). Checkpoints' `arch` holds
`model_type: roberta` for RoBERTa (absent: bert); `run.json`'s stage options hold `runtime: {device, precision}`."""


def render() -> str:
    """Markdown of docs/ARTIFACTS.md: the intro, one table row per artifact, the scenario key."""
    rows = ["| file | written by | content |", "|---|---|---|"]
    rows += [f"| `{a.path}` | {a.written_by} | {a.describe()} |" for a in ARTIFACTS]
    return "\n\n".join([INTRO, "\n".join(rows), SCENARIO_KEY]) + "\n"


if __name__ == "__main__":
    print(render(), end="")
