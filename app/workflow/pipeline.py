"""`dynabert run`: the whole pipeline, one action after another, resumable.

Each stage calls the same workflow function as the subcommand a user can run by hand (`dynabert
train-teacher ...` -> `app.workflow.train.train_stage`), with typed options resolved from: built-in defaults
< preset < config file (TOML/YAML) < command-line flags. The actions skip what is already complete (training
stages keep `done.json`, the search resumes from its storage, latency measurements are cached), so
re-running the same `dynabert run` after an interruption continues where it stopped. The resolved
configuration is kept in `<run-dir>/pipeline.json` with the wall-clock seconds of every stage.
"""
from __future__ import annotations

import json
import os
import time
from datetime import datetime, timezone
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Callable, Literal, Mapping, Optional

from elastic.device import DEFAULT_DEVICE, DEFAULT_PRECISION
from elastic.options import DEFAULT_LR, DEFAULT_SCENARIO

Preset = Literal["quick", "standard", "paper", "released"]

STAGES = ("teacher", "rewire", "stage1", "stage2", "profile", "search", "baselines", "export")

# Every option the pipeline understands, with its default (used when neither preset, file nor flag sets it);
# examples/run.toml explains each one (tests/test_run_options.py keeps the two in step).
DEFAULTS: dict[str, Any] = {
    "task": "bbc", "text_columns": None, "label_column": None, "teacher": None, "max_length": 128, "seed": 42,
    "batch_size": 32, "lr": DEFAULT_LR,
    "teacher_epochs": 3.0, "stage1_epochs": 1.0, "stage2_epochs": 1.0, "stage3": False, "stage3_epochs": 1.0,
    "limit_train": None, "extra_subnets": 0, "teacher_width": "full", "importance_split": "train-heldout",
    "augment": 0, "mlm_checkpoint": None, "save_every": 100, "stage2_lr": None, "select_best": "off",
    "select_every": 50, "hard_weight": 0.0, "stage2_hard_weight": None, "hidden_weight": None, "batching": "random",
    "stage1_steps": None, "stage2_steps": None, "padding": "longest", "adam_eps": "torch", "subnet_forward": "shared-prefix",
    "importance_grads": "per-batch", "importance_order": "by-length", "importance_batch_size": 32,
    "scenario": DEFAULT_SCENARIO, "n_random": 50, "n_heldout": 50,
    "n_trials": 300, "sampler": "tpe", "objectives": "metric,latency", "n_workers": 1, "storage": None,
    "study_name": None,
    "baselines": "distilbert,tinybert,int8", "baseline_steps": None, "export": "knee",
    "device": DEFAULT_DEVICE, "precision": DEFAULT_PRECISION,  # every computing stage (elastic/device.py)
}
PRESETS: dict[str, dict[str, Any]] = {
    # The offline demo: minutes on 2 CPU cores, still a real front (every stage runs for real).
    # lr 1e-4: at the paper's 2e-5, 60 steps leave the teacher far from converged (48% dev on BBC News).
    # Stage 2 at lr 3e-4 with a hard-label term, 2 epochs (40 steps): at the released code's losses, lr 1e-4 and
    # 20 steps the depth-reduced sub-networks stayed at 63-78% test on BBC News (grid mean 78.3); hard_weight 1.0
    # and lr 3e-4 gave 93.2, 40 steps 95.6 (docs/RECIPES.md).
    "quick": {"max_length": 64, "limit_train": 640, "lr": 1e-4, "teacher_epochs": 3.0, "stage1_epochs": 1.0,
              "stage2_epochs": 2.0, "stage2_lr": 3e-4, "hard_weight": 1.0, "scenario": "cpu-eager-t2-b1-s64",
              "n_random": 16, "n_heldout": 8, "n_trials": 80, "baselines": "distilbert,int8", "baseline_steps": 30,
              "save_every": 20},
    # stage2_lr 2e-4 + selection on the held-out train slice: on SST-2 at 433 steps per stage, from one stage-1
    # checkpoint, stage 2 at 2e-4 beat 1e-4 by 0.68 on the grid's mean test accuracy and by 1.49 at (w0.25, d0.5)
    # (docs/RECIPES.md); results/sst2_dynabert*.md measure it against the released code's grid, two seeds.
    # stage2_hard_weight 1.0 (a hard-label term in stage 2 only): from each seed's stage 1 of those runs, at
    # equal steps, it raised the grid's mean test accuracy on both seeds and brought seed 42's full-size point
    # above the released code's (docs/RECIPES.md).
    "standard": {"max_length": 128, "teacher_epochs": 3.0, "stage1_epochs": 2.0, "stage2_epochs": 2.0,
                 "stage2_lr": 2e-4, "stage2_hard_weight": 1.0, "select_best": "heldout", "n_trials": 300},
    # Hyper-parameters of the paper (Hou et al. 2020, GLUE): lr 2e-5, batch 32, max length 128, importance
    # on dev; one epoch per distillation stage on TinyBERT-augmented data (needs --mlm-checkpoint); the
    # released code keeps the checkpoint with the best sum of dev accuracies (scored every 50 steps).
    "paper": {"max_length": 128, "teacher_epochs": 3.0, "stage1_epochs": 1.0, "stage2_epochs": 1.0,
              "importance_split": "dev", "augment": 20, "teacher_width": "full", "select_best": "dev",
              "n_trials": 300},
    # The released code's own recipe, step for step (tests/test_official_parity.py): lr 2e-5 everywhere, teacher on
    # all of train, importance on dev (running gradient sums, file order, batch 8), batches padded to max length,
    # its AdamW eps, teacher at full width, no model selection. Its reference run (--data_aug with a copy of train)
    # shows every sentence twice per stage: 2 epochs here (SST-2: --stage1-steps/--stage2-steps 433 give its budget).
    "released": {"max_length": 64, "lr": 2e-5, "teacher_epochs": 3.0, "stage1_epochs": 2.0, "stage2_epochs": 2.0,
                 "importance_split": "dev", "select_best": "off", "teacher_width": "full", "extra_subnets": 0,
                 "augment": 0, "padding": "max_length", "adam_eps": "released", "subnet_forward": "separate",
                 "importance_grads": "cumulative",
                 "importance_order": "file", "importance_batch_size": 8},
}


class PipelineError(ValueError):
    """A bad pipeline option or config file, or a stage that failed (named)."""


def load_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """Options from a TOML (`.toml`) or YAML (`.yaml`/`.yml`) file; keys are option names."""
    p = Path(path)
    if not p.is_file():
        raise PipelineError(f"config file {p} does not exist")
    try:
        if p.suffix == ".toml":
            import tomllib
            data = tomllib.loads(p.read_text())
        elif p.suffix in (".yaml", ".yml"):
            import yaml
            data = yaml.safe_load(p.read_text()) or {}
        else:
            raise PipelineError(f"config file {p}: use .toml, .yaml or .yml")
    except PipelineError:
        raise
    except Exception as e:  # tomllib/yaml raise their own types; the message is what the user needs
        raise PipelineError(f"config file {p} cannot be parsed: {e}") from None
    if not isinstance(data, dict):
        raise PipelineError(f"config file {p} must hold a table/mapping of options")
    return {k.replace("-", "_"): v for k, v in data.items()}


def resolve(preset: Preset, file_options: Mapping[str, Any], cli_options: Mapping[str, Any]) -> dict[str, Any]:
    """defaults < preset < file < command line; unknown keys are an error naming them."""
    if preset not in PRESETS:
        raise PipelineError(f"unknown preset '{preset}' (choose from {', '.join(PRESETS)})")
    unknown = sorted((set(file_options) | set(cli_options)) - set(DEFAULTS))
    if unknown:
        raise PipelineError(f"unknown option(s) {unknown}; known options: {', '.join(sorted(DEFAULTS))}")
    opts = {**DEFAULTS, **PRESETS[preset], **dict(file_options),
            **{k: v for k, v in cli_options.items() if v is not None}}
    opts["preset"] = preset
    if opts["augment"] and not opts["mlm_checkpoint"]:
        raise PipelineError(f"preset/options ask for --augment {opts['augment']}, which needs mlm_checkpoint: "
                            "a masked-LM checkpoint directory (e.g. bert-base-uncased)")
    return opts


EXPORT_CHOICES = ("knee", "pareto", "none")


@dataclass(frozen=True)
class Step:
    """One action of a pipeline stage: `action` names the `dynabert` subcommand that does the same work,
    `options` are its typed options (StageOptions, ProfileOptions, SearchOptions, BaselineOptions,
    ExportOptions)."""

    stage: str
    action: str
    run_dir: Path
    options: Any

    @property
    def label(self) -> str:
        if self.action == "baselines":
            return f"baselines {self.options.recipes[0].value}"
        return self.action

    def run(self) -> Any:
        """Carry the action out with its workflow function; returns that function's result."""
        if self.action.startswith("train-"):
            from app.workflow.train import train_stage
            return train_stage(self.run_dir, self.action[len("train-"):], self.options)
        if self.action == "rewire":
            from app.workflow.train import rewire
            return rewire(self.run_dir, self.options)
        if self.action == "profile":
            from app.workflow.profile import profile
            return profile(self.options)
        if self.action == "search":
            from app.workflow.search import search
            return search(self.options)
        if self.action == "baselines":
            from app.workflow.baselines import run_baselines
            return run_baselines(self.run_dir, self.options)
        if self.action == "export":
            from app.workflow.export import export
            return export(self.options)
        raise PipelineError(f"unknown action '{self.action}'")


def _opt(value: Any, kind: Callable[[Any], Any]) -> Any:
    """`value` as the command line would parse it (None stays None)."""
    return None if value is None else kind(value)


def _columns(value: Any) -> Optional[tuple[str, ...]]:
    """text_columns: a list in TOML/YAML, or comma-separated text."""
    if value is None:
        return None
    parts = value.split(",") if isinstance(value, str) else value
    return tuple(str(c).strip() for c in parts if str(c).strip())


def _runtime(o: Mapping[str, Any]):
    from elastic.device import Runtime
    return Runtime(device=o["device"], precision=o["precision"]).check()


def _select(o: Mapping[str, Any]) -> dict[str, Any]:
    """The run's model selection (nothing when off: the options' defaults)."""
    if o["select_best"] in (None, "off"):
        return {}
    return {"select_best": o["select_best"], "select_every": int(o["select_every"])}


def _training(o: Mapping[str, Any], lr: Any, resume: bool) -> dict[str, Any]:
    """The options every training action of the pipeline shares."""
    return {"batch_size": int(o["batch_size"]), "lr": float(lr), "seed": _opt(o["seed"], int),
            "save_every": int(o["save_every"]), "limit_train": _opt(o["limit_train"], int),
            "padding": o["padding"], "adam_eps": o["adam_eps"], "resume": resume, "runtime": _runtime(o)}


def _stage_hard_weight(o: Mapping[str, Any], stage: str) -> float:
    """The hard-label weight of a distillation stage: stage2_hard_weight in stage 2 when set, else hard_weight."""
    if stage == "stage2" and o["stage2_hard_weight"] is not None:
        return float(o["stage2_hard_weight"])
    return float(o["hard_weight"] or 0.0)


def stage_plan(stage: str, run_dir: Path, o: Mapping[str, Any], *, resume: bool) -> list[Step]:
    """The actions, with their typed options, that carry out one pipeline stage."""
    from elastic.stage_options import StageOptions

    run_dir = Path(run_dir)
    lr = o["stage2_lr"] if stage == "stage2" and o["stage2_lr"] is not None else o["lr"]
    if stage == "teacher":
        opts = StageOptions(task=str(o["task"]), text_columns=_columns(o["text_columns"]),
                            label_column=o["label_column"], teacher=o["teacher"],
                            max_length=_opt(o["max_length"], int), importance_split=o["importance_split"],
                            epochs=_opt(o["teacher_epochs"], float), **_training(o, lr, resume))
        return [Step(stage, "train-teacher", run_dir, opts)]
    if stage == "rewire":
        opts = StageOptions(importance_grads=o["importance_grads"], importance_order=o["importance_order"],
                            importance_batch_size=int(o["importance_batch_size"]), runtime=_runtime(o))
        return [Step(stage, "rewire", run_dir, opts)]
    if stage in ("stage1", "stage2"):
        extra: dict[str, Any] = {"augment": int(o["augment"] or 0), "mlm_checkpoint": o["mlm_checkpoint"],
                                 **_select(o), "hard_weight": float(_stage_hard_weight(o, stage)),
                                 "batching": o["batching"], "hidden_weight": _opt(o["hidden_weight"], float),
                                 "subnet_forward": o["subnet_forward"]}
        if stage == "stage2":
            extra.update(extra_subnets=int(o["extra_subnets"]), teacher_width=o["teacher_width"])
        train = _training(o, lr, resume)
        steps = [Step(stage, f"train-{stage}", run_dir,
                      StageOptions(epochs=_opt(o[f"{stage}_epochs"], float),
                                   max_steps=_opt(o[f"{stage}_steps"], int), **train, **extra))]
        if stage == "stage2" and o["stage3"]:  # stage 3 trains at stage 2's learning rate
            steps.append(Step(stage, "train-stage3", run_dir,
                              StageOptions(epochs=_opt(o["stage3_epochs"], float), **train)))
        return steps
    if stage == "profile":
        from app.workflow.profile import ProfileOptions
        return [Step(stage, "profile", run_dir, ProfileOptions(
            run_dir=run_dir, scenarios=(str(o["scenario"]),), device=o["device"], precision=o["precision"],
            n_random=int(o["n_random"]), n_heldout=int(o["n_heldout"])))]
    if stage == "search":
        from search.options import SearchOptions
        return [Step(stage, "search", run_dir, SearchOptions(
            run_dir=run_dir, scenario=str(o["scenario"]), n_trials=int(o["n_trials"]), sampler=o["sampler"],
            objectives=tuple(x.strip() for x in str(o["objectives"]).split(",") if x.strip()),
            seed=int(o["seed"]), n_workers=int(o["n_workers"]), storage=o["storage"], study_name=o["study_name"],
            runtime=_runtime(o)))]
    if stage == "baselines":
        from app.workflow.baselines import BaselineOptions
        from elastic.baselines import Recipe
        # Students train as DynaBERT's stage 2 does: same learning rate, same model selection (at another lr
        # the comparison measures the lr: on SST-2, students at 2e-5 trailed the DynaBERT grid by 0.8-2.0 points
        # and at 1e-4 caught up; results/baselines_lr1e-4.md of commit 0aef2ad).
        student_lr = o["stage2_lr"] if o["stage2_lr"] is not None else o["lr"]
        out = []
        for r in (r for r in str(o["baselines"]).split(",") if r):
            students = r in ("distilbert", "tinybert")
            out.append(Step(stage, "baselines", run_dir, BaselineOptions(
                recipes=(Recipe(r),), max_steps=_opt(o["baseline_steps"], int), scenarios=(str(o["scenario"]),),
                **({"lr": float(student_lr), **_select(o)} if students else {}), runtime=_runtime(o))))
        return out
    if stage == "export":
        if o["export"] in (None, "", "none"):
            return []
        if o["export"] not in EXPORT_CHOICES:
            raise PipelineError(f"export '{o['export']}': choose one of {', '.join(EXPORT_CHOICES)}")
        from app.workflow.export import ExportOptions
        return [Step(stage, "export", run_dir, ExportOptions(run_dir=run_dir, runtime=_runtime(o),
                                                             **{o["export"]: True}))]
    raise PipelineError(f"unknown stage '{stage}'")


def already_done(step: Step) -> bool:
    """Whether one action's work is in the run dir already (training stages and the search check themselves)."""
    run_dir = step.run_dir
    if step.action == "profile":
        return (run_dir / "latency.csv").exists() and (run_dir / "predictor.json").exists()
    if step.action == "baselines":
        f = run_dir / "baselines.csv"
        if not f.exists():
            return False
        import pandas as pd
        return step.options.recipes[0].value in set(pd.read_csv(f)["recipe"].astype(str))
    if step.action == "export":
        from elastic.export import CARD_FILE
        return any((d / CARD_FILE).exists() for d in (run_dir / "exports").glob("*"))
    return False


def result_lines(step: Step, result: Any) -> list[str]:
    """What the pipeline prints after an action: the subcommand's own summary lines."""
    if result is None:
        return []
    if hasattr(result, "lines"):
        return result.lines()
    if step.action == "baselines":
        from app.workflow.baselines import row_line
        return [row_line(r) for r in result]
    if step.action == "export":
        from app.workflow.export import USAGE
        return [f"{len(result)} export(s); {USAGE}"]
    return []


# What a failing action raises for a user-caused problem (the same ones `dynabert` prints in one line).
USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, PermissionError)


def run_pipeline(run_dir: Path, opts: dict[str, Any], *, resume: bool, only: list[str] | None = None,
                 execute: Callable[[Step], Any] | None = None) -> dict[str, Any]:
    """Run every stage in order; returns the timing record also written to `pipeline.json`.

    Args:
        run_dir: the run directory.
        opts: resolved options (`resolve`).
        resume: continue interrupted stages from their checkpoints.
        only: run just these stages (in pipeline order).
        execute: carries out one `Step` and returns its result (default: `Step.run`, the workflow function).

    Raises:
        PipelineError: a stage failed (named, with the cause); what finished before is recorded.
    """
    execute = execute or Step.run
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    record_file = run_dir / "pipeline.json"
    record = json.loads(record_file.read_text()) if record_file.exists() else {}
    if record.get("options", {}).get("task") not in (None, opts["task"]):
        raise PipelineError(f"{run_dir} was run on task '{record['options']['task']}', not '{opts['task']}'; "
                            "use another --run-dir")
    record["options"] = opts
    record.setdefault("stage_seconds", {})
    record.setdefault("started", datetime.now(timezone.utc).isoformat(timespec="seconds"))
    stages = [s for s in STAGES if only is None or s in only]
    for stage in stages:
        print(f"\n=== {stage} ===", flush=True)
        t0 = time.perf_counter()
        for step in stage_plan(stage, run_dir, opts, resume=resume):
            if already_done(step):
                print(f"{stage}: already done in {run_dir}, skipped ({step.label})")
                continue
            try:
                result = execute(step)
            except USER_ERRORS as e:
                record_file.write_text(json.dumps(record, indent=2))
                raise PipelineError(f"stage '{stage}' failed (dynabert {step.label}): {e}; fix the cause and "
                                    "re-run the same command with --resume") from e
            except BaseException:  # interrupted or a bug: what finished before is still recorded
                record_file.write_text(json.dumps(record, indent=2))
                raise
            for line in result_lines(step, result):
                print(line, flush=True)
        # A skipped stage costs ~0 s; keep the time of the run that did the work.
        spent = time.perf_counter() - t0
        if spent > 1.0 or stage not in record["stage_seconds"]:
            record["stage_seconds"][stage] = round(spent, 2)
        record_file.write_text(json.dumps(record, indent=2))
    record["total_seconds"] = round(sum(record["stage_seconds"].values()), 2)
    record["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    record_file.write_text(json.dumps(record, indent=2))
    return record
