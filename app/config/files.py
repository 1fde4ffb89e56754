"""Config files of `dynabert run` (TOML or YAML, one key per option) and examples/run.toml, generated from the
configuration's fields.

Regenerate the example with `python -m app.config > examples/run.toml`; tests/test_run_options.py fails when it
is stale.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from app.config.flags import shown
from app.config.presets import PRESETS
from app.config.run_config import SECTIONS, SPECS, ConfigError, coerce_options
from elastic.training.option_fields import Spec, specs


def load_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """Options from a TOML (`.toml`) or YAML (`.yaml`/`.yml`) file, each checked against its field.

    Returns:
        Option name -> value (`-` in keys read as `_`).

    Raises:
        ConfigError: a missing or unparsable file, an unknown key, or a value of the wrong type or range, named
            with the file and the key ("run.toml: key 'lr' must be a number, got 'fast'").
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {p} does not exist")
    if p.suffix not in (".toml", ".yaml", ".yml"):
        raise ConfigError(f"config file {p}: use .toml, .yaml or .yml")
    try:
        text = p.read_text(encoding="utf-8")
        if p.suffix == ".toml":
            import tomllib
            data = tomllib.loads(text)
        else:
            import yaml
            data = yaml.safe_load(text) or {}
    except Exception as e:  # tomllib/yaml/decoding raise their own types; the message is what the user needs
        raise ConfigError(f"config file {p} cannot be parsed: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {p} must hold a table/mapping of options, one key per option")
    tables = [k for k, v in data.items() if isinstance(v, dict)]
    if tables:
        raise ConfigError(f"{p.name}: [{tables[0]}] is a table; write every option as a top-level key "
                          "(examples/run.toml)")
    return coerce_options(data, lambda key: f"{p.name}: key '{key}'")


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (tuple, list)):
        return json.dumps(list(value))
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)


def _line(spec: Spec) -> str:
    value = spec.default if spec.default is not None else spec.example
    presets = [f"{name} {shown(o[spec.name])}" for name, o in PRESETS.items()
               if spec.name in o and o[spec.name] != spec.default]
    note = "; unset by default" if spec.default is None else ""
    note += f"; presets: {', '.join(presets)}" if presets else ""
    choices = f" ({'/'.join(map(str, spec.choices))})" if spec.choices and spec.kind is not tuple else ""
    return f"# {spec.name} = {_toml(value)}  # {spec.help}{choices}{note}"


def render_example() -> str:
    """examples/run.toml: every option, commented out, with its default (an example where it has none)."""
    out = ["# Every option of `dynabert run`, with its built-in default. Use: dynabert run --run-dir runs/mine "
           "--config run.toml",
           "# Precedence: built-in defaults < --preset (standard unless given) < this file < command-line flags.",
           "# Uncomment the keys to set; a key left commented out keeps the preset's value (or the default). Options",
           "# whose default is unset show an example value. Keys may be written with - or _; YAML works the same way",
           "# (run.yaml, `key: value`). Each key is also a flag of `dynabert run` (stage2_lr: --stage2-lr).",
           "# Generated from app/config/run_config.py by `python -m app.config > examples/run.toml`;",
           "# tests/test_run_options.py keeps it in sync and loads it through the real loader."]
    for cls in SECTIONS.values():
        title = (cls.__doc__ or "").strip()
        out += ["", f"# ---- {title} " + "-" * max(3, 104 - len(title))]
        out += [_line(s) for s in specs(cls)]
    assert len(SPECS) == sum(len(specs(c)) for c in SECTIONS.values())
    return "\n".join(out) + "\n"
