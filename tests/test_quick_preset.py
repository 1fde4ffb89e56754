"""bench.quick_preset: its rules decide on dev alone, with the margins they state, and its report names the choice."""
from __future__ import annotations

import pytest

from bench.quick_preset import DECISIONS, VARIANTS, decide, markdown


def rec(task: str, **dev_test: tuple[float, float]) -> dict:
    return {"task": task, "seed": 42, "teacher_dev": 90.0,
            "budgets": {k: {"dev_mean": d, "test_mean": t, "dev_smallest": d - 5, "test_smallest": t - 5,
                            "seconds": 10.0, "steps": 1} for k, (d, t) in dev_test.items()}}


def test_the_longer_budget_must_buy_its_margin_on_dev():
    # 40 steps lead 20 by 0.6 and 0.2 dev points (mean 0.4 < 0.5): back to 20, however test reads
    recs = [rec("a", **{"40": (80.6, 70.0), "20": (80.0, 75.0)}), rec("b", **{"40": (80.2, 70.0), "20": (80.0, 75.0)})]
    d = decide(recs, "20", "40", -0.5, "budget")
    assert d["dev_diff"] == pytest.approx(-0.4) and d["test_diff"] == pytest.approx(5.0)
    assert d["chosen"] == "20" and d["challenger_ahead_on_dev"] == 0 and d["n"] == 2
    # a 0.7 lead keeps 40 even when test says the opposite
    recs[1]["budgets"]["40"]["dev_mean"] = 80.8
    assert decide(recs, "20", "40", -0.5, "budget")["chosen"] == "40"


def test_the_incumbent_recipe_stays_on_a_tie():
    recs = [rec("a", **{"40": (80.0, 70.0), "40-old": (80.0, 90.0)})]
    assert decide(recs, "40-old", "40", 0.0, "recipe")["chosen"] == "40"
    recs[0]["budgets"]["40-old"]["dev_mean"] = 80.1
    assert decide(recs, "40-old", "40", 0.0, "recipe")["chosen"] == "40-old"
    with pytest.raises(ValueError):
        decide([], "40-old", "40", 0.0, "recipe")


def test_the_rules_name_variants_that_are_trained():
    for challenger, incumbent, _, _ in DECISIONS:
        assert challenger in VARIANTS and incumbent in VARIANTS
    assert VARIANTS["40"] == ("--stage2-steps", "40")  # the preset itself, two epochs of 640 examples


def test_report_states_every_decision():
    recs = [rec("bbc", **{"40": (90.0, 91.0), "20": (89.0, 90.0), "40-old": (85.0, 86.0)})]
    r = {"tasks": ["bbc"], "seeds": [42], "variants": {k: list(v) for k, v in VARIANTS.items()}, "records": recs,
         "decisions": [decide(recs, *d) for d in DECISIONS], "total_seconds": 1.0, "fingerprint": {}}
    text = markdown(r)
    assert "| bbc | 42 | 90.00 | 90.00 (85.00) | 91.00 |" in text
    assert text.count("**40**") == 2  # both rules keep today's preset here
