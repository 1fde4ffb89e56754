"""One job's lifecycle on disk, shared by the DynaBERT stages (`elastic.training.stages.run_stage`) and the baseline
students (`app.workflow.baselines`).

A job trains one model into an output folder. `run_job` owns what happens around the training:

1. finished (`done.json` exists): skipped, `train` is not called; `check_done` may refuse the recorded work
   (trained with another budget), and a checkpoint left by a crash after done.json is removed;
2. an interrupted run (`<ckpt>/state.json`) without `resume` is refused (or, `restart=True`, started over);
3. `train(job)` trains (the loop resumes from `job.ckpt_dir` when `job.resume`, and with model selection ends
   on the best-scoring weights, kept in `best_dir(job.ckpt_dir)` across a resume), saves every output but
   done.json, and returns the done.json record;
4. done.json is written (by the leader, rank 0), after every other output: a crash before it leaves the job
   resumable, a crash after it leaves it finished;
5. the checkpoint and best-weights folders are removed.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import torch.distributed as dist

from elastic.training.loop import rank_world
from elastic.rundir import CKPT_DIR, DONE_JSON, RunDirError, read_done, write_json
from elastic.training.train_state import CKPT_STATE, TrainResult, best_dir


def barrier() -> None:
    """Wait for every process of a distributed run (a no-op in a single process)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


@dataclass(frozen=True)
class Job:
    """One training job.

    Args:
        out_dir: where its outputs and done.json go.
        name: what the job trains, for messages ("stage1", "baselines/distilbert-L0-2").
        ckpt_dir: its resumable checkpoint, the loop's `ckpt_dir` (None: `<out_dir>/ckpt`, set on
            construction); the selected weights sit beside it (`elastic.training.train_state.best_dir`).
        resume: continue an interrupted run from `ckpt_dir`.
        restart: without `resume`, start an interrupted run over instead of refusing it.
    """

    out_dir: Path
    name: str
    ckpt_dir: Optional[Path] = None
    resume: bool = False
    restart: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "out_dir", Path(self.out_dir))
        object.__setattr__(self, "ckpt_dir", Path(self.ckpt_dir or self.out_dir / CKPT_DIR))

    @property
    def _ckpt(self) -> Path:
        assert self.ckpt_dir is not None  # set by __post_init__
        return self.ckpt_dir

    @property
    def interrupted(self) -> bool:
        """Whether an interrupted run left a resumable checkpoint."""
        return (self._ckpt / CKPT_STATE).exists()

    def resume_step(self) -> Optional[int]:
        """The step the loop will resume from (None when it starts from scratch)."""
        if not (self.resume and self.interrupted):
            return None
        return int(json.loads((self._ckpt / CKPT_STATE).read_text())["step"])

    def clean(self) -> None:
        """Remove the resumable checkpoint and the selected weights (no longer needed once done)."""
        for d in (self._ckpt, best_dir(self._ckpt)):
            shutil.rmtree(d, ignore_errors=True)


@dataclass(frozen=True)
class JobResult:
    """A job's done.json record; `skipped` when it had finished before this call."""

    info: dict[str, Any]
    skipped: bool


def selection_record(result: TrainResult) -> dict[str, Any]:
    """done.json's fields of model selection: the step kept and its score (empty without selection)."""
    if result.selected_step is None:
        return {}
    return {"selected_step": result.selected_step, "selected_score": round(result.selected_score, 4)}


def run_job(job: Job, train: Callable[[Job], dict[str, Any]], *,
            check_done: Optional[Callable[[dict[str, Any]], None]] = None) -> JobResult:
    """Run `job` through its lifecycle (module docstring): skip, refuse or resume, train, done.json, clean up.

    Args:
        job: the job.
        train: job -> its done.json record; trains and saves every output but done.json (on rank 0). Called on
            every process of a distributed run.
        check_done: called with the record of a finished job before it is skipped; raises when that work
            cannot stand for what is asked.

    Returns:
        The done.json record, and whether the job was skipped.
    """
    done = read_done(job.out_dir)
    if done is not None:
        if check_done is not None:
            check_done(done)
        if rank_world()[0] == 0:
            job.clean()  # a crash between done.json and the clean-up left them
        return JobResult(done, skipped=True)
    if job.interrupted and not job.resume and not job.restart:
        raise RunDirError(f"{job.ckpt_dir} holds an interrupted {job.name} run: add --resume to continue it, "
                          "or delete that folder to start it over")
    info = train(job)
    if rank_world()[0] == 0:
        write_json(job.out_dir / DONE_JSON, info, schema=DONE_JSON)
        job.clean()
    barrier()
    return JobResult(info, skipped=False)
