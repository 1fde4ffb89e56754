"""The typed configuration of a run: its fields (run_config), presets, flags and config files (the checks of a run before it starts: app.workflow.checks)."""
from __future__ import annotations

from app.config.files import load_config_file, render_example
from app.config.run_config import (DEFAULTS, SPECS, STAGES, ConfigError, RunConfig, as_config, command_defaults,
                                   parse_only, preset_config, resolve, stage_options)
from app.config.presets import PRESETS

__all__ = ["DEFAULTS", "PRESETS", "SPECS", "STAGES", "ConfigError", "RunConfig", "as_config", "command_defaults",
           "load_config_file", "parse_only", "preset_config", "render_example", "resolve", "stage_options"]
