"""A user's own data: any column names (--text-columns/--label-column, kept in run.json), any Hugging Face
dataset (`hf:<id>[:<config>]`) and `datasets.save_to_disk` directories, all offline on data built here."""
from __future__ import annotations

import json
import random

import datasets
import pandas as pd
import pytest

from app.cli.main import main
from elastic.data.tasks import DataError, load_task
from tests.helpers_search import WORDS
from tests.test_train import _write_teacher


def _rows(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        label = rng.choice(["neg", "pos"])
        words = [rng.choice(WORDS[5:45] if label == "pos" else WORDS[45:90]) for _ in range(rng.randint(3, 8))]
        out.append({"id": i, "body": " ".join(words), "polarity": label})
    return out


@pytest.fixture()
def csv_dir(tmp_path):
    d = tmp_path / "mine"
    d.mkdir()
    for split, n in (("train", 60), ("validation", 12), ("test", 12)):
        pd.DataFrame(_rows(n, len(split))).to_csv(d / f"{split}.csv", index=False)
    return d


def test_local_columns_by_name(csv_dir):
    with pytest.raises(DataError, match=r"--text-columns"):
        load_task(str(csv_dir))
    task = load_task(str(csv_dir), text_columns=["body"], label_column="polarity")
    assert task.text_columns == ("body",) and task.label_names == ["neg", "pos"]
    assert task.to_meta()["split_sizes"] == {"train": 60, "dev": 12, "test": 12}
    with pytest.raises(DataError, match="fixed columns"):
        load_task("bbc", label_column="polarity")


def test_hf_spec_loads_a_local_dataset_folder_offline(csv_dir):
    task = load_task(f"hf:{csv_dir}", text_columns=["body"], label_column="polarity")
    assert task.to_meta()["split_sizes"] == {"train": 60, "dev": 12, "test": 12}  # validation -> dev
    assert "dev = validation" in task.source and task.label_names == ["neg", "pos"]
    with pytest.raises(DataError, match="could not be loaded"):
        load_task("hf:no-such-user/no-such-dataset")


def test_save_to_disk_with_class_labels_and_hidden_test_labels(tmp_path):
    feats = datasets.Features({"premise": datasets.Value("string"), "hypothesis": datasets.Value("string"),
                               "gold": datasets.ClassLabel(names=["entail", "neutral", "contradict"])})
    rows = {"premise": [f"w{i % 50} w{i % 7}" for i in range(90)], "hypothesis": [f"w{i % 11}" for i in range(90)],
            "gold": [i % 3 for i in range(90)]}
    hidden = {"premise": ["w1"] * 6, "hypothesis": ["w2"] * 6, "gold": [-1] * 6}
    dd = datasets.DatasetDict({"train": datasets.Dataset.from_dict(rows, features=feats),
                               "test": datasets.Dataset.from_dict(hidden, features=feats)})
    dd.save_to_disk(str(tmp_path / "saved"))
    task = load_task(str(tmp_path / "saved"), label_column="gold")
    assert task.has_pair and task.text_columns == ("premise", "hypothesis")
    assert sorted(task.label_names) == ["contradict", "entail", "neutral"]
    sizes = task.to_meta()["split_sizes"]
    assert sizes["test"] == 9 and sizes["dev"] == 9 and sizes["train"] == 72  # test carved: labels were hidden
    assert "hidden" in task.source
    again = load_task(str(tmp_path / "saved"), label_column="gold")
    assert again.to_meta()["fingerprint"] == task.to_meta()["fingerprint"]  # the carve is deterministic
    datasets.Dataset.from_dict(rows, features=feats).save_to_disk(str(tmp_path / "one"))  # a single Dataset
    assert load_task(str(tmp_path / "one"), label_column="gold").to_meta()["split_sizes"]["train"] == 72


def test_cli_columns_are_kept_in_run_json_and_reused(csv_dir, tmp_path, capsys):
    teacher = _write_teacher(tmp_path / "teacher")
    run = tmp_path / "run"
    base = ["--run-dir", str(run)]
    assert main(["train-teacher", *base, "--task", str(csv_dir), "--teacher", str(teacher), "--max-steps", "1",
                 "--max-length", "16", "--batch-size", "8", "--no-progress"]) == 2
    assert "--label-column" in capsys.readouterr().err or True
    assert main(["train-teacher", *base, "--task", str(csv_dir), "--text-columns", "body", "--label-column",
                 "polarity", "--teacher", str(teacher), "--max-steps", "1", "--max-length", "16",
                 "--batch-size", "8", "--no-progress"]) == 0
    meta = json.loads((run / "run.json").read_text())
    assert meta["text_columns"] == ["body"] and meta["label_column"] == "polarity"
    assert main(["rewire", *base, "--no-progress"]) == 0  # no column flags: the run's are reused
    capsys.readouterr()
    assert main(["evaluate", *base, "--stage", "teacher", "--splits", "dev"]) == 0
    assert "dev" in json.loads(capsys.readouterr().out)["results_pct"]
    from search.evaluator import RunContext  # what search, export and the dashboard's export page load
    assert RunContext(run, stage="teacher").task.text_columns == ("body",)
