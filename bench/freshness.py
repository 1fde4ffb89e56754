"""Which result files no longer describe the code: checked against bench/registry.py and git.

A result (`results/<stem>.json` and its `.md`) is fresh when a registered bench writes it, that bench's
script exists, it records a `commit` with a clean tree, and every source path of
its bench has the same committed text at HEAD as at that commit (`git diff --name-only <commit> HEAD --
<paths>` lists nothing: a change later reverted does not stale a result), and the
`command` it records is the registry's command for it (placeholders such as {runs} match any path): a bench
whose options changed in the registry (a recipe, a budget) makes its old files stale too.

    python -m bench.freshness          # `make bench-status`: each result, fresh or stale and why (exit 0)
    python -m bench.freshness --strict # the same, exit 1 when a result is stale or missing

Staleness is a report, never a failing test: a commit to elastic/ stales the results that measured it until
`make bench ONLY=<bench>` rewrites them, and the index pages (bench/results_index.py) mark them meanwhile.
"""
from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Sequence

from bench.registry import BENCHES, ROOT, Bench


def _git_ok(*args: str, root: Path) -> bool:
    return subprocess.run(["git", *args], cwd=root, capture_output=True).returncode == 0


def _changed_since(commit: str, paths: Sequence[str], root: Path) -> list[str]:
    """The files under `paths` whose committed text at HEAD differs from `commit`'s (a change later reverted
    leaves none): what the issue asks, "none of the source paths it depends on differs from the final commit"."""
    if not paths:
        return []
    out = subprocess.run(["git", "diff", "--name-only", commit, "HEAD", "--", *paths], cwd=root,
                         capture_output=True, text=True)
    return [line for line in out.stdout.splitlines() if line.strip()]


def has_history(root: Path = ROOT) -> bool:
    """git is here and the checkout holds its whole history (a shallow clone lacks the commits results record)."""
    import shutil
    if shutil.which("git") is None:
        return False
    out = subprocess.run(["git", "rev-parse", "--is-shallow-repository"], cwd=root, capture_output=True, text=True)
    return out.returncode == 0 and out.stdout.strip() == "false"


def result_stems(results_dir: Path) -> list[str]:
    """Stems of the .json and .md files in `results_dir` (README.md, the index, excluded)."""
    return sorted({p.stem for p in results_dir.iterdir()
                   if p.suffix in (".json", ".md") and p.name != "README.md"}) if results_dir.is_dir() else []


_PLACEHOLDER = re.compile(r"(\{(?:py|runs|results|shared)\})")


def _part_pattern(part: str) -> re.Pattern[str]:
    """One argument of a registry command as a pattern: each {placeholder} matches any non-empty text."""
    pieces = _PLACEHOLDER.split(part)  # literal, placeholder, literal, ...: placeholders at odd indices
    return re.compile("".join(".+" if i % 2 else re.escape(piece) for i, piece in enumerate(pieces)))


def command_matches(recorded: str, bench: Bench) -> bool:
    """Whether `recorded` (bench.run's `command`: the shell-quoted steps joined by ` && `) is `bench.command`."""
    try:
        tokens = shlex.split(recorded)
    except ValueError:
        return False
    steps: list[list[str]] = [[]]
    for t in tokens:
        if t == "&&":
            steps.append([])
        else:
            steps[-1].append(t)
    if len(steps) != len(bench.command):
        return False
    return all(len(got) == len(want) and all(_part_pattern(w).fullmatch(g) for g, w in zip(got, want))
               for got, want in zip(steps, bench.command))


def staleness(stem: str, results_dir: Path, root: Path = ROOT,
              benches: Sequence[Bench] = BENCHES) -> str | None:
    """Why `results_dir/<stem>.{json,md}` is stale, or None when it is fresh."""
    bench = next((b for b in benches if stem in b.outputs), None)
    if bench is None:
        return "written by no bench of bench/registry.py"
    if not (root / bench.script).is_file():
        return f"its bench's script {bench.script} does not exist"
    js, md = results_dir / f"{stem}.json", results_dir / f"{stem}.md"
    if not js.is_file() or not md.is_file():
        return f"{(md if js.is_file() else js).name} is missing: a result is a .json and its .md"
    data = json.loads(js.read_text())
    commit = data.get("commit") if isinstance(data, dict) else None
    if not commit or commit == "unknown":
        return "records no commit (written before `make bench`)"
    if not _git_ok("cat-file", "-e", f"{commit}^{{commit}}", root=root):
        return f"records commit {commit[:10]}, unknown to this repository"
    if data.get("dirty") is not False:
        return f"measured at {commit[:10]} with uncommitted changes (or `dirty` not recorded)"
    if data.get("quick"):
        return "a --quick (small-size) result"
    changed = _changed_since(commit, bench.all_sources, root)
    if changed:
        shown = ", ".join(changed[:6]) + (f" and {len(changed) - 6} more" if len(changed) > 6 else "")
        return f"measured at {commit[:10]}, before changes to {shown}"
    if not command_matches(str(data.get("command", "")), bench):
        return (f"written by another command than bench/registry.py's for {bench.name} (options changed since): "
                f"{data.get('command')}")
    return None


def report(results_dir: Path, root: Path = ROOT, benches: Sequence[Bench] = BENCHES) -> dict[str, str]:
    """{stem: reason} for every stale result in `results_dir`, plus every output of a registered, present,
    CPU-runnable bench that is not there at all."""
    out = {s: r for s in result_stems(results_dir) if (r := staleness(s, results_dir, root, benches))}
    for b in benches:
        if (root / b.script).is_file() and not b.needs_cuda:
            for s in b.outputs:
                if not (results_dir / f"{s}.json").exists() and not (results_dir / f"{s}.md").exists():
                    out[s] = f"not written yet (`make bench ONLY={b.name}`)"
    return dict(sorted(out.items()))


def main(argv: Sequence[str] | None = None, results_dir: Path = ROOT / "results", root: Path = ROOT,
         benches: Sequence[Bench] = BENCHES) -> int:
    """Print every result (and every missing one) as fresh or stale, with why; 0 unless --strict and stale."""
    import argparse
    ap = argparse.ArgumentParser(description="Which result files are stale (their sources changed since the "
                                 "commit they record): a report.")
    ap.add_argument("--strict", action="store_true", help="exit 1 when a result is stale or missing")
    args = ap.parse_args(argv)
    if not has_history(root):
        print("freshness unknown: needs git and the whole history (a copied tree or a shallow clone lacks the "
              "commits the results record)")
        return 1 if args.strict else 0
    stale = report(results_dir, root, benches)
    stems = sorted(set(result_stems(results_dir)) | set(stale))
    for stem in stems:
        if stem in stale:
            print(f"results/{stem}: STALE: {stale[stem]}")
        else:
            data = json.loads((results_dir / f"{stem}.json").read_text())
            print(f"results/{stem}: fresh (measured at {str(data.get('commit'))[:10]}, its sources unchanged since)")
    print(f"{len(stale)} of {len(stems)} results stale" + (": regenerate one with `make bench ONLY=<bench>` "
          "(bench/registry.py names the bench of each file)" if stale else ""))
    return 1 if args.strict and stale else 0


if __name__ == "__main__":
    sys.exit(main())
