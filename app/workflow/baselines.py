"""The baselines action behind `dynabert baselines` (its parser: app/cli/baselines.py; its options:
app/workflow/baseline_options.py): train and evaluate DistilBERT-/TinyBERT-style students, the INT8 teacher and
INT8 DynaBERT sub-networks, time them with the search's latency harness (own cache file,
`<run>/baselines/latency_cache.jsonl`), append `baselines.csv`.
"""
from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch

from app.workflow.baseline_options import BaselineOptions
from elastic.training.baselines import (Objective, Recipe, TinyWeights, append_baselines, make_projection,
                               train_baseline)
from elastic.model.config import SubnetConfig, grid
from elastic.data.tasks import compute_metrics
from elastic.training.evaluate import evaluate
from elastic.model.modeling import ElasticBertForSequenceClassification
from elastic.training.options import Int8Runtime, TinyBudget
from elastic.training.students import (Student, checkpoint_student, distilbert_layers, distilbert_student, subnet_student)
from elastic.training.job import Job, read_done, run_job, selection_record
from elastic.training.loop import BatchPlan, LoopConfig
from elastic.rundir import BASELINES_DIR, CKPT_DIR, META_FILE, RunDir, RunDirError
from elastic.training.train_state import TrainResult


# ---- budget ----------------------------------------------------------------------------------------
def stage_budget(run_dir: Path, run: dict[str, Any]) -> Optional[int]:
    """Optimizer steps of the run's DynaBERT stage (stage2, else stage1): done.json, else run.json options."""
    for st in ("stage2", "stage1"):
        done = read_done(run_dir / st)
        if done is not None:
            return int(done["steps"])
        steps = run.get("options", {}).get(st, {}).get("total_steps")
        if steps:
            return int(steps)
    return None


def resolve_steps(opts: BaselineOptions, run_dir: Path, run: dict[str, Any], steps_per_epoch: int) -> int:
    """--max-steps, else --epochs, else the run's stage budget, else 3 epochs."""
    if opts.max_steps is not None:
        return opts.max_steps
    if opts.epochs is not None:
        return max(1, math.ceil(opts.epochs * steps_per_epoch))
    return stage_budget(run_dir, run) or 3 * steps_per_epoch


# ---- int8 accuracy ---------------------------------------------------------------------------------
def int8_predictor(model: ElasticBertForSequenceClassification, cfg: SubnetConfig, runtime: Int8Runtime, workdir: Path,
                   threads: int = 2) -> Callable[[dict[str, torch.Tensor]], np.ndarray]:
    """A batch -> logits function of the dynamically INT8-quantized extracted sub-network: the artifact the
    search scores and the latency harness times for that variant (`profiling.deploy.build_artifact`):
    `eager-int8` torchao's `Int8DynamicActivationInt8WeightConfig` on the extracted model, `ort-int8` the fused
    ONNX graph quantized by onnxruntime's `quantize_dynamic` in an ONNX Runtime session.
    """
    from profiling.deploy import build_artifact
    from profiling.scenario import Scenario

    art = build_artifact(model, cfg, Scenario(runtime=Int8Runtime(runtime).value, threads=threads), workdir=workdir)

    def predict(b: dict[str, torch.Tensor]) -> np.ndarray:
        return art.predict(b["input_ids"], b["attention_mask"], b["token_type_ids"])
    return predict


def int8_metrics(model: ElasticBertForSequenceClassification, cfg: SubnetConfig, runtime: Int8Runtime,
                 loaders: dict[str, Any], task: Any, threads: int = 2) -> dict[str, float]:
    """Primary metric (%) of the INT8 sub-network on every split of `loaders`."""
    out = {}
    with tempfile.TemporaryDirectory(prefix="dynabert-int8-") as tmp:
        predict = int8_predictor(model, cfg, runtime, Path(tmp), threads)
        for split, loader in loaders.items():
            logits, labels = [], []
            for b in loader:
                logits.append(predict(b))
                labels.append(b["labels"].numpy())
            out[split] = compute_metrics(task, np.concatenate(logits), np.concatenate(labels))["metric"]
    return out


# ---- measuring one network -------------------------------------------------------------------------
def _rows(name: str, recipe: Recipe, model: ElasticBertForSequenceClassification, cfg: SubnetConfig,
          in_teacher: Optional[SubnetConfig], metrics: dict[str, float], scenarios: list, ctx: "_Ctx",
          steps: Optional[int], epochs: Optional[float]) -> list[dict[str, Any]]:
    from profiling.flops import analytic_macs, param_count
    from profiling.latency import measure
    macs = analytic_macs(model.arch, cfg, ctx.max_length, num_labels=model.num_labels)
    params = param_count(model.arch, cfg, model.num_labels)
    rows = []
    for sc in scenarios:
        rec = measure(model, cfg, sc, cache=ctx.cache, min_run_time_s=ctx.opts.min_run_time_s, count_fvcore=False,
                      workdir=ctx.workdir)
        rows.append({"name": name, "recipe": recipe, "config_json": (in_teacher or cfg).to_json(), "macs": macs,
                     "params": params, "dev_metric": metrics.get("dev"), "test_metric": metrics.get("test"),
                     "latency_ms": round(rec["median_ms"], 4), "scenario": sc.key, "steps": steps,
                     "epochs": None if epochs is None else round(epochs, 4)})
    return rows


@dataclass
class _Ctx:
    run_dir: Path
    opts: BaselineOptions
    prep: Any
    teacher: ElasticBertForSequenceClassification
    cache: Any
    workdir: Path
    max_length: int
    steps: int
    spe: int
    rewired: bool

    def metrics(self, model, cfg) -> dict[str, float]:
        rt = self.opts.runtime
        return {s: evaluate(model, ld, cfg, self.prep.task, rt)["metric"] for s, ld in self.prep.loaders.items()}

    def loop(self, steps: int, *, select: bool = False) -> LoopConfig:
        return LoopConfig(total_steps=steps, batch_size=self.opts.batch_size, lr=self.opts.lr, seed=self.prep.seed,
                          save_every=self.opts.save_every, select_every=self.opts.select_every if select else 0)

    def select_fn(self, student: Student) -> Optional[Callable[[int], float]]:
        """`--select-best`: the student's metric on the held-out train slice (or dev), as the DynaBERT stages."""
        from elastic.training.stage_options import StageOptions
        from elastic.training.stages import make_select_loader
        loader = make_select_loader(self.prep, StageOptions(select_best=self.opts.select_best,
                                                       select_every=self.opts.select_every), self.run_dir)
        if loader is None:
            return None
        return lambda step: evaluate(student.model, loader, student.subnet, self.prep.task, self.opts.runtime)["metric"]


def _scenarios(opts: BaselineOptions, int8_runtime: Optional[Int8Runtime] = None) -> list:
    from profiling.scenario import Scenario
    out = []
    for key in opts.scenarios:
        sc = Scenario.parse(key)
        if int8_runtime is not None:
            sc = replace(sc, runtime=Int8Runtime(int8_runtime).value)
        elif sc.int8:
            continue  # fp32 students are timed in fp32 scenarios only
        if sc not in out:
            out.append(sc)
    return out


def _fit(ctx: _Ctx, student: Student, objective: Objective, steps: int, job: Job, *, select: bool,
         projection: Optional[torch.nn.Linear], temperature: float, log: Path) -> TrainResult:
    """One phase of a student's training, checkpointed in (and resumed from) `job.ckpt_dir`, logged to `log`."""
    return train_baseline(student, ctx.teacher, objective, ctx.prep.train, ctx.loop(steps, select=select),
                          is_regression=ctx.prep.task.is_regression, projection=projection,
                          distil=replace(ctx.opts.distil, temperature=temperature),
                          tiny=TinyWeights(temperature=temperature), ckpt_dir=job.ckpt_dir, log_path=log,
                          resume=job.resume, progress=ctx.opts.progress,
                          select_fn=ctx.select_fn(student) if select else None, runtime=ctx.opts.runtime)


def _trained(ctx: _Ctx, name: str, student: Student, phases: list[tuple[Objective, int]], temperature: float
             ) -> tuple[Student, int]:
    """Train (or reload) a student through its phases; returns it and its total steps.

    The student is one job (`elastic.training.job`); with several phases each phase is a job of its own too
    (`<student>/<objective>/`), so a finished phase of an interrupted run is kept. An interrupted phase without
    --resume starts over."""
    from elastic.model.weights import load_checkpoint, save_checkpoint
    out = RunDir(ctx.run_dir).student(name)
    total = sum(n for _, n in phases)

    def job(objective: Objective, out_dir: Path) -> Job:  # a phase's checkpoint: <student>/ckpt-<objective>
        return Job(out_dir, f"{BASELINES_DIR}/{name}", resume=ctx.opts.resume, restart=True,
                   ckpt_dir=out / f"{CKPT_DIR}-{objective.value}")

    def same_work(info: dict[str, Any]) -> None:
        done, selected_on = int(info["steps"]), info.get("select_best", "off")
        if done != total or selected_on != ctx.opts.select_best:
            raise RunDirError(f"{out} was trained for {done} steps with --select-best {selected_on}, this command "
                              f"asks for {total} steps with --select-best {ctx.opts.select_best}: pass the same "
                              "budget (--max-steps/--epochs) and selection to reuse it, or delete that folder to retrain")

    def train(student_job: Job) -> dict[str, Any]:
        nonlocal student
        projection = make_projection(student.model.arch.hidden_size, ctx.teacher.arch.hidden_size, ctx.prep.seed)
        out.mkdir(parents=True, exist_ok=True)
        seconds, selected = 0.0, {}
        for i, (objective, steps) in enumerate(phases):
            # Model selection scores the task metric, so it applies to the last phase (the one that trains the
            # prediction); TinyBERT's intermediate-layer phase runs its whole budget.
            select = i == len(phases) - 1 and ctx.opts.select_best != "off"
            fitted: list[TrainResult] = []

            def fit(j: Job) -> dict[str, Any]:
                fitted.append(_fit(ctx, student, objective, steps, j, select=select, projection=projection,
                                   temperature=temperature, log=out / "train.jsonl"))
                if len(phases) > 1:
                    save_checkpoint(student.model, j.out_dir, {"objective": objective.value})
                return {"steps": steps, "seconds": round(fitted[0].seconds, 2)}
            if len(phases) == 1:
                fit(student_job)  # the student's own job: its checkpoint, done.json below
            elif run_job(job(objective, out / objective.value), fit).skipped:  # finished before an interruption
                student = replace(student, model=load_checkpoint(out / objective.value)[0])
                continue
            seconds += fitted[0].seconds
            selected = selection_record(fitted[0]) or selected
        save_checkpoint(student.model, out, {"baseline": name})
        return {"steps": total, "epochs": round(total / ctx.spe, 4), "seconds": round(seconds, 2),
                "phases": {o.value: n for o, n in phases}, "temperature": temperature,
                "select_best": ctx.opts.select_best, **selected,
                "config": None if student.in_teacher is None else student.in_teacher.to_dict()}

    res = run_job(job(phases[-1][0], out), train, check_done=same_work)
    if res.skipped:
        return replace(student, model=load_checkpoint(out)[0]), int(res.info["steps"])
    return student, total


def run_distilbert(ctx: _Ctx) -> list[dict[str, Any]]:
    arch = ctx.teacher.arch
    layers = ctx.opts.layers or distilbert_layers(arch.num_layers, ctx.opts.depth or max(1, arch.num_layers // 2))
    name = "distilbert-L" + "-".join(map(str, layers))
    t = ctx.opts.temperature if ctx.opts.temperature is not None else ctx.opts.distil.temperature
    student, steps = _trained(ctx, name, distilbert_student(ctx.teacher, layers),
                              [(Objective.DISTILBERT, ctx.steps)], t)
    return _rows(name, Recipe.DISTILBERT, student.model, student.subnet, student.in_teacher,
                 ctx.metrics(student.model, student.subnet), _scenarios(ctx.opts), ctx, steps, steps / ctx.spe)


def run_tinybert(ctx: _Ctx) -> list[dict[str, Any]]:
    arch = ctx.teacher.arch
    if ctx.opts.student_init:
        from elastic.training.prepare import load_any
        student = checkpoint_student(load_any(ctx.opts.student_init, ctx.prep.task.num_labels), arch)
        name = "tinybert-init-" + Path(ctx.opts.student_init).name
    else:
        if not ctx.rewired:
            raise RunDirError(f"{ctx.run_dir} is not rewired yet: the TinyBERT student keeps the most important "
                              f"heads and neurons; run `dynabert rewire --run-dir {ctx.run_dir}` first "
                              "(or give --student-init)")
        layers = ctx.opts.layers or distilbert_layers(arch.num_layers, ctx.opts.depth or max(1, arch.num_layers // 2))
        heads = max(1, int(round(arch.num_heads * ctx.opts.width)))
        ffn = int(heads / arch.num_heads * arch.intermediate_size)
        cfg = SubnetConfig(layers, (heads,) * len(layers), (ffn,) * len(layers)).validate(arch)
        student = subnet_student(ctx.teacher, cfg)
        name = f"tinybert-w{ctx.opts.width:g}-L" + "-".join(map(str, layers))
    t = ctx.opts.temperature if ctx.opts.temperature is not None else TinyWeights().temperature
    first = ctx.steps if ctx.opts.tinybert_budget is TinyBudget.PER_PHASE else max(1, ctx.steps // 2)
    second = ctx.steps if ctx.opts.tinybert_budget is TinyBudget.PER_PHASE else max(1, ctx.steps - first)
    phases = [(Objective.TINYBERT_INTERMEDIATE, first), (Objective.TINYBERT_PREDICTION, second)]
    student, steps = _trained(ctx, name, student, phases, t)
    return _rows(name, Recipe.TINYBERT, student.model, student.subnet, student.in_teacher,
                 ctx.metrics(student.model, student.subnet), _scenarios(ctx.opts), ctx, steps, steps / ctx.spe)


def _int8_rows(ctx: _Ctx, name: str, recipe: Recipe, model, cfg: SubnetConfig) -> list[dict[str, Any]]:
    rows = []
    for rt in ctx.opts.int8_runtimes:
        scen = _scenarios(ctx.opts, rt)
        metrics = int8_metrics(model, cfg, rt, ctx.prep.loaders, ctx.prep.task, threads=scen[0].threads)
        rows += _rows(f"{name}-{rt.value}", recipe, model, cfg, cfg, metrics, scen, ctx, None, None)
    return rows


def run_int8(ctx: _Ctx) -> list[dict[str, Any]]:
    return _int8_rows(ctx, "int8-teacher", Recipe.INT8, ctx.teacher, SubnetConfig.full(ctx.teacher.arch))


def run_dynabert_int8(ctx: _Ctx) -> list[dict[str, Any]]:
    from elastic.training.prepare import load_stage_model
    model = load_stage_model(ctx.run_dir, ctx.opts.dynabert_stage, ctx.prep.task.num_labels)
    points = ctx.opts.dynabert_points or tuple((w, d) for w, d, _ in grid(model.arch))
    rows = []
    for w, d in points:
        cfg = SubnetConfig.uniform(model.arch, w, d)
        rows += _int8_rows(ctx, f"dynabert-{ctx.opts.dynabert_stage}-w{w:g}-d{d:g}", Recipe.DYNABERT_INT8, model, cfg)
    return rows


RUNNERS = {Recipe.DISTILBERT: run_distilbert, Recipe.TINYBERT: run_tinybert, Recipe.INT8: run_int8,
           Recipe.DYNABERT_INT8: run_dynabert_int8}


def run_baselines(run_dir: str | Path, opts: BaselineOptions) -> list[dict[str, Any]]:
    """Run the chosen recipes in a run directory and append their rows to `baselines.csv`.

    The distillation teacher is the run's rewired teacher (same function as `teacher/`, heads ordered by
    importance, so a width-cut student's heads are the teacher's first heads); `teacher/` while the run is
    not rewired yet (DistilBERT and INT8 only). Rows are appended after
    each recipe, so a later failure keeps the earlier results.

    Returns:
        The rows written (dicts with `elastic.training.baselines.BASELINE_COLUMNS`).
    """
    from elastic.rundir import REWIRED, read_run
    from elastic.training.stage_options import StageOptions
    from elastic.training.prepare import load_stage_model, prepare
    from profiling.latency_cache import LatencyCache
    run_dir = Path(run_dir)
    prep = prepare(run_dir, StageOptions(progress=opts.progress))
    # The rewired teacher computes the same function as teacher/ with heads/neurons ordered by importance;
    # DistilBERT and INT8 can use teacher/ while rewiring has not run, a cut TinyBERT student cannot.
    rewired = (run_dir / REWIRED / META_FILE).exists()
    teacher = load_stage_model(run_dir, REWIRED if rewired else "teacher", prep.task.num_labels)
    spe = BatchPlan(prep.train, opts.batch_size, prep.seed).steps_per_epoch
    run = read_run(run_dir)
    rd = RunDir(run_dir)
    cache = LatencyCache(rd.baselines_latency_cache)
    ctx = _Ctx(run_dir, opts, prep, teacher.eval(), cache, rd.baselines / "onnx", prep.max_length,
               resolve_steps(opts, run_dir, run, spe), spe, rewired)
    rows = []
    for recipe in opts.recipes:
        new = RUNNERS[recipe](ctx)
        append_baselines(run_dir, new)
        rows += new
    return rows


def row_line(r: dict[str, Any]) -> str:
    """One baselines.csv row as `dynabert baselines` prints it."""
    def pct(v: Optional[float]) -> str:
        return "-" if v is None else f"{v:.2f}%"
    return (f"{r['name']:<34} {Recipe(r['recipe']).value:<13} {r['macs']:.3e} MACs  dev {pct(r['dev_metric'])}  "
            f"test {pct(r['test_metric'])}  {r['latency_ms']:.2f} ms ({r['scenario']})")
