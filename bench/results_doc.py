"""docs/RESULTS.md: the key figures of every result file, each section read from its results/<stem>.json.

`bench/results_index.py` renders this page and results/README.md together (`python -m bench.results_index`).
One renderer per result stem (`RENDERERS`: stem -> function(data) -> Markdown lines) picks its figures from
the JSON; a renderer that misses a key (a result written by an older bench) is replaced by the file's
top-level scalar fields, so a renamed key shows raw figures instead of failing. Every section names the
commit its figures were measured at and, between the status markers of `bench/results_index.py`, whether
that result is fresh or stale (its sources changed since).
"""
from __future__ import annotations

import math
from typing import Any, Callable

Lines = list[str]


def num(v: Any, nd: int = 2, sign: bool = False) -> str:
    """A number for the page (`-` for None, NaN or a non-number)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (isinstance(v, float) and math.isnan(v)):
        return "-" if v is None or isinstance(v, float) else str(v)
    return f"{v:+.{nd}f}" if sign else f"{v:.{nd}f}"


def _wd(w: Any, d: Any) -> str:
    return f"w{w:g} d{d:g}"


def _grid(rows: list[dict[str, Any]], cell: Callable[[dict[str, Any]], str]) -> Lines:
    """A width x depth table of `cell(row)` over grid rows ({width_mult, depth_mult, ...})."""
    widths = sorted({r["width_mult"] for r in rows}, reverse=True)
    depths = sorted({r["depth_mult"] for r in rows}, reverse=True)
    at = {(r["width_mult"], r["depth_mult"]): r for r in rows}
    out = ["| width \\ depth | " + " | ".join(f"{d:g}" for d in depths) + " |", "|---" * (len(depths) + 1) + "|"]
    out += [f"| {w:g} | " + " | ".join(cell(at[w, d]) if (w, d) in at else "-" for d in depths) + " |"
            for w in widths]
    return out


def _hv(over: dict[str, Any], grid: float, key: str) -> str:
    s = over.get(key)
    return f"{s['mean']:.1f} ± {s['std']:.1f} ({s['mean'] / grid:.3f} x grid)" if s else "-"


def sst2_dynabert(d: dict[str, Any]) -> Lines:
    t, vs = d["teacher"], d["vs_released"]
    s2 = [r for r in d["grid"] if r["stage"] == "stage2"]
    return [f"SST-2, all-MiniLM-L6-v2 teacher, {d['steps_per_stage']} steps per stage, seed {d['seed']}, max length "
            f"{d['max_length']}; model selection on the held-out slice of train. Accuracy in %, SST-2 dev (872 "
            "sentences) and test (1,821).", "",
            f"- Teacher: dev {num(t['dev_acc'])}, test {num(t['test_acc'])}.",
            f"- Stage-2 grid minus the released code's grid, on **test**, reported only: mean "
            f"{num(vs['mean_test_diff'], sign=True)}, smallest {num(vs['min_test_diff'], sign=True)} points over 12 "
            "points. Not a like-for-like claim: the recipes differ in four ways (docs/RECIPES.md), and the stage-2 "
            "hard-label term was adopted while reading these test figures; the equal-steps comparison over six tasks, "
            "decided on dev, is the suite's (results/suite.md).",
            f"- (w0.25, d0.5) minus the teacher, on **test**: {num(vs.get('w0.25_d0.5_minus_teacher'), sign=True)}.",
            f"- Stage-2 step / sum of its 12 sub-networks' standalone steps: {num(d['overhead_ratio'], 3)}.", "",
            "Stage-2 grid, **test (dev)** accuracy:", "",
            *_grid(s2, lambda r: f"{num(r['test_acc'])} ({num(r['dev_acc'])})")]


def search(d: dict[str, Any]) -> Lines:
    g, over = d["hv_test"]["grid"], d["hv_test_over_seeds"]
    gd, over_dev = d["hv_dev"]["grid"], d["hv_dev_over_seeds"]
    out = [f"Searched fronts on SST-2 ({d['scenario']}), chosen on **dev** accuracy and predicted latency, then "
           "re-measured. Hypervolume in % x ms over (accuracy, measured latency), reference point "
           f"{num(d['reference_point'][0], 1)} % / {num(d['reference_point'][1], 1)} ms; mean ± sd over seeds "
           f"{', '.join(map(str, d['seeds']))}. Default sampler: `{d['default_sampler']}`.", "",
           "| front | HV **test** | HV dev |", "|---|---|---|",
           f"| grid (12 points) | {num(g, 1)} | {num(gd, 1)} |"]
    out += [f"| {k} | {_hv(over, g, k)} | {_hv(over_dev, gd, k)} |" for k in over]
    out += ["", "Targets on test: " + "; ".join(f"{k}: **{v}**" for k, v in d["targets_met"].items()) + "."]
    return out


def front_confirmation(d: dict[str, Any]) -> Lines:
    g = d["hv_test_grid"]
    out = [f"The `{d['sampler']}` fronts chosen on **dev** vs confirmed on the run's **held-out** slice of train "
           f"({d['heldout_examples']} examples), both scored on **test** ({d['test_examples']}): hypervolume in % "
           "x ms (mean ± sd over seeds), grid points strictly dominated and weakly covered on test, per seed.", "",
           "| front | HV **test** | grid points dominated (test) | covered (test) |", "|---|---|---|---|",
           f"| grid (12 points) | {num(g, 1)} | - | - |"]
    for k, f in d["fronts"].items():
        out.append(f"| {k.replace('_', ', ')} trials | {_hv({k: f['hv_test_over_seeds']}, g, k)} | "
                   f"{', '.join(map(str, f['dominated']))} | {', '.join(map(str, f['covered']))} |")
    return out


def baselines(d: dict[str, Any]) -> Lines:
    out = [f"Students trained on SST-2 at the same budget ({d['budget']['steps_per_phase']} steps per phase, lr "
           f"{d['budget']['lr']:g}) beside the DynaBERT stage-2 point of nearest MACs. Accuracy on **test** (%); "
           "latency in ms, baseline and DynaBERT timed in alternating rounds.", "",
           "| baseline | MACs (M) | test % | ms | DynaBERT point | DynaBERT test % | DynaBERT ms | DynaBERT - baseline |",
           "|---|---|---|---|---|---|---|---|"]
    for r in d["rows"]:
        p = r.get("dynabert_point") or {}
        pl = r.get("paired_latency_ms") or {}
        out.append(f"| {r['name']} | {r['macs'] / 1e6:.0f} | {num(r['test_acc'])} | {num(pl.get('baseline'))} | "
                   f"{_wd(p['width_mult'], p['depth_mult']) if p else '-'} | {num(r.get('dynabert_test_acc_at_matched_macs'))}"
                   f" | {num(pl.get('dynabert'))} | {num(r.get('dynabert_minus_baseline_pts'), sign=True)} |")
    return out


def baselines_lr(d: dict[str, Any]) -> Lines:
    t = d["teacher_metrics"]
    out = [f"Students at stage 2's learning rate ({d['rows'][0]['lr']:g}) and model selection (on the held-out "
           "slice of train) beside the DynaBERT grid point of the same architecture. Accuracy in %.", "",
           f"Teacher: dev {num(t['dev']['accuracy'])}, test {num(t['test']['accuracy'])}.", "",
           "| student | student dev | student **test** | DynaBERT point | DynaBERT dev | DynaBERT **test** | "
           "DynaBERT - student (test) |", "|---|---|---|---|---|---|---|"]
    out += [f"| {r['name']} | {num(r['dev_acc'])} | {num(r['test_acc'])} | {_wd(*r['dynabert_point'])} | "
            f"{num(r['dynabert_dev_acc'])} | {num(r['dynabert_test_acc'])} | "
            f"{num(r['dynabert_minus_student_test'], sign=True)} |" for r in d["rows"]]
    return out


def latency(d: dict[str, Any]) -> Lines:
    p, hf = d["predictor"], d["full_model_vs_transformers"]
    b1 = [g for g in d["grid"] if g["batch"] == 1]
    out = ["Latency (ms, median) of the 12 grid configs at batch 1, sequence 128, and efficiency = MACs ratio / "
           "latency ratio to the full model (1 = latency falls as fast as MACs).", ""]
    for rt in dict.fromkeys(g["runtime"] for g in b1):
        out += [f"{rt}: ms (efficiency)", "",
                *_grid([g for g in b1 if g["runtime"] == rt],
                       lambda g: f"{num(g['latency_ms'])} ({num(g['efficiency'])})"), ""]
    out += ["- Smallest config's efficiency: " + ", ".join(f"{k} {num(v)} ({d.get('runtime_smallest', {}).get(k, '?')})"
                                                          for k, v in d["efficiency_smallest"].items()) + ".",
            f"- Latency predictor on {p['n_heldout']} held-out configs: MAPE {num(p['mape_pct'], 1)} %, Kendall tau "
            f"{num(p['kendall_tau'])}.",
            f"- Full model vs transformers ({hf['scenario']}): ratio {num(hf['ratio_ours_over_transformers'], 3)}.",
            f"- Full model at {num(100 * d['full_model_fraction_of_peak'], 0)} % of the measured GEMM peak "
            f"({num(d['matmul_peak_gflops'], 0)} GFLOP/s)."]
    return out


def model_parity_speed(d: dict[str, Any]) -> Lines:
    return [f"Our elastic BERT vs transformers' BertForSequenceClassification, same weights, sequence {d['seq_len']}.",
            "", f"- Largest absolute logit difference: {d['max_abs_diff']:.1e}.",
            f"- Latency ours / transformers: batch 1 {num(d['ratio_bs1'], 3)} (IQR {num(d['ratio_iqr_bs1'], 3)}), "
            f"batch 32 {num(d['ratio_bs32'], 3)} (IQR {num(d['ratio_iqr_bs32'], 3)})."]


def pipeline_quick(d: dict[str, Any]) -> Lines:
    t = d["targets"]
    s2 = d["grid"]
    return [f"`make demo` on a fresh clone: preset {d['preset']}, task {d['task']} (BBC News).", "",
            f"- Set-up (venv and install) {num(d['setup_seconds'], 0)} s; pipeline {num(d['total_seconds'], 0)} s: "
            + ", ".join(f"{k} {num(v, 0)} s" for k, v in d["stage_seconds"].items()) + ".",
            f"- Teacher: dev {num(d['teacher_dev_metric'], 1)}, test {num(d['teacher_test_metric'], 1)}.",
            f"- Demo targets on **test**: no baseline dominates the grid: {'met' if t['dominance_met'] else 'NOT met'}; "
            f"(w0.25, d0.5) {num(t['smallest_test_acc'])} >= 85: {'met' if t['smallest_met'] else 'NOT met'}.",
            f"- Search: {d['n_trials']} trials, front of {d['pareto_size']} points.", "",
            "Stage-2 grid, **test (dev)** accuracy:", "",
            *_grid(s2, lambda r: f"{num(r['test_acc'], 1)} ({num(r['dev_acc'], 1)})")]


def sst2_released_recipe(d: dict[str, Any]) -> Lines:
    t = d["teacher"]
    return [f"Our code at the released DynaBERT recipe ({d['steps_per_stage']} steps per stage) beside the released "
            "code's grid on SST-2 (its reference numbers, not rerun). Accuracy in %.", "",
            f"- Teacher: dev {num(t['dev_acc'])}, test {num(t['test_acc'])}.",
            f"- Ours minus released on **test** over 12 points: mean |diff| {num(d['mean_abs_test_diff'])}, mean "
            f"{num(d['mean_test_diff'], sign=True)}, smallest {num(d['min_test_diff'], sign=True)}.", "",
            "**Test** accuracy, ours (released):", "",
            *_grid(d["grid"], lambda r: f"{num(r['ours_test_acc'])} ({num(r['released_test_acc'])})")]


def step_time_vs_released(d: dict[str, Any]) -> Lines:
    return [f"Training step time of our code vs the released DynaBERT code, same weights, batch 32, "
            f"{d['threads']} threads, {d['steps_each']} steps of each stage each, alternating rounds.", "",
            "| stage | ours (ms) | released (ms) | ours / released |", "|---|---|---|---|",
            *(f"| {s} | {num(d[f'{s}_ms']['ours'], 0)} | {num(d[f'{s}_ms']['released'], 0)} | "
              f"{num(d[f'{s}_ratio'], 3)} |" for s in ("stage1", "stage2"))]


def gpu_smoke(d: dict[str, Any]) -> Lines:
    return scalars(d)


def _excess(f: dict[str, Any]) -> str:
    """A pooled optimism figure: excess (+- se)."""
    se = f" +- {num(f['excess_se'])}" if f.get("excess_se") is not None else ""
    return f"{num(f.get('excess'), sign=True)}{se}"


def deploy_front(d: dict[str, Any]) -> Lines:
    t, e, o, vs = d["teacher"], d["efficiency_smallest"], d["optimism"], d["search_vs_rule"]
    c = o.get("confirmed") or {}

    def pick(k: str) -> str:
        w = d[k]
        return (f"`{w['config']}` {w['precision']} {w['runtime']}: dev {num(w['dev_acc'])}, test {num(w['test_acc'])}, "
                f"{num(w['ms'])} ms, **{num(w['latency_ratio'], 3)}x** the teacher" if w.get("config") else "none")
    return [f"The user's outcome on {d['task']}: {', '.join(d['variants'])} searched together; each front point "
            "near the teacher exported in its variant, re-scored on dev and test, timed as a paired ratio to the fp32 "
            f"eager teacher ({d['timing']['scenario']}). Chosen on **dev**; test reported. Accuracy in %.", "",
            f"- Teacher: dev {num(t['dev_acc'])}, test {num(t['test_acc'])}, {num(t['ms'])} ms.",
            f"- Fastest within 1.0 dev point: {pick('within_1pt')} "
            + (f"(target <= 0.10: {d['targets']['ratio_1pt']})." if d["task"] == "sst2" else "(no target: SST-2's).") ,
            f"- Fastest within 2.0 dev points: {pick('within_2pt')}.",
            f"- Smallest grid config's efficiency on {e['runtime']}: b1/s64 {num(e['b1_s64'])}, b32/s64 "
            f"{num(e['b32_s64'])} (targets 0.8, 0.9).",
            f"- Optimism ({o['task']}, dev subsets of {o['dev_size']}, {len(o.get('replicates') or [o])} "
            f"replicate(s)): excess of searched front points over the grid (dev minus test; target within 1.0 point): "
            f"the search's dev {_excess(o)}; the shown (confirmed) figure {_excess(c)}; dev kept from the search "
            f"{_excess(o.get('kept') or {})}.",
            "- Search vs rule: " + (f"{vs['sampler']} test HV {num(vs['hv_test_search'], 1)} vs rule "
                                    f"{num(vs['hv_test_rule'], 1)}." if vs.get("sampler") else str(vs.get("reason")))]


def suite(d: dict[str, Any]) -> Lines:
    from bench.suite_report import _near_majority, verdict
    steps = {", ".join(f"{k} {v}" for k, v in sorted(st.items(), reverse=True)) for st in d["steps_per_stage"].values()}
    out = [f"Tasks {', '.join(d['tasks'])} x seeds {', '.join(map(str, d['seeds']))}, max length "
           f"{d.get('max_length', '-')}, optimizer steps {' / '.join(sorted(steps))}. Complete: {len(d['complete'])} "
           f"of {len(d['tasks']) * len(d['seeds'])} task-seeds. Targets, decided on **dev**:", ""]
    for t in d.get("targets", []):
        met = "undecided" if t["met"] is None else ("met" if t["met"] else "**not met**")
        figs = ", ".join(f"{k} {num(v, sign=t.get('signed', True))}" for k, v in t.get("figures", {}).items()
                         if isinstance(v, (int, float)))
        out.append(f"- {t['target']}: {met}" + (f" ({t.get('figures_are', 'dev')}: {figs})" if figs else "") + ".")
    weak = _near_majority(d)
    if weak:
        out += ["", "Learned little at this budget (teacher within a dev point of the majority class): "
                + ", ".join(f"{t} (teacher dev {num(td)}, majority {num(md)})" for t, td, md in weak) + "."]
    out += ["", "Differences over all tasks (test: paired-bootstrap 95 % interval; covering 0 = tie):", "",
            "| difference | dev | test | interval | in words |", "|---|---|---|---|---|"]
    out += [f"| {r['name']} | {num(r['dev_diff'], sign=True)} | {num(r['test_diff'], sign=True)} | "
            f"[{num(r['test_ci_low'], sign=True)}, {num(r['test_ci_high'], sign=True)}] | {verdict(r)} |"
            for r in d["diffs"] if r["task"] == "all" and ("grid mean" in r["name"] or r["name"].startswith("dynabert"))]
    c = d["cost"]
    return out + ["", f"Cost: {num(c['dynabert_seconds_per_size'], 0)} s per DynaBERT size vs students "
                      + ", ".join(f"{k} {num(v, 0)} s" for k, v in c["student_seconds"].items()) + "."]


def quick_preset(d: dict[str, Any]) -> Lines:
    out = [f"The quick preset's stage 2 on {', '.join(d['tasks'])} x seeds {', '.join(map(str, d['seeds']))}, decided "
           "on the grid's mean dev accuracy by rules fixed before the runs (test reported):", "",
           "| rule | challenger - incumbent, dev | test | chosen |", "|---|---|---|---|"]
    return out + [f"| {r['rule']} | {num(r['dev_diff'], sign=True)} | {num(r['test_diff'], sign=True)} | "
                  f"**{r['chosen']}** |" for r in d["decisions"]]


RENDERERS: dict[str, Callable[[dict[str, Any]], Lines]] = {
    "sst2_dynabert": sst2_dynabert, "sst2_dynabert_seed43": sst2_dynabert, "search": search,
    "quick_preset": quick_preset,
    "front_confirmation": front_confirmation, "baselines": baselines, "baselines_lr2e-4": baselines_lr,
    "latency": latency, "model_parity_speed": model_parity_speed, "pipeline_quick": pipeline_quick,
    "sst2_released_recipe": sst2_released_recipe, "step_time_vs_released": step_time_vs_released,
    "gpu_smoke": gpu_smoke, "deploy_front": deploy_front, "deploy_front_demo": deploy_front, "suite": suite,
}
# Provenance keys bench/run.py stamps: shown in each section's header line, not as figures.
_STAMPED = {"commit", "dirty", "command", "script_command", "wall_seconds", "load_before", "load_after", "quick",
            "run_dirs", "fingerprint"}


def scalars(d: dict[str, Any]) -> Lines:
    """The file's top-level numbers, strings and booleans: what a section shows without a renderer."""
    rows = [f"- `{k}`: {num(v, 3) if isinstance(v, float) else v}" for k, v in d.items()
            if k not in _STAMPED and (v is None or isinstance(v, (int, float, str, bool))) and len(str(v)) < 200]
    return rows or ["(no top-level figures)"]


def figures(stem: str, data: Any) -> Lines:
    """The section body for result `stem`: its renderer's lines, or its scalar fields when that fails."""
    if not isinstance(data, dict):
        return ["(the result file is not a JSON object)"]
    fn = RENDERERS.get(stem)
    if fn is not None:
        try:
            return fn(data)
        except (KeyError, TypeError, ValueError, IndexError, ZeroDivisionError, AttributeError) as e:
            return [f"(figures not found where expected: {type(e).__name__} {e}; the file's top-level fields:)", "",
                    *scalars(data)]
    return scalars(data)
