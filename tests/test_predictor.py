"""The latency predictor recovers synthetic per-layer timings; JSON round trip; evaluation metrics."""
from __future__ import annotations

import random

import pytest

from elastic.model.config import BertArch, SubnetConfig
from profiling.predictor import LatencyPredictor, evaluate_predictor

# MiniLM-sized shape space (no weights needed): 6 layers, 12 heads, FFN 1536.
ARCH = BertArch(num_layers=6, hidden_size=384, num_heads=12, head_dim=32, intermediate_size=1536,
                vocab_size=99)


def synthetic_ms(cfg: SubnetConfig) -> float:
    """A known per-layer model with a non-linear head term (one head is slow per head) and FFN kink."""
    total = 0.9  # embeddings, pooler, classifier
    for h, n in zip(cfg.heads, cfg.ffn):
        total += 0.12 + 0.031 * h + 0.0011 * n + (0.06 if h == 1 else 0.0) + (0.05 if n > 768 else 0.0)
    return total


def _cfgs(seed: int, n: int) -> list[SubnetConfig]:
    rng = random.Random(seed)
    return [SubnetConfig.random(ARCH, rng) for _ in range(n)]


def test_recovers_synthetic_per_layer_timings():
    train, held = _cfgs(0, 60), _cfgs(1, 50)
    pred = LatencyPredictor.fit(train, [synthetic_ms(c) for c in train], arch=ARCH, scenario="cpu-eager-t2-b1-s128")
    report = evaluate_predictor(pred, held, [synthetic_ms(c) for c in held])
    assert report["mape_pct"] < 1.0
    assert report["kendall_tau"] > 0.98
    assert report["n_heldout"] == 50 and len(report["points"]) == 50
    # The fitted constant is the embeddings/pooler/classifier time we put in.
    assert pred.const_ms == pytest.approx(0.9, abs=0.02)


def test_linear_only_model_misses_the_nonlinearity():
    """With the tables forced to zero (huge ridge), the same data fits worse: the tables matter."""
    train, held = _cfgs(0, 60), _cfgs(1, 50)
    y = [synthetic_ms(c) for c in train]
    table = LatencyPredictor.fit(train, y, arch=ARCH, scenario="s")
    linear = LatencyPredictor.fit(train, y, arch=ARCH, scenario="s", ridges=(1e9,))
    truth = [synthetic_ms(c) for c in held]
    assert evaluate_predictor(linear, held, truth)["mape_pct"] > 3 * evaluate_predictor(table, held, truth)["mape_pct"]


def test_noisy_timings_still_rank_well():
    rng = random.Random(7)
    train, held = _cfgs(2, 60), _cfgs(3, 50)
    noisy = [synthetic_ms(c) * (1 + rng.gauss(0, 0.02)) for c in train]
    pred = LatencyPredictor.fit(train, noisy, arch=ARCH, scenario="s")
    report = evaluate_predictor(pred, held, [synthetic_ms(c) for c in held])
    assert report["mape_pct"] < 3.0 and report["kendall_tau"] > 0.9


def test_json_round_trip(tmp_path):
    train = _cfgs(0, 30)
    pred = LatencyPredictor.fit(train, [synthetic_ms(c) for c in train], arch=ARCH, scenario="cpu-ort-t2-b1-s128")
    report = evaluate_predictor(pred, train[:10], [synthetic_ms(c) for c in train[:10]])
    pred.report.update({k: report[k] for k in ("mape_pct", "kendall_tau", "n_heldout", "points")})
    path = pred.save(tmp_path / "predictor.json")
    back = LatencyPredictor.load(path)
    d = back.to_json()
    assert d["scenario"] == "cpu-ort-t2-b1-s128" and d["kind"] == "layer-table"
    assert d["n_heldout"] == 10 and len(d["points"]) == 10
    for c in _cfgs(5, 5):
        assert back.predict(c) == pytest.approx(pred.predict(c), rel=1e-12)


def test_bad_inputs():
    cfgs = _cfgs(0, 6)
    with pytest.raises(ValueError, match="same length"):
        LatencyPredictor.fit(cfgs, [1.0] * 5, arch=ARCH, scenario="s")
    with pytest.raises(ValueError, match="positive"):
        LatencyPredictor.fit(cfgs, [1.0] * 5 + [0.0], arch=ARCH, scenario="s")
    with pytest.raises(FileNotFoundError, match="dynabert profile"):
        LatencyPredictor.load("/nonexistent/predictor.json")
