"""The export action: chosen sub-networks as standalone Hugging Face models (+ ONNX and a model card)."""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from elastic.config import SubnetConfig
from elastic.device import CPU_FP32, Runtime


@dataclass(frozen=True)
class ExportOptions:
    """What to export and where (exactly one of trial, pareto, knee, subnet_file, config).

    Attributes:
        trial: a trial number of the study. pareto: every point of the front. knee: its knee point.
        subnet_file: a SubnetConfig JSON file. config: a SubnetConfig (the dashboard's choice).
        out: the model directory (for several: their folder); default <run>/exports/<name>.
        name: export name (sanitized; for several, a prefix).
        scenario: latency scenario of the card (default: the search's).
    """

    run_dir: Path
    trial: Optional[int] = None
    pareto: bool = False
    knee: bool = False
    subnet_file: Optional[Path] = None
    config: Optional[SubnetConfig] = None
    out: Optional[Path] = None
    name: Optional[str] = None
    force: bool = False
    storage: Optional[str] = None
    study_name: Optional[str] = None
    scenario: Optional[str] = None
    onnx: bool = True
    measure: bool = True
    runtime: Runtime = CPU_FP32

    def __post_init__(self) -> None:
        chosen = [self.trial is not None, self.pareto, self.knee, self.subnet_file is not None,
                  self.config is not None]
        if sum(chosen) != 1:
            raise ValueError("export: choose exactly one of --trial, --pareto, --knee, --subnet (or a config)")


@dataclass(frozen=True)
class Exported:
    """One written export: its folder and config."""

    path: Path
    config: SubnetConfig

    def line(self) -> str:
        return f"exported {self.config.describe()} -> {self.path}"


USAGE = ("usage in each one's README.md: AutoModelForSequenceClassification.from_pretrained(DIR, "
         "trust_remote_code=True), AutoTokenizer.from_pretrained(DIR), DIR/model.onnx")


def _num(text: Any) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def _search_fingerprint(run_dir: Path) -> Any:
    try:
        return json.loads((run_dir / "search.json").read_text()).get("fingerprint")
    except (OSError, json.JSONDecodeError, AttributeError):
        return None


def _training_summary(run: dict[str, Any]) -> dict[str, Any]:
    """The recorded options of each training stage that say how the model was made."""
    keys = ("epochs", "max_steps", "batch_size", "lr", "teacher_width", "extra_subnets", "widths", "depths",
            "augment", "max_length", "seed")
    return {stage: {k: o[k] for k in keys if o.get(k) is not None}
            for stage, o in (run.get("options") or {}).items() if isinstance(o, dict)}


def selection(opts: ExportOptions, arch) -> list[tuple[str, SubnetConfig, dict[str, Any]]]:
    """(default name, SubnetConfig, facts) for each config to export."""
    from search.pareto import front_trials, knee_index, load_study, read_pareto_csv, trial_config

    if opts.config is not None:
        cfg = opts.config.validate(arch)
        return [(f"cfg-{cfg.hash}", cfg, {"source": "chosen configuration"})]
    if opts.subnet_file is not None:
        if not Path(opts.subnet_file).is_file():
            raise FileNotFoundError(f"--subnet {opts.subnet_file} not found (expected a JSON file with layers, heads, "
                                    "ffn)")
        try:
            cfg = SubnetConfig.from_json(Path(opts.subnet_file).read_text()).validate(arch)
        except ValueError as e:
            raise ValueError(f"--subnet {opts.subnet_file}: {e}") from None
        return [(f"cfg-{cfg.hash}", cfg, {"source": f"config file {opts.subnet_file}"})]
    run_dir = Path(opts.run_dir)
    pareto_csv = run_dir / "pareto.csv"
    if (opts.pareto or opts.knee) and pareto_csv.exists() and opts.storage is None and opts.study_name is None:
        rows = read_pareto_csv(pareto_csv)
        fingerprint = _search_fingerprint(run_dir)
        if opts.knee:
            rows = [r for r in rows if str(r["knee"]).lower() == "true"]
        out = []
        for r in rows:
            cfg = SubnetConfig.from_json(r["config_json"]).validate(arch)
            facts = {"dev_metric": _num(r["dev_metric"]), "test_metric": _num(r["test_metric"]),
                     "source": f"pareto.csv trial {r['trial']}" + (" (knee)" if opts.knee else "")}
            if _num(r["latency_measured_ms"]) is not None and (opts.scenario in (None, r["scenario"])):
                # The number the dashboard shows for this point, with the machine it was measured on.
                facts.update(latency_ms=_num(r["latency_measured_ms"]), scenario=r["scenario"],
                             fingerprint=fingerprint)
            out.append((f"{'knee' if opts.knee else 'pareto'}-t{r['trial']}-{cfg.hash}", cfg, facts))
        if out:
            return out
    study = load_study(run_dir, storage=opts.storage, study_name=opts.study_name)
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        raise ValueError(f"study '{study.study_name}' has no completed trials: nothing to export "
                         f"(run `dynabert search --run-dir {run_dir}` first)")
    if opts.trial is not None:
        match = [t for t in study.trials if t.number == opts.trial]
        if not match or match[0].state != TrialState.COMPLETE:
            raise ValueError(f"trial {opts.trial} of study '{study.study_name}' is not a completed trial "
                             f"(completed: {len(complete)} trials, numbers 0..{len(study.trials) - 1})")
        trials = match
    else:
        trials = front_trials(study)
        if not trials:
            raise ValueError(f"study '{study.study_name}' has no feasible completed trial: empty Pareto front")
        if opts.knee:
            trials = [trials[knee_index([list(t.values) for t in trials])]]
    kind = "trial" if opts.trial is not None else ("knee" if opts.knee else "pareto")
    return [(f"{kind}-t{t.number}-{trial_config(t).hash}", trial_config(t).validate(arch),
             {"dev_metric": t.values[0], "source": f"study '{study.study_name}' trial {t.number}"}) for t in trials]


def export(opts: ExportOptions) -> list[Exported]:
    """Write each selected sub-network as a standalone model; refuses (before writing anything) when a
    target folder exists and `force` is off."""
    from app.workflow.search import default_scenario, front_timer
    from elastic.export import export_dir, export_subnet, sanitize_name
    from profiling.flops import analytic_macs, param_count
    from profiling.onnx_export import export_onnx
    from profiling.scenario import Scenario
    from search.evaluator import RunContext
    from search.pareto import searched_checkpoint

    run_dir = Path(opts.run_dir)
    ctx = RunContext(run_dir, runtime=opts.runtime)
    items = selection(opts, ctx.arch)
    searched = searched_checkpoint(run_dir)
    if searched is not None and searched != ctx.cache_namespace():
        # pareto.csv's configs are architectures (still valid); its metrics belong to the old weights
        print(f"warning: the search ran on checkpoint {searched.rstrip(':')}, the run's checkpoint is now "
              f"{ctx.cache_namespace().rstrip(':')}: metrics are re-evaluated on the current weights; run "
              "`dynabert search --study-name NEW` for a front of the current weights", file=sys.stderr)
        for _, _, facts in items:
            facts.pop("dev_metric", None)
            facts.pop("test_metric", None)
    scenario_key = opts.scenario or default_scenario(run_dir)
    Scenario.parse(scenario_key)
    evaluator = ctx.evaluator()
    onnx_writer = (lambda small, path: export_onnx(small, path)) if opts.onnx else None
    single = len(items) == 1 and not opts.pareto
    run = ctx.run
    plan = []
    for default_name, cfg, facts in items:
        name = sanitize_name(opts.name) if opts.name and single else (
            f"{sanitize_name(opts.name)}-{default_name}" if opts.name else default_name)
        if single and opts.out is not None:
            out = export_dir(opts.out, name) if opts.name else Path(opts.out)
        else:
            out = export_dir(opts.out if opts.out is not None else run_dir / "exports", name)
        plan.append((out, cfg, facts))
    taken = [str(out) for out, _, _ in plan if out.exists()]
    if taken and not opts.force:  # check all first: never leave half of a --pareto export behind
        raise FileExistsError(f"{', '.join(taken)} already exist(s); pass --force to overwrite, or choose "
                              "another --name/--out")
    # Configs without a measured latency: timed together, each as a paired ratio to the full model on one clock
    # (the method of the search's fronts, so an exported card's number compares with the dashboard's)
    untimed = [cfg for _, cfg, facts in plan if facts.get("latency_ms") is None]
    timed = front_timer(ctx, scenario_key)(untimed) if opts.measure and untimed else None
    written = []
    for out, cfg, facts in plan:
        info = dict(facts)
        sc_key = info.pop("scenario", scenario_key)
        sc = Scenario.parse(sc_key)
        info.setdefault("dev_metric", evaluator(cfg, "dev"))
        if info.get("test_metric") is None and "test" in ctx.task.splits:
            info["test_metric"] = evaluator(cfg, "test")
        info.update(num_layers=ctx.arch.num_layers, metric=run.get("metric", "metric"),
                    macs=analytic_macs(ctx.arch, cfg, sc.seq_len, batch=sc.batch, num_labels=ctx.model.num_labels),
                    macs_shape=f"batch {sc.batch}, {sc.seq_len} tokens",
                    params=param_count(ctx.arch, cfg, ctx.model.num_labels), scenario=sc_key,
                    task=(run.get("task") or {}).get("name", run.get("task_spec")), teacher=run.get("teacher"),
                    task_spec=run.get("task_spec"), pair=len((run.get("task") or {}).get("text_columns", [])) == 2,
                    stages=run.get("stage_seconds"), training=_training_summary(run))
        if timed is not None and info.get("latency_ms") is None:
            info.update(latency_ms=float(timed["latency_ms"][cfg.hash]), fingerprint=timed["fingerprint"],
                        latency_method=timed["method"])
        export_subnet(ctx.model, cfg, out, tokenizer=ctx.tokenizer, label_names=ctx.label_names or None,
                      card_info=info, onnx_writer=onnx_writer, force=opts.force)
        written.append(Exported(path=out, config=cfg))
        print(Exported(path=out, config=cfg).line())
    return written
