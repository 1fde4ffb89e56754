"""`latency.csv` (docs/ARTIFACTS.md): its writer and its typed reader; the columns are `elastic.rundir`'s schema."""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any, Iterable

from elastic.rundir import CSV_SCHEMAS, LATENCY_CSV

LATENCY_COLUMNS: tuple[str, ...] = CSV_SCHEMAS[LATENCY_CSV].columns
# Ours, after the contract's columns: drift of the reference (full) model around this record.
EXTRA_COLUMNS: tuple[str, ...] = ("min_ms", "reference_ms", "reference_drift_pct", "drift_flagged")


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
