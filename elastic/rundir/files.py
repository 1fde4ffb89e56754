"""Reading and writing run-directory files: one error type, JSON checked against its schema, atomic writes.

Every JSON artifact is read by `read_json` and written by `write_json`; a problem a user can cause (a missing,
damaged or hand-edited file) raises `RunDirError`, whose message names the file and what to do about it.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Optional

from elastic.rundir.contract import JSON_SCHEMAS, REQUIRED


class RunDirError(ValueError):
    """A run directory that does not fit the command: a missing, damaged or malformed artifact (the message names
    the file and the fix), another task, a missing stage, ..."""


class MissingArtifactError(RunDirError):
    """A run-directory file that does not exist (yet); the message says which command writes it."""


def missing(path: Path, written_by: str) -> MissingArtifactError:
    """The error of a file that is not there: its name, its folder, and the command that writes it."""
    return MissingArtifactError(f"{path.name} is missing in {path.parent} (written by `{written_by}`)")


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write `text` to `path` through a temporary file beside it and `os.replace`: a reader sees the old file or
    the new one, never half of one, and a failed write leaves no temporary file behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_json(path: str | os.PathLike, data: dict[str, Any], *, schema: str, indent: int | None = 2) -> Path:
    """Write a JSON artifact atomically after checking it against `JSON_SCHEMAS[schema]` (a writer that breaks
    the contract is a bug: ValueError, nothing written)."""
    problem = JSON_SCHEMAS[schema].problem(schema, data)
    if problem:
        raise ValueError(f"refusing to write {path}: {problem}")
    return write_text_atomic(path, json.dumps(data, indent=indent, default=str))


def read_json(path: str | os.PathLike, schema: Optional[str] = None, *, label: str = "", written_by: str = "",
              fix: str = "") -> dict[str, Any]:
    """A JSON artifact: a JSON object, checked against `JSON_SCHEMAS[schema]` when one is named.

    Args:
        path: the file.
        schema: the artifact's name in `JSON_SCHEMAS` (e.g. `SEARCH_JSON`); None: any JSON object.
        label: how messages name the file (default: its name, e.g. `search.json`; `stage2/done.json`).
        written_by: the command that writes it (default: the contract's, else `dynabert`).
        fix: what the user should do about a damaged file (default: fix or delete it, and which command writes it).

    Raises:
        MissingArtifactError: the file does not exist.
        RunDirError: not UTF-8, not JSON, not an object, or against its schema; the message names the file.
    """
    p = Path(path)
    label = label or p.name
    written_by = written_by or REQUIRED.get(schema or p.name) or "dynabert"
    if not p.is_file():
        raise missing(p, written_by)
    hint = fix or f"fix or delete it (written by `{written_by}`)"
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise RunDirError(f"{label}: not valid JSON ({e.msg} at line {e.lineno}, column {e.colno}); {hint}") from None
    except UnicodeDecodeError as e:
        raise RunDirError(f"{label}: not UTF-8 text ({e}); {hint}") from None
    if not isinstance(data, dict):
        raise RunDirError(f"{label}: expected a JSON object, got {type(data).__name__}; {hint}")
    problem = JSON_SCHEMAS[schema].problem(label, data) if schema else None
    if problem:
        raise RunDirError(f"{problem}; {fix}" if fix else problem)
    return data
