"""The Pareto front of a finished search: re-measured, its hypervolume, its knee, pareto.csv, search.json.

Dominance and hypervolume are Optuna's own (`study.best_trials`, `optuna._hypervolume.compute_hypervolume`,
`optuna.study._multi_objective._is_pareto_front`): Optuna 5 has no public hypervolume function (only
`plot_hypervolume_history`, which draws it), so we use the module its plot uses.

Objective space: values are (metric %, cost...) with the metric maximised; internally everything is
turned into losses (metric negated) for Optuna's minimising utilities.

One front mixes the deployment variants of a search (`profiling.variants`): each point is a sub-network in one
variant, with that variant's metric and latency. The front is re-measured variant by variant: each variant's
points are timed in that variant's runtime as paired ratios to the full model IN THE SAME VARIANT (one
`measure_front` call per variant), times that full model's median from the same call. A variant's ratios thus
cancel the machine's drift as before, and the full models of the variants, timed one call after another, are
what relates the variants to each other (an fp32 eager reference for all would time the other runtimes'
points against a model that shares no kernels with them).
"""
from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any, Callable, Collection, Mapping, Sequence

import numpy as np
import optuna
from optuna._hypervolume import compute_hypervolume
from optuna.study._multi_objective import _is_pareto_front
from optuna.trial import FrozenTrial, TrialState

from elastic.model.config import SubnetConfig
from elastic.rundir import (CSV_SCHEMAS, PARETO_CSV, SEARCH_JSON, STUDY_DB, TRIALS_CSV, RunDir, RunDirError,
                            write_json)
from profiling.variants import variant_columns
from search.confirm import Confirmer, confirm
from search.objectives import cost_objective, cost_objectives

# The contract's columns; an objective registered beyond the built-ins adds its own after them (`_columns`).
PARETO_COLUMNS = CSV_SCHEMAS[PARETO_CSV].columns
TRIALS_COLUMNS = CSV_SCHEMAS[TRIALS_CSV].columns
# pareto.csv columns a front written before confirmation lacks (read back empty)
LATER_COLUMNS: tuple[str, ...] = ("dev_se", "confirm_metric", "confirm_se", "confirm_split", "confirm_n", "grid_point")
# Reference point: metric 0 %, and 10% above the full model's cost (so the full model still adds volume).
REFERENCE_MARGIN = 1.1


def _losses(points: np.ndarray) -> np.ndarray:
    """(metric, costs...) -> all-minimised losses (metric negated)."""
    pts = np.asarray(points, dtype=float).reshape(-1, np.shape(points)[-1] if np.size(points) else 2)
    return np.concatenate([-pts[:, :1], pts[:, 1:]], axis=1)


def reference_point(full_costs: Sequence[float], *, metric_ref: float = 0.0,
                    margin: float = REFERENCE_MARGIN) -> list[float]:
    """A fixed reference point: (metric_ref, margin x each cost of the full model)."""
    if margin < 1.0:
        raise ValueError(f"margin must be >= 1, got {margin}")
    return [float(metric_ref)] + [float(c) * margin for c in full_costs]


def hypervolume(points: Sequence[Sequence[float]], reference: Sequence[float]) -> float:
    """Hypervolume of (metric, costs...) points w.r.t. `reference` (metric maximised, costs minimised).

    Points that do not dominate the reference (metric below it or a cost above it) add nothing and
    are dropped (Optuna's routine refuses them). Units: metric points x cost units.
    """
    pts = np.asarray(points, dtype=float)
    if pts.size == 0:
        return 0.0
    loss, ref = _losses(pts), _losses(np.asarray([reference], dtype=float))[0]
    loss = loss[np.all(loss <= ref, axis=1)]
    if len(loss) == 0:
        return 0.0
    return float(compute_hypervolume(loss, ref))


def pareto_mask(points: Sequence[Sequence[float]]) -> np.ndarray:
    """Boolean mask of the non-dominated (metric, costs...) points (equal points are all kept)."""
    pts = np.asarray(points, dtype=float)
    if pts.size == 0:
        return np.zeros(0, dtype=bool)
    return _is_pareto_front(_losses(pts), assume_unique_lexsorted=False)


def count_dominated(candidates: Sequence[Sequence[float]], others: Sequence[Sequence[float]]) -> int:
    """How many `candidates` are strictly dominated by some point of `others`."""
    others = np.asarray(others, dtype=float)
    n = 0
    for c in np.asarray(candidates, dtype=float):
        both = np.vstack([others, c[None, :]]) if others.size else c[None, :]
        n += int(not pareto_mask(both)[-1])
    return n


def knee_index(points: Sequence[Sequence[float]]) -> int:
    """Knee of a front: the point farthest above the line between the two extremes.

    Uses (metric, first cost) normalised to [0, 1] each; the extremes are the cheapest and the most accurate
    of the points not dominated in (metric, first cost) (re-measured costs can leave a searched front point
    dominated: such a point is never the knee), and only points above the line (more accurate than the line at
    their cost) count. Ties, and fronts with no point above the line (1 or 2 points), go to the more accurate point.

    Returns:
        Index into `points`.
    """
    if len(points) == 0:
        raise ValueError("knee of an empty front")
    pts = np.asarray(points, dtype=float)[:, :2]
    keep = np.flatnonzero(pareto_mask(pts))
    span = np.ptp(pts[keep], axis=0)
    span[span == 0] = 1.0
    z = (pts[keep] - pts[keep].min(axis=0)) / span  # (n, 2): metric up is good, cost up is bad
    a, b = z[np.argmin(pts[keep, 1])], z[np.argmax(pts[keep, 0])]
    d = b - a
    norm = float(np.hypot(*d))
    # signed: > 0 above the chord (more accurate at its cost than the line through the extremes)
    above = np.zeros(len(z)) if norm == 0 else (d[1] * (z[:, 0] - a[0]) - d[0] * (z[:, 1] - a[1])) / norm
    if above.max() <= 1e-12:
        return int(keep[np.argmax(pts[keep, 0])])
    best = np.flatnonzero(np.isclose(above, above.max()))
    return int(keep[best[np.argmax(pts[keep][best, 0])]])


def front_trials(study: optuna.Study) -> list[FrozenTrial]:
    """The study's Pareto front on dev of its full-fidelity points (`full_fidelity_trials`), by trial number."""
    pool = full_fidelity_trials(study)
    return [t for t, keep in zip(pool, pareto_mask([list(t.values) for t in pool])) if keep] if pool else []


def full_fidelity_trials(study: optuna.Study) -> list[FrozenTrial]:
    """The feasible completed trials scored on all of dev (a point scored on a dev subset is never a front point:
    export's re-score would refuse it), by trial number, one per (config, variant): a sampler may propose a config
    it has tried before (its cached result makes an equal point), which counts once, as its first trial."""
    seen: set[tuple[str, str]] = set()
    out = []
    for t in sorted(_feasible_complete(study), key=lambda t: t.number):
        if t.user_attrs.get("fidelity", "full") != "full":
            continue
        key = (t.user_attrs.get("config_hash") or t.user_attrs.get("config_json") or f"trial-{t.number}",
               str(t.user_attrs.get("scenario", "")))  # the same config in two variants is two points
        if key not in seen:
            seen.add(key)
            out.append(t)
    return out


def _feasible_complete(study: optuna.Study) -> list[FrozenTrial]:
    return [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if all(v <= 0 for v in t.constraints.values())]


def hypervolume_history(study: optuna.Study, reference: Sequence[float], *, every: int = 10) -> list[list[float]]:
    """[[n_trials, hypervolume of the study's values after n trials]] every `every` trials and at the end."""
    trials = sorted(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)), key=lambda t: t.number)
    feasible = {t.number for t in _feasible_complete(study)}
    out, pts = [], []
    for i, t in enumerate(trials, start=1):
        if t.number in feasible:
            pts.append(list(t.values))
        if i % every == 0 or i == len(trials):
            out.append([i, hypervolume(pts, reference)])
    return out


def seconds_per_trial(study: optuna.Study) -> dict[str, float]:
    """Mean wall seconds per completed trial and the share of it spent evaluating (user attr)."""
    trials = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
              if t.datetime_start and t.datetime_complete]
    if not trials:
        return {"seconds_per_trial": 0.0, "eval_share": 0.0}
    wall = sum((t.datetime_complete - t.datetime_start).total_seconds() for t in trials)
    ev = sum(float(t.user_attrs.get("eval_seconds", 0.0)) for t in trials)
    return {"seconds_per_trial": wall / len(trials), "eval_share": ev / wall if wall > 0 else 0.0}


Timer = Callable[[list[SubnetConfig]], dict[str, Any]]


def _of_variant(fn: Any, key: str, variants: Sequence[str], what: str) -> Any:
    """The function of variant `key`: from a mapping by key, or the one plain function of a single-variant search."""
    if fn is None or not isinstance(fn, Mapping):
        if fn is not None and list(variants) != [key]:
            raise ValueError(f"finalize: {what} is one function but the front holds variant {key} of "
                             f"{', '.join(variants)}; pass one per variant ({{scenario key: function}})")
        return fn
    if key not in fn:
        raise ValueError(f"finalize: {what} has no function for variant {key} (has {', '.join(fn)})")
    return fn[key]


def point_variant(trial: FrozenTrial, variants: Sequence[str]) -> str:
    """A trial's deployment variant: its `scenario` user attr (trials from before variants: the search's only one)."""
    return str(trial.user_attrs.get("scenario") or variants[0])


def finalize(study: optuna.Study, *, run_dir: Path, scenario: str, objectives: Sequence[str],
             full_costs: Sequence[float],
             time_front: Timer | Mapping[str, Timer] | None = None,
             test_fn: Callable[[SubnetConfig], float] | Mapping[str, Callable[[SubnetConfig], float]] | None = None,
             reference: Sequence[float] | None = None, confirmer: Confirmer | None = None,
             grid_hashes: Collection[str] = ()) -> dict[str, Any]:
    """Confirm the front (`search.confirm`), re-measure it, score it on test, write `pareto.csv` and `search.json`.

    Args:
        study: the finished study (values = metric, then costs in `objectives[1:]` order).
        run_dir: where the two files go.
        scenario: the searched variants: one scenario key, or several comma-separated.
        objectives: e.g. ("metric", "latency").
        full_costs: the full model's cost objectives (predicted), for the default reference point.
        time_front: a variant's front configs -> `profiling.latency.measure_front` result (`latency_ms` by config
            hash, `fingerprint`, how it was timed): all points of the variant on one clock; one function for a
            single variant, else {scenario key: function}; None = no timing.
        test_fn: cfg -> test metric (%) of the variant's artifact, reported only, never used to choose (one
            function, or one per variant as `time_front`).
        reference: fixed reference point (metric, costs...); default `reference_point(full_costs)`.
        confirmer: scores the candidates on the confirming split (`search.confirm.run_confirmer`); None, or one
            without a split, keeps the dev front of the full-fidelity points and says so in search.json.
        grid_hashes: the config hashes of the uniform grid (pareto.csv's `grid_point`).

    Returns:
        The search.json content.

    Raises:
        ValueError: the study has no feasible completed trial; one function given for several variants.
    """
    pool = full_fidelity_trials(study)
    if not pool:
        raise ValueError(f"study '{study.study_name}' has no feasible completed trial scored on all of dev: nothing "
                         "to put on a front (run more trials or relax the constraints)")
    variants = scenario.split(",")
    ref = list(reference) if reference is not None else reference_point(full_costs)
    confirmed = confirm(pool, [point_variant(t, variants) for t in pool], confirmer)
    front = confirmed.chosen
    cfgs = [SubnetConfig.from_json(t.user_attrs["config_json"]) for t in front]
    keys = [point_variant(t, variants) for t in front]
    n_dev = confirmer.dev_n if confirmer is not None else 0
    timed: dict[str, dict[str, Any]] = {}
    for key in dict.fromkeys(keys):  # variant by variant, in order of first appearance
        timer = _of_variant(time_front, key, variants, "time_front")
        if timer is not None:
            timed[key] = timer([c for c, k in zip(cfgs, keys) if k == key])
    rows = []
    for t, cfg, key, conf in zip(front, cfgs, keys, confirmed.figures):
        test = _of_variant(test_fn, key, variants, "test_fn")
        split = confirmed.summary["split"] if conf is not None else None
        rows.append({
            "trial": t.number, "config_hash": cfg.hash, "config_json": cfg.to_json(), "dev_metric": t.values[0],
            "dev_se": confirmer.se(t.values[0], n_dev) if confirmer is not None else "",
            "confirm_metric": "" if conf is None else conf,
            "confirm_se": "" if conf is None else confirmer.se(conf, confirmer.n),
            "confirm_split": split or "", "confirm_n": confirmer.n if split else "",
            "grid_point": cfg.hash in set(grid_hashes),
            "test_metric": test(cfg) if test is not None else "",
            **{o.front_column: t.user_attrs.get(o.column, "") for o in cost_objectives()},
            "latency_measured_ms": float(timed[key]["latency_ms"][cfg.hash]) if key in timed else "",
            **variant_columns(key), "knee": False})
    # Measured values replace predicted latency wherever we have them: that is the front users get.
    measured = [[r["dev_metric"]] + [_measured_cost(r, o, v) for o, v in zip(objectives[1:], t.values[1:])]
                for r, t in zip(rows, front)]
    shown = [[r["confirm_metric"] if r["confirm_split"] else r["dev_metric"], *m[1:]] for r, m in zip(rows, measured)]
    keep = pareto_mask(shown)  # a point dominated once re-measured is not what a user would pick: off the front
    rows, shown = [r for r, k in zip(rows, keep) if k], [s for s, k in zip(shown, keep) if k]
    knee = knee_index(shown)  # on the figures the front shows: confirmed where confirmed
    rows[knee]["knee"] = True
    write_pareto_csv(rows, RunDir(run_dir).pareto_csv)
    timing = seconds_per_trial(study)
    n_complete = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    first = next(iter(timed.values()), None)
    how = {k: {n: v for n, v in tm.items() if n not in ("latency_ms", "ratio", "ratio_iqr", "fingerprint")}
           for k, tm in timed.items()}
    summary = {
        "scenario": scenario, "variants": variants, "objectives": list(objectives), "reference_point": ref,
        "hypervolume": hypervolume(measured, ref), "hypervolume_confirmed": hypervolume(shown, ref),
        # how the front was confirmed (split, examples, candidates, seconds), or a warning that it was not
        "confirmation": confirmed.summary,
        "hypervolume_predicted": hypervolume([list(t.values) for t in front], ref),
        "hypervolume_history": hypervolume_history(study, ref),
        # history uses the search's own objective values (predicted latency); `hypervolume` the measured front
        "hypervolume_history_values": "objective values as searched (latency predicted unless --measure)",
        "knee_hash": rows[knee]["config_hash"], "knee_trial": rows[knee]["trial"], "n_trials": n_complete,
        "n_front": len(rows), "n_dominated_once_measured": int((~keep).sum()),
        "seconds_per_trial": timing["seconds_per_trial"], "eval_share": timing["eval_share"],
        "latency_measured": bool(timed), "fingerprint": None if first is None else first.get("fingerprint"),
        # one variant: how it was timed; several: {variant: how}, each paired with its own full model
        "latency_timing": None if first is None else (next(iter(how.values())) if len(variants) == 1 else how),
        "study_name": study.study_name,
        # the checkpoint whose metrics the trials hold (`<stage>@<finished_at>:`, see search.study.open_study)
        "checkpoint": study.user_attrs.get("checkpoint"),
    }
    write_json(Path(run_dir) / SEARCH_JSON, summary, schema=SEARCH_JSON)
    return summary


def _measured_cost(row: dict[str, Any], objective: str, predicted: float) -> float:
    col = cost_objective(objective).measured_column
    return float(row[col]) if col and row.get(col, "") != "" else float(predicted)


def _columns(contract: Sequence[str], attr: str) -> list[str]:
    """A CSV's columns: the contract's, then those of cost objectives registered beyond it (`search.objectives`)."""
    return list(dict.fromkeys([*contract, *(getattr(o, attr) for o in cost_objectives())]))


def write_pareto_csv(rows: list[dict[str, Any]], path: Path) -> Path:
    """Write `pareto.csv` (columns of docs/ARTIFACTS.md) atomically."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # per process: workers sharing a run dir end together
    with open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=_columns(PARETO_COLUMNS, "front_column"))
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)
    return path


def read_pareto_csv(path: Path) -> list[dict[str, Any]]:
    """Rows of a `pareto.csv`; a clear error when it is missing or not ours."""
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: run `dynabert search --run-dir {path.parent}` first")
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        # a front written before variants existed has no precision/runtime: they follow from its scenario; one
        # written before confirmation has no confirmed figures (empty)
        missing = set(PARETO_COLUMNS) - set(reader.fieldnames or []) - {"precision", "runtime", *LATER_COLUMNS}
        if missing:
            raise ValueError(f"{path} lacks columns {sorted(missing)}: not a pareto.csv of this tool")
        return [{**dict.fromkeys(LATER_COLUMNS, ""), **variant_columns(r["scenario"]), **r} for r in reader]


# ---- trials.csv and loading a finished study -------------------------------------------------------
def trial_rows(study: optuna.Study) -> list[dict[str, Any]]:
    """One `trials.csv` row per trial (contract columns of docs/ARTIFACTS.md)."""
    names = list(study.metric_names or [])
    rows = []
    for t in study.get_trials(deepcopy=False):
        ua = t.user_attrs
        values = dict(zip(names, t.values)) if t.values else {}
        feasible = t.state == TrialState.COMPLETE and all(v <= 0 for v in t.constraints.values())
        rows.append({"trial": t.number, "config_hash": ua.get("config_hash", ""),
                     "config_json": ua.get("config_json", ""), "dev_metric": values.get("dev_metric", ""),
                     **{o.column: ua.get(o.column, "") for o in cost_objectives()}, "state": t.state.name,
                     "feasible": feasible,
                     "scenario": ua.get("scenario", ""), "precision": ua.get("precision", ""),
                     "runtime": ua.get("runtime", "")})
    return rows


def write_trials_csv(study: optuna.Study, path: Path) -> Path:
    """Write `trials.csv` atomically."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # per process: workers sharing a run dir end together
    with open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=_columns(TRIALS_COLUMNS, "column"))
        w.writeheader()
        w.writerows(trial_rows(study))
    os.replace(tmp, path)
    return path


def load_study(run_dir: Path, *, storage: str | None = None, study_name: str | None = None) -> optuna.Study:
    """Load an existing study of a run (the only one in the storage when no name is given).

    Raises:
        ValueError: no study, several studies and no name, or an unknown name.
    """
    db = RunDir(run_dir).study_db
    url = storage or f"sqlite:///{db.resolve()}"
    if storage is None and not db.exists():
        raise ValueError(f"{run_dir} has no {STUDY_DB}: run `dynabert search --run-dir {run_dir}` first")
    from search.storage import make_storage

    st = make_storage(url)
    names = [s.study_name for s in optuna.get_all_study_summaries(st)]
    if study_name is None:
        if len(names) != 1:
            raise ValueError(f"{url} holds {len(names)} studies ({', '.join(names) or 'none'}); "
                             "name one with --study-name" if names else
                             f"{url} holds no study: run `dynabert search --run-dir {run_dir}` first")
        study_name = names[0]
    if study_name not in names:
        raise ValueError(f"no study '{study_name}' in {url} (has: {', '.join(names) or 'none'})")
    return optuna.load_study(study_name=study_name, storage=st)


def trial_config(trial: optuna.trial.FrozenTrial) -> SubnetConfig:
    """The sub-network of a finished trial (from its `config_json` user attr)."""
    text = trial.user_attrs.get("config_json")
    if not text:
        raise ValueError(f"trial {trial.number} has no config_json (it did not finish)")
    return SubnetConfig.from_json(text)


def searched_checkpoint(run_dir: Path) -> str | None:
    """The checkpoint stamp recorded in `<run>/search.json` (None: no search.json, or one from before the
    stamp was recorded). Compare it with `RunContext.cache_namespace()` before trusting pareto.csv's metrics."""
    rd = RunDir(run_dir)
    try:
        value = rd.read_json(rd.search_json).get("checkpoint")
    except (OSError, RunDirError):
        return None
    return value if isinstance(value, str) else None
