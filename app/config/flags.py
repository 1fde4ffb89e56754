"""Command-line flags generated from option fields (as transformers' `HfArgumentParser` does from a dataclass).

A field `stage2_lr: Optional[float] = option(None, help=..., above=0)` becomes `--stage2-lr` with that help,
its default, a `Literal`'s values as `choices`, and a type that checks the range: a bad value is argparse's
usual one-line error ("argument --stage2-lr: must be > 0, got -0.001"). `dynabert run` gets every field of
its configuration, grouped by section; each `train-<stage>` command the `StageOptions` fields of its stage.
"""
from __future__ import annotations

import argparse
from typing import Any, Callable, Iterable, Optional

from elastic.training.option_fields import OptionError, Spec, coerce


def arg_type(spec: Spec) -> Callable[[str], Any]:
    """The argparse `type` of an option: text -> the field's type, checked (ArgumentTypeError says why not)."""
    def parse(text: str) -> Any:
        try:
            return coerce(spec, text)
        except OptionError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    parse.__name__ = spec.describe()
    return parse


def shown(value: Any) -> str:
    """A default as a user types it: 2e-05, a,b for a list, none for None."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (tuple, list)):
        return ",".join(map(shown, value)) or "(empty)"
    return f"{value:g}" if isinstance(value, float) else str(value)


def add_option(p: Any, spec: Spec, *, default: Any, help: str, unset_is_none: bool = False) -> None:
    """Add one option's flag to a parser or argument group.

    Args:
        p: the parser or group.
        spec: the option (`elastic.training.option_fields.specs`).
        default: the flag's default (shown in its help unless `unset_is_none`).
        help: the help text (already with its default, when wanted).
        unset_is_none: the flag is None when not given (`dynabert run` layers presets and files under it).
    """
    help = help.replace("%", "%%")  # argparse formats help strings with %
    kw: dict[str, Any] = {"default": None if unset_is_none else default, "help": help}
    if spec.kind is bool:
        if unset_is_none:
            p.add_argument(spec.flag, action=argparse.BooleanOptionalAction, **kw)
        else:
            p.add_argument(spec.flag, action="store_true", **kw)
        return
    if spec.kind is tuple:
        kw["metavar"] = "{" + ",".join(spec.allowed()) + "}[,...]" if spec.allowed() else "A[,B...]"
    elif spec.allowed():
        kw["choices"] = spec.allowed()
    else:
        kw["metavar"] = spec.name.upper()
    p.add_argument(spec.flag, type=arg_type(spec), **kw)


def add_options(p: argparse.ArgumentParser, groups: Iterable[tuple[str, Iterable[Spec]]], *,
                defaults: Optional[dict[str, Any]] = None, unset_is_none: bool = False,
                note: Optional[Callable[[Spec], str]] = None, stage: Optional[str] = None) -> None:
    """Add the flags of several groups of options.

    Args:
        p: the parser.
        groups: (title, options) pairs; an empty title adds the flags to the parser itself.
        defaults: option name -> default (else the field's own).
        unset_is_none: every flag is None when not given.
        note: option -> text after its help, e.g. the default and the presets' values.
        stage: the command's stage (options may have another help there).
    """
    for title, group_specs in groups:
        target = p.add_argument_group(title) if title else p
        for spec in group_specs:
            default = (defaults or {}).get(spec.name, spec.default)
            text = spec.help_for(stage)
            extra = note(spec) if note else ("" if default is None or spec.kind is bool
                                             else f"default {shown(default)}")
            add_option(target, spec, default=default, help=f"{text} ({extra})" if extra else text,
                       unset_is_none=unset_is_none)
