"""Fault and bad-input suite: every CLI command given what users get wrong answers with one clear
message, a non-zero exit and no traceback, and loses nothing that finished."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.cli.main import main
from tests.helpers_search import make_tiny_run
from tests.test_train import _write_task, _write_teacher

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    return make_tiny_run(tmp_path_factory.mktemp("faults"))


def fails(argv: list[str], capsys, *needles: str) -> str:
    """Run the CLI in-process: exit code 2, every needle in stderr, no traceback."""
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, f"exit {code} for {argv}: {err}"
    assert "Traceback" not in err and err.startswith("error: ")
    assert len(err.strip().splitlines()) == 1, err  # one message, one line
    for needle in needles:
        assert needle in err, f"{needle!r} not in {err!r}"
    return err


@pytest.mark.parametrize("cmd", ["evaluate", "rewire", "train-stage1", "train-stage2", "train-stage3",
                                 "search", "export", "baselines"])
def test_missing_run_dir(cmd, tmp_path, capsys):
    extra = ["--knee"] if cmd == "export" else []
    fails([cmd, "--run-dir", str(tmp_path / "nope"), *extra], capsys, str(tmp_path / "nope"))


def test_missing_and_wrong_task_files(tmp_path, capsys):
    fails(["train-teacher", "--run-dir", str(tmp_path / "r"), "--task", str(tmp_path / "absent")],
          capsys, "absent")
    (tmp_path / "notes.txt").write_text("just some words\n")
    fails(["train-teacher", "--run-dir", str(tmp_path / "r"), "--task", str(tmp_path / "notes.txt")], capsys,
          "notes.txt")
    fails(["train-teacher", "--run-dir", str(tmp_path / "r"), "--task", "glue/nosuchtask"], capsys, "nosuchtask")
    assert not (tmp_path / "r" / "teacher").exists()


def test_teacher_that_is_a_file_or_not_bert(tmp_path, capsys):
    task = _write_task(tmp_path / "task", 0)
    (tmp_path / "weights.bin").write_bytes(b"\0" * 64)
    fails(["train-teacher", "--run-dir", str(tmp_path / "r"), "--task", str(task), "--teacher",
           str(tmp_path / "weights.bin")], capsys, "is a file")
    gpt = tmp_path / "gpt"
    gpt.mkdir()
    (gpt / "config.json").write_text('{"model_type": "gpt2"}')
    fails(["train-teacher", "--run-dir", str(tmp_path / "r2"), "--task", str(task), "--teacher", str(gpt)],
          capsys, "BERT")


def refused_by_parser(argv: list[str], capsys, *needles: str) -> str:
    """A value its option's field refuses is argparse's error: exit 2, the usage block and one error line."""
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("dynabert ") and ": error: argument " in last, err
    for needle in needles:
        assert needle in last, f"{needle!r} not in {last!r}"
    return last


def test_bad_option_values(run, tmp_path, capsys):
    refused_by_parser(["profile", "--run-dir", str(run), "--threads", "0"], capsys, "--threads: must be >= 1, got 0")
    fails(["profile", "--run-dir", str(run), "--scenario", "cpu-eager-t2-b1-s4096"], capsys, "4096")
    fails(["search", "--run-dir", str(run), "--objectives", "latency,metric"], capsys, "metric")
    fails(["evaluate", "--run-dir", str(run), "--width", "1.5"], capsys, "width")
    fails(["run", "--run-dir", str(tmp_path / "p"), "--only", "teacher,coffee"], capsys, "coffee")
    # argparse's own errors (wrong choice) also exit 2 with a usage line, not a traceback.
    refused_by_parser(["search", "--run-dir", str(run), "--sampler", "annealing"], capsys,
                      "--sampler: must be one of nsga2, tpe, random, got 'annealing'")
    refused_by_parser(["run", "--run-dir", str(tmp_path / "p"), "--preset", "fastest"], capsys, "invalid choice")


def test_bad_config_files(run, tmp_path, capsys):
    (tmp_path / "cfg.json").write_text('{"layers": [0, 9], "heads": [1, 1], "ffn": [8, 8]}')
    fails(["export", "--run-dir", str(run), "--subnet", str(tmp_path / "cfg.json"), "--out",
           str(tmp_path / "x")], capsys, "unknown layer 9")
    (tmp_path / "cfg2.json").write_text("not json")
    fails(["export", "--run-dir", str(run), "--subnet", str(tmp_path / "cfg2.json"), "--out",
           str(tmp_path / "x")], capsys, "JSON")
    fails(["export", "--run-dir", str(run), "--subnet", str(tmp_path / "absent.json"), "--out",
           str(tmp_path / "x")], capsys, "absent.json")
    (tmp_path / "p.toml").write_text("n_trials = = 3")
    fails(["run", "--run-dir", str(tmp_path / "p"), "--config", str(tmp_path / "p.toml")], capsys, "p.toml")
    assert not (tmp_path / "x").exists()


def test_run_dir_of_another_task(run, tmp_path, capsys):
    other = _write_task(tmp_path / "other", seed=5)
    fails(["evaluate", "--run-dir", str(run), "--task", str(other)], capsys, "belongs to task")
    fails(["train-stage2", "--run-dir", str(run), "--task", str(other)], capsys, "belongs to task")


def test_corrupt_checkpoint(run, tmp_path, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(run, broken)
    f = broken / "stage2" / "model.safetensors"
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])  # a truncated copy
    fails(["evaluate", "--run-dir", str(broken), "--stage", "stage2"], capsys, "corrupt or truncated")
    fails(["export", "--run-dir", str(broken), "--subnet", str(_cfg(tmp_path)), "--out", str(tmp_path / "e")],
          capsys, "corrupt or truncated")
    # The intact run is untouched by the failures next to it.
    assert main(["evaluate", "--run-dir", str(run), "--stage", "stage2"]) == 0
    capsys.readouterr()


def _cfg(tmp_path: Path) -> Path:
    p = tmp_path / "ok.json"
    p.write_text('{"layers": [0, 1], "heads": [2, 2], "ffn": [16, 16]}')
    return p


def test_killed_stage_resumes_and_finished_work_is_kept(tmp_path):
    """Kill `train-stage1` after its first checkpoint; a plain re-run refuses to start over, `--resume`
    finishes the stage, and the teacher and rewiring that finished before are never redone."""
    task, teacher = _write_task(tmp_path / "task", 0, n_train=160), _write_teacher(tmp_path / "teacher")
    rd = tmp_path / "run"
    common = ["--run-dir", str(rd), "--max-length", "16", "--batch-size", "8", "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    cli = [sys.executable, "-m", "app.cli"]
    subprocess.run([*cli, "train-teacher", "--task", str(task), "--teacher", str(teacher), "--max-steps", "2",
                    *common], check=True, env=env, cwd=ROOT, capture_output=True)
    subprocess.run([*cli, "rewire", "--run-dir", str(rd), "--no-progress"], check=True, env=env, cwd=ROOT,
                   capture_output=True)
    stamp = {d: (rd / d / "model.safetensors").stat().st_mtime_ns for d in ("teacher", "rewired")}
    proc = subprocess.Popen([*cli, "train-stage1", "--max-steps", "400", "--save-every", "1", *common], env=env,
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    state = rd / "stage1" / "ckpt" / "state.json"
    deadline = time.time() + 120
    while time.time() < deadline and not (state.exists() and json.loads(state.read_text())["step"] >= 2):
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    step = json.loads(state.read_text())["step"]
    assert 2 <= step < 400 and not (rd / "stage1" / "done.json").exists()
    again = subprocess.run([*cli, "train-stage1", "--max-steps", "400", *common], env=env, cwd=ROOT,
                           capture_output=True, text=True)
    assert again.returncode == 2 and "--resume" in again.stderr and "Traceback" not in again.stderr
    done = subprocess.run([*cli, "train-stage1", "--max-steps", "400", "--resume", *common], env=env, cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads((rd / "stage1" / "done.json").read_text())["steps"] == 400
    assert {d: (rd / d / "model.safetensors").stat().st_mtime_ns for d in ("teacher", "rewired")} == stamp
