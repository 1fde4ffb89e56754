"""Sub-network evaluation for the search: a process-safe cache keyed by config hash, and multi-fidelity.

Optuna's samplers propose the same config again and again (NSGA-II children often equal a parent,
TPE re-samples its modes), and several workers share one study: every (config, split, fidelity) is
evaluated once, ever, per run dir. The cache is an append-only JSONL file; a per-key `flock` makes a
second process wait for the first one's result instead of evaluating the same config twice. Workers on
other machines (their own copy of the run dir) share results through the study instead
(`search.study.Objective._from_study`).
"""
from __future__ import annotations

import fcntl
import json
import math
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

from elastic.config import SubnetConfig
from elastic.rundir import DYNABERT_STAGES, RunDirError, find_stage, read_run  # noqa: F401  (RunDirError re-exported)

if TYPE_CHECKING:
    from elastic.device import Runtime

CACHE_FILE = "eval_cache.jsonl"
# (cfg, split, n_examples or None for the whole split) -> primary metric in %.
MetricFn = Callable[[SubnetConfig, str, "int | None"], float]


@contextmanager
def _flock(path: Path, kind: int) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh, kind)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


class EvalCache:
    """Append-only JSONL cache shared by every process that evaluates sub-networks of one run.

    Args:
        path: the `.jsonl` file (created on first write); per-key lock files live in `<path>.locks/`.
        namespace: prefix of every key (e.g. the checkpoint's stage: another checkpoint's results
            must not be reused).
    """

    def __init__(self, path: str | os.PathLike, *, namespace: str = ""):
        self.path = Path(path)
        self.namespace = namespace
        self._lock_dir = self.path.with_name(self.path.name + ".locks")
        self._records: dict[str, dict[str, Any]] = {}
        self._offset = 0

    def key(self, cfg: SubnetConfig, split: str, n_examples: int | None) -> str:
        """Cache key: namespace, split, fidelity (example count or `full`), the config's canonical hash."""
        return f"{self.namespace}{split}:{'full' if n_examples is None else n_examples}:{cfg.hash}"

    def _refresh(self) -> None:
        """Read lines appended since the last call (by any process)."""
        if not self.path.exists():
            return
        with open(self.path, "rb") as fh:
            fcntl.flock(fh, fcntl.LOCK_SH)
            try:
                fh.seek(self._offset)
                data = fh.read()
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
        end = data.rfind(b"\n") + 1  # a torn last line (killed writer) is left for no one
        for line in data[:end].splitlines():
            try:
                rec = json.loads(line)
                self._records[rec["key"]] = rec
            except (json.JSONDecodeError, KeyError, TypeError):
                continue
        self._offset += end

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored record for `key`, or None."""
        if key not in self._records:
            self._refresh()
        return self._records.get(key)

    def put(self, key: str, record: dict[str, Any]) -> None:
        """Append one record (a JSON-serialisable dict; `key` is added)."""
        rec = {**record, "key": key}
        line = (json.dumps(rec, sort_keys=True) + "\n").encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "ab") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                fh.write(line)  # one write of one whole line under the lock: never interleaved
                fh.flush()
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
        self._records[key] = rec

    def __len__(self) -> int:
        self._refresh()
        return len(self._records)

    def get_or_compute(self, key: str, compute: Callable[[], dict[str, Any]]) -> tuple[dict[str, Any], bool]:
        """The record for `key`, computing and storing it once across all processes.

        Returns:
            (record, hit): hit is True when no computation ran in this call.
        """
        rec = self.get(key)
        if rec is not None:
            return rec, True
        safe = key.replace(":", "_").replace("/", "_")
        with _flock(self._lock_dir / f"{safe}.lock", fcntl.LOCK_EX):
            rec = self.get(key)  # another process may have finished it while we waited
            if rec is not None:
                return rec, True
            rec = compute()
            self.put(key, rec)
            return self._records[key], False


@dataclass
class CachedEvaluator:
    """`cfg -> dev metric (%)`, evaluated once per config and fidelity, with statistics.

    Args:
        metric_fn: (cfg, split, n_examples or None) -> metric in %; the expensive part.
        cache: where results persist; None keeps them in memory only.
        subset: examples of the dev subset for the low-fidelity pass (None: no multi-fidelity).
    """

    metric_fn: MetricFn
    cache: EvalCache | None = None
    subset: int | None = None
    n_calls: int = field(default=0, init=False)
    n_evals: int = field(default=0, init=False)
    eval_seconds: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        if self.subset is not None and self.subset < 1:
            raise ValueError(f"subset must be >= 1 examples, got {self.subset}")
        if self.cache is None:
            self.cache = _MemoryCache()

    def metric(self, cfg: SubnetConfig, split: str = "dev", n_examples: int | None = None
               ) -> tuple[float, bool]:
        """(metric in %, cache hit) of `cfg` on `split` (first `n_examples` of it, or all)."""
        self.n_calls += 1

        def compute() -> dict[str, Any]:
            t0 = time.perf_counter()
            value = float(self.metric_fn(cfg, split, n_examples))
            seconds = time.perf_counter() - t0
            self.n_evals += 1
            self.eval_seconds += seconds
            return {"config_json": cfg.to_json(), "split": split, "n_examples": n_examples,
                    "metric": value, "seconds": round(seconds, 4), "pid": os.getpid()}

        rec, hit = self.cache.get_or_compute(self.cache.key(cfg, split, n_examples), compute)
        return float(rec["metric"]), hit

    def __call__(self, cfg: SubnetConfig, split: str = "dev") -> float:
        """Full-fidelity metric (%) of `cfg` on `split`."""
        return self.metric(cfg, split)[0]


class _MemoryCache(EvalCache):
    """The same interface without a file (for tests and one-off scripts)."""

    def __init__(self) -> None:
        self.namespace = ""
        self._records = {}

    def get(self, key: str) -> dict[str, Any] | None:
        return self._records.get(key)

    def put(self, key: str, record: dict[str, Any]) -> None:
        self._records[key] = {**record, "key": key}

    def __len__(self) -> int:
        return len(self._records)

    def get_or_compute(self, key, compute):
        if key in self._records:
            return self._records[key], True
        self.put(key, compute())
        return self._records[key], False


def subset_margin(metric_pct: float, n_examples: int) -> float:
    """Two binomial standard errors of an accuracy-like % measured on `n_examples` (at least 1 point).

    A heuristic for F1/MCC/Spearman too: what matters is that a small subset gets a wide margin.
    """
    p = min(max(metric_pct / 100.0, 0.0), 1.0)
    return max(1.0, 200.0 * math.sqrt(max(p * (1 - p), 0.01) / max(n_examples, 1)))


def could_reach_front(subset_metric: float, costs: Sequence[float], margin: float,
                      done: Sequence[tuple[float, Sequence[float]]]) -> bool:
    """Whether a config measured on a subset could still be Pareto-optimal.

    It cannot when some fully evaluated config costs no more on every cost objective and beats the
    subset estimate by more than `margin` points; such configs keep their subset metric (which is then
    dominated, so it never reaches the front) and skip the full evaluation.

    Args:
        subset_metric: metric (%) on the dev subset.
        costs: this config's cost objectives (all minimised).
        margin: uncertainty of the subset estimate, in points.
        done: (full-dev metric, costs) of fully evaluated configs.

    Returns:
        True when the full evaluation is worth running.
    """
    for metric, other in done:
        if metric >= subset_metric + margin and all(o <= c for o, c in zip(other, costs)):
            return False
    return True


# ---- a run directory's trained model as a metric function --------------------------------------
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
    done = Path(checkpoint) / "done.json"
    try:
        stamp = str(json.loads(done.read_text()).get("finished_at", ""))
    except (OSError, json.JSONDecodeError, AttributeError):
        stamp = ""
    stamp = stamp or str(int((Path(checkpoint) / "model.safetensors").stat().st_mtime))
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
        from elastic.weights import load_checkpoint  # heavy imports only when a run is used

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
        from elastic.device import CPU_FP32

        self.runtime = (runtime or CPU_FP32).check()
        self._task = None
        self._tokenizer = None
        self._encoded: dict[str, Any] = {}

    @property
    def task(self):
        """The run's task, reloaded from `task_spec` and checked against the recorded fingerprint."""
        if self._task is None:
            from elastic.data import load_task
            from elastic.stages import task_columns

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
            from elastic.weights import load_tokenizer

            tok = self.run_dir / "tokenizer"
            if not tok.exists():
                raise RunDirError(f"{self.run_dir} has no tokenizer/ (written by the teacher stage)")
            self._tokenizer = load_tokenizer(tok)
        return self._tokenizer

    @property
    def label_names(self) -> list[str]:
        return list((self.run.get("task") or {}).get("label_names") or [])

    def loader(self, split: str, n_examples: int | None = None):
        """Evaluation loader of a split, or of a fixed seeded subset of `n_examples` of it."""
        from elastic.data import EncodedSplit, encode_split
        from elastic.evaluate import make_eval_loader

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
        """Primary metric (%) of sub-network `cfg` on a split (a `MetricFn`)."""
        from elastic.evaluate import evaluate

        return float(evaluate(self.model, self.loader(split, n_examples), cfg, self.task, self.runtime)["metric"])

    def cache_namespace(self) -> str:
        """`<stage>@<finished_at>:` so that a retrained stage never reuses the old checkpoint's metrics."""
        return checkpoint_stamp(self.stage, self.checkpoint)

    def evaluator(self, *, subset: int | None = None, cache: bool = True) -> CachedEvaluator:
        """A cached evaluator over this run (cache file `<run>/eval_cache.jsonl`)."""
        # Metrics in another precision may differ in the last digits: they get their own cache entries.
        precision = "" if self.runtime.precision == "fp32" else f"{self.runtime.precision}:"
        store = EvalCache(self.run_dir / CACHE_FILE, namespace=self.cache_namespace() + precision) if cache else None
        return CachedEvaluator(self.metric, cache=store, subset=subset)


# ---- cost objectives -----------------------------------------------------------------------------
@dataclass
class TrialCosts:
    """Cost objectives of a config: latency (ms, predicted or measured), MACs, params."""

    arch: Any
    num_labels: int
    seq_len: int
    batch: int
    latency_fn: Callable[[SubnetConfig], float] | None = None

    def __call__(self, cfg: SubnetConfig) -> dict[str, float]:
        from profiling.flops import analytic_macs, param_count

        out: dict[str, float] = {
            "macs": analytic_macs(self.arch, cfg, self.seq_len, batch=self.batch, num_labels=self.num_labels),
            "params": param_count(self.arch, cfg, self.num_labels)}
        if self.latency_fn is not None:
            out["latency"] = float(self.latency_fn(cfg))
        return out


def latency_fn(ctx: RunContext, scenario: str, *, measure: bool) -> Callable[[SubnetConfig], float]:
    """cfg -> latency (ms) on `scenario`: the run's predictor, or a real measurement when `measure`.

    Raises:
        FileNotFoundError: no predictor for the scenario (and not `measure`).
        ValueError: the predictor was fitted on another scenario.
    """
    from profiling.scenario import Scenario

    if measure:
        from profiling.latency import LatencyCache, measure as measure_latency

        sc = Scenario.parse(scenario).check(ctx.arch)
        cache = LatencyCache(ctx.run_dir / "latency_cache.jsonl")
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
    for path in (run_dir / "predictors" / f"{scenario}.json", run_dir / "predictor.json"):
        if path.exists():
            return path
    raise FileNotFoundError(
        f"{run_dir / 'predictor.json'} not found: the latency objective needs a predictor; run `dynabert "
        f"profile --run-dir {run_dir} --scenario {scenario}` first, or pass --measure to time every trial")
