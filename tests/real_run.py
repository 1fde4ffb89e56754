"""A tiny run directory made by the real commands (no hand-written artifact), for dashboard and contract tests.

`make_real_run` runs, in-process, what a user runs: `dynabert train-teacher`, `rewire`, `train-stage1`,
`train-stage2`, `profile` (two scenarios), `search`, `baselines` and `export` on the tiny BERT of
tests/conftest.py (TINY) and the small CSV task of tests/helpers_search.py. Every artifact of
docs/ARTIFACTS.md is written by its own writer, so a column renamed on one side breaks the readers'
tests. Two things are not real, both on purpose:

- the clock: `profiling.latency.time_runner` returns a fixed time per (config, scenario)
  (`fake_ms`), and `profiling.latency.paired_ratio` the ratio of two such times, so the figures are the
  same on every machine and the tests can reason about them (real
  timing is tested in tests/test_latency.py); everything around it (records, cache, drift, predictor,
  CSV) is the real code;
- one failed trial is added to the study (as a worker that died leaves one) before trials.csv is written
  again by its writer, so the dashboard's state filter has something to filter.

Training uses a learning rate of 1e-9 so the calibrated weights of helpers_search (sub-networks differ
in accuracy) survive: the front has several points.
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import optuna
import torch
from optuna.trial import TrialState

from elastic.model.config import SubnetConfig
from elastic.model.weights import save_checkpoint
from tests.helpers_search import _calibrate, _write_task, tiny_elastic, tiny_tokenizer

RUN = "tiny-real"
SCENARIOS = ("cpu-eager-t1-b1-s16", "cpu-eager-t2-b1-s16")
N_TRIALS = 30
BASELINE_STEPS = 2


def fake_ms(cfg: SubnetConfig, scenario_key: str) -> float:
    """The fixed clock: 0.05 ms + 0.1 ms per kept layer + 0.02 ms per kept head and 0.001 ms per FFN unit
    (two threads: 0.7 times that)."""
    ms = 0.05 + 0.1 * len(cfg.layers) + 0.02 * sum(cfg.heads) + 0.001 * sum(cfg.ffn)
    return round(ms * (0.7 if "-t2-" in scenario_key else 1.0), 6)


@contextmanager
def fixed_clock() -> Iterator[None]:
    """`profiling.latency` measures with `fake_ms` instead of the wall clock (runners still run once)."""
    import profiling.latency as latency

    real_runner_for, real_time_runner, real_paired = latency.runner_for, latency.time_runner, latency.paired_ratio

    def runner_for(model, cfg, scenario, **kw) -> tuple[Any, Any]:
        small, run = real_runner_for(model, cfg, scenario, **kw)

        def timed() -> Any:
            return run()
        timed.fake_ms = fake_ms(cfg, scenario.key)  # type: ignore[attr-defined]
        return small, timed

    def time_runner(fn, **kw) -> dict[str, float | int]:
        fn()
        ms = fn.fake_ms
        return {"median_ms": ms, "p90_ms": ms * 1.1, "iqr_ms": ms * 0.05, "min_ms": ms * 0.95, "n": 5}

    def paired_ratio(fn, fn_ref, **kw) -> dict[str, float | int]:
        fn(), fn_ref()
        return {"ratio": fn.fake_ms / fn_ref.fake_ms, "ratio_iqr": 0.0, "rounds": 8, "median_ms": fn.fake_ms,
                "ref_median_ms": fn_ref.fake_ms, "settle": 3}

    latency.runner_for, latency.time_runner, latency.paired_ratio = runner_for, time_runner, paired_ratio
    try:
        yield
    finally:
        latency.runner_for, latency.time_runner, latency.paired_ratio = real_runner_for, real_time_runner, real_paired


def _cli(*argv: str) -> None:
    from app.cli.main import main

    rc = main(list(argv))
    if rc != 0:
        raise RuntimeError(f"`dynabert {' '.join(argv)}` exited with {rc}")


def make_real_run(root: Path, name: str = RUN) -> Path:
    """Build `root/<name>` with every artifact, written by the real commands; return the run dir."""
    root = Path(root)
    src, run = root.parent / f"{root.name}-src", root / name
    teacher, data = src / "teacher", src / "task"
    model = tiny_elastic(2)
    _calibrate(model)  # sub-networks differ in accuracy, so the search finds a front of several points
    _write_task(data, {"train": 40, "dev": 40, "test": 30}, model)
    save_checkpoint(model, teacher)
    tiny_tokenizer().save_pretrained(str(teacher))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the tiny model is far faster on one thread of a busy machine
    try:
        with fixed_clock():
            common = ("--run-dir", str(run), "--no-progress", "--device", "cpu")
            train = ("--max-steps", "2", "--batch-size", "8", "--lr", "1e-9", "--save-every", "1")
            _cli("train-teacher", *common, "--task", str(data), "--teacher", str(teacher), "--max-length", "16",
                 "--seed", "42", *train)
            _cli("rewire", *common)
            _cli("train-stage1", *common, *train)
            _cli("train-stage2", *common, *train)
            scen = [a for s in SCENARIOS for a in ("--scenario", s)]
            _cli("profile", *common, *scen, "--n-random", "6", "--n-heldout", "4", "--min-run-time", "0.01",
                 "--reference-every", "50", "--timing", "blocked")
            _cli("search", *common, "--scenario", SCENARIOS[0], "--n-trials", str(N_TRIALS), "--threads", "1",
                 "--sampler", "random")
            _add_failed_trial(run)
            _cli("baselines", *common, "--recipe", "distilbert", "--max-steps", str(BASELINE_STEPS),
                 "--batch-size", "8", "--scenario", SCENARIOS[0], "--min-run-time", "0.01")
            _cli("export", "--run-dir", str(run), "--knee", "--name", "knee", "--no-onnx", "--no-measure",
                 "--device", "cpu")
    finally:
        torch.set_num_threads(threads)
    return run


def _add_failed_trial(run: Path) -> None:
    """A trial that failed (its worker raised), then trials.csv written again by its writer."""
    from search.pareto import load_study, write_trials_csv

    study = load_study(run)
    study.tell(study.ask(), state=TrialState.FAIL)
    write_trials_csv(study, run / "trials.csv")


optuna.logging.set_verbosity(optuna.logging.WARNING)
