"""Run every benchmark of `bench/registry.py` in sequence at the current commit and rewrite results/.

    python -m bench.run [--only NAME[,NAME]] [--quick] [--force] [--results-dir DIR] [--list]
    make bench [ONLY=search] [QUICK=1] [FORCE=1]

Full size (the default) refuses to start while the 1-minute load average is above 0.5 per core (other work
would be in the figures) unless --force, and before each later bench waits (up to 10 min) for the load the
previous one left in the average to fall below the same limit. Each result file then gets, beside what its
script wrote: `commit` and `dirty` (of the checkout when the bench started; uncommitted files in results/
do not count), `command` (the exact steps that wrote it), `fingerprint`, `wall_seconds` (its bench's
wall-clock), `load_before`, `load_after` (1-minute load average) and `run_dirs` (trained now or reused); its
.md gets a provenance line. A bench that needs a run directory
of another bench (search needs sst2_dynabert's) runs that one first unless its run directory can be reused.

--quick runs each bench at small sizes into a temporary folder (never results/, never runs/) and, for a
bench too big to shrink, only checks that its script imports, saying why.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from bench import rundirs
from bench.registry import BENCHES, BY_NAME, ROOT, Bench, Command, select

MAX_LOAD_PER_CORE = 0.5
SETTLE_MAX_S = 600.0  # the longest wait for the load to settle before a bench of a chain


def load_1min() -> float:
    """1-minute load average (0.0 where the OS has none)."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return 0.0


def wait_for_quiet(limit: float, *, max_wait_s: float = SETTLE_MAX_S, poll_s: float = 10.0,
                   sleep: Callable[[float], None] = time.sleep) -> tuple[float, float]:
    """Wait until the 1-minute load average is at most `limit` (the previous bench of a chain leaves its own
    load in the average for a minute or two), at most `max_wait_s` seconds.

    Returns:
        (seconds waited, the load average when the wait ended).
    """
    waited = 0.0
    while (load := load_1min()) > limit and waited < max_wait_s:
        sleep(poll_s)
        waited += poll_s
    return waited, load


def expand(cmd: Command, places: dict[str, str]) -> list[str]:
    """`cmd` with its {py}/{results}/{runs}/{shared} placeholders filled."""
    return [part.format(**places) for part in cmd]


def with_requirements(benches: list[Bench], runs: Path) -> list[Bench]:
    """`benches` plus, first, the benches whose run directories they read and which cannot be reused."""
    out: list[Bench] = []

    def add(b: Bench) -> None:
        for r in b.requires:
            req = BY_NAME[r]
            if req not in out and req not in benches and not (req.reuse and all(
                    rundirs.reusable(runs / d, req.train_sources) for d in req.run_dirs)):
                add(req)
        if b not in out:
            out.append(b)
    for b in benches:
        add(b)
    order = {b.name: i for i, b in enumerate(BENCHES)}
    return sorted(out, key=lambda b: order[b.name])


def stamp(out_dir: Path, bench: Bench, facts: dict[str, Any]) -> None:
    """Add the provenance `facts` to each result file of `bench` in `out_dir` (JSON keys, one .md line)."""
    import bench.common as common
    for stem in bench.outputs:
        js, md = out_dir / f"{stem}.json", out_dir / f"{stem}.md"
        if not js.is_file():
            continue
        data = json.loads(js.read_text())
        if "command" in data and data["command"] != facts["command"]:
            data["script_command"] = data["command"]  # what the script says of itself, kept beside
        data.setdefault("fingerprint", common.fingerprint())
        data.update(facts)
        js.write_text(json.dumps(data, indent=2, default=str) + "\n")
        if md.is_file():
            line = (f"Provenance (written by `python -m bench.run`): commit `{facts['commit']}`"
                    f"{' (uncommitted changes)' if facts['dirty'] else ''}, {facts['wall_seconds']:.0f} s, load "
                    f"average {facts['load_before']} before / {facts['load_after']} after; command "
                    f"`{facts['command']}`.")
            md.write_text(md.read_text().rstrip() + "\n\n" + line + "\n")


def run_bench(b: Bench, *, quick: bool, places: dict[str, str], env: dict[str, str]) -> str:
    """Run one bench; returns its outcome ("ok", "skipped: ...", "missing: ...", "failed: ...")."""
    if not b.exists:
        return f"missing: {b.script} is not on this branch"
    if b.needs_cuda:
        import torch
        if not torch.cuda.is_available():
            return "skipped: needs a CUDA device and torch sees none"
    steps = b.quick if quick else b.command
    checked_only = quick and not steps
    if checked_only:  # too big to shrink: check that the script still imports (in this process: one torch import)
        if b.script.endswith(".py"):
            try:
                importlib.import_module("bench." + Path(b.script).stem)
            except Exception as e:  # noqa: BLE001 - any import error is the rot this mode looks for
                return f"failed: `import bench.{Path(b.script).stem}` raised {type(e).__name__}: {e}"
            return f"skipped (imports checked): {b.quick_skip}"
        steps = (("bash", "-n", b.script),)
    runs = Path(places["runs"])
    dirs = {} if quick else {d: rundirs.prepare(runs / d, b.train_sources, reuse=b.reuse) for d in b.run_dirs}
    for d, info in dirs.items():
        print(f"  run directory {d}: {'reused' if info['reused'] else 'new'}"
              + (f" (old one set aside as {info['set_aside']})" if info["set_aside"] else ""), flush=True)
    # results/ is left out: the benches run before this one rewrote their files there
    head = rundirs.git("rev-parse", "HEAD") or "unknown"
    dirty = rundirs.tree_dirty()
    cmds = [expand(c, places) for c in steps]
    out_dir = Path(places["results"])

    def mtimes() -> dict[str, int | None]:
        return {s: (out_dir / f"{s}.json").stat().st_mtime_ns if (out_dir / f"{s}.json").is_file() else None
                for s in b.outputs}
    before = mtimes()
    load_before, t0 = load_1min(), time.perf_counter()
    for cmd in cmds:
        print("  + " + shlex.join(cmd), flush=True)
        rc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL if checked_only else None).returncode
        if rc != 0:
            return f"failed: exit {rc} from `{shlex.join(cmd)}`"
    if checked_only:
        return f"skipped (imports checked): {b.quick_skip}"
    facts = {"commit": head, "dirty": dirty, "command": " && ".join(shlex.join(c) for c in cmds),
             "wall_seconds": round(time.perf_counter() - t0, 1), "load_before": load_before,
             "load_after": load_1min(), "quick": quick, "run_dirs": dirs}
    after = mtimes()
    stale = [s for s in b.outputs if after[s] is None or after[s] == before[s]]
    if stale:  # never stamp today's provenance onto a file this run did not write
        return f"failed: did not (re)write {', '.join(f'{s}.json' for s in stale)}"
    stamp(out_dir, b, facts)
    return "ok"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", help="comma-separated bench names (see --list); default: all, in registry order")
    ap.add_argument("--quick", action="store_true", help="small sizes into a temporary folder (results/ untouched)")
    ap.add_argument("--force", action="store_true", help=f"run even above {MAX_LOAD_PER_CORE} load per core")
    ap.add_argument("--results-dir", type=Path, help="where result files go (default: results/; --quick: a "
                                                      "temporary folder)")
    ap.add_argument("--skip", help="comma-separated bench names to leave out of this run")
    ap.add_argument("--list", action="store_true", help="print the benches and exit")
    a = ap.parse_args(argv)
    try:
        benches = select(a.only)
        skipped = {b.name for b in select(a.skip)} if a.skip else set()
        benches = [b for b in benches if b.name not in skipped]
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if a.list:
        for b in BENCHES:
            print(f"{b.name:24s} {b.script:32s} -> {', '.join(b.outputs)}{'' if b.exists else '  (script missing)'}")
        return 0
    results = (a.results_dir or (Path(tempfile.mkdtemp(prefix="bench-quick-")) if a.quick else ROOT / "results"))
    if a.quick and results.resolve() == (ROOT / "results").resolve():
        print("error: --quick never writes into results/: give another --results-dir", file=sys.stderr)
        return 2
    runs = Path(tempfile.mkdtemp(prefix="bench-quick-runs-")) if a.quick else ROOT / "runs"
    cores = os.cpu_count() or 1
    if not a.quick and not a.force and load_1min() > MAX_LOAD_PER_CORE * cores:
        print(f"error: 1-minute load average {load_1min()} is above {MAX_LOAD_PER_CORE} per core ({cores} cores): "
              "other work would be in the figures. Wait until the machine is quiet, or pass --force (FORCE=1).",
              file=sys.stderr)
        return 3
    if not a.quick:
        benches = with_requirements(benches, runs)
    results.mkdir(parents=True, exist_ok=True)
    places = {"py": sys.executable, "results": str(results), "runs": str(runs), "shared": str(ROOT.parent / "shared")}
    env = {**os.environ, "DYNABERT_RESULTS_DIR": str(results), "PYTHON": sys.executable, "HF_HUB_OFFLINE": "1",
           "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_WAIT_POLICY": "PASSIVE",
           "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}
    print(f"{'quick' if a.quick else 'full-size'} benches into {results}: {', '.join(b.name for b in benches)}")
    outcomes = {}
    for i, b in enumerate(benches):
        if i and not a.quick and not a.force:  # the one before left its load in the 1-minute average
            waited, load = wait_for_quiet(MAX_LOAD_PER_CORE * cores)
            if waited:
                print(f"  waited {waited:.0f} s for the load to settle ({load} now; limit "
                      f"{MAX_LOAD_PER_CORE * cores:g})", flush=True)
        print(f"== {b.name} (load {load_1min()})", flush=True)
        outcomes[b.name] = run_bench(b, quick=a.quick, places=places, env=env)
        print(f"== {b.name}: {outcomes[b.name]}", flush=True)
    if a.quick:
        shutil.rmtree(runs, ignore_errors=True)
    print("\nsummary:")
    for name, outcome in outcomes.items():
        print(f"  {name:24s} {outcome}")
    if a.quick:  # for the quick test: what each bench did
        (results / "bench_run.json").write_text(json.dumps(outcomes, indent=2) + "\n")
    return 1 if any(o.startswith("failed") for o in outcomes.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
