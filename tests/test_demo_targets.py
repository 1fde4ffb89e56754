"""The demo's targets as bench/pipeline_quick.py checks them: dominance by a cheaper baseline, smallest point."""
from __future__ import annotations

from bench.pipeline_quick import demo_targets


def _g(w: float, d: float, macs: int, acc: float) -> dict:
    return {"width_mult": w, "depth_mult": d, "macs": macs, "test_acc": acc}


def test_a_cheaper_baseline_more_than_a_point_ahead_dominates():
    grid = [_g(1.0, 1.0, 700, 95.5), _g(1.0, 0.5, 350, 90.0), _g(0.25, 0.5, 88, 86.0)]
    ok = demo_targets(grid, [{"name": "int8", "macs": 700, "test_acc": 96.4},
                             {"name": "distil", "macs": 350, "test_acc": 91.0}])
    assert ok["dominated"] == [] and ok["smallest_test_acc"] == 86.0 and ok["met"]
    bad = demo_targets(grid, [{"name": "distil", "macs": 350, "test_acc": 91.5}])
    assert [(d["width_mult"], d["depth_mult"]) for d in bad["dominated"]] == [(1.0, 0.5)]
    assert not bad["met"]
    # a baseline costing more than a grid point never dominates it
    assert demo_targets(grid[2:], [{"name": "distil", "macs": 350, "test_acc": 99.0}])["dominated"] == []
    assert not demo_targets([_g(0.25, 0.5, 88, 84.9)], [])["met"]  # below 85
