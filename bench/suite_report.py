"""results/suite.md from suite.json's content (bench/suite.py): completeness, the issue's targets (decided on dev,
reported on test), the differences with their intervals in words, the cost per deployable size, one table per
task."""
from __future__ import annotations

from collections import defaultdict
from typing import Any, Mapping

MAIN = ("standard - released (grid mean)", "hard - nohard (grid mean)", "nohard - released (grid mean)")
NEAR_MAJORITY = 1.0  # dev points: a teacher this close to the majority class learned (almost) nothing


def verdict(d: Mapping[str, Any]) -> str:
    """A difference in words: a tie when its interval covers 0, else which side is ahead."""
    a, b = _sides(d["name"])
    ci = f"[{d['test_ci_low']:+.2f}, {d['test_ci_high']:+.2f}]"
    if d["test_ci_low"] <= 0 <= d["test_ci_high"]:
        return f"tie (the 95 % interval {ci} covers 0)"
    return f"{a if d['test_diff'] > 0 else b} ahead ({ci})"


def _sides(name: str) -> tuple[str, str]:
    left = name.split(" (")[0]
    if " - " in left:
        a, b = left.split(" - ", 1)
        return a.strip(), b.strip()
    return "A", "B"


def _diff_table(rows: list[Mapping[str, Any]]) -> list[str]:
    out = ["| difference | dev | test | test 95 % interval | in words |", "|---|---|---|---|---|"]
    for d in rows:
        out.append(f"| {d['name']} | {d['dev_diff']:+.2f} | {d['test_diff']:+.2f} | [{d['test_ci_low']:+.2f}, "
                   f"{d['test_ci_high']:+.2f}] | {verdict(d)} |")
    return out


def _met(m: Any) -> str:
    return "undecided (no complete task-seed)" if m is None else ("**met**" if m else "**NOT met**")


def render(r: Mapping[str, Any]) -> str:
    n_all = len(r["tasks"]) * len(r["seeds"])
    steps = r["steps_per_stage"]
    uniform = len({json_key(v) for v in steps.values()}) == 1
    lines = ["# Task suite: the standard recipe vs the released recipe, vs itself without the hard-label term, vs "
             "same-harness students", "",
             f"complete: {len(r['complete'])} of {n_all} task-seeds"
             + (f" ({', '.join(r['complete'])})" if r["complete"] else ""), ""]
    if r["missing"]:
        lines += [f"Missing: {', '.join(r['missing'])}."]
        lines += [f"- {k} (started): {v}" for k, v in r["in_progress"].items()]
        lines += ["", "Every figure below is over the complete task-seeds only; a target over fewer than all tasks "
                  "is provisional.", ""]
    lines += [f"Tasks {', '.join(r['tasks'])}; seeds {', '.join(map(str, r['seeds']))}; max length "
              f"{r['max_length']}; batch {r.get('batch_size', 32)}. Steps: "
              + (f"teacher {next(iter(steps.values()))['teacher']}, then {next(iter(steps.values()))['stage']} for "
                 "stage 1, each stage 2 and each student (the TinyBERT student of depth 3 trains two phases of "
                 "that many; the one of depth 6 splits them)" if uniform and steps else json_key(steps)) + ".",
              "Accuracy in %; dev decides, test reports. Differences: mean over seeds (and grid points), test "
              f"intervals by paired bootstrap over test examples ({r['bootstrap']['resamples']} resamples, pooled "
              "over seeds); 'all' weighs every task the same. An interval that covers 0 is a tie.", ""]
    if r.get("plan"):
        p = r["plan"]
        lines += [f"Budget chosen by bench/suite_plan.py: about {p['total_hours']:.1f} h for the whole suite alone on 2 "
                  f"cores (upper bound {p['upper_bound_hours']:.1f} h; limit {p['budget_hours']:g} h). Measured: "
                  + ", ".join(f"{k} {v / 60:.0f} min" for k, v in r.get("task_seed_seconds", {}).items() if v)
                  + ("." if r.get("task_seed_seconds") else "nothing yet."), ""]
    if len(r.get("trained_at", [])) > 1:
        lines += [f"Note: the task-seeds were trained at {len(r['trained_at'])} different commits of the training "
                  f"code ({', '.join(c[:10] for c in r['trained_at'])})"
                  + (f"; the training sources differ between them in {', '.join(r['trained_at_changes'])} only"
                     if r.get("trained_at_changes") else "") + ".", ""]
    weak = _near_majority(r)
    if weak:
        lines += ["Learned little at this budget: " + "; ".join(
            f"{t} (teacher dev {td:.2f}, majority class {md:.2f})" for t, td, md in weak)
                  + f". Its teacher is within {NEAR_MAJORITY:g} dev point of always predicting the most frequent "
                  "label, so its rows and differences say little about the methods (they count in every target and "
                  "in 'all' as planned).", ""]
    lines += ["## Targets (decided on dev, reported on test)", ""]
    for t in r["targets"]:
        prov = (f" (provisional: {t['tasks_complete']} of {t['tasks_planned']} tasks complete)"
                if t.get("tasks_complete", 0) < t.get("tasks_planned", 0) and t["met"] is not None else "")
        lines.append(f"- {t['target']}: {_met(t['met'])}{prov}" + (f"; {t['figures_are']}: "
                                                               f"{_fmt(t['figures'], t.get('signed', True))}"
                                                               if t.get("figures") else ""))
        if t.get("test"):
            lines.append("  - test: " + "; ".join(f"{k} {v[0]:+.2f} [{v[1]:+.2f}, {v[2]:+.2f}]"
                                                  for k, v in t["test"].items()))
    by_task: dict[str, list] = defaultdict(list)
    for d in r["diffs"]:
        by_task[d["task"]].append(d)
    if by_task.get("all"):
        alls = by_task["all"]
        lines += ["", "## Differences over all tasks", ""]
        lines += _diff_table([d for d in alls if d["name"] in MAIN or d["name"].startswith("dynabert <=")])
        per_seed = r.get("seed_dev_diffs") or {}
        if len(r["seeds"]) > 1 and per_seed:
            lines += ["", "The intervals above are over test examples only; the seeds' spread is the training noise "
                      "they leave out. Dev difference per seed (each task weighing the same):", "",
                      "| difference | " + " | ".join(f"seed {sd}" for sd in r["seeds"]) + " |",
                      "|---|" + "---|" * len(r["seeds"])]
            lines += [f"| {name} | " + " | ".join(f"{v[str(sd)]:+.2f}" if str(sd) in v else "-" for sd in r["seeds"])
                      + " |"
                      for name, v in per_seed.items()]
        lines += ["", "Per grid point (standard - released; hard - nohard; each point - the largest student of no "
                  "larger MACs):", ""]
        lines += _diff_table([d for d in alls if d["name"] not in MAIN and not d["name"].startswith("dynabert <=")])
    c = r["cost"]
    lines += ["", "## Cost per deployable size", ""]
    if c.get("dynabert_seconds_per_size") is None:
        lines.append("No complete task-seed yet.")
    else:
        lines.append(f"One DynaBERT run ({c['dynabert_parts']}; teacher {c['teacher']}) serves {c['sizes_served']} "
                     f"grid sizes (and the per-layer front that search makes of them): "
                     f"**{c['dynabert_seconds_per_size']:.0f} s per size** (mean over complete task-seeds; teacher "
                     f"{c['teacher_seconds']:.0f} s). One student of each size: "
                     + ", ".join(f"{k} {v:.0f} s (ratio {c['ratio'].get(k, float('nan')):.2f})"
                                 for k, v in c["student_seconds"].items()) + ".")
    for task in r["tasks"]:
        rows = [x for x in r["rows"] if x["task"] == task]
        if not rows:
            continue
        lines += ["", f"## {task}", ""]
        maj = r.get("majority", {}).get(task)
        if maj:
            lines += ["Majority class (always the most frequent label): "
                      + ", ".join(f"{s} {maj[s]:.2f}" for s in ("dev", "test") if s in maj) + "."
                      + (" Grid points within " f"{NEAR_MAJORITY:g} dev point of it (they predict about one class), "
                         "summed over seeds: " + ", ".join(f"{v} {n} of {k}" for v, (n, k) in stuck.items()) + "."
                         if (stuck := stuck_points(r, task)) else ""), ""]
        lines += ["| row | width | depth | MACs (M) | dev | test | seeds |", "|---|---|---|---|---|---|---|"]
        agg: dict[tuple, list] = defaultdict(list)
        for x in rows:
            agg[(x["name"], x["width_mult"], x["depth_mult"])].append(x)
        for (name, w, d), xs in agg.items():
            mean = lambda k: sum(x[k] for x in xs) / len(xs)  # noqa: E731
            lines.append(f"| {name} | {w:g} | {d:g} | {mean('macs') / 1e6:.1f} | {mean('dev_acc'):.2f} | "
                         f"{mean('test_acc'):.2f} | {len(xs)} |")
        lines += [""] + _diff_table([d for d in by_task.get(task, []) if d["name"] in MAIN
                                     or d["name"].startswith("dynabert <=")])
    return "\n".join(lines) + "\n"


def stuck_points(r: Mapping[str, Any], task: str) -> dict[str, tuple[int, int]]:
    """Per grid variant of `task`: (grid rows whose dev accuracy is within NEAR_MAJORITY points of the majority
    class's, or below it; grid rows), over the seeds; {} without a majority figure."""
    maj = r.get("majority", {}).get(task, {}).get("dev")
    if maj is None:
        return {}
    out = {}
    for v in ("standard", "nohard", "released"):
        devs = [x["dev_acc"] for x in r["rows"] if x["task"] == task and x["name"] == v]
        if devs:
            out[v] = (sum(d - maj <= NEAR_MAJORITY for d in devs), len(devs))
    return out


def _near_majority(r: Mapping[str, Any]) -> list[tuple[str, float, float]]:
    """(task, teacher dev, majority-class dev) for tasks whose teacher's mean dev accuracy is within NEAR_MAJORITY
    points of the majority class's: a description of the data, not a rule that changes any figure."""
    out = []
    for task in r["tasks"]:
        maj = r.get("majority", {}).get(task, {}).get("dev")
        devs = [x["dev_acc"] for x in r["rows"] if x["task"] == task and x["name"] == "teacher"]
        if maj is not None and devs and sum(devs) / len(devs) - maj <= NEAR_MAJORITY:
            out.append((task, sum(devs) / len(devs), maj))
    return out


def json_key(v: Any) -> str:
    import json
    return json.dumps(v, sort_keys=True)


def _fmt(fig: Any, signed: bool = True) -> str:
    """A target's figures: differences signed, ratios (a target's `signed` False) not."""
    if isinstance(fig, dict):
        return ", ".join(f"{k} {v:{'+' if signed else ''}.2f}" if isinstance(v, (int, float)) else f"{k} {v}"
                         for k, v in fig.items())
    return str(fig)
