"""Task tables: the `TaskData` every source becomes, and building it from raw split frames.

Column detection, label parsing and the stratified carving of missing dev/test splits, shared by the local
files (elastic/data/tasks.py) and `datasets` sources (elastic/data/hub.py), which both import from here.
"""
from __future__ import annotations

import csv
import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np
import pandas as pd

Metric = Literal["accuracy", "f1", "mcc", "spearman"]
SPLITS: tuple[str, ...] = ("train", "dev", "test")
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



# ---------------------------------------------------------------------------------- tables

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
        raise DataError(_not_utf8(path) or f"{path}: cannot read it as {suffix[1:].upper()}: {str(exc).strip()}"
                        ) from exc
    if len(df) == 0:
        raise DataError(f"{path}: no examples (only a header or nothing); a split needs at least one row")
    df.columns = [str(c).strip() for c in df.columns]
    return df


def _not_utf8(path: Path) -> str | None:
    """The first line of `path` that is not UTF-8, as a message with a hint (None when all of it is)."""
    try:
        lines = path.read_bytes().split(b"\n")
    except OSError:
        return None
    for number, line in enumerate(lines, 1):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as e:
            return (f"{path}: line {number} is not UTF-8 (byte 0x{line[e.start]:02x} at column {e.start + 1}); "
                    f"save the file as UTF-8, e.g. iconv -f latin1 -t utf-8 {path.name} > utf8_{path.name}")
    return None


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
    if len(seen) < 2:
        raise DataError(f"{files['train']}: every training example has the label {next(iter(seen))!r} (column "
                        f"'{name}'); a classifier needs at least two classes in train")
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
