"""Options declared once: a dataclass field carries its type, default, help, choices and range.

`option(default, help=..., min=..., above=...)` is `dataclasses.field` with that metadata; `specs(cls)` reads a
class's fields back as `Spec`s (type resolved, `Literal` values as choices), and `coerce(spec, value)` turns a
value from a flag, a TOML/YAML file or a preset into the field's type, or raises `OptionError` saying what is
wrong ("must be a number, got 'fast'"). The CLI's parsers (app/config/flags.py), the config files and the
option objects' own checks all use these, so a range or a set of choices is written once, on its field.

Torch-free: the CLI imports it to build `--help`.
"""
from __future__ import annotations

import dataclasses
import math
import types
from dataclasses import MISSING, dataclass
from functools import lru_cache
from typing import Any, Callable, Literal, Optional, Union, get_args, get_origin, get_type_hints


class OptionError(ValueError):
    """A value that does not fit its option; the message says what it must be ("must be >= 1, got 0")."""


def option(default: Any = MISSING, *, help: str, min: Optional[float] = None, above: Optional[float] = None,
           stages: tuple[str, ...] = (), example: Any = None, default_factory: Any = MISSING,
           help_by_stage: Optional[dict[str, str]] = None,
           choices_from: Optional[Callable[[], tuple[Any, ...]]] = None) -> Any:
    """A dataclass field with its help and range (choices come from a `Literal` type, or from `choices_from`).

    Args:
        default: the built-in default.
        help: one line for `--help`, the config file's comment and docs/CLI.md.
        min: smallest allowed value (inclusive); above: the value must be greater than this.
        stages: the single-stage commands (`train-teacher` ...: "teacher", "stage1", ...) that take it as a flag.
        example: a value shown in examples/run.toml when the default is None.
        default_factory: as in `dataclasses.field`.
        help_by_stage: another help text on some stages' commands.
        choices_from: a function returning the choices, asked each time the specs are read: an open set kept
            in a registry (the search objectives), so that an entry registered later is a valid choice too.
    """
    md = {"help": help, "min": min, "above": above, "stages": tuple(stages), "example": example,
          "help_by_stage": help_by_stage or {}, "choices_from": choices_from}
    if default_factory is not MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=md)
    return dataclasses.field(default=default, metadata=md)


@dataclass(frozen=True)
class Spec:
    """One option: its name, Python kind (bool, int, float, str or tuple), item kind for tuples, whether None is
    allowed, its choices, range, help and default."""

    name: str
    kind: type
    item: Optional[type]
    optional: bool
    choices: Optional[tuple[Any, ...]]
    min: Optional[float]
    above: Optional[float]
    help: str
    default: Any
    stages: tuple[str, ...]
    example: Any
    help_by_stage: dict[str, str]
    choices_from: Optional[Callable[[], tuple[Any, ...]]] = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def help_for(self, stage: Optional[str] = None) -> str:
        return self.help_by_stage.get(stage or "", self.help)

    def allowed(self) -> Optional[tuple[Any, ...]]:
        """The choices now (an open set's registry is read at each call)."""
        return tuple(self.choices_from()) if self.choices_from else self.choices

    def describe(self) -> str:
        """What a value must be, e.g. "an integer >= 1", "one of full, matched"."""
        choices = self.allowed()
        if choices:
            what = "one of " + ", ".join(map(str, choices))
            return f"a comma-separated list of {what}" if self.kind is tuple else what
        base = {bool: "true or false", int: "an integer", float: "a number", str: "a text",
                tuple: "a list"}.get(self.kind, self.kind.__name__)
        return base + (f" >= {self.min:g}" if self.min is not None else "") + (
            f" > {self.above:g}" if self.above is not None else "")


def _unwrap(tp: Any) -> tuple[Any, bool]:
    """(type without Optional, whether None is allowed)."""
    if get_origin(tp) in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        return (args[0] if len(args) == 1 else Union[tuple(args)]), len(args) < len(get_args(tp))
    return tp, False


def _kind(tp: Any) -> tuple[type, Optional[tuple[Any, ...]]]:
    """(Python kind, choices) of a field type: a Literal becomes the kind of its values plus its values."""
    if get_origin(tp) is Literal:
        values = get_args(tp)
        return type(values[0]), values
    if isinstance(tp, type) and issubclass(tp, (bool, int, float, str)):
        return tp, None
    return object, None  # anything else (a Runtime, a Path): not a command-line option, not checked here


def specs(cls: type) -> tuple[Spec, ...]:
    """The `Spec` of every field of a dataclass, in field order (open choice sets read from their registry now)."""
    return tuple(dataclasses.replace(s, choices=tuple(s.choices_from())) if s.choices_from else s
                 for s in _field_specs(cls))


@lru_cache(maxsize=None)
def _field_specs(cls: type) -> tuple[Spec, ...]:
    hints = get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        tp, optional = _unwrap(hints[f.name])
        item = None
        if get_origin(tp) is tuple:
            item, choices = _kind(get_args(tp)[0])
            kind: type = tuple
        else:
            kind, choices = _kind(tp)
        md = f.metadata
        default = f.default if f.default is not MISSING else (
            f.default_factory() if f.default_factory is not MISSING else None)  # type: ignore[misc]
        out.append(Spec(f.name, kind, item, optional, choices, md.get("min"), md.get("above"), md.get("help", ""),
                        default, md.get("stages", ()), md.get("example"), md.get("help_by_stage", {}),
                        md.get("choices_from")))
    return tuple(out)


def _scalar(kind: type, value: Any) -> Any:
    """`value` as `kind`, or raise OptionError (numbers written as text, as YAML reads `1e-4`, are accepted)."""
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise OptionError(f"must be true or false, got {value!r}")
    if kind in (int, float):
        if isinstance(value, bool):
            raise OptionError(f"must be {'an integer' if kind is int else 'a number'}, got {value!r}")
        if isinstance(value, str):
            try:
                value = float(value.strip()) if kind is float or any(c in value for c in ".eE") else int(value.strip())
            except ValueError:
                raise OptionError(f"must be {'an integer' if kind is int else 'a number'}, got {value!r}") from None
        if not isinstance(value, (int, float)) or (isinstance(value, float) and not math.isfinite(value)):
            raise OptionError(f"must be {'an integer' if kind is int else 'a number'}, got {value!r}")
        if kind is int:
            if isinstance(value, float) and not value.is_integer():
                raise OptionError(f"must be an integer, got {value!r}")
            return int(value)
        return float(value)
    if kind is str:
        if isinstance(value, str):
            return value
        raise OptionError(f"must be a text, got {value!r}")
    return value


def coerce(spec: Spec, value: Any) -> Any:
    """`value` as the option's type, inside its choices and range.

    Raises:
        OptionError: the value does not fit; the message starts with "must be".
    """
    if value is None:
        if spec.optional or spec.kind is object:
            return None
        raise OptionError(f"must be {spec.describe()}, got nothing")
    if spec.kind is object:
        return value
    if spec.kind is tuple:
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)):
            raise OptionError(f"must be a list (or comma-separated text), got {value!r}")
        items = [i.strip() if isinstance(i, str) else i for i in items]
        out = tuple(_scalar(spec.item or str, i) for i in items if i != "")
        choices = spec.allowed()
        bad = [i for i in out if choices and i not in choices]
        if bad:
            raise OptionError(f"must be {spec.describe()}, got {', '.join(map(str, bad))}")
        return out
    out = _scalar(spec.kind, value)
    choices = spec.allowed()
    if choices and out not in choices:
        raise OptionError(f"must be {spec.describe()}, got {out!r}")
    if spec.min is not None and out < spec.min:
        raise OptionError(f"must be >= {spec.min:g}, got {out:g}")
    if spec.above is not None and not out > spec.above:
        raise OptionError(f"must be > {spec.above:g}, got {out:g}")
    return out


def check_fields(obj: Any) -> None:
    """Check every field of a dataclass instance against its spec (type, choices, range).

    Raises:
        OptionError: "--<flag> must be ..., got ..." for the first field that does not fit.
    """
    for spec in specs(type(obj)):
        try:
            coerce(spec, getattr(obj, spec.name))
        except OptionError as e:
            raise OptionError(f"{spec.flag} {e}") from None
