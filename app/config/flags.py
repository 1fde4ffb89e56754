"""Command-line flags generated from option fields (as transformers' `HfArgumentParser` does from a dataclass).

A field `stage2_lr: Optional[float] = option(None, help=..., above=0)` becomes `--stage2-lr` with that help,
its default, a `Literal`'s values as `choices`, and a type that checks the range: a bad value is argparse's
usual one-line error ("argument --stage2-lr: must be > 0, got -0.001"). `dynabert run` gets every field of
its configuration, grouped by section; each `train-<stage>` command the `StageOptions` fields of its stage.

The other subcommands (`search`, `export`, `profile`, `baselines`) get the fields of their options dataclass
(`add_fields`) and build it back from the parsed arguments (`options_from_args`), with these conventions:

- a field declared with `option(...)` is a flag (a bool, int, float, str, `Literal`, tuple or `Path`); a plain
  field (a `Runtime`, a `SubnetConfig`, values the command resolves) is not: the command gives it, from explicit
  flags such as `--device`/`--precision` or from several flags together;
- a bool whose default is True is the flag `--no-<name>` (it stores False; its help says what that flag does),
  else `--<name>` (it stores True);
- a flag is named after its field unless the command renames it (`names`, e.g. latency_budget_ms ->
  `--latency-budget`); its value is stored under the field's name either way;
- a field without default is a required flag; fields in `exclusive` form a required mutually exclusive group;
- a tuple is one comma-separated value (`--objectives metric,macs`), or, for the fields in `many`, several values
  (`--recipe distilbert tinybert`), each of which may be comma-separated too.
"""
from __future__ import annotations

import argparse
import dataclasses
from enum import Enum
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional, get_args, get_type_hints

from elastic.training.option_fields import OptionError, Spec, coerce, specs


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
    """A default as a user types it: 2e-05, a,b for a list, none for None, an Enum's value."""
    if value is None:
        return "none"
    if isinstance(value, Enum):
        return shown(value.value)
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (tuple, list)):
        return ",".join(map(shown, value)) or "(empty)"
    return f"{value:g}" if isinstance(value, float) else str(value)


class _Items(argparse.Action):
    """A tuple option given as several values (`nargs="+"`), each already a tuple: their items, in order."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: Optional[str] = None) -> None:
        setattr(namespace, self.dest, tuple(item for value in values for item in value))


def add_option(p: Any, spec: Spec, *, default: Any, help: str, unset_is_none: bool = False,
               flag: Optional[str] = None, required: bool = False, many: bool = False) -> None:
    """Add one option's flag to a parser or argument group; its value is stored under the option's name.

    Args:
        p: the parser or group.
        spec: the option (`elastic.training.option_fields.specs`).
        default: the flag's default (shown in its help unless `unset_is_none`).
        help: the help text (already with its default, when wanted).
        unset_is_none: the flag is None when not given (`dynabert run` layers presets and files under it).
        flag: the flag's name (default `spec.flag`).
        required: the flag must be given.
        many: a tuple option takes several values (`--recipe a b`) instead of one comma-separated one.
    """
    flag = flag or spec.flag
    help = help.replace("%", "%%")  # argparse formats help strings with %
    kw: dict[str, Any] = {"default": None if unset_is_none else default, "help": help, "dest": spec.name}
    if required:
        kw["required"] = True
    if spec.kind is bool:
        if unset_is_none:
            p.add_argument(flag, action=argparse.BooleanOptionalAction, **kw)
        else:
            p.add_argument(flag, action="store_true", **kw)
        return
    if spec.kind is tuple and many:
        kw.update(nargs="+", action=_Items, metavar="{" + ",".join(spec.allowed()) + "}" if spec.allowed()
                  else flag[2:].upper().replace("-", "_"))
    elif spec.kind is tuple:
        kw["metavar"] = "{" + ",".join(spec.allowed()) + "}[,...]" if spec.allowed() else "A[,B...]"
    elif spec.allowed():
        kw["choices"] = spec.allowed()
    else:
        kw["metavar"] = flag[2:].upper().replace("-", "_")
    p.add_argument(flag, type=arg_type(spec), **kw)


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


def add_fields(p: argparse.ArgumentParser, cls: type, *, names: Optional[Mapping[str, str]] = None,
               defaults: Optional[Mapping[str, Any]] = None, exclusive: Iterable[str] = (),
               many: Iterable[str] = ()) -> None:
    """Add a flag for every field of an options dataclass that is one (the conventions above), in field order.

    Args:
        p: the parser.
        cls: the options dataclass (fields made by `option(...)`).
        names: field name -> flag, for the flags not named after their field.
        defaults: field name -> the flag's default, where it is not the field's (None: the command resolves it).
        exclusive: fields of which exactly one must be given (a required mutually exclusive group).
        many: tuple fields whose flag takes several values.
    """
    exclusive, many = tuple(exclusive), set(many)
    hints = get_type_hints(cls)
    group = p.add_mutually_exclusive_group(required=True) if exclusive else None
    for spec, field_ in flag_fields(cls):
        flag = (names or {}).get(spec.name) or spec.flag
        default = (defaults or {}).get(spec.name, spec.default)
        target = group if spec.name in exclusive else p
        required = field_.default is dataclasses.MISSING and field_.default_factory is dataclasses.MISSING
        help = spec.help.replace("%", "%%")
        if spec.kind is bool:
            target.add_argument("--no-" + flag[2:] if default else flag, dest=spec.name, default=bool(default),
                                action="store_false" if default else "store_true", help=help)
            continue
        if spec.kind is object:
            if Path not in (hints[spec.name], *get_args(hints[spec.name])):
                raise TypeError(f"{cls.__name__}.{spec.name}: a flag's field is a bool, int, float, str, Literal, "
                                "tuple or Path")
            target.add_argument(flag, dest=spec.name, type=Path, default=default, required=required, help=help,
                                metavar=flag[2:].upper().replace("-", "_"))
            continue
        extra = "" if default is None else f"default {shown(default)}"
        add_option(target, spec, default=default, help=f"{spec.help} ({extra})" if extra else spec.help, flag=flag,
                   required=required, many=spec.name in many)


def flag_fields(cls: type) -> list[tuple[Spec, dataclasses.Field]]:
    """(spec, field) of the fields of an options dataclass that are flags: those declared with `option(...)`."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    return [(s, fields[s.name]) for s in specs(cls) if "help" in fields[s.name].metadata]


def options_from_args(cls: type, args: argparse.Namespace, **given: Any) -> Any:
    """The options dataclass from parsed arguments: each field the arguments hold (stored under its name by
    `add_fields`, or by an explicit flag of the same name), then `given` (what the command resolved itself)."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{**{k: v for k, v in vars(args).items() if k in names}, **given})
