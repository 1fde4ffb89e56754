"""What a stage needs from its run directory: the options resolved against run.json, the task loaded,
tokenized and checked to be the run's own, the held-out importance slice cut off, and the checkpoints of
earlier stages (or any HF BERT) loaded and checked for compatibility."""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional, Sequence

from elastic.model.config import IMPORTANCE_SPLITS
from elastic.data.tasks import DataError, EncodedSplit, TaskData, encode_split, load_task
from elastic.training.evaluate import make_eval_loader
from elastic.training.loop import rank_world
from elastic.model.modeling import ElasticBertForSequenceClassification
from elastic.rundir import REWIRED, RunDir, RunDirError, find_stage, read_run
from elastic.rundir import write_run as _write_run_json
from elastic.model.weights import CheckpointError, META_FILE, load_checkpoint, load_hf_bert, load_tokenizer

MAX_HELDOUT = 1000


def task_columns(run: dict[str, Any], text_columns: Optional[Sequence[str]] = None,
                 label_column: Optional[str] = None) -> dict[str, Any]:
    """`load_task`'s column arguments: the given ones, else those recorded in run.json (None = detect)."""
    cols = text_columns if text_columns is not None else run.get("text_columns")
    return {"text_columns": None if cols is None else tuple(cols),
            "label_column": label_column if label_column is not None else run.get("label_column")}


# ---- run.json ----------------------------------------------------------------------------------
def write_run(run_dir: Path, run: dict[str, Any]) -> None:
    """Write run.json from rank 0 only (every rank of a multi-process run holds the same record)."""
    if rank_world()[0] != 0:
        return
    _write_run_json(run_dir, run)


@dataclass
class Prepared:
    run: dict[str, Any]
    task: TaskData
    tokenizer: Any
    train: EncodedSplit
    heldout: Optional[EncodedSplit]
    loaders: dict[str, Any]
    max_length: int
    seed: int


def prepare(run_dir: Path, opts: Any, *, tokenizer_from: Optional[Path] = None) -> Prepared:
    """Resolve options (an `elastic.training.stages.StageOptions`) against run.json, load and tokenize the task, check it
    is the run's task."""
    run = read_run(run_dir)
    spec = opts.task or run.get("task_spec")
    if spec is None:
        raise RunDirError(f"{run_dir} has no run.json yet: pass --task (e.g. --task /path/to/sst2)")
    seed = opts.seed if opts.seed is not None else int(run.get("seed", 42))
    max_length = opts.max_length or int(run.get("max_length", 128))
    split_mode = opts.importance_split or run.get("importance_split", "train-heldout")
    if split_mode not in IMPORTANCE_SPLITS:
        raise ValueError(f"--importance-split must be one of {IMPORTANCE_SPLITS}, got '{split_mode}'")
    columns = task_columns(run, opts.text_columns, opts.label_column)
    task = check_task(run_dir, run, spec, int(run.get("seed", seed)), columns)
    check_trainable(task, importance_split=split_mode, limit_train=opts.limit_train)
    meta = task.to_meta()
    if "heldout_examples" in run:
        heldout_n = int(run["heldout_examples"])
    else:
        n = len(task.splits["train"])
        heldout_n = min(MAX_HELDOUT, n // 10) if split_mode == "train-heldout" else 0
    run.setdefault("created", datetime.now(timezone.utc).isoformat(timespec="seconds"))
    run.update(task_spec=spec, task=meta, text_columns=None if columns["text_columns"] is None else
               list(columns["text_columns"]), label_column=columns["label_column"], metric=task.metric, seed=run.get("seed", seed),
               max_length=run.get("max_length", max_length), importance_split=run.get("importance_split", split_mode),
               heldout_examples=heldout_n)
    run.setdefault("stage_seconds", {})
    tok_dir = RunDir(run_dir).tokenizer
    if tokenizer_from is not None:
        tokenizer = load_tokenizer(tokenizer_from)
    elif tok_dir.exists():
        tokenizer = load_tokenizer(tok_dir)
    else:
        raise RunDirError(f"{run_dir} has no tokenizer/: run `dynabert train-teacher --run-dir {run_dir}` first")
    full_train = encode_split(task, "train", tokenizer, max_length)
    n_train = len(full_train) - heldout_n
    # The importance slice is the LAST `heldout_n` training examples; no stage trains on them.
    train = _subset(full_train, range(n_train if opts.limit_train is None else min(n_train, opts.limit_train)))
    heldout = _subset(full_train, range(n_train, len(full_train))) if heldout_n else None
    loaders = {s: make_eval_loader(encode_split(task, s, tokenizer, max_length))
               for s in ("dev", "test") if s in task.splits}
    return Prepared(run, task, tokenizer, train, heldout, loaders, max_length, seed)


def check_task(run_dir: Path, run: dict[str, Any], spec: str, seed: int,
               columns: Optional[dict[str, Any]] = None) -> TaskData:
    """Load the task `spec` (with `task_columns`, default the run's); a clear error when the run directory
    was made for other data."""
    task = load_task(spec, seed=seed, **(columns if columns is not None else task_columns(run)))
    if run.get("task") and run["task"].get("fingerprint") != task.to_meta()["fingerprint"]:
        raise RunDirError(
            f"{run_dir} belongs to task '{run['task'].get('name')}' ({run.get('task_spec')}), not to '{spec}' "
            "(the data differ); use another --run-dir for this task")
    return task


def check_trainable(task: TaskData, *, importance_split: str = "train-heldout",
                    limit_train: Optional[int] = None) -> None:
    """Refuse data no stage can learn from (before a run writes anything): an empty split, one class in train
    (or in the first `limit_train` examples), too few examples to hold out the importance slice.

    Raises:
        DataError: naming the task and what to change.
    """
    for split, df in task.splits.items():
        if len(df) == 0:
            raise DataError(f"task '{task.name}': the {split} split is empty; every split needs examples")
    n = len(task.splits["train"])
    heldout_n = min(MAX_HELDOUT, n // 10) if importance_split == "train-heldout" else 0
    if importance_split == "train-heldout" and heldout_n == 0:
        raise DataError(f"task '{task.name}': train has {n} example(s), too few to hold out 10% for importance; "
                        "add data, or measure importance on dev (--importance-split dev)")
    if task.is_regression:
        return
    labels = task.splits["train"]["label"]
    if labels.nunique() < 2:
        raise DataError(f"task '{task.name}': every training example has the label "
                        f"'{task.label_names[int(labels.iloc[0])]}'; a classifier needs at least two classes in train")
    if limit_train is not None and labels.iloc[:min(n - heldout_n, limit_train)].nunique() < 2:
        raise DataError(f"task '{task.name}': the first {limit_train} training examples (--limit-train) hold one "
                        "class only; raise --limit-train or shuffle the training file")


def _subset(enc: EncodedSplit, idx) -> EncodedSplit:
    idx = list(idx)
    return EncodedSplit([enc.input_ids[i] for i in idx], [enc.token_type_ids[i] for i in idx],
                        [enc.labels[i] for i in idx], enc.is_regression, enc.pad_token_id)


# ---- models ------------------------------------------------------------------------------------
def load_any(path: str | os.PathLike, num_labels: int) -> ElasticBertForSequenceClassification:
    """Our checkpoint (elastic_config.json) or any HF BERT directory; a clear error if missing."""
    p = Path(path).expanduser()
    if (p / META_FILE).exists():
        model, _ = load_checkpoint(p)
        if model.num_labels != num_labels:
            raise CheckpointError(f"checkpoint {p} has {model.num_labels} labels, the task has {num_labels}")
        return model
    if not p.exists() and (p.is_absolute() or str(path).startswith(".") or str(path).count("/") != 1):
        raise CheckpointError(f"teacher checkpoint {p} does not exist; give a checkpoint directory "
                              "(config.json + weights) or leave --teacher out for the embedded default")
    return load_hf_bert(path, num_labels)


def check_compatible(student: ElasticBertForSequenceClassification,
                     teacher: ElasticBertForSequenceClassification, teacher_path: str) -> None:
    """Distillation needs the same tokenizer (vocabulary) and the same layer/hidden layout."""
    s, t = student.arch, teacher.arch
    if s.vocab_size != t.vocab_size:
        raise CheckpointError(f"teacher {teacher_path} has a vocabulary of {t.vocab_size} tokens but the student "
                              f"has {s.vocab_size}: they need the same tokenizer; pick a teacher of the same family")
    if (s.num_layers, s.hidden_size, s.num_heads, s.head_dim, s.intermediate_size) != (
            t.num_layers, t.hidden_size, t.num_heads, t.head_dim, t.intermediate_size):
        raise CheckpointError(
            f"teacher {teacher_path} has another architecture ({t.num_layers} layers, hidden {t.hidden_size}, "
            f"{t.num_heads} heads, FFN {t.intermediate_size}) than the student ({s.num_layers} layers, hidden "
            f"{s.hidden_size}, {s.num_heads} heads, FFN {s.intermediate_size}); hidden-state distillation "
            "needs the same layout: distil from the run's own teacher (leave --teacher out)")
    if student.num_labels != teacher.num_labels:
        raise CheckpointError(f"teacher {teacher_path} has {teacher.num_labels} labels, the student {student.num_labels}")


def load_stage_model(run_dir: Path, name: str, num_labels: int) -> ElasticBertForSequenceClassification:
    """The finished checkpoint of stage folder `name` (`teacher`, `rewired`, `stage1`, ...) of a run.

    Raises:
        RunDirError: the stage has not finished (its message says which command makes it).
    """
    found = find_stage(run_dir, (name,))
    if found is None:
        raise RunDirError(f"{run_dir} has no finished '{name}' stage; run it first "
                          f"(dynabert {'rewire' if name == REWIRED else 'train-' + name} --run-dir {run_dir})")
    return load_any(found[1], num_labels)
