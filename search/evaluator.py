"""A run directory's trained model as the search sees it: its checkpoint, its metric, its latency.

`RunContext` loads a run's checkpoint, tokenizer and task once per process and gives a cached evaluator
(`search.eval_cache`) of its sub-networks; `latency_fn` the latency objective (the run's predictor, or a
real measurement).
"""
from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from elastic.model.config import SubnetConfig
from elastic.rundir import (DYNABERT_STAGES, EVAL_CACHE, MODEL_FILE, RunDir, RunDirError,  # noqa: F401  (re-exported)
                            find_stage, read_done, read_run)
from search.eval_cache import CachedEvaluator, EvalCache

if TYPE_CHECKING:
    from elastic.training.device import Runtime

CACHE_FILE = EVAL_CACHE  # the run's evaluation cache (elastic.rundir)
# The split of the held-out slice of train: the last `heldout_examples` training examples (run.json), which no stage
# trained on and the search never scores; `search.confirm` confirms the front on it.
HELDOUT = "heldout"


STAGE_ORDER: tuple[str, ...] = DYNABERT_STAGES


def read_run_json(run_dir: Path) -> dict[str, Any]:
    """run.json of a run dir.

    Raises:
        RunDirError: missing or not valid JSON.
    """
    return read_run(run_dir, required=True)


def find_checkpoint(run_dir: Path, stage: str | None = None) -> tuple[str, Path]:
    """(stage name, directory) of the checkpoint to search: the latest finished DynaBERT stage.

    Raises:
        RunDirError: no finished stage (or not the requested one).
    """
    found = find_stage(run_dir, (stage,) if stage else STAGE_ORDER, finished=stage is None, weights=True)
    if found is not None:
        return found
    if stage:
        raise RunDirError(f"{run_dir} has no '{stage}' checkpoint ({stage}/model.safetensors)")
    raise RunDirError(f"{run_dir} has no trained DynaBERT checkpoint (stage3/, stage2/ or stage1/ with done.json); "
                      f"train it first: `dynabert train-stage1 --run-dir {run_dir}` then `dynabert train-stage2 "
                      f"--run-dir {run_dir}`")


def checkpoint_stamp(stage: str, checkpoint: Path) -> str:
    """`<stage>@<finished_at>:` of a stage checkpoint dir (its done.json, else the weights' mtime): what
    caches and studies record, so that a retrained stage never reuses the old checkpoint's results."""
    try:
        stamp = str((read_done(checkpoint) or {}).get("finished_at") or "")
    except (OSError, RunDirError):
        stamp = ""
    stamp = stamp or str(int((Path(checkpoint) / MODEL_FILE).stat().st_mtime))
    return f"{stage}@{stamp}:"


class RunContext:
    """A run dir's trained elastic model, tokenizer and task, loaded once per process.

    Args:
        run_dir: the run directory (run.json, tokenizer/, stage checkpoints).
        stage: which checkpoint (default: the latest finished of stage3, stage2, stage1).
        batch_size: evaluation batch size.
        runtime: device and precision of evaluations (default cpu fp32).
    """

    def __init__(self, run_dir: str | os.PathLike, *, stage: str | None = None, batch_size: int = 128,
                 runtime: "Runtime | None" = None):
        from elastic.model.weights import load_checkpoint  # heavy imports only when a run is used

        self.run_dir = Path(run_dir)
        if not self.run_dir.is_dir():
            raise RunDirError(f"run directory {self.run_dir} does not exist")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.run = read_run_json(self.run_dir)
        self.stage, self.checkpoint = find_checkpoint(self.run_dir, stage)
        self.model, _ = load_checkpoint(self.checkpoint)
        self.model.eval()
        self.arch = self.model.arch
        self.max_length = int(self.run.get("max_length", 128))
        self.batch_size = batch_size
        from elastic.training.device import CPU_FP32

        self.runtime = (runtime or CPU_FP32).check()
        # Examples of the held-out slice of train (0: none, e.g. --importance-split dev); split HELDOUT scores them.
        self.heldout_examples = int(self.run.get("heldout_examples") or 0)
        self._task = None
        self._tokenizer = None
        self._encoded: dict[str, Any] = {}
        self._artifact: tuple[tuple[str, str], Any] | None = None
        self._onnx_dir: tuple[str, Any] | None = None  # (config hash, its TemporaryDirectory of ONNX files)

    @property
    def task(self):
        """The run's task, reloaded from `task_spec` and checked against the recorded fingerprint."""
        if self._task is None:
            from elastic.data.tasks import load_task
            from elastic.training.prepare import task_columns

            spec = self.run.get("task_spec")
            if not spec:
                raise RunDirError(f"{self.run_dir}/run.json records no task_spec; re-run a training stage")
            task = load_task(str(spec), seed=int(self.run.get("seed", 42)), **task_columns(self.run))
            recorded = (self.run.get("task") or {}).get("fingerprint")
            if recorded and recorded != task.to_meta()["fingerprint"]:
                raise RunDirError(f"the data at '{spec}' changed since {self.run_dir} was trained "
                                  "(fingerprint differs); restore it or train a new run")
            self._task = task
        return self._task

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            from elastic.model.weights import load_tokenizer

            tok = RunDir(self.run_dir).tokenizer
            if not tok.exists():
                raise RunDirError(f"{self.run_dir} has no tokenizer/ (written by the teacher stage)")
            self._tokenizer = load_tokenizer(tok)
        return self._tokenizer

    @property
    def label_names(self) -> list[str]:
        return list((self.run.get("task") or {}).get("label_names") or [])

    def loader(self, split: str, n_examples: int | None = None):
        """Evaluation loader of a split, or of a fixed seeded subset of `n_examples` of it. Split `HELDOUT` is the
        held-out slice of train as `elastic.training.prepare.prepare` cuts it for the stages (scored whole)."""
        from elastic.data.tasks import EncodedSplit, encode_split
        from elastic.training.evaluate import make_eval_loader

        if split == HELDOUT and n_examples is not None:
            raise ValueError("the held-out slice is scored whole")
        if split == HELDOUT and split not in self._encoded:
            from elastic.training.prepare import prepare
            from elastic.training.stage_options import StageOptions

            held = prepare(self.run_dir, StageOptions(progress=False)).heldout if self.heldout_examples else None
            if held is None:
                raise ValueError(f"{self.run_dir} has no held-out slice of train (importance was measured on dev)")
            self._encoded[split] = held
        if split not in self._encoded:
            self._encoded[split] = encode_split(self.task, split, self.tokenizer, self.max_length)
        enc = self._encoded[split]
        if n_examples is not None and n_examples < len(enc):
            import random

            idx = sorted(random.Random(0).sample(range(len(enc)), n_examples))
            enc = EncodedSplit([enc.input_ids[i] for i in idx], [enc.token_type_ids[i] for i in idx],
                               [enc.labels[i] for i in idx], enc.is_regression, enc.pad_token_id)
        return make_eval_loader(enc, self.batch_size)

    def metric(self, cfg: SubnetConfig, split: str, n_examples: int | None) -> float:
        """Primary metric (%) of sub-network `cfg` on a split (a `MetricFn`): the elastic model in fp32 eager
        PyTorch (the `runtime`'s device and autocast), equal to its extracted model's (tests/test_extract.py)."""
        from elastic.training.evaluate import evaluate

        return float(evaluate(self.model, self.loader(split, n_examples), cfg, self.task, self.runtime)["metric"])

    def variant_metric(self, cfg: SubnetConfig, split: str, n_examples: int | None, variant: str) -> float:
        """Primary metric (%) of `cfg` deployed as `variant` (a scenario key): fp32 eager variants are scored by
        `metric`; every other variant on its own artifact (`profiling.deploy`: INT8 ONNX in ONNX Runtime,
        torchao INT8, a half-precision model), never by the fp32 model."""
        from profiling.deploy import artifact_metric

        if is_fp32_eager(variant):
            return self.metric(cfg, split, n_examples)
        return artifact_metric(self.artifact(cfg, variant), self.loader(split, n_examples), self.task)

    def artifact(self, cfg: SubnetConfig, variant: str):
        """The deployed artifact of `cfg` in `variant` (`profiling.deploy.Deployed`). The last one is kept, so that
        the subset and full-dev passes of a trial (and its test score) build it once, and so is the ONNX export of
        the last config, which its fp32 and INT8 ORT variants share."""
        import tempfile

        from profiling.deploy import build_artifact

        if self._artifact is not None and self._artifact[0] == (cfg.hash, variant):
            return self._artifact[1]
        if self._artifact is not None:
            self._artifact[1].close()
            self._artifact = None  # a failed build must not leave the closed one behind
        if self._onnx_dir is None or self._onnx_dir[0] != cfg.hash:
            if self._onnx_dir is not None:
                self._onnx_dir[1].cleanup()
            self._onnx_dir = (cfg.hash, tempfile.TemporaryDirectory(prefix="dynabert-deploy-"))
        art = build_artifact(self.model, cfg, variant, workdir=self._onnx_dir[1].name)
        self._artifact = ((cfg.hash, variant), art)
        return art

    def cache_namespace(self) -> str:
        """`<stage>@<finished_at>:` so that a retrained stage never reuses the old checkpoint's metrics."""
        return checkpoint_stamp(self.stage, self.checkpoint)

    def evaluator(self, *, subset: int | None = None, cache: bool = True, variant: str | None = None
                  ) -> CachedEvaluator:
        """A cached evaluator over this run (cache file `<run>/eval_cache.jsonl`) of the fp32 eager model, or of
        `variant`'s artifact (a scenario key; its cache entries are its own: `variant_namespace`)."""
        metric_fn = self.metric
        if variant is not None and not is_fp32_eager(variant):
            metric_fn = functools.partial(self.variant_metric, variant=variant)
        store = EvalCache(self.run_dir / CACHE_FILE, namespace=self.variant_namespace(variant)) if cache else None
        return CachedEvaluator(metric_fn, cache=store, subset=subset)

    def variant_namespace(self, variant: str | None = None) -> str:
        """The eval-cache namespace of a variant's metrics: the checkpoint's, then `<device>-<precision>-<runtime>:`
        for every variant but fp32 eager (whose entries keep the namespace they always had). Batch, threads and
        sequence length do not change a metric, so the variants of every target share entries."""
        # Metrics in another evaluation precision may differ in the last digits: they get their own entries.
        precision = "" if self.runtime.precision == "fp32" else f"{self.runtime.precision}:"
        if variant is None or is_fp32_eager(variant):
            return self.cache_namespace() + precision
        from profiling.scenario import Scenario
        from profiling.variants import precision_of, runtime_of

        sc = Scenario.parse(variant)
        return f"{self.cache_namespace()}{sc.device}-{precision_of(sc)}-{runtime_of(sc)}:"


def is_fp32_eager(variant: str | None) -> bool:
    """Whether a variant (scenario key) is the fp32 eager model, the one `RunContext.metric` scores."""
    if variant is None:
        return True
    from profiling.scenario import Scenario

    sc = Scenario.parse(variant)
    return sc.runtime == "eager" and sc.dtype == "fp32"


def latency_fn(ctx: RunContext, scenario: str, *, measure: bool) -> Callable[[SubnetConfig], float]:
    """cfg -> latency (ms) on `scenario`: the run's predictor, or a real measurement when `measure`.

    Raises:
        FileNotFoundError: no predictor for the scenario (and not `measure`).
        ValueError: the predictor was fitted on another scenario.
    """
    from profiling.scenario import Scenario

    if measure:
        from profiling.latency import measure as measure_latency
        from profiling.latency_cache import LatencyCache

        sc = Scenario.parse(scenario).check(ctx.arch)
        cache = LatencyCache(RunDir(ctx.run_dir).latency_cache)
        return lambda cfg: float(measure_latency(ctx.model, cfg, sc, cache=cache, count_fvcore=False)["median_ms"])
    from profiling.predictor import LatencyPredictor

    path = predictor_path(ctx.run_dir, scenario)
    pred = LatencyPredictor.load(path)
    if pred.scenario != scenario:
        raise ValueError(f"{path} predicts scenario '{pred.scenario}', not '{scenario}': profile that "
                         f"scenario, pass --scenario {pred.scenario}, or use --measure")
    return pred.predict


def predictor_path(run_dir: Path, scenario: str) -> Path:
    """`<run>/predictors/<scenario>.json` (one per profiled scenario), else `<run>/predictor.json`.

    Raises:
        FileNotFoundError: neither exists (with the command that makes one).
    """
    rd = RunDir(run_dir)
    for path in (rd.predictor(scenario), rd.predictor_json):
        if path.exists():
            return path
    raise FileNotFoundError(
        f"{rd.predictor_json} not found: the latency objective needs a predictor; run `dynabert "
        f"profile --run-dir {run_dir} --scenario {scenario}` first, or pass --measure to time every trial")
