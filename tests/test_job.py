"""The job runner (`elastic.training.job.run_job`): skip when done, refuse or resume an interrupted run, end on the
selected weights, clean up, done.json last. Fake jobs for the lifecycle; a tiny DistilBERT student trained by the
real loop for resume and selection."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from elastic.training.baselines import Objective, train_baseline
from elastic.data.tasks import EncodedSplit
from elastic.training.job import Job, read_done, run_job, selection_record
from elastic.training.loop import LoopConfig
from elastic.rundir import CKPT_DIR, DONE_JSON, RunDirError
from elastic.training.students import distilbert_student
from elastic.training.train_state import CKPT_STATE, best_dir
from elastic.model.weights import load_checkpoint, save_checkpoint


class _Killed(Exception):
    pass


def _interrupted(ckpt: Path, step: int = 3) -> None:
    """A checkpoint as an interrupted loop leaves it (only the state file matters to the runner)."""
    ckpt.mkdir(parents=True)
    (ckpt / CKPT_STATE).write_text(json.dumps({"step": step}))
    best_dir(ckpt).mkdir()


def test_a_finished_job_is_skipped_without_training_and_its_leftovers_removed(tmp_path):
    job = Job(tmp_path / "stage1", "stage1")
    job.out_dir.mkdir()
    (job.out_dir / DONE_JSON).write_text(json.dumps({"steps": 7, "seconds": 1.5}))
    _interrupted(job.ckpt_dir)  # a crash between done.json and the clean-up
    checked = []
    res = run_job(job, lambda j: pytest.fail("a finished job must not train"), check_done=checked.append)
    assert res.skipped and res.info == {"steps": 7, "seconds": 1.5} and checked == [res.info]
    assert not job.ckpt_dir.exists() and not best_dir(job.ckpt_dir).exists()


def test_check_done_refuses_recorded_work(tmp_path):
    job = Job(tmp_path / "s", "s")
    job.out_dir.mkdir()
    (job.out_dir / DONE_JSON).write_text(json.dumps({"steps": 7}))

    def other_budget(info):
        raise RunDirError(f"trained for {info['steps']} steps")
    with pytest.raises(RunDirError, match="trained for 7 steps"):
        run_job(job, lambda j: pytest.fail("must not train"), check_done=other_budget)


def test_a_broken_done_json_is_one_clear_error(tmp_path):
    (tmp_path / DONE_JSON).write_text("{")
    with pytest.raises(RunDirError, match="not valid JSON"):
        read_done(tmp_path)
    (tmp_path / DONE_JSON).write_text(json.dumps({"epochs": 1.0}))
    with pytest.raises(RunDirError, match="missing key"):
        read_done(tmp_path)


def test_an_interrupted_job_is_refused_without_resume_or_restarted_when_allowed(tmp_path):
    job = Job(tmp_path / "stage2", "stage2")
    _interrupted(job.ckpt_dir, step=3)
    assert job.ckpt_dir == tmp_path / "stage2" / CKPT_DIR and job.interrupted and job.resume_step() is None
    with pytest.raises(RunDirError, match="--resume"):
        run_job(job, lambda j: pytest.fail("must not train"))
    assert job.ckpt_dir.exists() and not (job.out_dir / DONE_JSON).exists()
    assert Job(job.out_dir, "stage2", resume=True).resume_step() == 3
    seen = []
    res = run_job(Job(job.out_dir, "stage2", restart=True), lambda j: seen.append(j.resume_step()) or {"steps": 1})
    assert seen == [None] and not res.skipped and read_done(job.out_dir) == {"steps": 1}


def test_done_json_is_written_last_and_a_crash_before_it_leaves_the_job_resumable(tmp_path):
    job = Job(tmp_path / "j", "j", ckpt_dir=tmp_path / "j" / "ckpt-x")

    def crash(j: Job) -> dict:
        _interrupted(j.ckpt_dir, step=5)
        (j.out_dir / "model.safetensors").write_text("outputs saved")
        raise _Killed

    with pytest.raises(_Killed):
        run_job(job, crash)
    assert read_done(job.out_dir) is None and job.interrupted

    def finish(j: Job) -> dict:
        assert j.resume_step() == 5 and not (j.out_dir / DONE_JSON).exists()
        assert j.ckpt_dir.exists()  # still there while the outputs are saved
        return {"steps": 6, "seconds": 0.5}

    res = run_job(Job(job.out_dir, "j", ckpt_dir=job.ckpt_dir, resume=True), finish)
    assert res.info == read_done(job.out_dir) == {"steps": 6, "seconds": 0.5}
    assert not job.ckpt_dir.exists() and not best_dir(job.ckpt_dir).exists()


def _data(n: int = 16) -> EncodedSplit:
    g = torch.Generator().manual_seed(0)
    ids = [[2] + torch.randint(5, 99, (int(torch.randint(3, 10, (1,), generator=g)),), generator=g).tolist()
           for _ in range(n)]
    return EncodedSplit(ids, [[0] * len(x) for x in ids], [i % 3 for i in range(n)], False, 0)


def test_a_killed_job_resumes_from_its_checkpoint_and_ends_on_the_selected_weights(tiny_model, tmp_path):
    """Scores peak at step 4 of 6; a run killed at step 5 resumes from step 3's checkpoint and writes the same
    selected weights as an uninterrupted one, then leaves no checkpoint behind."""
    loop = LoopConfig(total_steps=6, batch_size=8, lr=3e-3, seed=3, save_every=3, select_every=2)
    scores = {2: 1.0, 4: 3.0, 6: 2.0}

    seen: dict[int, dict[str, torch.Tensor]] = {}  # the weights scored at each step

    def trainer(kill_at=None):
        started = []

        def train(job: Job) -> dict:
            student = distilbert_student(tiny_model, (0, 2))
            started.append(job.resume_step())

            def select(step):
                if step == kill_at:
                    raise _Killed
                seen[step] = {k: v.clone() for k, v in student.model.state_dict().items()}
                return scores[step]
            res = train_baseline(student, tiny_model, Objective.DISTILBERT, _data(), loop, is_regression=False,
                                 ckpt_dir=job.ckpt_dir, resume=job.resume, progress=False, select_fn=select)
            save_checkpoint(student.model, job.out_dir, {"steps": res.steps})
            return {"steps": res.steps, **selection_record(res)}
        return train, started

    train, _ = trainer()
    whole = run_job(Job(tmp_path / "whole", "whole"), train)
    assert whole.info == {"steps": 6, "selected_step": 4, "selected_score": 3.0}
    a, _ = load_checkpoint(tmp_path / "whole")
    assert all(torch.equal(v, seen[4][k]) for k, v in a.state_dict().items())
    assert not all(torch.equal(v, seen[6][k]) for k, v in a.state_dict().items())

    out = tmp_path / "killed"
    train, started = trainer(kill_at=6)
    with pytest.raises(_Killed):
        run_job(Job(out, "killed"), train)
    assert (out / CKPT_DIR / CKPT_STATE).exists() and read_done(out) is None
    train, started = trainer()
    res = run_job(Job(out, "killed", resume=True), train)
    assert started == [3] and not res.skipped and read_done(out) == whole.info
    b, _ = load_checkpoint(out)
    assert max((v - b.state_dict()[k]).abs().max().item() for k, v in a.state_dict().items()) <= 1e-6
    assert not [d for d in out.iterdir() if d.name.startswith(CKPT_DIR)]
    assert run_job(Job(out, "killed"), lambda j: pytest.fail("done")).skipped
