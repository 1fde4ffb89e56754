"""Tasks from the `datasets` library: GLUE, any Hugging Face dataset (`hf:<id>[:<config>]`), and a
directory written by `datasets.save_to_disk`.

Split names map onto ours: `train` -> train; `validation`/`dev`/`val`/`validation_matched` -> dev;
`test` -> test unless its labels are hidden (all -1 or missing, as in GLUE test), in which case test is
carved from train by the same stratified, seeded split as for local files (`elastic.data.tasks.build_task`).
`ClassLabel` label features keep their class names. Nothing here downloads unless `datasets` itself
can reach a hub; offline, `hf:` takes any local dataset folder or script-free repository in the cache.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from elastic.data.tables import DataError, Metric, TaskData, _carve, _ordered, _pick_columns, build_task

HF_PREFIX = "hf:"
# Our split <- the first of these names the dataset has.
SPLIT_NAMES: dict[str, tuple[str, ...]] = {"train": ("train",),
                                           "dev": ("validation", "dev", "val", "validation_matched"),
                                           "test": ("test",)}

# The canonical hub id of GLUE (the bare "glue" id is a redirect that offline caches do not follow).
GLUE_HUB_ID = "nyu-mll/glue"
# task -> (text columns, dev split name, primary metric); stsb is the one regression task.
GLUE_TASKS: dict[str, tuple[tuple[str, ...], str, Metric]] = {
    "cola": (("sentence",), "validation", "mcc"),
    "sst2": (("sentence",), "validation", "accuracy"),
    "mrpc": (("sentence1", "sentence2"), "validation", "f1"),
    "qqp": (("question1", "question2"), "validation", "f1"),
    "stsb": (("sentence1", "sentence2"), "validation", "spearman"),
    "mnli": (("premise", "hypothesis"), "validation_matched", "accuracy"),
    "qnli": (("question", "sentence"), "validation", "accuracy"),
    "rte": (("sentence1", "sentence2"), "validation", "accuracy"),
    "wnli": (("sentence1", "sentence2"), "validation", "accuracy"),
}


def load_glue(task: str, *, seed: int, test_fraction: float) -> TaskData:
    """GLUE task `task` through `datasets`: dev = GLUE validation, test carved from GLUE train (hidden labels)."""
    if task not in GLUE_TASKS:
        raise DataError(f"unknown GLUE task 'glue/{task}'; supported: {', '.join(GLUE_TASKS)}")
    cols, dev_split, metric = GLUE_TASKS[task]
    import datasets  # heavy import, needed only here

    try:
        raw = datasets.load_dataset(GLUE_HUB_ID, task)
    except Exception as exc:  # offline, no cache, hub error: all mean the same thing to the user
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise DataError(
            f"GLUE task 'glue/{task}' could not be loaded (no hub reachable and no local datasets cache; "
            f"{type(exc).__name__}: {first}). Use a local TSV/CSV/JSONL file or a directory with "
            f"train.tsv/dev.tsv (columns {' and '.join(cols)} plus label), or the embedded default 'bbc'."
        ) from exc
    is_reg = metric == "spearman"
    label_names = [] if is_reg else list(raw["train"].features["label"].names)
    frames = {}
    for split, hf_split in (("train", "train"), ("dev", dev_split)):
        df = raw[hf_split].to_pandas()
        out = pd.DataFrame({"text_a": df[cols[0]].astype(str)})
        if len(cols) == 2:
            out["text_b"] = df[cols[1]].astype(str)
        out["label"] = df["label"].astype("float64" if is_reg else "int64")
        out.index.name = "row"
        frames[split] = out
    parts = _carve(frames["train"], {"test": test_fraction}, is_reg, seed, f"GLUE {task} train")
    frames.update(parts)
    source = (f"GLUE {task} via datasets ({GLUE_HUB_ID}); dev = GLUE {dev_split}; "
              f"test = stratified {test_fraction:.0%} of GLUE train (seed {seed}), removed from train, "
              f"because GLUE test labels are hidden")
    return TaskData(f"glue/{task}", cols, label_names, metric, is_reg, _ordered(frames), source)


def load_datasets_task(spec: str, *, text_columns: Sequence[str] | None, label_column: str | None, seed: int,
                       dev_fraction: float, test_fraction: float) -> TaskData:
    """`hf:<id>[:<config>]` through `datasets.load_dataset`, or a `save_to_disk` directory.

    Args:
        spec: the task spec (see `elastic.data.tasks.load_task`).
        text_columns, label_column, seed, dev_fraction, test_fraction: as in `load_task`.

    Raises:
        DataError: the dataset cannot be loaded, has no train split, or its columns/labels do not fit.
    """
    import datasets  # heavy import, needed only here

    if spec.lower().startswith(HF_PREFIX):
        hub_id, _, config = spec[len(HF_PREFIX):].partition(":")
        if not hub_id:
            raise DataError(f"task spec '{spec}': name a dataset, e.g. hf:stanfordnlp/imdb or hf:nyu-mll/glue:sst2")
        try:
            dd = datasets.load_dataset(hub_id, config or None)
        except Exception as exc:  # offline, unknown id, missing config: one message either way
            first = (str(exc).strip().splitlines() or [""])[0][:300]
            raise DataError(f"dataset '{hub_id}'{f' (config {config})' if config else ''} could not be loaded "
                            f"through datasets ({type(exc).__name__}: {first}); check the id and config, or "
                            "give a local folder of train/validation/test files or a save_to_disk directory"
                            ) from exc
        name, origin = hub_id.rstrip("/").split("/")[-1] + (f"-{config}" if config else ""), f"datasets {spec}"
    else:
        path = Path(spec).expanduser()
        try:
            dd = datasets.load_from_disk(str(path))
        except Exception as exc:
            raise DataError(f"{path}: looks like a datasets.save_to_disk directory but cannot be loaded "
                            f"({type(exc).__name__}: {exc})") from exc
        name, origin = path.name, f"datasets.save_to_disk directory {path.resolve()}"
    if isinstance(dd, datasets.Dataset):
        dd = datasets.DatasetDict({"train": dd})
    return _from_dataset_dict(dd, name=name, origin=origin, text_columns=text_columns, label_column=label_column,
                              seed=seed, dev_fraction=dev_fraction, test_fraction=test_fraction)


def _from_dataset_dict(dd: Any, *, name: str, origin: str, text_columns: Sequence[str] | None,
                       label_column: str | None, seed: int, dev_fraction: float, test_fraction: float) -> TaskData:
    splits = {ours: next((n for n in names if n in dd), None) for ours, names in SPLIT_NAMES.items()}
    if splits["train"] is None:
        raise DataError(f"{origin}: no 'train' split (found: {', '.join(dd)}); a task needs labeled training data")
    raw = {ours: dd[theirs].to_pandas() for ours, theirs in splits.items() if theirs is not None}
    where = {ours: Path(f"{name}[{theirs}]") for ours, theirs in splits.items() if theirs is not None}
    # Columns are picked on train (as for files); hidden test labels are dropped before labels are parsed.
    _, label_col = _pick_columns(raw["train"], where["train"], text_columns, label_column)
    hidden = [s for s in ("dev", "test") if s in raw and label_col in raw[s].columns and _hidden(raw[s][label_col])]
    for split in hidden:
        del raw[split]
    notes = [f"{ours} = {splits[ours]}" for ours in raw] + [
        f"its {splits[s]} labels are hidden (all -1 or missing), not used" for s in hidden]
    features = dd[splits["train"]].features
    class_names = list(getattr(features.get(label_col), "names", None) or [])
    if class_names:  # ids -> names, so the task keeps the dataset's class names (ids then follow sorted names)
        for df in raw.values():
            df[label_col] = [class_names[int(v)] if 0 <= int(v) < len(class_names) else str(v) for v in df[label_col]]
    return build_task(raw, where, text_columns, label_col, name=name, seed=seed, dev_fraction=dev_fraction,
                      test_fraction=test_fraction, source=f"{origin} ({'; '.join(notes)})")


def _hidden(labels: pd.Series) -> bool:
    """Whether a split's labels are all hidden: -1 (GLUE test) or missing."""
    vals = labels.to_numpy()
    return all(v is None or (isinstance(v, float) and np.isnan(v)) or v == -1 for v in vals)
