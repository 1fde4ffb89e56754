"""Latency predictor for the search: an additive per-layer table fitted by least squares.

Model (milliseconds): t(cfg) = c0 + sum over kept layers of layer(h, n), with
    layer(h, n) = c_layer + c_head * h + c_ffn * n + head_table[h] + ffn_table(n),
where c0 is the embeddings/pooler/classifier constant, the linear part captures "more heads, more
time", and the two ridge-penalised tables capture what is not linear (small GEMMs run less
efficiently; kernels change with shape). `ffn_table` is piecewise linear between knots, so any FFN size
is predicted. The fit minimises RELATIVE squared error (rows weighted by 1 / t), which is what MAPE
scores, and picks the ridge strength by k-fold cross-validation on the training configs.
"""
from __future__ import annotations

import os
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from elastic.model.config import BertArch, SubnetConfig
from elastic.rundir import PREDICTOR_JSON, read_json, write_json

KIND = "layer-table"
DEFAULT_RIDGES: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 1e6)


def _hat(x: float, knots: Sequence[float]) -> np.ndarray:
    """Piecewise-linear interpolation weights of x over sorted knots (clamped at the ends)."""
    w = np.zeros(len(knots))
    x = min(max(x, knots[0]), knots[-1])
    i = int(np.searchsorted(knots, x, side="right")) - 1
    if i >= len(knots) - 1:
        w[-1] = 1.0
    else:
        t = (x - knots[i]) / (knots[i + 1] - knots[i])
        w[i], w[i + 1] = 1.0 - t, t
    return w


@dataclass
class LatencyPredictor:
    """Fitted additive per-layer latency model for one scenario (all coefficients in ms).

    Build with `LatencyPredictor.fit(...)` or `LatencyPredictor.load(path)`.
    """

    scenario: str
    num_heads: int
    intermediate_size: int
    ffn_knots: list[int]
    const_ms: float
    layer_ms: float
    per_head_ms: float
    per_neuron_ms: float
    head_table_ms: list[float]
    ffn_table_ms: list[float]
    ridge: float
    n_train: int
    kind: str = KIND
    report: dict[str, Any] = field(default_factory=dict)

    # ---- features ---------------------------------------------------------------------------
    @staticmethod
    def _features(cfg: SubnetConfig, num_heads: int, knots: Sequence[int]) -> np.ndarray:
        """[1, L, sum h, sum n, one-hot counts of h (num_heads), FFN knot weights (len(knots))]."""
        heads = np.zeros(num_heads)
        ffn = np.zeros(len(knots))
        for h, n in zip(cfg.heads, cfg.ffn):
            if not 1 <= h <= num_heads:
                raise ValueError(f"config keeps {h} heads in a layer; the predictor knows 1..{num_heads}")
            heads[h - 1] += 1
            ffn += _hat(float(n), knots)
        linear = [1.0, len(cfg.layers), float(sum(cfg.heads)), float(sum(cfg.ffn))]
        return np.concatenate([linear, heads, ffn])

    # ---- fit / predict ----------------------------------------------------------------------
    @classmethod
    def fit(cls, cfgs: Sequence[SubnetConfig], measured_ms: Sequence[float], *, arch: BertArch,
            scenario: str, n_ffn_knots: int = 9, ridges: Sequence[float] = DEFAULT_RIDGES,
            folds: int = 5, seed: int = 0) -> "LatencyPredictor":
        """Least-squares fit on measured configs.

        Args:
            cfgs / measured_ms: training configs and their measured median latency (ms).
            arch: the architecture (head count, FFN size).
            scenario: the scenario key the timings come from.
            n_ffn_knots: knots of the FFN table, evenly spaced over 0..intermediate_size.
            ridges: candidate penalties of the tables; chosen by `folds`-fold CV (1e6 ~ linear only).
            seed: fold assignment.

        Raises:
            ValueError: lengths differ, too few configs, or a non-positive time.
        """
        y = np.asarray(measured_ms, dtype=float)
        if len(cfgs) != len(y):
            raise ValueError(f"cfgs ({len(cfgs)}) and measured_ms ({len(y)}) must have the same length")
        if len(y) < 5:
            raise ValueError(f"need at least 5 measured configs to fit, got {len(y)}")
        if np.any(~np.isfinite(y)) or np.any(y <= 0):
            raise ValueError("measured_ms must be positive and finite")
        if n_ffn_knots < 2:
            raise ValueError(f"n_ffn_knots must be >= 2, got {n_ffn_knots}")
        if not ridges:
            raise ValueError("ridges must name at least one penalty")
        knots = sorted({int(round(k)) for k in np.linspace(0, arch.intermediate_size, n_ffn_knots)})
        X = np.stack([cls._features(c, arch.num_heads, knots) for c in cfgs])
        idx = list(range(len(y)))
        random.Random(seed).shuffle(idx)
        k = max(2, min(folds, len(y)))
        fold_of = {i: j % k for j, i in enumerate(idx)}
        best, best_err = ridges[0], float("inf")
        for lam in ridges:
            errs = []
            for f in range(k):
                tr = np.array([fold_of[i] != f for i in range(len(y))])
                coef = _solve(X[tr], y[tr], lam)
                errs.append(np.abs(X[~tr] @ coef / y[~tr] - 1.0))
            err = float(np.mean(np.concatenate(errs)))
            if err < best_err:
                best, best_err = lam, err
        coef = _solve(X, y, best)
        H = arch.num_heads
        return cls(scenario=scenario, num_heads=H, intermediate_size=arch.intermediate_size,
                   ffn_knots=knots, const_ms=float(coef[0]), layer_ms=float(coef[1]),
                   per_head_ms=float(coef[2]), per_neuron_ms=float(coef[3]),
                   head_table_ms=[float(v) for v in coef[4:4 + H]],
                   ffn_table_ms=[float(v) for v in coef[4 + H:]], ridge=float(best), n_train=len(y),
                   report={"cv_mape_pct": round(100 * best_err, 3)})

    def _coef(self) -> np.ndarray:
        return np.array([self.const_ms, self.layer_ms, self.per_head_ms, self.per_neuron_ms,
                         *self.head_table_ms, *self.ffn_table_ms])

    def predict(self, cfg: SubnetConfig) -> float:
        """Predicted median latency of `cfg` in this predictor's scenario (ms)."""
        return float(self._features(cfg, self.num_heads, self.ffn_knots) @ self._coef())

    def layer_ms_table(self) -> dict[str, list[float]]:
        """Predicted time of ONE layer (ms) for each head count at full FFN, and each FFN knot at full heads."""
        full_h, full_n = self.num_heads, self.intermediate_size
        one = lambda h, n: self.predict(SubnetConfig((0,), (h,), (n,))) - self.const_ms  # noqa: E731
        return {"by_heads": [one(h, full_n) for h in range(1, full_h + 1)],
                "by_ffn": [one(full_h, max(1, n)) for n in self.ffn_knots]}

    # ---- persistence ------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """`predictor.json` content: evaluation report keys at top level (ARTIFACTS.md), then parameters."""
        d = asdict(self)
        report = d.pop("report")
        return {"scenario": self.scenario, "kind": self.kind, **report, **d}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "LatencyPredictor":
        if d.get("kind") != KIND:
            raise ValueError(f"predictor kind '{d.get('kind')}' is not '{KIND}'")
        names = set(cls.__dataclass_fields__) - {"report"}
        missing = names - set(d) - {"kind"}
        if missing:
            raise ValueError(f"predictor JSON lacks {sorted(missing)}")
        params = {k: d[k] for k in names if k in d}
        report = {k: v for k, v in d.items() if k not in names}
        return cls(**params, report=report)

    def save(self, path: str | os.PathLike) -> Path:
        return write_json(path, self.to_json(), schema=PREDICTOR_JSON, indent=1)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "LatencyPredictor":
        """Load `predictor.json`.

        Raises:
            FileNotFoundError: no file (run `dynabert profile` first). ValueError: malformed.
        """
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"{path} not found: run `dynabert profile --run-dir {path.parent}` first")
        return cls.from_json(read_json(path, PREDICTOR_JSON, label=str(path), written_by="dynabert profile"))


def _solve(X: np.ndarray, y: np.ndarray, lam: float) -> np.ndarray:
    """Relative least squares (rows / y) with a ridge penalty on the table columns only (4 onwards)."""
    w = 1.0 / y
    A = X * w[:, None]
    b = np.ones_like(y)
    n_tab = X.shape[1] - 4
    # The penalty rows are scaled like the data rows so that lam means the same for fast and slow targets.
    scale = np.sqrt(lam) * float(np.mean(w))
    P = np.hstack([np.zeros((n_tab, 4)), scale * np.eye(n_tab)])
    coef, *_ = np.linalg.lstsq(np.vstack([A, P]), np.concatenate([b, np.zeros(n_tab)]), rcond=None)
    return coef


def evaluate_predictor(predictor: LatencyPredictor, cfgs: Sequence[SubnetConfig],
                       measured_ms: Sequence[float]) -> dict[str, Any]:
    """Error of the predictor on held-out configs.

    Returns:
        {"mape_pct": mean |pred/measured - 1| in %, "kendall_tau": rank agreement (scipy),
         "n_heldout": count, "points": [{"config_hash", "predicted_ms", "measured_ms"}]}.
    """
    from scipy.stats import kendalltau

    y = np.asarray(measured_ms, dtype=float)
    if len(cfgs) != len(y) or len(y) < 2:
        raise ValueError(f"need >= 2 held-out configs with one time each, got {len(cfgs)} configs, {len(y)} times")
    pred = np.array([predictor.predict(c) for c in cfgs])
    tau = kendalltau(pred, y).statistic
    return {
        "mape_pct": float(100 * np.mean(np.abs(pred / y - 1.0))),
        "kendall_tau": float(tau),
        "n_heldout": int(len(y)),
        "points": [{"config_hash": c.hash, "predicted_ms": float(p), "measured_ms": float(m)}
                   for c, p, m in zip(cfgs, pred, y)],
    }
