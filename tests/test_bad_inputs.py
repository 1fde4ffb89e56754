"""Bad input a new user could give `dynabert run` (and the single-stage commands): each is refused with one
message, no traceback, and nothing on disk (no run directory). Nothing here trains: every case is refused
before a stage starts (a case that got through would fail on the stand-in pipeline below)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from app.cli.main import main

ROOT = Path(__file__).resolve().parents[1]
GOOD = {"train": [(f"a short text number {i}", i % 2) for i in range(60)],
        "dev": [(f"dev text {i}", i % 2) for i in range(10)],
        "test": [(f"test text {i}", i % 2) for i in range(10)]}


def _tsv(path: Path, rows, header: str = "text\tlabel") -> None:
    path.write_text(header + "\n" + "".join(f"{t}\t{y}\n" for t, y in rows))


def _data(root: Path, name: str, **splits) -> Path:
    """A task directory: GOOD's splits, with `splits` replacing some (None: left out)."""
    d = root / name
    d.mkdir()
    for split, rows in {**GOOD, **splits}.items():
        if rows is not None:
            _tsv(d / f"{split}.tsv", rows)
    return d


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    """Data directories, config files and a GPT-2 checkpoint the cases refer to by name."""
    from transformers import GPT2Config

    root = tmp_path_factory.mktemp("inputs")
    w = {"good": _data(root, "good"),
         "one_class": _data(root, "one_class", train=[(f"t {i}", 0) for i in range(60)]),
         "empty_dev": _data(root, "empty_dev", dev=[]),
         "unseen_dev": _data(root, "unseen_dev", dev=[("d", 0), ("e", 1), ("f", 7)]),
         "tiny_train": _data(root, "tiny_train", train=[("a", 0), ("b", 1), ("c", 0), ("d", 1)]),
         "sorted": _data(root, "sorted", train=sorted(GOOD["train"], key=lambda r: r[1])),
         "empty_train": _data(root, "empty_train", train=[])}
    w["latin1"] = _data(root, "latin1")
    with open(w["latin1"] / "train.tsv", "ab") as f:
        f.write("caf\u00e9 au lait\t1\n".encode("latin-1"))
    GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=99, n_positions=64, bos_token_id=0, eos_token_id=0).save_pretrained(str(root / "gpt2"))
    w["gpt2"] = root / "gpt2"
    for name, text in {"fast.toml": 'lr = "fast"\n', "typo.toml": "n_trails = 5\n", "broken.toml": "lr = = 1\n",
                       "table.toml": "[stage2]\nlr = 1e-4\n", "bad_type.yaml": "batch_size: big\n",
                       "list.yaml": "- lr\n- 1e-4\n", "bad_precision.yaml": "precision: fp8\n",
                       "neg_epochs.yaml": "stage1_epochs: -1\n"}.items():
        (root / name).write_text(text)
        w[name] = root / name
    return w


def _cmd(argv: list[str], w: dict[str, Path]) -> list[str]:
    """`{name}` in an argument -> the path of that fixture."""
    out = []
    for a in argv:
        for k, v in w.items():
            a = a.replace("{" + k + "}", str(v))
        out.append(a)
    return out


RUN = ["run", "--task", "{good}"]  # + --run-dir
# (case, argv after `dynabert` (run gets --run-dir), a piece of the one message)
CASES = [
    ("one class only", ["run", "--task", "{one_class}"], "at least two classes"),
    ("batch size 0", [*RUN, "--batch-size", "0"], "argument --batch-size: must be >= 1, got 0"),
    ("lr 'fast' in the config", [*RUN, "--config", "{fast.toml}"], "fast.toml: key 'lr' must be a number, got 'fast'"),
    ("max length 100000", [*RUN, "--max-length", "100000"], "longer than the teacher's position table"),
    ("negative stage-2 lr", [*RUN, "--stage2-lr", "-0.001"], "argument --stage2-lr: must be > 0"),
    ("missing teacher", [*RUN, "--teacher", "{good}/no_such_model"], "does not exist"),
    ("GPT-2 teacher", [*RUN, "--teacher", "{gpt2}"], "model_type 'gpt2' is not supported"),
    ("n_trials 0", [*RUN, "--n-trials", "0"], "argument --n-trials: must be >= 1, got 0"),
    ("unknown scenario", [*RUN, "--scenario", "tpu-fast"], "scenario key 'tpu-fast'"),
    ("empty dev split", ["run", "--task", "{empty_dev}"], "dev.tsv: no examples"),
    ("dev label unseen in train", ["run", "--task", "{unseen_dev}"], "never occur in the train file"),
    ("non-UTF-8 file", ["run", "--task", "{latin1}"], "line 62 is not UTF-8"),
    ("unknown config key", [*RUN, "--config", "{typo.toml}"], "did you mean 'n_trials'"),
    ("wrong type in YAML", [*RUN, "--config", "{bad_type.yaml}"], "bad_type.yaml: key 'batch_size' must be an integer"),
    ("--only bogus", [*RUN, "--only", "teacher,bogus"], "--only: unknown stage(s) ['bogus']"),
    ("negative epochs", [*RUN, "--teacher-epochs", "-1"], "argument --teacher-epochs: must be > 0"),
    ("negative epochs in YAML", [*RUN, "--config", "{neg_epochs.yaml}"], "key 'stage1_epochs' must be > 0"),
    ("zero stage-1 steps", [*RUN, "--stage1-steps", "0"], "argument --stage1-steps: must be >= 1"),
    ("missing config file", [*RUN, "--config", "{good}/run.toml"], "does not exist"),
    ("unparsable TOML", [*RUN, "--config", "{broken.toml}"], "cannot be parsed"),
    ("TOML table", [*RUN, "--config", "{table.toml}"], "[stage2] is a table"),
    ("YAML list", [*RUN, "--config", "{list.yaml}"], "must hold a table/mapping"),
    ("unknown precision in YAML", [*RUN, "--config", "{bad_precision.yaml}"], "key 'precision' must be one of"),
    ("metric not first", [*RUN, "--objectives", "latency"], "objectives must start with 'metric'"),
    ("unknown baseline", [*RUN, "--baselines", "distilbert,bert-tiny"], "argument --baselines"),
    ("missing data dir", ["run", "--task", "{good}/nope"], "not found"),
    ("unknown device", [*RUN, "--device", "quantum"], "--device must be auto, cpu"),
    ("held-out selection without held-out slice", [*RUN, "--select-best", "heldout", "--importance-split", "dev"],
     "select_best 'heldout' needs the held-out train slice"),
    ("augment without MLM checkpoint", [*RUN, "--augment", "2"], "needs mlm_checkpoint"),
    ("unknown label column", [*RUN, "--label-column", "stars"], "label column stars not found"),
    ("too few examples to hold out", ["run", "--task", "{tiny_train}"], "too few to hold out"),
    ("limit_train of one class", ["run", "--task", "{sorted}", "--limit-train", "5"], "hold one class only"),
    ("scenario longer than the teacher", [*RUN, "--scenario", "cpu-eager-t1-b1-s4096"], "position table"),
    ("unknown preset", [*RUN, "--preset", "fast"], "argument --preset: invalid choice"),
    ("n_heldout 1", [*RUN, "--n-heldout", "1"], "argument --n-heldout: must be >= 2"),
    ("empty train file", ["run", "--task", "{empty_train}"], "train.tsv: no examples"),
    ("three text columns", [*RUN, "--text-columns", "a,b,c"], "1 or 2 columns"),
    ("unknown export", [*RUN, "--export", "best"], "argument --export: must be one of knee, pareto, none"),
    # deployment variants (--target x --precisions x --runtimes, or --scenario keys)
    ("unknown precision", [*RUN, "--target", "cpu-t2-b1-s64", "--precisions", "fp32,fp8"], "argument --precisions"),
    ("unknown runtime", [*RUN, "--target", "cpu-t2-b1-s64", "--runtimes", "tensorrt"], "argument --runtimes"),
    ("half precision on a cpu target", [*RUN, "--target", "cpu-t2-b1-s64", "--precisions", "fp16"],
     "half precision is a variant of the eager runtime on a cuda target only"),
    ("target with a runtime in it", [*RUN, "--target", "cpu-ort-t2-b1-s64"], "is not of the form"),
    ("cpu target without threads", [*RUN, "--target", "cpu-b1-s64"], "lacks -t{threads}"),
    ("scenario and target both", [*RUN, "--scenario", "cpu-ort-t2-b1-s64", "--target", "cpu-t2-b1-s64"],
     "both name the deployment variants"),
    ("precisions without a target", [*RUN, "--preset", "released", "--precisions", "int8"], "--precisions needs --target"),
    ("variants of two targets", [*RUN, "--scenario", "cpu-eager-t2-b1-s64,cpu-ort-t2-b1-s128"], "share one target"),
    ("target longer than the teacher", [*RUN, "--target", "cpu-t2-b1-s4096"], "position table"),
    ("negative seed-with-rule", [*RUN, "--seed-with-rule", "-1"], "argument --seed-with-rule: must be >= 0"),
    # the single-stage commands
    ("train-stage2 batch size 0", ["train-stage2", "--batch-size", "0"], "argument --batch-size: must be >= 1"),
    ("train-stage1 negative lr", ["train-stage1", "--lr", "-0.0001"], "argument --lr: must be > 0"),
    ("train-teacher negative epochs", ["train-teacher", "--epochs", "-2"], "argument --epochs: must be > 0"),
    ("train-teacher GPT-2", ["train-teacher", "--task", "{good}", "--teacher", "{gpt2}"], "model_type 'gpt2'"),
    ("train-teacher one class", ["train-teacher", "--task", "{one_class}"], "at least two classes"),
    ("train-teacher max length 100000", ["train-teacher", "--task", "{good}", "--max-length", "100000"],
     "position table"),
    ("train-stage2 without a run", ["train-stage2"], "has no run.json yet"),
    ("rewire importance batch 0", ["rewire", "--importance-batch-size", "0"], "must be >= 1"),
]


def _refused(argv: list[str], capsys) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as e:  # argparse: usage + one error line
        code = e.code
    out = capsys.readouterr()
    return int(code or 0), out.err


@pytest.mark.parametrize("case,argv,message", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_with_one_message_and_nothing_written(case, argv, message, world, tmp_path, capsys,
                                                                   monkeypatch):
    import app.workflow.pipeline as pipeline

    def refuse(*a, **k):
        raise AssertionError(f"{case}: got past the checks")
    monkeypatch.setattr(pipeline, "run_pipeline", refuse)
    run_dir = tmp_path / "run"
    code, err = _refused([*_cmd(argv, world), "--run-dir", str(run_dir)], capsys)
    assert code != 0, case
    assert "Traceback" not in err, err
    errors = [ln for ln in err.splitlines() if ln.startswith(("error:", "dynabert")) and "error:" in ln]
    assert len(errors) == 1, err
    assert message in errors[0], errors[0]
    assert not run_dir.exists(), f"{case}: {sorted(p.name for p in run_dir.rglob('*'))}"


def test_at_least_25_cases_on_run():
    assert sum(argv[0] == "run" for _, argv, _ in CASES) >= 25


def test_refused_from_a_fresh_process(world, tmp_path):
    """Outside pytest's capture: the real `dynabert` entry, stderr as a user sees it."""
    run_dir = tmp_path / "run"
    for argv in (["run", "--task", str(world["one_class"])], ["run", "--task", str(world["good"]), "--config",
                                                               str(world["fast.toml"])]):
        p = subprocess.run([sys.executable, "-m", "app.cli", *argv, "--run-dir", str(run_dir)], cwd=ROOT,
                           capture_output=True, text=True, timeout=120)
        assert p.returncode == 2 and "Traceback" not in p.stderr and p.stderr.startswith("error: "), p.stderr
        assert not run_dir.exists()
