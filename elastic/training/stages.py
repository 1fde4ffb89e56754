"""Stage orchestration over a run directory: what `app.workflow.train` calls.

`run_stage(run_dir, stage, options)` loads the task and the stage's inputs from the run directory
(`elastic.training.prepare`), trains (resuming when asked), saves the stage's checkpoint, `done.json`, `grid.csv` rows,
the JSONL log and `run.json`; skipping, resuming, done.json and the clean-up are `elastic.training.job`'s. `run_rewire` computes importance and writes `rewired/` + `importance.json`.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Optional

import pandas as pd
import torch

from elastic.model.config import SELECT_SPLITS, SubnetConfig
from elastic.data.tasks import TaskData, encode_split, make_loader
from elastic.training.device import CPU_FP32, Runtime, init_distributed
from elastic.training.evaluate import CostFn, GRID_COLUMNS, evaluate, grid_rows, make_eval_loader
from elastic.training.job import Job, barrier, run_job, selection_record
from elastic.training.loop import BatchPlan, LoopConfig, rank_world
from elastic.training.prepare import (Prepared, check_compatible, check_task, load_any, load_stage_model, prepare,
                             task_columns, write_run)
from elastic.training.rewire import compute_importance, importance_record, rewire
from elastic.rundir import (GRID_CSV, IMPORTANCE_JSON, REWIRED, RunDir, RunDirError, read_json, read_run,
                            write_json)
from elastic.training.stage_options import StageOptions
from elastic.training.train import Stage, subnet_name, train_stage, uniform_plan
from elastic.model.weights import (CheckpointError, META_FILE, default_teacher_path, read_arch, resolve_checkpoint_dir,
                             save_checkpoint)

# Stage -> run-dir folder it starts from (student; also the default distillation teacher).
STAGE_INPUT = {Stage.STAGE1: REWIRED, Stage.STAGE2: Stage.STAGE1.value, Stage.STAGE3: Stage.STAGE2.value}


# ---- stages ------------------------------------------------------------------------------------
def write_grid(run_dir: Path, rows: list[dict[str, Any]], stage: str) -> None:
    """Replace `stage`'s rows of grid.csv with `rows`."""
    f = run_dir / GRID_CSV
    old = pd.read_csv(f) if f.exists() else pd.DataFrame(columns=list(GRID_COLUMNS))
    old = old[old["stage"] != stage]
    new = pd.DataFrame(rows, columns=list(GRID_COLUMNS))
    out = new if old.empty else pd.concat([old, new], ignore_index=True)
    out.to_csv(f, index=False)


def _truncate_log(log: Path, step: int) -> None:
    """Drop log lines past the checkpoint being resumed (they will be written again)."""
    if not log.exists():
        return
    keep = [ln for ln in log.read_text().splitlines() if ln.strip() and json.loads(ln).get("step", 0) <= step]
    log.write_text("".join(ln + "\n" for ln in keep))


# Options that do not change what a stage learns (bookkeeping, the machine), or are checked elsewhere (the task).
_NOT_RECIPE = frozenset({"task", "text_columns", "label_column", "save_every", "log_every", "resume", "progress",
                         "runtime"})


def option_differences(run_dir: Path, stage: Stage, opts: StageOptions) -> list[str]:
    """What a finished stage was trained with that `opts` asks otherwise, as "name: recorded -> asked" (run.json's
    options of the stage; an option left None means "as recorded", so it never differs)."""
    recorded = read_run(run_dir).get("options", {}).get(stage.value)
    if not recorded:
        return []
    out = []
    for name, asked in asdict(opts).items():
        if name in _NOT_RECIPE or asked is None or name not in recorded:
            continue
        had = recorded[name]
        if (list(asked) if isinstance(asked, tuple) else asked) != had:
            out.append(f"{name}: {had} -> {asked}")
    return out


def loop_config(opts: StageOptions, *, steps_per_epoch: int, seed: int, max_length: int,
                selecting: bool) -> LoopConfig:
    """The training loop's options of a stage: the one place `StageOptions` become a `LoopConfig`.

    Args:
        opts: the stage's options.
        steps_per_epoch: optimizer steps of one pass over the stage's training data.
        seed: the run's seed (`opts.seed`, else run.json's).
        max_length: the run's tokens per example (padding "max_length" pads every batch to it).
        selecting: whether the stage selects its best weights (`--select-best` is on and has a split).
    """
    epochs = opts.epochs if opts.epochs is not None else 3.0
    total = opts.max_steps or max(1, math.ceil(epochs * steps_per_epoch))
    return LoopConfig(total_steps=total, batch_size=opts.batch_size, lr=opts.lr, warmup_steps=opts.warmup_steps,
                      seed=seed, save_every=opts.save_every, log_every=opts.log_every,
                      widths=tuple(opts.widths), depths=tuple(opts.depths), extra_subnets=opts.extra_subnets,
                      teacher_width=opts.teacher_width, select_every=opts.select_every if selecting else 0,
                      hidden_weight=opts.hidden_weight, hard_weight=opts.hard_weight, batching=opts.batching,
                      pad_to_length=max_length if opts.padding == "max_length" else 0, adam_eps=opts.adam_eps,
                      subnet_forward=opts.subnet_forward)


def run_stage(run_dir: str | os.PathLike, stage: Stage, opts: StageOptions,
              cost_fn: Optional[CostFn] = None, on_step: Optional[Callable[[int], None]] = None) -> dict[str, Any]:
    """Run one training stage in a run directory (skipped when its done.json exists).

    Args:
        run_dir: `runs/<name>`.
        stage: TEACHER, STAGE1, STAGE2 or STAGE3.
        opts: command options.
        cost_fn: cfg -> {"macs", "params"} for grid.csv (from profiling; None = params only).
        on_step: test hook, called after every optimizer step.

    Returns:
        The stage's done.json content, plus "skipped": True when it had finished before, and then "differs": the
        options it was trained with that `opts` asks otherwise (`option_differences`).
    """
    run_dir = Path(run_dir)

    def check_done(info: dict[str, Any]) -> None:
        if opts.task:  # a finished stage is not rerun, but a wrong --task is still an error
            run = read_run(run_dir)
            check_task(run_dir, run, opts.task, int(run.get("seed", 42)),
                       task_columns(run, opts.text_columns, opts.label_column))

    job = Job(run_dir / stage.value, stage.value, resume=opts.resume)
    res = run_job(job, lambda j: _train(run_dir, stage, opts, j, cost_fn, on_step), check_done=check_done)
    if res.skipped:
        return {**res.info, "skipped": True, "differs": option_differences(run_dir, stage, opts)}
    return res.info


def _train(run_dir: Path, stage: Stage, opts: StageOptions, job: Job, cost_fn: Optional[CostFn],
           on_step: Optional[Callable[[int], None]]) -> dict[str, Any]:
    """`run_stage`'s training job: train, save the checkpoint, grid.csv rows and run.json; returns done.json's record."""
    out_dir = job.out_dir
    rt = opts.runtime.check()
    init_distributed(rt)
    rank, _ = rank_world()
    teacher_src = None
    if stage is Stage.TEACHER:
        teacher_src = opts.teacher or read_run(run_dir).get("teacher") or str(default_teacher_path())
        if not Path(teacher_src).expanduser().exists() and not opts.teacher:
            raise CheckpointError(f"teacher checkpoint {teacher_src} recorded in run.json does not exist")
        # Resolve and check the checkpoint (missing, a file, not BERT) before its tokenizer is touched.
        tok_from = resolve_checkpoint_dir(teacher_src)
        if not (tok_from / META_FILE).exists():  # our own checkpoints carry their arch in META_FILE
            read_arch(tok_from)
        prep = prepare(run_dir, opts, tokenizer_from=tok_from)
        # A fresh head (a checkpoint without one, as all-MiniLM-L6-v2, or of another size) draws its initial
        # weights from torch's global RNG: seed it, so that one --seed gives one teacher.
        torch.manual_seed(prep.seed)
        student = load_any(teacher_src, prep.task.num_labels)
        teacher = None
        prep.run["teacher"] = teacher_src
    else:
        prep = prepare(run_dir, opts)
        student = load_stage_model(run_dir, STAGE_INPUT[stage], prep.task.num_labels)
        teacher = None
        if stage in (Stage.STAGE1, Stage.STAGE2):
            if opts.teacher:
                teacher = load_any(opts.teacher, prep.task.num_labels)
                check_compatible(student, teacher, opts.teacher)
            else:
                teacher = load_stage_model(run_dir, STAGE_INPUT[stage], prep.task.num_labels)
    if prep.max_length > student.arch.max_seq_len:  # before anything is written: the run stays as it was
        raise ValueError(f"max length {prep.max_length} is longer than the model's position table "
                         f"({student.arch.max_seq_len} positions): use --max-length {student.arch.max_seq_len} or less")
    train_data = prep.train
    if opts.augment and stage in (Stage.STAGE1, Stage.STAGE2):
        from elastic.data.augment import augment_encoded
        train_data = augment_encoded(prep.task, train_data, prep.tokenizer, n_per_example=opts.augment,
                                     mlm_checkpoint=opts.mlm_checkpoint, max_length=prep.max_length, seed=prep.seed)
    select_loader = make_select_loader(prep, opts, run_dir)
    spe = BatchPlan(train_data, opts.batch_size, prep.seed).steps_per_epoch
    loop = loop_config(opts, steps_per_epoch=spe, seed=prep.seed, max_length=prep.max_length,
                       selecting=select_loader is not None)
    total = loop.total_steps
    log = RunDir(run_dir).log(stage.value)
    if rank == 0:
        log.parent.mkdir(parents=True, exist_ok=True)
        out_dir.mkdir(parents=True, exist_ok=True)
        resume_step = job.resume_step()
        if resume_step is not None:
            _truncate_log(log, resume_step)
        elif log.exists():
            log.unlink()
        run = prep.run
        run.setdefault("options", {})[stage.value] = {k: v for k, v in asdict(opts).items() if k != "progress"}
        run["options"][stage.value].update(total_steps=total, train_examples=len(train_data), steps_per_epoch=spe)
        write_run(run_dir, run)
        if stage is Stage.TEACHER:
            prep.tokenizer.save_pretrained(str(RunDir(run_dir).tokenizer))
    barrier()

    select_cfgs = [p.student for p in uniform_plan(stage, student.arch, loop)]

    def per_subnet(loader) -> dict[str, float]:
        return {subnet_name(c, student.arch): evaluate(student, loader, c, prep.task, rt)["metric"] for c in select_cfgs}

    def eval_fn(step: int) -> dict[str, Any]:
        if "dev" not in prep.loaders or rank != 0:
            return {}
        rec = {"dev_metric": round(evaluate(student, prep.loaders["dev"], None, prep.task, rt)["metric"], 4)}
        if len(select_cfgs) > 1:  # every trained sub-network's dev metric: a stuck one shows in the curves
            rec["dev_metrics"] = {k: round(v, 4) for k, v in per_subnet(prep.loaders["dev"]).items()}
        return rec

    def select_fn(step: int) -> dict[str, float]:  # their sum is the score, as the released code
        return per_subnet(select_loader)

    result = train_stage(student, teacher, stage, train_data, loop, is_regression=prep.task.is_regression,
                         ckpt_dir=job.ckpt_dir, log_path=log, resume=job.resume, progress=opts.progress,
                         on_step=on_step, eval_fn=eval_fn, select_fn=select_fn if select_loader else None,
                         runtime=rt)
    info = {"steps": result.steps, "epochs": round(result.steps / spe, 4), "seconds": round(result.seconds, 2),
            "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    if result.selected_step is not None:
        info.update(select_on=opts.select_best, select_every=opts.select_every, **selection_record(result),
                    selected_over=len(select_cfgs))
    if rank == 0:
        save_checkpoint(student, out_dir, {"stage": stage.value, "steps": result.steps})
        if stage is Stage.TEACHER:
            metrics = {s: evaluate(student, ld, None, prep.task, rt) for s, ld in prep.loaders.items()}
            info["metrics"] = metrics
            rows = [{"stage": "teacher", "width_mult": 1.0, "depth_mult": 1.0,
                     "config_hash": SubnetConfig.full(student.arch).hash,
                     "config_json": SubnetConfig.full(student.arch).to_json(),
                     **{f"{s}_metric": m["metric"] for s, m in metrics.items()},
                     **{f"{s}_acc": m.get("accuracy", "") for s, m in metrics.items()}}]
            cost = (cost_fn or (lambda c: {"params": sum(p.numel() for p in student.parameters()), "macs": ""}))(
                SubnetConfig.full(student.arch))
            rows[0].update(macs=cost.get("macs", ""), params=cost.get("params", ""))
        else:
            rows = grid_rows(student, prep.loaders, prep.task, stage.value, cost_fn, runtime=rt)
            trained = {c.hash for c in select_cfgs}  # stage 1 does not train the shallow grid points
            stuck = stuck_subnets([r for r in rows if r["config_hash"] in trained], prep.task)
            if stuck:
                info["stuck_subnets"] = stuck
        write_grid(run_dir, rows, stage.value)
        run = read_run(run_dir)
        run.setdefault("stage_seconds", {})[stage.value] = info["seconds"]
        if stage is Stage.TEACHER:
            run["teacher_metrics"] = info["metrics"]
        write_run(run_dir, run)
    return info  # run_job writes it to done.json, then removes the checkpoint


def majority_accuracy(task: TaskData, split: str) -> Optional[float]:
    """Accuracy (%) of always predicting the most frequent label of `split` (None for regression or no labels)."""
    if task.is_regression or split not in task.splits:
        return None
    labels = task.splits[split]["label"]
    labels = labels[labels >= 0]
    return None if labels.empty else 100.0 * labels.value_counts().iloc[0] / len(labels)


def stuck_subnets(rows: list[dict[str, Any]], task: TaskData, margin: float = 0.5) -> list[dict[str, Any]]:
    """Grid sub-networks whose accuracy is within `margin` points of the majority-class accuracy (or below):
    they most likely predict one class. Judged on dev, else test.

    Returns:
        [{"width_mult", "depth_mult", "split", "acc", "majority_acc"}] (empty when none is stuck).
    """
    split = "dev" if "dev" in task.splits else "test"
    majority = majority_accuracy(task, split)
    if majority is None:
        return []
    out = []
    for r in rows:
        acc = r.get(f"{split}_acc")
        if isinstance(acc, (int, float)) and acc <= majority + margin:
            out.append({"width_mult": r["width_mult"], "depth_mult": r["depth_mult"], "split": split,
                        "acc": round(float(acc), 2), "majority_acc": round(majority, 2)})
    return out


def stuck_warning(stage: str, stuck: list[dict[str, Any]]) -> str:
    """One warning line naming the grid sub-networks that ended `stage` at majority-class accuracy."""
    names = ", ".join(f"(w{s['width_mult']}, d{s['depth_mult']}) {s['acc']:.1f}" for s in stuck)
    return (f"warning: {len(stuck)} grid sub-network(s) ended {stage} at the majority-class accuracy of "
            f"{stuck[0]['split']} ({stuck[0]['majority_acc']:.1f}%): {names}. They predict (almost) one class; "
            "train longer (--max-steps/--epochs), raise the stage's --lr, or add --hard-weight")


def make_select_loader(prep: Prepared, opts: StageOptions, run_dir: Path):
    """The eval loader of `--select-best` (None when off); a clear error when its split is missing."""
    if opts.select_best not in SELECT_SPLITS:
        raise ValueError(f"--select-best must be one of {SELECT_SPLITS}, got '{opts.select_best}'")
    if opts.select_best == "off":
        return None
    if opts.select_every < 1:
        raise ValueError(f"--select-every must be >= 1 with --select-best, got {opts.select_every}")
    if opts.select_best == "heldout":
        if prep.heldout is None or len(prep.heldout) == 0:
            raise RunDirError(f"{run_dir} kept no held-out training slice (importance split 'dev'): "
                              "use --select-best dev or off")
        return make_eval_loader(prep.heldout)
    if "dev" not in prep.loaders:
        raise RunDirError(f"the task of {run_dir} has no dev split: use --select-best heldout or off")
    return prep.loaders["dev"]


def run_rewire(run_dir: str | os.PathLike, opts: StageOptions) -> dict[str, Any]:
    """Importance on the chosen split, rewiring of the teacher, `rewired/` + `importance.json`.

    Returns:
        {"split", "n_examples", "max_abs_logit_change", "seconds"}.
    """
    run_dir = Path(run_dir)
    if (run_dir / REWIRED / META_FILE).exists() and (run_dir / IMPORTANCE_JSON).exists():
        return {**read_json(run_dir / IMPORTANCE_JSON, IMPORTANCE_JSON), "skipped": True}
    t0 = time.perf_counter()
    prep = prepare(run_dir, opts)
    split = opts.importance_split or prep.run.get("importance_split", "train-heldout")
    model = load_stage_model(run_dir, Stage.TEACHER.value, prep.task.num_labels)
    if split == "dev":
        if "dev" not in prep.loaders:
            raise RunDirError(f"task '{prep.task.name}' has no dev split; use --importance-split train-heldout")
        data = encode_split(prep.task, "dev", prep.tokenizer, prep.max_length)
    else:
        if prep.heldout is None:
            raise RunDirError(f"{run_dir} trained its teacher on all of train (no held-out slice was kept): "
                              "use --importance-split dev, or start a new run with --importance-split train-heldout")
        data = prep.heldout
    if opts.importance_order == "file":  # the released code: file order, batches padded to max_length
        loader = make_loader(data, opts.importance_batch_size, shuffle=False, pad_to_length=prep.max_length)
    else:
        loader = make_eval_loader(data, batch_size=opts.importance_batch_size)
    head, ffn, n = compute_importance(model, loader, is_regression=prep.task.is_regression, progress=opts.progress,
                                      grads=opts.importance_grads, runtime=opts.runtime.check())
    model.cpu()  # rewiring and its no-change check run on the CPU, in fp32
    probe = next(iter(loader))
    model.eval()
    with torch.no_grad():
        before = model(probe["input_ids"], probe["attention_mask"], probe["token_type_ids"]).logits
        head_order, ffn_order = rewire(model, head, ffn)
        after = model(probe["input_ids"], probe["attention_mask"], probe["token_type_ids"]).logits
    change = float((before - after).abs().max())
    if change > 1e-3:  # a bug, never a user error: reordering must not change the function
        raise RuntimeError(f"rewiring changed the full model's logits by {change:.2e}")
    record = importance_record(split, n, head, ffn, head_order, ffn_order)
    save_checkpoint(model, run_dir / REWIRED, {"stage": REWIRED, "importance_split": split})
    write_json(run_dir / IMPORTANCE_JSON, record, schema=IMPORTANCE_JSON, indent=None)
    run = prep.run
    run.setdefault("stage_seconds", {})[REWIRED] = round(time.perf_counter() - t0, 2)
    run.setdefault("options", {})[REWIRED] = {"importance_split": split, "n_examples": n,
                                              "importance_grads": opts.importance_grads,
                                              "importance_order": opts.importance_order,
                                              "importance_batch_size": opts.importance_batch_size}
    write_run(run_dir, run)
    return {"split": split, "n_examples": n, "max_abs_logit_change": change,
            "seconds": round(time.perf_counter() - t0, 2)}


def evaluate_run(run_dir: str | os.PathLike, stage: str, cfg: Optional[SubnetConfig],
                 splits: tuple[str, ...] = ("dev", "test"), task: Optional[str] = None,
                 text_columns: Optional[tuple[str, ...]] = None, label_column: Optional[str] = None,
                 runtime: Runtime = CPU_FP32) -> dict[str, dict[str, float]]:
    """Metrics (in %) of one sub-network of a stage's checkpoint on the given splits (`task`, when given,
    must be the run's own: another task's data is refused, not silently replaced)."""
    run_dir = Path(run_dir)
    prep = prepare(run_dir, StageOptions(task=task, text_columns=text_columns, label_column=label_column,
                                         progress=False))
    model = load_stage_model(run_dir, stage, prep.task.num_labels)
    if cfg is not None:
        cfg.validate(model.arch)
    missing = [s for s in splits if s not in prep.loaders]
    if missing:
        raise RunDirError(f"task '{prep.task.name}' has no split(s) {missing}")
    rt = runtime.check()
    return {s: evaluate(model, prep.loaders[s], cfg, prep.task, rt) for s in splits}
