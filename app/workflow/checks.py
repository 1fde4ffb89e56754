"""Everything `dynabert run` can check before it writes anything: a refused run leaves nothing on disk.

The configuration's own fields are checked when it is built (types, choices, ranges: app/config/run_config.py);
here come the checks that need the world outside it: the device, the teacher checkpoint (readable, a supported
model type, a position table long enough for max_length), the data (readable, every split non-empty, two classes
in train, dev/test labels seen in train), the latency scenario (parsable and runnable here), the options of every
later action (search objectives, baselines, export), and a run directory made for another task.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence

from app.config.run_config import STAGES, ConfigError, RunConfig


def _recorded_task(run_dir: Path) -> Optional[str]:
    """The task a run directory's pipeline.json was run on (None: a new run directory)."""
    from elastic.rundir import PIPELINE_JSON, RunDir, RunDirError
    rd = RunDir(run_dir)
    if not rd.pipeline_json.is_file():
        return None
    try:
        return (rd.read_json(rd.pipeline_json, PIPELINE_JSON).get("options") or {}).get("task")
    except (OSError, RunDirError) as e:
        raise ConfigError(f"{e}; or use another --run-dir") from None


def teacher_arch(run_dir: Path, cfg: RunConfig) -> Any:
    """The `BertArch` the run trains: its teacher checkpoint's once trained, else the configured teacher's (a
    missing, unreadable or unsupported checkpoint is one `CheckpointError` line)."""
    from elastic.model.config import BertArch
    from elastic.rundir import META_FILE, TEACHER, read_checkpoint_meta
    from elastic.model.weights import CheckpointError, default_teacher_path, read_arch, resolve_checkpoint_dir

    own = run_dir / TEACHER / META_FILE
    if own.is_file():
        return BertArch.from_dict(read_checkpoint_meta(own.parent)["arch"])
    src = cfg.teacher.teacher or default_teacher_path()
    try:
        path = resolve_checkpoint_dir(src)
        if (path / META_FILE).is_file():  # one of our own checkpoints (another run's stage)
            return BertArch.from_dict(read_checkpoint_meta(path)["arch"])
        return read_arch(path)[0]
    except CheckpointError as e:
        raise CheckpointError(f"teacher checkpoint: {e}") from None


def check_data(cfg: RunConfig) -> Any:
    """Load the task and refuse what no stage can learn from; returns the `TaskData`."""
    from elastic.data.tasks import load_task
    from elastic.training.prepare import check_trainable

    d = cfg.data
    task = load_task(d.task, seed=d.seed, text_columns=d.text_columns, label_column=d.label_column)
    check_trainable(task, importance_split=d.importance_split, limit_train=d.limit_train)
    if cfg.distill.select_best == "dev" and "dev" not in task.splits:
        raise ConfigError(f"select_best 'dev' but task '{task.name}' has no dev split: use --select-best heldout")
    return task


def check_run(run_dir: Path, cfg: RunConfig, only: Optional[Sequence[str]] = None, *, resume: bool = False) -> None:
    """Check a `dynabert run` before anything is written.

    Args:
        run_dir: the run directory (it may exist: a resumed or extended run).
        cfg: the resolved configuration.
        only: the stages to run (None: all).
        resume: as the command's --resume.

    Raises:
        ValueError (ConfigError, DataError, CheckpointError, DeviceError): one message naming what is wrong.
    """
    from app.workflow.pipeline import stage_plan
    from elastic.training.device import Runtime

    run_dir = Path(run_dir)
    stages = [s for s in STAGES if only is None or s in only]
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"--run-dir {run_dir} is a file, not a directory")
    recorded = _recorded_task(run_dir)
    if recorded not in (None, cfg.data.task):
        raise ConfigError(f"{run_dir} was run on task '{recorded}', not '{cfg.data.task}'; use another --run-dir")
    Runtime(device=cfg.runtime.device, precision=cfg.runtime.precision).check()
    for stage in stages:  # every action's own options (search objectives, baselines, export) are built and checked
        stage_plan(stage, run_dir, cfg, resume=resume)
    arch = teacher_arch(run_dir, cfg)
    if cfg.data.max_length > arch.max_seq_len:
        raise ConfigError(f"max_length {cfg.data.max_length} is longer than the teacher's position table "
                          f"({arch.max_seq_len} positions): use --max-length {arch.max_seq_len} or less")
    if {"profile", "search", "baselines"} & set(stages):  # every deployment variant parses and runs here
        from app.config.variants import run_variants
        from profiling.scenario import Scenario
        for key in run_variants(cfg):
            sc = Scenario.parse(key).check(arch)
            if sc.runtime == "eager-int8":
                import importlib.util
                if importlib.util.find_spec("torchao") is None:
                    raise ConfigError(f"variant {key} (int8 on eager) needs torchao (pip install torchao); use "
                                      "runtime ort for int8")
    if cfg.distill.augment and not Path(str(cfg.distill.mlm_checkpoint)).expanduser().exists():
        from elastic.model.weights import resolve_checkpoint_dir
        resolve_checkpoint_dir(str(cfg.distill.mlm_checkpoint))
    check_data(cfg)
