"""The configuration of `dynabert run`, one typed field per option, grouped in sections.

Each field holds its type, default, help, choices (a `Literal`) and range (`elastic.training.option_fields.option`); the
flags of `dynabert run`, the keys of a --config file, examples/run.toml and docs/CLI.md are generated from them
(app/config/flags.py, app/config/files.py). A field's name is its flag (`--stage2-lr`) and its config key
(`stage2_lr`), so names are unique across sections. Presets are overrides of these defaults. `stage_options`
builds one training stage's `StageOptions` from a configuration: the pipeline's stages and the defaults of the
single-stage commands (`dynabert train-stage2`) both come from it, so they train the same recipe.

Torch-free: `dynabert --help` builds its parsers from here.
"""
from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, Callable, Iterator, Literal, Optional

from elastic.model.config import ImportanceSplit, SelectSplit
from elastic.training.device import DEFAULT_DEVICE, DEFAULT_PRECISION, Precision, Runtime
from elastic.training.option_fields import OptionError, Spec, coerce, option, specs
from elastic.training.options import (DEFAULT_LR, DEFAULT_SCENARIO, AdamEps, Batching, ImportanceGrads, ImportanceOrder,
                             Padding, Sampler, SubnetForward, TeacherWidth)
from app.config.presets import PRESETS
from app.config.variants import merge_layers, run_variants
from elastic.training.stage_options import RUN_LEVEL, StageOptions
from profiling.variants import VariantPrecision, VariantRuntime

Preset = Literal["quick", "standard", "paper", "released"]

def _objective_names() -> tuple[str, ...]:
    """The search's objectives, read from its registry (`search.objectives.register` adds one; torch-free)."""
    from search.objectives import objective_names
    return objective_names()
BaselineRecipe = Literal["distilbert", "tinybert", "int8", "dynabert_int8"]  # elastic.training.baselines.Recipe values
ExportChoice = Literal["knee", "pareto", "none"]
# The pipeline's stages, in order (`dynabert run --only` names some of them).
STAGES: tuple[str, ...] = ("teacher", "rewire", "stage1", "stage2", "profile", "search", "baselines", "export")


class ConfigError(ValueError):
    """A bad option, config file or preset: the message names the key (or flag) and the file."""


@dataclass(frozen=True)
class DataConfig:
    """data: the task and how it is read"""

    task: str = option("bbc", help="a data dir/file (train/dev/test .tsv/.csv/.jsonl), glue/<task>, "
                       "hf:<dataset id>[:<config>], a save_to_disk dir, or bbc (embedded)")
    text_columns: Optional[tuple[str, ...]] = option(None, help="1 text column, or 2 for sentence pairs "
                                                     "(default: detected)", example=["review"])
    label_column: Optional[str] = option(None, help="the label column (default: detected among label, labels, "
                                         "class, category, ...)", example="polarity")
    max_length: int = option(128, help="tokens per example", min=2)
    seed: int = option(42, help="data splits, sampling and initialisation", min=0)
    limit_train: Optional[int] = option(None, help="train on the first N training examples only", min=1,
                                        example=640)
    importance_split: ImportanceSplit = option("train-heldout", help="where rewiring measures importance: "
                                               "train-heldout (the last 10% of train, never trained on) or dev")


@dataclass(frozen=True)
class TeacherConfig:
    """teacher: the model fine-tuned first"""

    teacher: Optional[str] = option(None, help="pretrained HF BERT/RoBERTa dir or hub id (default: embedded "
                                    "all-MiniLM-L6-v2)", example="bert-base-uncased")
    teacher_epochs: float = option(3.0, help="teacher fine-tuning epochs", above=0)


@dataclass(frozen=True)
class TrainingConfig:
    """training: every training stage (AdamW, linear decay, grad clip 1.0)"""

    batch_size: int = option(32, help="global batch size of every training stage", min=1)
    lr: float = option(DEFAULT_LR, help="peak learning rate of every stage (stage 2: stage2_lr)", above=0)
    warmup_steps: int = option(0, help="linear warm-up steps of every stage", min=0)
    save_every: int = option(100, help="checkpoint period in steps (an interrupted stage resumes from it)", min=0)
    padding: Padding = option("longest", help="batches padded to their longest example, or to max_length "
                              "(released code)")
    adam_eps: AdamEps = option("torch", help="AdamW eps after the bias correction (torch) or before it "
                               "(released code)")


@dataclass(frozen=True)
class DistillConfig:
    """distillation: stages 1 and 2"""

    hard_weight: float = option(0.0, help="weight of a hard-label cross-entropy added to the distillation loss",
                                min=0)
    hidden_weight: Optional[float] = option(None, help="hidden-state MSE weight (unset: 0.1 in stage 1, 1.0 in "
                                            "stage 2)", min=0, example=0.1)
    select_best: SelectSplit = option("off", help="end each stage on its best-scoring weights, scored on the "
                                      "held-out train slice or dev (off: the last weights)")
    select_every: int = option(50, help="steps between selection scores", min=1)
    batching: Batching = option("random", help="random or length-grouped batches (similar lengths, less padding)")
    subnet_forward: SubnetForward = option("shared-prefix", help="shared layers once per step, or each "
                                           "sub-network separately (released code)")
    augment: int = option(0, help="TinyBERT-style augmented copies per example (paper: 20)", min=0)
    mlm_checkpoint: Optional[str] = option(None, help="masked-LM checkpoint dir that augment needs",
                                           example="path/to/bert-base-uncased")


@dataclass(frozen=True)
class Stage1Config:
    """stage 1: DynaBERT_W, widths 1/0.75/0.5/0.25"""

    stage1_epochs: float = option(1.0, help="stage-1 epochs", above=0)
    stage1_steps: Optional[int] = option(None, help="stage-1 optimizer steps (unset: stage1_epochs decide)", min=1,
                                         example=433)


@dataclass(frozen=True)
class Stage2Config:
    """stage 2: DynaBERT, widths x depths 1/0.75/0.5"""

    stage2_epochs: float = option(1.0, help="stage-2 epochs", above=0)
    stage2_steps: Optional[int] = option(None, help="stage-2 optimizer steps (unset: stage2_epochs decide)", min=1,
                                         example=433)
    stage2_lr: Optional[float] = option(None, help="stage 2's learning rate alone (unset: lr); also the students' "
                                        "and stage 3's", above=0, example=2e-4)
    stage2_hard_weight: Optional[float] = option(None, help="stage 2's hard-label weight alone (unset: "
                                                 "hard_weight)", min=0, example=1.0)
    extra_subnets: int = option(0, help="also train the smallest and K random per-layer sub-networks per step",
                                min=0)
    teacher_width: TeacherWidth = option("full", help="stage 2's teacher: full (released code) or matched "
                                         "(paper: the student's width)")


@dataclass(frozen=True)
class Stage3Config:
    """stage 3: optional hard-label fine-tuning of the grid sub-networks"""

    stage3: bool = option(False, help="run stage 3 after stage 2")
    stage3_epochs: float = option(1.0, help="stage-3 epochs", above=0)


@dataclass(frozen=True)
class RewireConfig:
    """rewire: importance of heads and neurons"""

    importance_grads: ImportanceGrads = option("per-batch", help="each batch's gradients, or their running sum "
                                               "(released code)")
    importance_order: ImportanceOrder = option("by-length", help="batches sorted by length, or in file order "
                                               "(released code)")
    importance_batch_size: int = option(32, help="batch size of the importance pass (released code: 8)", min=1)


@dataclass(frozen=True)
class ProfileConfig:
    """profile: latency measurements and predictor"""

    scenario: str = option(DEFAULT_SCENARIO, help="latency scenario key: device-runtime-threads-batch-seqlen, or "
                           "several deployment variants of one target, comma-separated (or give target instead)")
    target: Optional[str] = option(None, help="where the model is deployed, without runtime and precision: "
                                   "cpu-t{threads}-b{batch}-s{seq_len} or cuda-b{batch}-s{seq_len}; with precisions "
                                   "and runtimes it names the variants profiled and searched", example="cpu-t2-b1-s64")
    precisions: Optional[tuple[VariantPrecision, ...]] = option(None, help="with target: fp32, int8 (dynamic), bf16 "
                                                                "or fp16 (cuda eager only) (unset: fp32)",
                                                                example=["fp32", "int8"])
    runtimes: Optional[tuple[VariantRuntime, ...]] = option(None, help="with target: eager (PyTorch), ort (ONNX "
                                                            "Runtime); every possible pair is a variant (unset: eager)",
                                                            example=["eager", "ort"])
    n_random: int = option(50, help="random per-layer configs the latency predictor is fitted on", min=0)
    n_heldout: int = option(50, help="other random configs that score the predictor (MAPE, Kendall tau)", min=2)


@dataclass(frozen=True)
class SearchConfig:
    """search: the Optuna study"""

    n_trials: int = option(300, help="Optuna trials", min=1)
    sampler: Sampler = option("tpe", help="the Optuna sampler")
    objectives: tuple[str, ...] = option(("metric", "latency"), help="metric first, then any registered cost: "
                                         "latency, macs, params (search.objectives)", choices_from=_objective_names)
    n_workers: int = option(1, help="search worker processes on this machine", min=1)
    storage: Optional[str] = option(None, help="Optuna storage shared by workers on several machines (unset: "
                                    "SQLite study.db in the run directory)",
                                    example="postgresql://user:password@host/dbname")
    study_name: Optional[str] = option(None, help="the Optuna study to create or join (unset: derived from the "
                                       "options)", example="search-1")
    seed_with_rule: int = option(0, help="enqueue the first N configs of the Mix'n'Match rule (grid, per-layer "
                                 "width schedules, layer drops) when the study is created (0: the grid only)", min=0)


@dataclass(frozen=True)
class BaselinesConfig:
    """baselines: the students and INT8 models the front is compared with"""

    baselines: tuple[BaselineRecipe, ...] = option(("distilbert", "tinybert", "int8"), help="recipes to run")
    baseline_steps: Optional[int] = option(None, help="optimizer steps per student phase (unset: the stage "
                                           "budget)", min=1, example=433)


@dataclass(frozen=True)
class ExportConfig:
    """export: what is exported at the end"""

    export: ExportChoice = option("knee", help="the knee point of the front, every front point, or nothing")


@dataclass(frozen=True)
class RuntimeConfig:
    """runtime: where every stage computes"""

    device: str = option(DEFAULT_DEVICE, help="auto (CUDA when present), cpu, cuda, cuda:N or mps")
    precision: Precision = option(DEFAULT_PRECISION, help="fp32, bf16 or fp16 (autocast; fp16 with a grad scaler)")


SECTIONS: dict[str, type] = {
    "data": DataConfig, "teacher": TeacherConfig, "training": TrainingConfig, "distill": DistillConfig,
    "stage1": Stage1Config, "stage2": Stage2Config, "stage3": Stage3Config, "rewire": RewireConfig,
    "profile": ProfileConfig, "search": SearchConfig, "baselines": BaselinesConfig, "export": ExportConfig,
    "runtime": RuntimeConfig}
SPECS: dict[str, Spec] = {s.name: s for cls in SECTIONS.values() for s in specs(cls)}  # key -> its option
SECTION_OF: dict[str, str] = {s.name: sec for sec, cls in SECTIONS.items() for s in specs(cls)}
DEFAULTS: dict[str, Any] = {k: s.default for k, s in SPECS.items()}

DEFAULT_PRESET: Preset = "standard"


@dataclass(frozen=True)
class RunConfig(Mapping):
    """Every option of a `dynabert run`, by section; also a read-only mapping of option name -> value (the flat
    view recorded in pipeline.json and read by the plan estimate)."""

    preset: Preset = DEFAULT_PRESET
    data: DataConfig = field(default_factory=DataConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    stage1: Stage1Config = field(default_factory=Stage1Config)
    stage2: Stage2Config = field(default_factory=Stage2Config)
    stage3: Stage3Config = field(default_factory=Stage3Config)
    rewire: RewireConfig = field(default_factory=RewireConfig)
    profile: ProfileConfig = field(default_factory=ProfileConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    baselines: BaselinesConfig = field(default_factory=BaselinesConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ConfigError(f"unknown preset '{self.preset}' (choose from {', '.join(PRESETS)})")
        if self.distill.augment and not self.distill.mlm_checkpoint:
            raise ConfigError(f"the preset/options ask for augment {self.distill.augment}, which needs "
                              "mlm_checkpoint (--mlm-checkpoint): a masked-LM checkpoint directory "
                              "(e.g. bert-base-uncased)")
        if self.distill.select_best == "heldout" and self.data.importance_split == "dev":
            raise ConfigError("select_best 'heldout' needs the held-out train slice, which importance_split 'dev' "
                              "does not keep: use --select-best dev or off, or --importance-split train-heldout")
        try:
            Runtime(device=self.runtime.device, precision=self.runtime.precision)
            run_variants(self)
        except ValueError as e:
            raise ConfigError(str(e)) from None

    def __getitem__(self, key: str) -> Any:
        if key == "preset":
            return self.preset
        return getattr(getattr(self, SECTION_OF[key]), key)

    def __iter__(self) -> Iterator[str]:
        return iter(("preset", *SPECS))

    def __len__(self) -> int:
        return 1 + len(SPECS)

    def updated(self, **options: Any) -> "RunConfig":
        """A copy with some options changed (checked as a file's would be)."""
        return from_flat(merge_layers(dict(self), coerce_options(options, lambda k: f"option '{k}'")))


def coerce_options(values: Mapping[str, Any], where: Callable[[str], str]) -> dict[str, Any]:
    """Option name -> value (`-` in names read as `_`), each as its field's type, inside its choices and range.

    Args:
        values: options from a file, a preset or code.
        where: key -> how messages name it (e.g. "run.toml: key 'lr'").

    Raises:
        ConfigError: an unknown key (with the closest known one) or a value that does not fit its field.
    """
    out = {}
    for raw_key, value in values.items():
        key = str(raw_key).replace("-", "_")
        if key == "preset":
            out[key] = value
            continue
        if key not in SPECS:
            close = difflib.get_close_matches(key, SPECS, n=1)
            raise ConfigError(f"{where(raw_key)} is not an option" + (f" (did you mean '{close[0]}'?)" if close
                                                                       else "") + "; examples/run.toml lists them all")
        try:
            out[key] = coerce(SPECS[key], value)
        except OptionError as e:
            raise ConfigError(f"{where(raw_key)} {e}") from None
    return out


def from_flat(values: Mapping[str, Any]) -> RunConfig:
    """A `RunConfig` from option name -> value (missing names keep their defaults); values must be coerced."""
    by_section: dict[str, dict[str, Any]] = {s: {} for s in SECTIONS}
    for key, value in values.items():
        if key != "preset":
            by_section[SECTION_OF[key]][key] = value
    return RunConfig(preset=values.get("preset", DEFAULT_PRESET),
                     **{s: cls(**by_section[s]) for s, cls in SECTIONS.items()})


def as_config(options: Mapping[str, Any]) -> RunConfig:
    """`options` as a `RunConfig`: itself, or a flat mapping (a pipeline.json record, an edited copy) checked."""
    if isinstance(options, RunConfig):
        return options
    rest = {k: v for k, v in options.items() if k != "preset"}
    return from_flat({**coerce_options(rest, lambda k: f"option '{k}'"),
                      "preset": options.get("preset", DEFAULT_PRESET)})


def parse_only(text: Optional[str]) -> Optional[list[str]]:
    """`--only` as stage names in pipeline order (None: every stage).

    Raises:
        ConfigError: an unknown stage name, or none at all.
    """
    if text is None:
        return None
    only = [s.strip() for s in text.split(",") if s.strip()]
    bad = [s for s in only if s not in STAGES]
    if bad or not only:
        raise ConfigError(f"--only: unknown stage(s) {bad or repr(text)}; stages are {', '.join(STAGES)}")
    return [s for s in STAGES if s in only]


def resolve(preset: str, file_options: Mapping[str, Any], cli_options: Mapping[str, Any]) -> RunConfig:
    """defaults < preset < file < command line (None on the command line: not given); every value checked.

    Raises:
        ConfigError: an unknown preset or option, or a value out of its type, choices or range.
    """
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset '{preset}' (choose from {', '.join(PRESETS)})")
    unknown = sorted(str(k) for k in (set(file_options) | set(cli_options)) if str(k).replace("-", "_") not in SPECS)
    if unknown:
        raise ConfigError(f"unknown option(s) {unknown}; known options: {', '.join(sorted(SPECS))}")
    merged = merge_layers(PRESETS[preset], file_options, {k: v for k, v in cli_options.items() if v is not None})
    return from_flat({**coerce_options(merged, lambda k: f"option '{k}'"), "preset": preset})


def preset_config(preset: str = DEFAULT_PRESET) -> RunConfig:
    """The configuration of a preset alone (no file, no flags)."""
    return resolve(preset, {}, {})


def stage_options(cfg: RunConfig, stage: str, *, resume: bool = False) -> StageOptions:
    """The `StageOptions` of one training stage (teacher, rewire, stage1, stage2, stage3) of a configuration.

    Stage 2 trains at `stage2_lr` (else `lr`) with `stage2_hard_weight` (else `hard_weight`); stage 3 trains at
    stage 2's learning rate. The teacher stage carries the run-level facts (task, max length, seed, importance
    split); later stages read them from run.json.
    """
    rt = Runtime(device=cfg.runtime.device, precision=cfg.runtime.precision)
    if stage == "rewire":
        r = cfg.rewire
        return StageOptions(importance_grads=r.importance_grads, importance_order=r.importance_order,
                            importance_batch_size=r.importance_batch_size, runtime=rt)
    t, d, s2 = cfg.training, cfg.distill, cfg.stage2
    lr = s2.stage2_lr if stage in ("stage2", "stage3") and s2.stage2_lr is not None else t.lr
    common: dict[str, Any] = dict(batch_size=t.batch_size, lr=lr, warmup_steps=t.warmup_steps, seed=cfg.data.seed,
                                  save_every=t.save_every, limit_train=cfg.data.limit_train, padding=t.padding,
                                  adam_eps=t.adam_eps, resume=resume, runtime=rt)
    if stage == "teacher":
        data = cfg.data
        return StageOptions(task=data.task, text_columns=data.text_columns, label_column=data.label_column,
                            teacher=cfg.teacher.teacher, max_length=data.max_length,
                            importance_split=data.importance_split, epochs=cfg.teacher.teacher_epochs, **common)
    if stage == "stage3":
        return StageOptions(epochs=cfg.stage3.stage3_epochs, **common)
    if stage not in ("stage1", "stage2"):
        raise ConfigError(f"unknown training stage '{stage}'")
    hard = s2.stage2_hard_weight if stage == "stage2" and s2.stage2_hard_weight is not None else d.hard_weight
    select = {} if d.select_best == "off" else {"select_best": d.select_best, "select_every": d.select_every}
    extra = {"extra_subnets": s2.extra_subnets, "teacher_width": s2.teacher_width} if stage == "stage2" else {}
    return StageOptions(epochs=cfg[f"{stage}_epochs"], max_steps=cfg[f"{stage}_steps"], augment=d.augment,
                        mlm_checkpoint=d.mlm_checkpoint, hard_weight=hard, batching=d.batching,
                        hidden_weight=d.hidden_weight, subnet_forward=d.subnet_forward, **select, **extra, **common)


def command_defaults(stage: str) -> StageOptions:
    """What a single-stage command (`dynabert train-stage2`, `dynabert rewire`) uses for every flag not given: the
    stage's options under `dynabert run`'s default preset, with the run-level facts left to run.json."""
    return replace(stage_options(preset_config(), stage), **{k: None for k in RUN_LEVEL})


def field_names() -> tuple[str, ...]:
    """Every option name (a flag of `dynabert run` and a config key), section by section."""
    return tuple(f.name for cls in SECTIONS.values() for f in fields(cls))
