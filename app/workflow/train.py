"""Training actions: one stage (teacher, stage 1, 2, 3), rewiring, evaluation of any sub-network."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from elastic.model.config import SubnetConfig
from elastic.training.device import CPU_FP32, Runtime
from elastic.training.stage_options import StageOptions
from elastic.training.train import Stage


@dataclass(frozen=True)
class StageResult:
    """What `train_stage` did: its done.json facts, and the grid points that ended at the majority class."""

    stage: str
    run_dir: Path
    steps: int
    seconds: float
    skipped: bool
    stuck_subnets: tuple[dict[str, Any], ...] = ()
    info: dict[str, Any] = field(default_factory=dict)

    def lines(self) -> list[str]:
        """What the command line prints."""
        if self.skipped:
            out = [f"{self.stage} already finished in {self.run_dir} ({self.steps} steps); nothing to do"]
            differs = self.info.get("differs") or []
            if differs:
                out.append(f"note: it was trained with other options than this command asks ({'; '.join(differs)}); "
                           f"the finished stage is kept: to retrain it with these, delete "
                           f"{self.run_dir / self.stage} (and every later stage) or use another --run-dir")
        else:
            out = [f"{self.stage} done: {self.steps} steps in {self.seconds:.0f} s -> {self.run_dir / self.stage}"]
        if self.stuck_subnets:
            from elastic.training.stages import stuck_warning
            out.append(stuck_warning(self.stage, list(self.stuck_subnets)))
        return out


@dataclass(frozen=True)
class RewireResult:
    """What `rewire` did: the importance split and size, and the check that the function did not change."""

    run_dir: Path
    split: str
    n_examples: int
    skipped: bool
    seconds: float = 0.0
    max_abs_logit_change: float = 0.0

    def lines(self) -> list[str]:
        if self.skipped:
            return [f"{self.run_dir} is already rewired (importance on {self.split}); nothing to do"]
        return [f"rewired on {self.n_examples} {self.split} examples in {self.seconds:.0f} s; "
                f"full-model logits changed by at most {self.max_abs_logit_change:.1e}"]


@dataclass(frozen=True)
class EvalResult:
    """Metrics (in %) of one sub-network of a stage on each split."""

    stage: str
    config: Optional[SubnetConfig]
    metric: Optional[str]
    results_pct: dict[str, dict[str, float]]

    def to_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "config": None if self.config is None else self.config.to_dict(),
                "metric": self.metric, "results_pct": self.results_pct}


def cost_fn_for(run_dir: Path, max_length: int) -> Callable[[SubnetConfig], dict[str, Any]]:
    """cfg -> {"macs": multiply-accumulates at `max_length` tokens, "params": count}, for grid.csv.

    The architecture is read lazily: the teacher checkpoint exists only once its stage has run.
    """
    from elastic.model.config import BertArch
    from elastic.rundir import REWIRED, TEACHER, find_stage, read_checkpoint_meta, read_run
    from profiling.flops import analytic_macs, param_count

    holder: dict[str, Any] = {}

    def cost(cfg: SubnetConfig) -> dict[str, Any]:
        if "arch" not in holder:
            holder["num_labels"] = int(read_run(run_dir).get("task", {}).get("num_labels", 2))
            found = find_stage(run_dir, (TEACHER, REWIRED), finished=False)
            if found is not None:
                holder["arch"] = BertArch.from_dict(read_checkpoint_meta(found[1])["arch"])
        arch, num_labels = holder["arch"], holder["num_labels"]
        return {"macs": int(analytic_macs(arch, cfg, max_length, num_labels=num_labels)),
                "params": int(param_count(arch, cfg, num_labels))}
    return cost


def train_stage(run_dir: Path, stage: Stage | str, opts: StageOptions) -> StageResult:
    """Train one stage in `run_dir` (skipped when it finished before; `opts.resume` continues an interrupted
    one) and write its checkpoint, grid rows and log."""
    from elastic.rundir import read_run
    from elastic.training.stages import run_stage

    stage = Stage(stage)
    run_dir = Path(run_dir)
    max_length = opts.max_length or int(read_run(run_dir).get("max_length", 128))
    info = run_stage(run_dir, stage, opts, cost_fn=cost_fn_for(run_dir, max_length))
    return StageResult(stage=stage.value, run_dir=run_dir, steps=int(info.get("steps", 0)),
                       seconds=float(info.get("seconds", 0.0)), skipped=bool(info.get("skipped")),
                       stuck_subnets=tuple(info.get("stuck_subnets") or ()), info=info)


def rewire(run_dir: Path, opts: StageOptions) -> RewireResult:
    """Importance of every head and neuron, and the teacher reordered by it (`rewired/`, importance.json)."""
    from elastic.training.stages import run_rewire

    info = run_rewire(run_dir, opts)
    return RewireResult(run_dir=Path(run_dir), split=str(info["split"]), n_examples=int(info.get("n_examples", 0)),
                        skipped=bool(info.get("skipped")), seconds=float(info.get("seconds", 0.0)),
                        max_abs_logit_change=float(info.get("max_abs_logit_change", 0.0)))


def evaluate(run_dir: Path, stage: str, cfg: Optional[SubnetConfig] = None, *,
             width: Optional[float] = None, depth: Optional[float] = None,
             splits: tuple[str, ...] = ("dev", "test"), task: Optional[str] = None,
             text_columns: Optional[tuple[str, ...]] = None, label_column: Optional[str] = None,
             runtime: Runtime = CPU_FP32) -> EvalResult:
    """Metrics of one sub-network of a stage: `cfg`, else the uniform (`width`, `depth`) one, else the full
    model."""
    from elastic.training.stages import evaluate_run
    from elastic.rundir import read_run

    if cfg is None and (width is not None or depth is not None):
        from elastic.model.weights import load_checkpoint
        model, _ = load_checkpoint(Path(run_dir) / stage)
        cfg = SubnetConfig.uniform(model.arch, width or 1.0, depth or 1.0)
    res = evaluate_run(run_dir, stage, cfg, tuple(splits), task=task, text_columns=text_columns,
                       label_column=label_column, runtime=runtime)
    return EvalResult(stage=stage, config=cfg, metric=read_run(run_dir).get("metric"), results_pct=res)
