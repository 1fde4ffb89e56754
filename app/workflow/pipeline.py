"""`dynabert run`: the whole pipeline, one action after another, resumable.

Each stage calls the same workflow function as the subcommand a user can run by hand (`dynabert
train-teacher ...` -> `app.workflow.train.train_stage`), with typed options built from the run's configuration
(app/config: built-in defaults < preset < config file (TOML/YAML) < command-line flags). The actions skip what
is already complete (training stages keep `done.json`, the search resumes from its storage, latency measurements are cached), so
re-running the same `dynabert run` after an interruption continues where it stopped. The resolved
configuration is kept in `<run-dir>/pipeline.json` with the wall-clock seconds of every stage.
"""
from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from app.config import DEFAULTS, PRESETS, STAGES, ConfigError, RunConfig, as_config, load_config_file, resolve
from app.config.run_config import Preset, stage_options
from app.config.variants import run_variants, timing_variant
from elastic.rundir import PIPELINE_JSON, RunDir

__all__ = ["DEFAULTS", "PRESETS", "STAGES", "PipelineError", "Preset", "RunConfig", "Step", "load_config_file",
           "resolve", "run_pipeline", "stage_plan"]  # the options' names re-exported for existing callers

RECORD_FILE = PIPELINE_JSON  # the resolved options and each stage's seconds (elastic.rundir)


class PipelineError(ConfigError):
    """A stage that failed (named), or a bad pipeline option."""


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


def _runtime(cfg: RunConfig):
    from elastic.training.device import Runtime
    return Runtime(device=cfg.runtime.device, precision=cfg.runtime.precision)


def stage_plan(stage: str, run_dir: Path, o: Mapping[str, Any], *, resume: bool) -> list[Step]:
    """The actions, with their typed options, that carry out one pipeline stage.

    Args:
        stage: one of `STAGES`.
        run_dir: the run directory.
        o: the run's configuration (a `RunConfig`, or its flat mapping of option name -> value).
        resume: continue interrupted training stages.
    """
    cfg = as_config(o)
    run_dir = Path(run_dir)
    if stage in ("teacher", "rewire", "stage1"):
        action = "rewire" if stage == "rewire" else f"train-{stage}"
        return [Step(stage, action, run_dir, stage_options(cfg, stage, resume=resume))]
    if stage == "stage2":
        steps = [Step(stage, "train-stage2", run_dir, stage_options(cfg, "stage2", resume=resume))]
        if cfg.stage3.stage3:  # stage 3 trains at stage 2's learning rate
            steps.append(Step(stage, "train-stage3", run_dir, stage_options(cfg, "stage3", resume=resume)))
        return steps
    if stage == "profile":  # one predictor per deployment variant
        from app.workflow.profile import ProfileOptions
        return [Step(stage, "profile", run_dir, ProfileOptions(
            run_dir=run_dir, scenarios=run_variants(cfg), device=cfg.runtime.device,
            precision=cfg.runtime.precision, n_random=cfg.profile.n_random, n_heldout=cfg.profile.n_heldout))]
    if stage == "search":
        from search.options import SearchOptions
        se = cfg.search
        return [Step(stage, "search", run_dir, SearchOptions(
            run_dir=run_dir, scenario=",".join(run_variants(cfg)), n_trials=se.n_trials, sampler=se.sampler,
            objectives=se.objectives, seed=cfg.data.seed, n_workers=se.n_workers, storage=se.storage,
            study_name=se.study_name, seed_with_rule=se.seed_with_rule, runtime=_runtime(cfg)))]
    if stage == "baselines":
        from app.workflow.baseline_options import BaselineOptions
        from elastic.training.baselines import Recipe
        # Students train as DynaBERT's stage 2 does (same lr, same model selection): else the comparison measures
        # the learning rate, not the method (docs/RECIPES.md).
        s2 = stage_options(cfg, "stage2")
        select = {} if s2.select_best == "off" else {"select_best": s2.select_best, "select_every": s2.select_every}
        return [Step(stage, "baselines", run_dir, BaselineOptions(
            recipes=(Recipe(r),), max_steps=cfg.baselines.baseline_steps, scenarios=(timing_variant(run_variants(cfg)),),
            **({"lr": s2.lr, **select} if r in ("distilbert", "tinybert") else {}), runtime=_runtime(cfg)))
            for r in cfg.baselines.baselines]
    if stage == "export":
        if cfg.export.export == "none":
            return []
        from app.workflow.export import ExportOptions
        return [Step(stage, "export", run_dir, ExportOptions(run_dir=run_dir, runtime=_runtime(cfg),
                                                             **{cfg.export.export: True}))]
    raise PipelineError(f"unknown stage '{stage}'")


def already_done(step: Step) -> bool:
    """Whether one action's work is in the run dir already (training stages and the search check themselves)."""
    rd = RunDir(step.run_dir)
    if step.action == "profile":  # every variant's predictor (a single-variant run of old: predictor.json)
        keys = step.options.scenarios
        return rd.latency_csv.exists() and (all(rd.predictor(k).exists() for k in keys)
                                            or len(keys) == 1 and rd.predictor_json.exists())
    if step.action == "baselines":
        f = rd.baselines_csv
        if not f.exists():
            return False
        import pandas as pd
        return step.options.recipes[0].value in set(pd.read_csv(f)["recipe"].astype(str))
    if step.action == "export":
        from elastic.export.writer import CARD_FILE
        return any((d / CARD_FILE).exists() for d in rd.exports_dir.glob("*"))
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


def run_pipeline(run_dir: Path, opts: Mapping[str, Any], *, resume: bool, only: list[str] | None = None,
                 execute: Callable[[Step], Any] | None = None) -> dict[str, Any]:
    """Run every stage in order; returns the timing record also written to `pipeline.json`.

    Args:
        run_dir: the run directory.
        opts: the run's configuration (`app.config.resolve`; a flat mapping is checked into one).
        resume: continue interrupted stages from their checkpoints.
        only: run just these stages (in pipeline order).
        execute: carries out one `Step` and returns its result (default: `Step.run`, the workflow function).

    Raises:
        PipelineError: a stage failed (named, with the cause); what finished before is recorded.
    """
    execute = execute or Step.run
    opts = as_config(opts)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    rd = RunDir(run_dir)
    record = rd.read_json(rd.pipeline_json, PIPELINE_JSON) if rd.pipeline_json.exists() else {}
    if record.get("options", {}).get("task") not in (None, opts["task"]):
        raise PipelineError(f"{run_dir} was run on task '{record['options']['task']}', not '{opts['task']}'; "
                            "use another --run-dir")
    record["options"] = {k: list(v) if isinstance(v, tuple) else v for k, v in opts.items()}
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
                rd.write_json(rd.pipeline_json, record, PIPELINE_JSON)
                raise PipelineError(f"stage '{stage}' failed (dynabert {step.label}): {e}; fix the cause and "
                                    "re-run the same command with --resume") from e
            except BaseException:  # interrupted or a bug: what finished before is still recorded
                rd.write_json(rd.pipeline_json, record, PIPELINE_JSON)
                raise
            for line in result_lines(step, result):
                print(line, flush=True)
        # A skipped stage costs ~0 s; keep the time of the run that did the work.
        spent = time.perf_counter() - t0
        if spent > 1.0 or stage not in record["stage_seconds"]:
            record["stage_seconds"][stage] = round(spent, 2)
        rd.write_json(rd.pipeline_json, record, PIPELINE_JSON)
    record["total_seconds"] = round(sum(record["stage_seconds"].values()), 2)
    record["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    rd.write_json(rd.pipeline_json, record, PIPELINE_JSON)
    return record
