"""The one list of benchmarks: script, result files, source paths, full and quick commands, run directories.

`python -m bench.run` runs what is listed here, in this order; `make bench-status` (bench/freshness.py) reports
every file in results/ as fresh or stale against it, and `tests/test_results_fresh.py` checks that each is
written by a bench listed here; `python -m bench.results_index` renders results/README.md and docs/RESULTS.md.

Commands are argv lists with placeholders filled by `bench.run.expand`: `{py}` the Python that runs
`make bench`, `{results}` the results folder (results/, or a temporary one with --quick), `{runs}` the
runs folder (runs/, or a temporary one with --quick), `{shared}` the shared folder beside the checkout
(data and the released code's reference grid).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

Command = tuple[str, ...]

# What a figure depends on. A result file is stale once any of these changed after the commit it records.
# bench/rundirs.py: common.provenance() and run read the commit and the dirty state through it.
_COMMON = ("bench/common.py", "bench/run.py", "bench/rundirs.py", "profiling/fingerprint.py")
# What a trained run's weights and figures depend on: elastic/ but its export/ (the writer and model card of
# `dynabert export`, which no training step imports; the benches that export name it themselves), and the training
# commands' recipe: their defaults are the standard preset's (app/config/run_config.py, presets.py).
TRAINING = ("elastic/__init__.py", "elastic/data/", "elastic/model/", "elastic/rundir/", "elastic/training/",
            "app/cli/main.py", "app/cli/common.py", "app/cli/train.py", "app/cli/runtime.py",
            "app/workflow/train.py", "app/config/run_config.py", "app/config/presets.py")
PIPELINE = ("app/workflow/pipeline.py", "app/cli/run.py")
LATENCY = ("profiling/",)
SEARCH = ("search/", "app/cli/search.py", "app/cli/profile.py", "app/workflow/search.py", "app/workflow/profile.py",
          "app/workflow/export.py")
BASELINES = ("app/workflow/baselines.py", "app/cli/baselines.py")

_SST2_RECIPE = ("--threads", "2", "--stage1-extra=--select-best heldout",
                "--extra=--lr 2e-4 --select-best heldout --hard-weight 1.0")


@dataclass(frozen=True)
class Bench:
    """One benchmark.

    Attributes:
        name: what `--only` takes.
        script: the bench script, relative to the repository root (a missing one is reported, not run).
        outputs: result stems: each writes `{results}/<stem>.json` and `.md`.
        sources: paths (files or folders) whose changes make the outputs stale; the script itself is added.
        command: the steps of the full-size run, in order.
        quick: the steps of a small-size run (--quick), or empty with `quick_skip` saying why.
        quick_skip: why the bench has no quick run (then --quick only checks that the script imports).
        run_dirs: run directories (relative to `{runs}`) this bench trains; reused by a later `make bench`
            while the last commit touching `train_sources` is the one they were trained at.
        train_sources: the training code of `run_dirs`.
        reuse: False when the outputs time the training itself (then `run_dirs` always start anew).
        requires: benches whose run directories this one reads (run first when theirs cannot be reused).
        needs_cuda: skipped, with a reason, where torch sees no CUDA device.
        measures: one line for results/README.md.
    """

    name: str
    script: str
    outputs: tuple[str, ...]
    sources: tuple[str, ...]
    command: tuple[Command, ...]
    measures: str
    quick: tuple[Command, ...] = ()
    quick_skip: str = ""
    run_dirs: tuple[str, ...] = ()
    train_sources: tuple[str, ...] = ()
    reuse: bool = True
    requires: tuple[str, ...] = ()
    needs_cuda: bool = False
    expected_minutes: float | None = None
    all_sources: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        if not self.quick and not self.quick_skip:
            raise ValueError(f"bench {self.name}: give `quick` steps or a `quick_skip` reason")
        object.__setattr__(self, "all_sources", tuple(dict.fromkeys((self.script, *self.sources, *_COMMON))))

    @property
    def exists(self) -> bool:
        """The script is on this branch."""
        return (ROOT / self.script).is_file()


def _sst2(name: str, run: str, *extra: str, steps: str = "433", minutes: float) -> Bench:
    return Bench(
        name=name, script="bench/sst2_dynabert.py", outputs=(name,), sources=TRAINING,
        command=(("{py}", "-m", "bench.sst2_dynabert", "--run-dir", "{runs}/" + run, "--steps", steps,
                  "--out", "{results}/" + name, *extra),),
        quick_skip="trains all-MiniLM-L6-v2 on SST-2 (a teacher epoch alone takes minutes on 2 cores); the stage "
                   "code runs in tests/test_train.py and tests/test_pipeline.py",
        run_dirs=(run,), train_sources=TRAINING, expected_minutes=minutes,
        measures=f"DynaBERT on SST-2 ({steps} steps per stage): teacher, 12-point grid dev/test accuracy beside the "
                 "released code's grid, stage-2 overhead ratio")


# The students at stage 2's learning rate of the standard recipe (2e-4), with its model selection.
_STUDENTS_LR = ("--no-progress", "--min-run-time", "1", "--scenario", "cpu-eager-t2-b1-s128", "--max-steps", "433",
                "--lr", "2e-4", "--select-best", "heldout", "--run-dir", "{runs}/sst2_dynabert_students_lr2e-4")

# A trained-looking tiny run (tiny random BERT, small CSV task, stage checkpoints) from the search tests'
# fixture, for the quick runs of benches that read a trained run; made once per quick run.
_TINY_RUN: Command = ("{py}", "-c", "import sys, pathlib; from tests.helpers_search import make_tiny_run; "
                      "d = pathlib.Path(sys.argv[1]); (d / 'run').exists() or make_tiny_run(d, heldout=10)",
                      "{runs}/tiny")


def _searching(name: str, module: str, extra_sources: tuple[str, ...], *, minutes: float, measures: str) -> Bench:
    """A bench that runs searches on the SST-2 run (three seeds, 100 and 300 trials) and re-measures their fronts;
    its quick run searches the tiny run."""
    def cmd(run: str, scenario: str, budgets: str, seeds: str, threads: str, *extra: str) -> Command:
        return ("{py}", "-m", module, "--run-dir", run, "--scenario", scenario, "--budgets", budgets, "--seeds",
                seeds, "--eval-threads", threads, *extra, "--out", "{results}")
    return Bench(
        name=name, script=module.replace(".", "/") + ".py", outputs=(name,),
        sources=(*SEARCH, *LATENCY, "bench/search_metrics.py", *extra_sources),
        command=(cmd("{runs}/sst2_dynabert", "cpu-eager-t2-b1-s128", "100,300", "0,1,2", "2",
                     "--fidelity-subset", "256"),),
        quick=(_TINY_RUN, cmd("{runs}/tiny/run", "cpu-eager-t1-b1-s16", "6,16", "0,1", "1", "--min-run-time",
                              "0.01", "--n-random", "6", "--n-heldout", "4")),
        requires=("sst2_dynabert",), expected_minutes=minutes, measures=measures)


BENCHES: tuple[Bench, ...] = (
    _sst2("sst2_dynabert", "sst2_dynabert", *_SST2_RECIPE, minutes=60),
    _sst2("sst2_dynabert_seed43", "sst2_dynabert_seed43", *_SST2_RECIPE, "--seed", "43", minutes=60),
    _searching("search", "bench.search_bench", (), minutes=120,
               measures="hypervolume on test (headline) and dev accuracy of re-measured searched fronts vs the "
                        "uniform grid: NSGA-II, TPE, random at 100 and 300 trials, three seeds each, and the "
                        "Mix'n'Match rule's front at the same budgets (search_vs_rule: TPE vs rule, decided on dev)"),
    _searching("front_confirmation", "bench.front_confirmation", ("bench/search_bench.py",), minutes=40,
               measures="the default sampler's fronts chosen on dev vs confirmed on the run's held-out slice of "
                        "train: test hypervolume, grid points dominated and covered on test, three seeds, 100 and "
                        "300 trials"),
    # after `search`: it copies search_vs_rule from {results}/search.json; its quick run makes its own tiny run
    Bench(
        name="deploy_front", script="bench/deploy_front.py", outputs=("deploy_front",),
        sources=(*SEARCH, *LATENCY, "elastic/export/writer.py", "elastic/model/hf_compact.py", "elastic/model/extract.py",
                 "bench/deploy_front_report.py"),
        # 400 trials: of 200, 48 are the grid in 4 variants, and that front had nothing within 1 dev point of the
        # teacher faster than the grid's (w0.5, d0.75) INT8 (results/deploy_front.md of 6e8707b); the study resumes
        command=(("{py}", "-m", "bench.deploy_front", "--run-dir", "{runs}/sst2_dynabert", "--trials", "400",
                  "--out", "{results}"),),
        quick=(("{py}", "-m", "bench.deploy_front", "--quick", "--work-dir", "{runs}/deploy_front_quick",
                "--out", "{results}"),),
        requires=("sst2_dynabert",), expected_minutes=100,
        measures="the user's outcome on SST-2: fp32/INT8 x eager/ORT searched together, the fastest exported "
                 "artifact within 1.0 and 2.0 dev points of the teacher (paired ratio to the fp32 eager teacher, "
                 "test reported), the smallest grid config's efficiency at b1/b32 s64, dev-minus-test optimism on "
                 "a 400-sentence dev subset"),
    Bench(
        name="baselines", script="bench/baselines.py", outputs=("baselines",),
        sources=(*TRAINING, *BASELINES, *LATENCY, "search/pareto.py", "search/evaluator.py", "search/eval_cache.py",
                 "search/fidelity.py", "bench/report_text.py"),
        command=(("{py}", "-m", "bench.baselines", "--run-dir", "{runs}/sst2_dynabert", "--max-steps", "433",
                  "--tinybert-budget", "per-phase", "--full-depth-tinybert", "--threads", "2"),),
        quick_skip="trains two students on SST-2 from a trained run (sst2_dynabert)",
        requires=("sst2_dynabert",), expected_minutes=60,
        measures="DistilBERT-/TinyBERT-style students and the INT8 teacher vs the DynaBERT point of nearest MACs "
                 "(accuracy, latency)"),
    Bench(
        name="baselines_lr2e-4", script="bench/baselines_at_lr.py", outputs=("baselines_lr2e-4",),
        sources=(*TRAINING, *BASELINES, "bench/rundirs.py"),
        command=(("{py}", "-m", "bench.rundirs", "seed", "{runs}/sst2_dynabert",
                  "{runs}/sst2_dynabert_students_lr2e-4"),
                 ("{py}", "-m", "app.cli", "baselines", "--recipe", "distilbert", "--depth", "3", *_STUDENTS_LR),
                 ("{py}", "-m", "app.cli", "baselines", "--recipe", "tinybert", "--depth", "6", "--width", "0.5",
                  "--tinybert-budget", "split", *_STUDENTS_LR),
                 ("{py}", "-m", "app.cli", "baselines", "--recipe", "tinybert", "--depth", "3", "--width", "0.5",
                  "--tinybert-budget", "per-phase", *_STUDENTS_LR),
                 ("{py}", "-m", "bench.baselines_at_lr", "--students-run", "{runs}/sst2_dynabert_students_lr2e-4",
                  "--dynabert-run", "{runs}/sst2_dynabert", "--lr", "2e-4", "--name", "baselines_lr2e-4")),
        quick_skip="trains three students on SST-2 from a trained run (sst2_dynabert)",
        run_dirs=("sst2_dynabert_students_lr2e-4",), train_sources=(*TRAINING, *BASELINES),
        requires=("sst2_dynabert",), expected_minutes=45,
        measures="SST-2 baseline students at stage 2's lr (2e-4) and selection beside the DynaBERT grid point of the "
                 "same architecture"),
    Bench(
        name="latency", script="bench/latency.py", outputs=("latency",),
        sources=(*LATENCY, "elastic/", "bench/report_text.py"),
        # torch's own OpenMP wait policy (bench.run's environment says PASSIVE; the bench unsets it before torch
        # loads): the bench runs alone, as a deployment on a machine of its own (bench/latency.py WAIT_POLICIES)
        command=(("{py}", "-m", "bench.latency", "--omp-wait-policy=default", "--out", "{results}"),),
        # quick: a tiny random BERT, eager only (ONNX exports of 24 configs take minutes; tests/test_onnx.py)
        quick=(("{py}", "-m", "bench.latency", "--quick", "--tiny", "--runtimes", "eager", "--peak-n", "256",
                "--time-scale", "0.05", "--work-dir", "{runs}/bench-latency", "--omp-wait-policy=default",
                "--out", "{results}"),),
        expected_minutes=15,
        measures="latency, MACs ratio and efficiency of the 12 grid configs (eager, ONNX Runtime), latency "
                 "predictor error, share of the GEMM peak"),
    Bench(
        name="model_parity_speed", script="bench/model_parity_speed.py", outputs=("model_parity_speed",),
        sources=("elastic/model/modeling.py", "elastic/model/weights.py", "elastic/model/config.py", "profiling/timing.py"),
        command=(("{py}", "-m", "bench.model_parity_speed", "--rounds", "30", "--min-time", "20"),),
        quick=(("{py}", "-m", "bench.model_parity_speed", "--rounds", "3", "--min-time", "0", "--seq-len", "16"),),
        expected_minutes=2,
        measures="our elastic BERT vs transformers' BertForSequenceClassification: logit difference and latency "
                 "ratio"),
    Bench(
        name="pipeline_quick", script="bench/pipeline_quick.py", outputs=("pipeline_quick",),
        sources=(*TRAINING, *PIPELINE, *SEARCH, *LATENCY, *BASELINES, "elastic/export/", "app/dashboard/artifacts.py",
                 "app/dashboard/run_index.py"),
        # a fresh clone of HEAD: `make install` (set-up) then `make demo-run`, both timed by the script itself
        command=(("{py}", "-m", "bench.pipeline_quick"),),
        quick_skip="the quick preset itself is the demo (minutes); tests/test_pipeline.py runs the pipeline on a "
                   "tiny model",
        # its figures are the pipeline's own timings: always a fresh run directory, never a reused one
        run_dirs=("demo_fresh_clone",), reuse=False, train_sources=(*TRAINING, *PIPELINE, *SEARCH, *LATENCY, *BASELINES),
        expected_minutes=11,
        measures="`make demo` on a fresh clone (quick preset, BBC News): set-up and stage seconds, the stage-2 "
                 "grid beside the same-harness baselines, the demo's targets, front size, knee point"),
    # after pipeline_quick (benches run in this order): the same outcome on the demo (BBC News, quick preset), on
    # the fresh-clone demo run of `pipeline_quick`, at the demo's own target (batch 1, 64 tokens)
    Bench(
        name="deploy_front_demo", script="bench/deploy_front.py", outputs=("deploy_front_demo",),
        sources=(*SEARCH, *LATENCY, "elastic/export/writer.py", "elastic/model/hf_compact.py", "elastic/model/extract.py",
                 "bench/deploy_front_report.py"),
        command=(("{py}", "-m", "bench.deploy_front", "--run-dir", "{runs}/demo_fresh_clone", "--target",
                  "cpu-t2-b1-s64", "--name", "deploy_front_demo", "--out", "{results}"),),
        quick_skip="the quick run of deploy_front covers the script; this one only changes the run directory",
        # no `requires`: pipeline_quick never reuses its run directory, so requiring it would re-run the demo; the
        # bench reads the last one and says so when there is none
        expected_minutes=20,
        measures="the user's outcome on the demo (BBC News): as deploy_front, at cpu-t2-b1-s64"),
    Bench(
        name="gpu_smoke", script="bench/gpu_smoke.py", outputs=("gpu_smoke",), sources=(*TRAINING, *LATENCY),
        command=(("{py}", "-m", "bench.gpu_smoke", "--results-dir", "{results}"),),
        quick_skip="needs CUDA; its CPU path runs in tests/test_gpu_smoke.py", needs_cuda=True, expected_minutes=5,
        measures="BERT-base-sized stage 2 in bf16 and grid latency on one CUDA GPU"),
    Bench(
        name="sst2_released_recipe", script="bench/sst2_released_recipe.py", outputs=("sst2_released_recipe",),
        sources=(*TRAINING, *PIPELINE),
        command=(("{py}", "-m", "bench.sst2_released_recipe", "--run-dir", "{runs}/sst2_released_recipe",
                  "--out-dir", "{results}"),),
        quick_skip="trains at the released recipe on SST-2 (its own smoke size still takes minutes)",
        run_dirs=("sst2_released_recipe",), train_sources=(*TRAINING, *PIPELINE), expected_minutes=120,
        measures="our code at the released DynaBERT recipe beside the released code's grid on SST-2"),
    Bench(
        name="step_time_vs_released", script="bench/step_time_vs_released.py", outputs=("step_time_vs_released",),
        sources=TRAINING,
        # any DynaBERT_W checkpoint serves (both codes start from the same weights): the standard run's stage 1
        command=(("{py}", "-m", "bench.step_time_vs_released", "--run-dir", "{runs}/sst2_dynabert",
                  "--out-dir", "{results}"),),
        quick_skip="times the released code in its own venv from a trained stage-1 checkpoint",
        requires=("sst2_dynabert",), expected_minutes=30,
        measures="training step time of our code vs the released DynaBERT code, same weights and machine"),
    Bench(
        name="quick_preset", script="bench/quick_preset.py", outputs=("quick_preset",),
        sources=(*TRAINING, *PIPELINE, "bench/suite_runs.py"),
        command=(("{py}", "-m", "bench.quick_preset", "--runs", "{runs}/quick_preset", "--data", "{shared}/data",
                  "--out", "{results}"),),
        # its --quick path still runs `dynabert run` four times (3.5 min here): too long for `make test`
        quick_skip="trains the quick preset four times even at its smallest (`python -m bench.quick_preset --quick` "
                   "runs the path in about 3.5 min); tests/test_quick_preset.py checks its rules and report",
        run_dirs=("quick_preset",), train_sources=(*TRAINING, *PIPELINE), expected_minutes=90,
        measures="the quick preset's stage 2 (40 vs 20 steps; lr 3e-4 + hard-label term vs lr 1e-4 distillation, from "
                 "one stage 1) on bbc, trec and mr x two seeds, decided on the grid's mean dev accuracy by rules fixed "
                 "before the runs"),
    Bench(
        name="suite", script="bench/suite.py", outputs=("suite",),
        sources=(*TRAINING, *BASELINES, "profiling/flops.py", "bench/suite_plan.py", "bench/suite_runs.py",
                 "bench/suite_stats.py", "bench/suite_report.py"),
        # resumable per task-seed in {runs}/suite/<task>-s<seed>/ (bench/suite_runs.py keeps and checks each one's
        # recipe): no run_dirs here, so that a commit elsewhere in the tree never sets hours of training aside
        command=(("{py}", "-m", "bench.suite", "--runs", "{runs}/suite", "--data", "{shared}/data",
                  "--out", "{results}"),),
        quick=(("{py}", "-m", "bench.suite", "--quick", "--runs", "{runs}/suite", "--data", "{shared}/data",
                "--out", "{results}"),),
        expected_minutes=480,
        measures="six tasks x two seeds at one step budget: the standard recipe vs the released stage 2, vs no "
                 "hard-label term, vs three same-harness students and the INT8 teacher; paired-bootstrap 95 % "
                 "intervals, the issue's targets on dev, cost per deployable size"),
)

BY_NAME: dict[str, Bench] = {b.name: b for b in BENCHES}

# Benches taken out of the registry, with the last commit whose results/ holds their files (`git show
# <commit>:results/<stem>.md`) and why. Their figures are no longer cited; a test keeps their files out of results/.
RETIRED: tuple[tuple[str, str, str], ...] = (
    ("sst2_dynabert_216steps", "878787f",
     "the released recipe at half its budget (216 steps per stage); sst2_released_recipe measures it at full "
     "budget, beside the released code's own grid"),
    ("stage2_probe", "878787f",
     "a prototype's look at the first 100 stage-2 steps (lr 2e-5 vs 1e-4); the stage logs now record every "
     "sub-network's losses and held-out metric (the dashboard's curves), and sst2_dynabert measures the recipe"),
    ("trec_lr1e-4, trec_lr1e-4_seed43, trec_lr3e-4, trec_lr1e-4_seeds", "878787f",
     "DynaBERT vs students on TREC at equal lr and selection: about 4 hours of training per seed on 2 cores, "
     "which the regeneration of every figure at one commit cannot afford; baselines_lr2e-4 makes the same "
     "comparison on SST-2"),
    ("baselines_lr1e-4", "0aef2ad",
     "students at lr 1e-4, the standard recipe's stage-2 lr until 0aef2ad; baselines_lr2e-4 compares them at the "
     "new one (2e-4)"),
)
# Scripts in bench/ that write no result file (tools and helpers), so that nothing in bench/ goes unlisted.
TOOLS = ("bench/profile_step.py", "bench/screenshot.py", "bench/released_step_timer.py", "bench/subnet_forward_ab.py",
         "bench/deploy_front_report.py",
         "bench/report_text.py", "bench/front_feasibility.py", "bench/op_profile.py", "bench/ort_spinning.py",
         "bench/suite_plan.py", "bench/suite_runs.py", "bench/suite_stats.py", "bench/suite_report.py")


def owner_of(stem: str) -> Bench | None:
    """The bench that writes `results/<stem>.json`, None when no registered bench does."""
    return next((b for b in BENCHES if stem in b.outputs), None)


def select(only: str | None) -> list[Bench]:
    """The benches named in `only` (comma-separated), in registry order; all when `only` is empty.

    Raises:
        ValueError: naming the unknown benches and the known ones.
    """
    if not only:
        return list(BENCHES)
    names = [n.strip() for n in only.split(",") if n.strip()]
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        raise ValueError(f"unknown bench(es) {', '.join(unknown)}; known: {', '.join(BY_NAME)}")
    return [b for b in BENCHES if b.name in names]
