"""What `dynabert run` is about to do and how long it should take here: the first lines it prints.

Seconds per optimizer step come from one measured run of the quick pipeline (`make demo`: BBC News, the
default all-MiniLM-L6-v2 teacher, batch 32, max length 64, which every BBC article fills): each stage's
wall-clock seconds divided by its steps, so a step's figure includes its share of the stage's evaluations.
bench/pipeline_quick.py derives them from its result file into app/data/step_rates.json (package data, with
the machine they were measured on). Another architecture or max length is scaled by the full model's MACs
per example (profiling/flops.py, analytic), another batch size linearly. Batches are padded only to their
longest example, so short texts train faster than this estimate; another machine differs by its speed.
"""
from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

STEP_RATES = Path(__file__).resolve().parents[1] / "data" / "step_rates.json"
# Stage 3 trains the 12 grid sub-networks with hard labels and no teacher: estimated at stage 2's rate (an upper
# bound, since it has no teacher pass).
_STAGE_TABLE = {"teacher": "teacher", "stage1": "stage1", "stage2": "stage2", "stage3": "stage2"}


@dataclass(frozen=True)
class StepRates:
    """Measured seconds per optimizer step: `seconds[stage][max_length]` at `batch_size`, on `measured_on`."""

    seconds: dict[str, dict[int, float]]
    batch_size: int
    measured_on: str


@functools.lru_cache(maxsize=1)
def step_rates() -> StepRates:
    """The step rates of app/data/step_rates.json (written by bench/pipeline_quick.py)."""
    raw = json.loads(STEP_RATES.read_text())
    return StepRates(seconds={stage: {int(n): float(v) for n, v in table.items()}
                              for stage, table in raw["seconds_per_step"].items()},
                     batch_size=int(raw["batch_size"]), measured_on=str(raw["measured_on"]))


def train_examples(opts: Mapping[str, Any]) -> int:
    """Training examples per epoch once the importance slice is held out and `limit_train` applied."""
    from elastic.data.tasks import load_task
    from elastic.training.prepare import MAX_HELDOUT

    task = load_task(str(opts["task"]), seed=int(opts["seed"]), text_columns=opts.get("text_columns"),
                     label_column=opts.get("label_column"))
    n = len(task.splits["train"])
    if opts["importance_split"] == "train-heldout":
        n -= min(MAX_HELDOUT, n // 10)
    return n if opts["limit_train"] is None else min(n, int(opts["limit_train"]))


def stage_steps(opts: Mapping[str, Any], n_train: int) -> dict[str, int]:
    """Optimizer steps of each training stage the options run (as `elastic.training.stages.run_stage` counts them)."""
    per_epoch = max(1, math.ceil(n_train / int(opts["batch_size"])))
    distil_per_epoch = max(1, math.ceil(n_train * (1 + int(opts["augment"] or 0)) / int(opts["batch_size"])))
    steps = {"teacher": max(1, math.ceil(float(opts["teacher_epochs"]) * per_epoch)),
             "stage1": max(1, math.ceil(float(opts["stage1_epochs"]) * distil_per_epoch)),
             "stage2": max(1, math.ceil(float(opts["stage2_epochs"]) * distil_per_epoch))}
    if opts["stage3"]:
        steps["stage3"] = max(1, math.ceil(float(opts["stage3_epochs"]) * per_epoch))
    return steps


def seconds_per_step(stage: str, arch: Any, max_length: int, batch_size: int) -> float:
    """Estimated seconds of one optimizer step: the measured rate at the nearest measured length, scaled by
    the full model's MACs (this architecture and length vs the measured ones) and by the batch size.

    Args:
        stage: teacher, stage1, stage2 or stage3.
        arch: the run's `BertArch` (the teacher's).
        max_length: tokens per example.
        batch_size: examples per step.
    """
    from elastic.model.config import SubnetConfig
    from elastic.model.weights import default_teacher_path, read_arch
    from profiling.flops import analytic_macs

    rates = step_rates()
    table = rates.seconds[_STAGE_TABLE[stage]]
    ref_len = min(table, key=lambda s: abs(s - max_length))
    ref_arch, _ = read_arch(default_teacher_path())
    ratio = (analytic_macs(arch, SubnetConfig.full(arch), max_length)
             / analytic_macs(ref_arch, SubnetConfig.full(ref_arch), ref_len))
    return table[ref_len] * ratio * batch_size / rates.batch_size


def plan_lines(opts: Mapping[str, Any]) -> list[str]:
    """The lines `dynabert run` prints before it starts: preset, data, length, steps, expected time.

    Args:
        opts: resolved pipeline options (`app.workflow.pipeline.resolve`).
    """
    from elastic.model.weights import default_teacher_path, read_arch, resolve_checkpoint_dir

    n = train_examples(opts)
    steps = stage_steps(opts, n)
    lines = [f"preset {opts['preset']}: {n:,} training examples (task {opts['task']}"
             + (f", limited by limit_train {n:,}" if opts["limit_train"] is not None and n == int(opts["limit_train"]) else "")
             + f"), max length {opts['max_length']}, batch {opts['batch_size']}",
             "steps per stage: " + ", ".join(f"{k} {v:,}" for k, v in steps.items())]
    try:
        arch, _ = read_arch(resolve_checkpoint_dir(opts["teacher"] or default_teacher_path()))
    except Exception as e:  # a hub id offline, a broken dir: the teacher stage will say so; the estimate cannot
        return lines + [f"expected time: unknown (teacher architecture not readable: {e})"]
    secs = {k: v * seconds_per_step(k, arch, int(opts["max_length"]), int(opts["batch_size"]))
            for k, v in steps.items()}
    lines.append(f"expected training time on this machine: about {_minutes(sum(secs.values()))} ("
                 + ", ".join(f"{k} {_minutes(v)}" for k, v in secs.items())
                 + f"); from step rates measured on {step_rates().measured_on}, scaled by MACs; batches shorter than the "
                 "max length go faster; profile, search, baselines and export come on top")
    return lines


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"
