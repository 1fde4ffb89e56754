"""Benchmark: training step time of our code vs the released DynaBERT code, same teacher, data and machine.

Both codes start from the same DynaBERT_W weights (a stage-1 checkpoint of ours, converted to the released
layout: `pytorch_model.bin` with bert.*/classifier.* keys, `vocab.txt`, a transformers-2.1 `config.json`) and
train on SST-2 (max length 64, batch 32): stage 1 (`dynabertw`, 4 widths, its `--data_aug` path) and stage 2
(`dynabert`, 4 widths x 3 depths). Rounds alternate (ours, released, released, ours, ...) so that machine load
hits both alike; each round runs `--steps` timed steps of each stage after one warm-up step. The released
`run_glue.py` runs unchanged in its own venv (created once under runs/official-venv), from inside its folder,
through `bench/released_step_timer.py` (an optimizer post-step hook stamps each step). Writes
`results/step_time_vs_released.{json,md}`: median step time per stage and code (ms), ratios ours/released.

    .venv/bin/python -m bench.step_time_vs_released --run-dir runs/sst2_dynabert --steps 20 --rounds 2
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Literal

ROOT = Path(__file__).resolve().parents[1]
from bench.common import RESULTS, load_1min, provenance, write_result

REF = ROOT.parent / "shared" / "reference" / "official-dynabert"
NAME = "step_time_vs_released"
VENV_PACKAGES = ["torch==2.13.0", "numpy", "scikit-learn", "scipy", "tqdm", "requests", "six", "boto3", "regex"]
WIDTHS, DEPTHS, MAX_LEN, BATCH = "0.25,0.5,0.75,1.0", "0.5,0.75,1.0", 64, 32
StageName = Literal["stage1", "stage2"]
RELEASED_STAGE_ARGS: dict[str, list[str]] = {
    "stage1": ["--training_phase", "dynabertw", "--width_mult_list", WIDTHS, "--width_lambda1", "1.0",
               "--width_lambda2", "0.1"],
    "stage2": ["--training_phase", "dynabert", "--width_mult_list", WIDTHS, "--depth_mult_list", DEPTHS,
               "--depth_lambda1", "1.0", "--depth_lambda2", "1.0"],
}


def ensure_venv(venv: Path) -> Path:
    """The released code's interpreter: a venv with its requirements, created once (README of shared/reference)."""
    python, ready = venv / "bin" / "python", venv / ".packages-installed"
    if not ready.exists():  # a marker, so that an interrupted install is completed on the next run
        print(f"creating the released code's venv in {venv} (once)", flush=True)
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *VENV_PACKAGES], check=True)
        ready.write_text(" ".join(VENV_PACKAGES) + "\n")
    return python


def convert_checkpoint(run_dir: Path, stage: str, out: Path) -> Path:
    """Our `<run_dir>/<stage>` checkpoint in the released code's layout (weights, vocab, 2.1-style config)."""
    import torch

    from elastic.model.weights import load_checkpoint
    model, _ = load_checkpoint(run_dir / stage)
    out.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.contiguous() for k, v in model.state_dict().items()}, out / "pytorch_model.bin")
    write_vocab(run_dir / "tokenizer", out / "vocab.txt")
    a = model.arch
    config = {"vocab_size": a.vocab_size, "hidden_size": a.hidden_size, "num_hidden_layers": a.num_layers,
              "num_attention_heads": a.num_heads, "intermediate_size": a.intermediate_size, "hidden_act": a.hidden_act,
              "hidden_dropout_prob": model.hidden_dropout_prob,
              "attention_probs_dropout_prob": model.attention_probs_dropout_prob,
              "max_position_embeddings": a.max_position_embeddings, "type_vocab_size": a.type_vocab_size,
              "initializer_range": 0.02, "layer_norm_eps": a.layer_norm_eps, "num_labels": model.num_labels,
              "output_intermediate": False}
    if a.head_dim * a.num_heads != a.hidden_size:
        raise ValueError(f"the released code needs head_dim * heads = hidden ({a.head_dim} x {a.num_heads} != "
                         f"{a.hidden_size})")
    (out / "config.json").write_text(json.dumps(config, indent=2))
    return out


def write_vocab(tokenizer_dir: Path, out: Path) -> None:
    """The WordPiece `vocab.txt` (one token per line, in id order) the released tokenizer reads; our run saves
    a fast tokenizer (tokenizer.json) without it."""
    if (tokenizer_dir / "vocab.txt").exists():
        shutil.copy(tokenizer_dir / "vocab.txt", out)
        return
    from elastic.model.weights import load_tokenizer
    vocab = load_tokenizer(tokenizer_dir).get_vocab()
    tokens = sorted(vocab, key=vocab.__getitem__)
    if [vocab[t] for t in tokens] != list(range(len(tokens))):
        raise ValueError(f"the vocabulary of {tokenizer_dir} has gaps in its ids: no vocab.txt can represent it")
    out.write_text("".join(t + "\n" for t in tokens))


def released_data(sst2: Path, out: Path, dev_rows: int = 64) -> Path:
    """GLUE layout for the released code: train, its --data_aug file (a copy of train, as the reference run) and
    a short dev (used only by its importance pass at the start of stage 1, which is not timed)."""
    d = out / "SST-2"
    d.mkdir(parents=True, exist_ok=True)
    shutil.copy(sst2 / "train.tsv", d / "train.tsv")
    shutil.copy(sst2 / "train.tsv", d / "train_SST-2_aug_with_logits.tsv")
    lines = (sst2 / "dev.tsv").read_text().splitlines(keepends=True)
    (d / "dev.tsv").write_text("".join(lines[:dev_rows + 1]))
    return d


def released_step_times(python: Path, stage: StageName, model_dir: Path, data_dir: Path, steps: int,
                        threads: int, work: Path) -> list[float]:
    """Seconds of `steps` steps of the released code (after one warm-up step), measured by its step hook."""
    times = work / f"released_{stage}.json"
    cmd = [str(python), str(ROOT / "bench" / "released_step_timer.py"), "--times-out", str(times),
           "--stop-after", str(steps + 1), "--threads", str(threads), "--",
           "--model_type", "bert", "--task_name", "SST-2", "--do_train", "--data_aug", "--data_dir", str(data_dir),
           "--model_dir", str(model_dir), "--output_dir", str(work / f"released_{stage}_out"),
           "--max_seq_length", str(MAX_LEN), "--per_gpu_train_batch_size", str(BATCH), "--learning_rate", "2e-5",
           "--num_train_epochs", "1", "--logging_steps", "1000000", *RELEASED_STAGE_ARGS[stage]]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "CUDA_VISIBLE_DEVICES": "",  # CPU against CPU: it would take a GPU where one is present
           "PYTHONDONTWRITEBYTECODE": "1"}  # leave the released folder as it is
    env.pop("PYTHONPATH", None)  # nothing of this project (or its transformers) may leak into its process
    subprocess.run(cmd, check=True, cwd=REF, env=env, stdout=subprocess.DEVNULL)
    ends = json.loads(times.read_text())["step_ends"]
    return [b - a for a, b in zip(ends, ends[1:])]


def our_step_times(run_dir: Path, stage: StageName, sst2: Path, steps: int, threads: int,
                   padding: Literal["longest", "max_length"]) -> list[float]:
    """Seconds of `steps` steps of our `train_stage` (after one warm-up step), from the same checkpoint."""
    import torch

    from elastic.data.tasks import encode_split, load_task
    from elastic.training.loop import LoopConfig
    from elastic.training.train import Stage, train_stage
    from elastic.model.weights import load_checkpoint, load_tokenizer
    torch.set_num_threads(threads)
    task = load_task(str(sst2))
    data = encode_split(task, "train", load_tokenizer(run_dir / "tokenizer"), MAX_LEN)
    student, _ = load_checkpoint(run_dir / "stage1")
    teacher, _ = load_checkpoint(run_dir / "stage1")
    loop = LoopConfig(total_steps=steps + 1, batch_size=BATCH, lr=2e-5, seed=42, log_every=10 ** 6,
                      pad_to_length=MAX_LEN if padding == "max_length" else 0)
    ends: list[float] = []
    train_stage(student, teacher, Stage(stage), data, loop, is_regression=False, progress=False,
                on_step=lambda _: ends.append(time.perf_counter()))
    return [b - a for a, b in zip(ends, ends[1:])]


def summarize(times: dict[str, dict[str, list[float]]]) -> dict[str, Any]:
    """Medians (ms) per stage and code, ratios ours / released."""
    out: dict[str, Any] = {}
    for stage in ("stage1", "stage2"):
        ms = {code: round(1000 * statistics.median(times[stage][code]), 1) for code in ("ours", "released")}
        out[f"{stage}_ms"] = ms
        out[f"{stage}_ratio"] = round(ms["ours"] / ms["released"], 3)
    return out


def render_md(r: dict[str, Any]) -> str:
    lines = ["# Step time: ours vs the released DynaBERT code (SST-2, batch 32, max length 64)", "",
             f"Command: `{r['command']}`", "",
             f"Commit {r['commit']}{' (with uncommitted changes)' if r['dirty'] else ''}; {r['threads']} torch "
             f"thread(s) each; 1-minute load average {r['load_before']} before, {r['load_after']} after; wall clock "
             f"{r['wall_seconds']:.0f} s. Machine: {r['fingerprint']['cpu']}.", "",
             f"Same DynaBERT_W weights ({r['checkpoint']}), same data; {r['rounds']} alternating rounds "
             f"({', '.join(r['order'])}), {r['steps_per_round']} timed steps per stage per round after one warm-up "
             f"step: {r['steps_each']} steps of each stage for each code. Ours pads batches "
             f"{'to their longest sentence' if r['ours_padding'] == 'longest' else 'to max length'} (`--padding "
             f"{r['ours_padding']}`); the released code pads to max length and runs its teacher once per width in "
             "stage 2.", "",
             "| stage | sub-networks per step | ours (ms, median) | released (ms, median) | ours / released |",
             "|---|---|---|---|---|"]
    for stage, n in (("stage1", 4), ("stage2", 12)):
        ms = r[f"{stage}_ms"]
        lines.append(f"| {stage} | {n} | {ms['ours']:.0f} | {ms['released']:.0f} | {r[f'{stage}_ratio']:.3f} |")
    lines += ["", "Targets (issue 14): stage 2 <= 0.6, stage 1 <= 0.85: "
              f"stage 2 {'met' if r['stage2_ratio'] <= 0.6 else 'NOT met'}, "
              f"stage 1 {'met' if r['stage1_ratio'] <= 0.85 else 'NOT met'}."]
    if r["steps_per_round"] < 20:
        lines += ["", f"**Smoke size: {r['steps_per_round']} steps per round (the bench asks for at least 20).**"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run-dir", type=Path, default=ROOT / "runs" / "sst2_dynabert",
                    help="a run directory with a finished stage1/ and its tokenizer/ (the teacher of both codes)")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "sst2")
    ap.add_argument("--steps", type=int, default=20, help="timed steps per stage, per code, per round")
    ap.add_argument("--rounds", type=int, default=2, help="alternating rounds (ours, released | released, ours)")
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads of both codes")
    ap.add_argument("--ours-padding", choices=("longest", "max_length"), default="longest")
    ap.add_argument("--venv", type=Path, default=ROOT / "runs" / "official-venv", help="the released code's venv")
    ap.add_argument("--out-dir", type=Path, default=RESULTS)
    a = ap.parse_args(argv)
    if not (REF / "run_glue.py").exists():
        raise SystemExit(f"{REF} is absent: the released code lives in ../shared/reference/official-dynabert")
    if not (a.run_dir / "stage1" / "done.json").exists():
        raise SystemExit(f"{a.run_dir} has no finished stage1: run `make bench ONLY=sst2_dynabert` first (or pass "
                         "--run-dir of another run)")
    from profiling.fingerprint import fingerprint
    python = ensure_venv(a.venv)
    load_before, t0, prov = load_1min(), time.time(), provenance()  # the commit that runs, not a later one
    times: dict[str, dict[str, list[float]]] = {s: {"ours": [], "released": []} for s in ("stage1", "stage2")}
    order: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model_dir = convert_checkpoint(a.run_dir, "stage1", work / "released_model")
        data_dir = released_data(a.data, work / "data")
        for r in range(a.rounds):
            for code in (("ours", "released") if r % 2 == 0 else ("released", "ours")):
                order.append(code)
                for stage in ("stage1", "stage2"):
                    print(f"round {r + 1}: {code} {stage}", flush=True)
                    if code == "ours":
                        t = our_step_times(a.run_dir, stage, a.data, a.steps, a.threads, a.ours_padding)
                    else:
                        t = released_step_times(python, stage, model_dir, data_dir, a.steps, a.threads, work)
                    times[stage][code] += t
    result = {**summarize(times), "steps_each": a.steps * a.rounds, "steps_per_round": a.steps, "rounds": a.rounds,
              "order": order, "threads": a.threads, "ours_padding": a.ours_padding, "checkpoint": str(a.run_dir / "stage1"),
              "step_seconds": times, **prov, "fingerprint": fingerprint(a.threads),
              "load_before": load_before, "load_after": load_1min(), "wall_seconds": round(time.time() - t0, 1)}
    write_result(NAME, result, render_md(result), directory=a.out_dir)
    print(f"wrote {a.out_dir / NAME}.json and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
