"""A throw-away git repository for tests of commit-aware code (freshness, the results pages, run-dir reuse)."""
from __future__ import annotations

import subprocess
from pathlib import Path


def git(repo: Path, *args: str) -> str:
    """Run git in `repo`; its stdout, stripped (raises on a non-zero exit)."""
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout.strip()


def commit(repo: Path, path: str, text: str) -> str:
    """Write `text` to `repo/path`, commit everything, and return the new commit's hash."""
    (repo / path).parent.mkdir(parents=True, exist_ok=True)
    (repo / path).write_text(text)
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", path)
    return git(repo, "rev-parse", "HEAD")
