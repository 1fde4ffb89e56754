"""The export action: chosen sub-networks as standalone Hugging Face models (+ ONNX and a model card), each in the
deployment variant the front shows (`profiling.variants`): an ort-int8 point is written as `model.int8.onnx` beside
`model.onnx` and the fp32 weights, and its card states that variant's runtime, precision, latency and metrics.

Every export re-scores the written artifact on dev (`profiling.deploy.load_artifact`) and is refused, with nothing
written, when that differs from the front's claim (pareto.csv or the study) by more than `RESCORE_TOLERANCE`.
"""
from __future__ import annotations

import os
import shutil
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from elastic.model.config import SubnetConfig
from elastic.training.device import CPU_FP32, Runtime
from elastic.training.option_fields import option
from elastic.rundir import RunDir, RunDirError
from profiling.variants import split_list, variant_columns


@dataclass(frozen=True)
class ExportOptions:
    """What to export and where (exactly one of trial, pareto, knee, subnet_file, config). Each field's help is its
    `dynabert export` flag's (app/cli/search.py generates the flags from these fields).

    Attributes:
        config: a SubnetConfig (the dashboard's choice; not a flag).
        name: for several exports, a prefix.
        scenario: also the variant of a config or of a trial from before variants.
        runtime: where the card's metrics are evaluated (not a flag: --device/--precision).
    """

    run_dir: Path = option(help="a run directory with a search")
    trial: Optional[int] = option(None, help="a trial number of the study", min=0)
    pareto: bool = option(False, help="every point of the Pareto front")
    knee: bool = option(False, help="the knee point of the front")
    subnet_file: Optional[Path] = option(None, help="a SubnetConfig JSON file {layers, heads, ffn}")
    config: Optional[SubnetConfig] = None
    out: Optional[Path] = option(None, help="model directory (for --pareto: the folder of all of them); default "
                                 "<run>/exports/<name>")
    name: Optional[str] = option(None, help="export name (sanitized: letters, digits, '.', '_', '-')")
    force: bool = option(False, help="overwrite an existing export")
    storage: Optional[str] = option(None, help="Optuna RDB URL (default sqlite:///<run>/study.db)")
    study_name: Optional[str] = option(None, help="the study's name (default: the search's)")
    scenario: Optional[str] = option(None, help="deployment variant (scenario key) to export a --subnet in (default: "
                                     "the search's first); a front point or trial is exported in its own variant")
    onnx: bool = option(True, help="skip model.onnx")
    measure: bool = option(True, help="do not time the model for its card")
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
         "trust_remote_code=True), AutoTokenizer.from_pretrained(DIR), DIR/model.onnx (INT8: DIR/model.int8.onnx)")
# Percentage points between the front's dev metric and the written artifact's re-scored one beyond which an export
# is refused: the front must show what the user gets.
RESCORE_TOLERANCE = 0.1


class RescoreMismatch(ValueError):
    """The written artifact does not score what the front claims (a clear message, nothing written)."""


def _num(text: Any) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def _search_fingerprint(run_dir: Path) -> Any:
    rd = RunDir(run_dir)
    try:
        return rd.read_json(rd.search_json).get("fingerprint")
    except (OSError, RunDirError):
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
    pareto_csv = RunDir(run_dir).pareto_csv
    if (opts.pareto or opts.knee) and pareto_csv.exists() and opts.storage is None and opts.study_name is None:
        rows = read_pareto_csv(pareto_csv)
        fingerprint = _search_fingerprint(run_dir)
        if opts.knee:
            rows = [r for r in rows if str(r["knee"]).lower() == "true"]
        out = []
        for r in rows:
            cfg = SubnetConfig.from_json(r["config_json"]).validate(arch)
            facts = {"dev_metric": _num(r["dev_metric"]), "test_metric": _num(r["test_metric"]),
                     "source": f"pareto.csv trial {r['trial']}" + (" (knee)" if opts.knee else ""),
                     "scenario": r["scenario"]}  # the point's variant: what the front shows is what is written
            if _num(r["latency_measured_ms"]) is not None:
                # The number the dashboard shows for this point, with the machine it was measured on.
                facts.update(latency_ms=_num(r["latency_measured_ms"]), fingerprint=fingerprint)
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
             {"dev_metric": t.values[0], "source": f"study '{study.study_name}' trial {t.number}",
              **({"scenario": t.user_attrs["scenario"]} if t.user_attrs.get("scenario") else {})}) for t in trials]


def export(opts: ExportOptions) -> list[Exported]:
    """Write each selected sub-network as a standalone model; refuses (before writing anything) when a
    target folder exists and `force` is off."""
    from app.workflow.search import default_scenario, front_timer
    from elastic.export.writer import export_dir, export_subnet, sanitize_name
    from profiling.flops import analytic_macs, param_count
    from profiling.deploy import FP32_ONNX, INT8_ONNX
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
    searched_variants = split_list(opts.scenario or default_scenario(run_dir))
    if opts.scenario and len(searched_variants) > 1:
        raise ValueError(f"--scenario {opts.scenario}: name one variant to export in (a scenario key)")
    default_variant = searched_variants[0]
    Scenario.parse(default_variant)
    single = len(items) == 1 and not opts.pareto
    run = ctx.run
    plan = []
    for default_name, cfg, facts in items:
        name = sanitize_name(opts.name) if opts.name and single else (
            f"{sanitize_name(opts.name)}-{default_name}" if opts.name else default_name)
        if single and opts.out is not None:
            out = export_dir(opts.out, name) if opts.name else Path(opts.out)
        else:
            out = export_dir(opts.out if opts.out is not None else RunDir(run_dir).exports_dir, name)
        facts = {**facts, "scenario": Scenario.parse(facts.get("scenario") or default_variant).check(ctx.arch).key}
        plan.append((out, cfg, facts))
    taken = [str(out) for out, _, _ in plan if out.exists()]
    if taken and not opts.force:  # check all first: never leave half of a --pareto export behind
        raise FileExistsError(f"{', '.join(taken)} already exist(s); pass --force to overwrite, or choose "
                              "another --name/--out")
    # Configs without a measured latency: timed together per variant, each as a paired ratio to the full model in
    # that variant on one clock (the method of the search's fronts, so a card's number compares with the dashboard's)
    timed: dict[str, dict[str, Any]] = {}
    if opts.measure:
        for key in dict.fromkeys(f["scenario"] for _, _, f in plan if f.get("latency_ms") is None):
            timed[key] = front_timer(ctx, key)([c for _, c, f in plan
                                                if f["scenario"] == key and f.get("latency_ms") is None])
    # Every model is staged beside its target and moved into place only once all are written and re-scored.
    staged: list[tuple[Path, Path]] = []
    try:
        for out, cfg, facts in plan:
            info = dict(facts)
            sc = Scenario.parse(info["scenario"])
            evaluator = ctx.evaluator(variant=sc.key)
            claim = info.pop("dev_metric", None)  # the front's claim; the card gets the re-scored figure
            if claim is None:
                claim = evaluator(cfg, "dev")
            if info.get("test_metric") is None and "test" in ctx.task.splits:
                info["test_metric"] = evaluator(cfg, "test")
            info.update(num_layers=ctx.arch.num_layers, metric=run.get("metric", "metric"),
                        macs=analytic_macs(ctx.arch, cfg, sc.seq_len, batch=sc.batch, num_labels=ctx.model.num_labels),
                        macs_shape=f"batch {sc.batch}, {sc.seq_len} tokens",
                        params=param_count(ctx.arch, cfg, ctx.model.num_labels), **variant_columns(sc.key),
                        onnx_file=INT8_ONNX if sc.uses_ort and sc.int8 else FP32_ONNX,
                        threads=sc.threads if sc.device == "cpu" else None,
                        task=(run.get("task") or {}).get("name", run.get("task_spec")), teacher=run.get("teacher"),
                        task_spec=run.get("task_spec"), pair=len((run.get("task") or {}).get("text_columns", [])) == 2,
                        stages=run.get("stage_seconds"), training=_training_summary(run))
            if sc.key in timed and info.get("latency_ms") is None:
                t = timed[sc.key]
                info.update(latency_ms=float(t["latency_ms"][cfg.hash]), fingerprint=t["fingerprint"],
                            latency_method=t["method"])
            stage = out.parent / f".staged-{uuid.uuid4().hex[:8]}" / out.name  # same name: the card's
            staged.append((stage, out))
            export_subnet(ctx.model, cfg, stage, tokenizer=ctx.tokenizer, label_names=ctx.label_names or None,
                          card_info=info, onnx_writer=_onnx_writer(sc, opts.onnx),
                          check=_rescorer(ctx, sc, claim, str(info.get("source", cfg.hash))))
        for stage, out in staged:
            if out.exists():  # --force (checked above): replaced only now that every new export is complete
                shutil.rmtree(out)
            os.replace(stage, out)
    finally:
        for stage, _ in staged:
            shutil.rmtree(stage.parent, ignore_errors=True)
    written = [Exported(path=out, config=cfg) for out, cfg, _ in plan]
    for e in written:
        print(e.line())
    return written


def _onnx_writer(sc, onnx: bool):
    """What writes the ONNX files of a variant: ORT variants always (their artifact IS the ONNX file: the graph the
    runners time, and `model.int8.onnx` for INT8); eager variants the portable export unless `--no-onnx`."""
    from profiling.deploy import onnx_model
    from profiling.onnx_export import export_onnx

    if sc.uses_ort:
        return lambda small, path: onnx_model(small, sc, Path(path).parent)
    return (lambda small, path: export_onnx(small, path)) if onnx else None


def _rescorer(ctx, sc, claim: float | None, source: str):
    """folder -> card facts: the dev metric of the artifact as written there (its ONNX file in ONNX Runtime, or
    its weights converted as the variant runs them), checked against the front's claim.

    Raises:
        RescoreMismatch: more than `RESCORE_TOLERANCE` points from the claim.
    """
    from profiling.deploy import artifact_metric, load_artifact
    from search.confirm import BINOMIAL_METRICS, standard_error_pct
    from search.evaluator import HELDOUT

    def se(metric: float | None, n: int) -> float | None:
        binomial = str(ctx.run.get("metric") or "accuracy") in BINOMIAL_METRICS
        return standard_error_pct(metric, n) if binomial and metric is not None and n > 0 else None

    def check(folder: Path) -> dict[str, Any]:
        with load_artifact(folder, sc) as art:
            dev = artifact_metric(art, ctx.loader("dev"), ctx.task)
            # the confirmed figure: the written artifact on the held-out slice of train, which the search never saw
            held = artifact_metric(art, ctx.loader(HELDOUT), ctx.task) if ctx.heldout_examples else None
        if claim is not None and abs(dev - claim) > RESCORE_TOLERANCE:
            raise RescoreMismatch(
                f"export refused: the written {sc.key} artifact of {source} scores dev {dev:.4f} %, but the front "
                f"claims {claim:.4f} % (more than {RESCORE_TOLERANCE} point apart); nothing was written. Was the "
                "point scored on a dev subset (--fidelity-subset) or on other weights? Re-run `dynabert search` "
                "with --study-name NEW, or export the config with --subnet to score it afresh")
        n_dev = len(ctx.task.splits["dev"])
        return {"dev_metric": dev, "dev_rescored": True, "dev_n": n_dev, "dev_se": se(dev, n_dev),
                "confirm_metric": held, "confirm_split": HELDOUT if held is not None else None,
                "confirm_n": ctx.heldout_examples if held is not None else None,
                "confirm_se": se(held, ctx.heldout_examples)}
    return check
