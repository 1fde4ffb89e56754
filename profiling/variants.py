"""Deployment variants: one target (device, threads, batch, sequence length) x precision x runtime.

A variant is what a user deploys a sub-network as: its precision (fp32, int8 dynamic, or bf16/fp16 on a
CUDA eager model) and its runtime (eager PyTorch or ONNX Runtime). It is spelled as the scenario key that
measures it (`profiling.scenario`), so latency predictors, caches and artifacts keep one name:

| precision | eager | ort |
|---|---|---|
| fp32 | `cpu-eager-t2-b1-s64` | `cpu-ort-t2-b1-s64` |
| int8 | `cpu-eager-int8-t2-b1-s64` | `cpu-ort-int8-t2-b1-s64` |
| bf16 / fp16 (cuda only) | `cuda-eager-fp16-b1-s64` | - |

`--target cpu-t2-b1-s64 --precisions fp32,int8 --runtimes eager,ort` expands to the four cpu keys above;
`--scenario KEY[,KEY...]` names them directly. All variants of one search share one target, so that their
latencies (and MACs) describe the same inputs on the same machine and one front can mix them.
"""
from __future__ import annotations

import re
from typing import Literal, Sequence, get_args

from profiling.scenario import Scenario

VariantPrecision = Literal["fp32", "int8", "bf16", "fp16"]
VariantRuntime = Literal["eager", "ort"]
VARIANT_PRECISIONS: tuple[str, ...] = get_args(VariantPrecision)
VARIANT_RUNTIMES: tuple[str, ...] = get_args(VariantRuntime)
_TARGET = re.compile(r"^(?P<device>cpu|cuda)(-t(?P<threads>\d+))?-b(?P<batch>\d+)-s(?P<seq_len>\d+)$")
_TARGET_FORM = "cpu-t{threads}-b{batch}-s{seq_len} or cuda-b{batch}-s{seq_len}, e.g. cpu-t2-b1-s64"


def split_list(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """`"a, b"` or `["a", "b,c"]` -> ("a", "b", "c") (empty items dropped)."""
    if text is None:
        return ()
    items = [text] if isinstance(text, str) else list(text)
    return tuple(p.strip() for item in items for p in str(item).split(",") if p.strip())


def precision_of(scenario: Scenario) -> str:
    """The variant's precision: int8 for the `-int8` runtimes, else the scenario's dtype."""
    return "int8" if scenario.int8 else scenario.dtype


def runtime_of(scenario: Scenario) -> str:
    """The variant's runtime: `ort` (ONNX Runtime) or `eager` (PyTorch)."""
    return "ort" if scenario.uses_ort else "eager"


def target_of(scenario: Scenario) -> str:
    """The scenario's target (its key without runtime and dtype), e.g. `cpu-t2-b1-s64`, `cuda-b1-s64`."""
    threads = "" if scenario.device == "cuda" else f"-t{scenario.threads}"
    return f"{scenario.device}{threads}-b{scenario.batch}-s{scenario.seq_len}"


def variant_columns(key: str) -> dict[str, str]:
    """The `scenario`, `precision` and `runtime` columns of a trial, front point or export of variant `key`."""
    sc = Scenario.parse(key)
    return {"scenario": sc.key, "precision": precision_of(sc), "runtime": runtime_of(sc)}


def variant_key(target: str, precision: str, runtime: str) -> str:
    """The scenario key of one variant on `target`.

    Raises:
        ValueError: a malformed target (naming --target), an unknown precision or runtime (naming the flag),
            or a combination that does not exist (bf16/fp16 need eager on cuda).
    """
    m = _TARGET.match(str(target).strip())
    if not m:
        raise ValueError(f"--target '{target}' is not of the form {_TARGET_FORM}")
    if m["device"] == "cuda" and m["threads"] is not None:
        raise ValueError(f"--target '{target}': a cuda target names no threads, e.g. cuda-b1-s64")
    if m["device"] == "cpu" and m["threads"] is None:
        raise ValueError(f"--target '{target}' lacks -t{{threads}}, e.g. cpu-t2-b1-s64")
    if precision not in VARIANT_PRECISIONS:
        raise ValueError(f"--precisions: '{precision}' is not one of {', '.join(VARIANT_PRECISIONS)}")
    if runtime not in VARIANT_RUNTIMES:
        raise ValueError(f"--runtimes: '{runtime}' is not one of {', '.join(VARIANT_RUNTIMES)}")
    if precision in ("bf16", "fp16") and (m["device"] != "cuda" or runtime != "eager"):
        raise ValueError(f"--precisions {precision}: half precision is a variant of the eager runtime on a cuda "
                         f"target only (got runtime {runtime} on {m['device']}); use fp32 or int8 there")
    name = runtime + ("-int8" if precision == "int8" else "")
    dtype = "fp32" if precision == "int8" else precision
    sc = Scenario(device=m["device"], runtime=name, threads=int(m["threads"] or 1), batch=int(m["batch"]),
                  seq_len=int(m["seq_len"]), dtype=dtype)
    return sc.key


def expand_variants(target: str, precisions: str | Sequence[str] = ("fp32",),
                    runtimes: str | Sequence[str] = ("eager",)) -> tuple[str, ...]:
    """Every possible (precision, runtime) pair of the lists on `target`, as scenario keys.

    Pairs that do not exist (fp16 in ONNX Runtime) are left out; every named precision and runtime must
    appear in at least one variant.

    Args:
        target: e.g. `cpu-t2-b1-s64` or `cuda-b1-s64`.
        precisions: fp32, int8, bf16, fp16 (a list or one comma-separated string).
        runtimes: eager, ort (a list or one comma-separated string).

    Returns:
        Scenario keys in precision-major order of the arguments.

    Raises:
        ValueError: an empty or repeated list item, a bad target, or a precision/runtime with no variant.
    """
    precs, rts = split_list(precisions), split_list(runtimes)
    for flag, items in (("--precisions", precs), ("--runtimes", rts)):
        if not items:
            raise ValueError(f"{flag} is empty; name at least one")
        if len(set(items)) != len(items):
            raise ValueError(f"{flag} repeats an item: {','.join(items)}")
    keys, errors = [], {}
    for p in precs:
        for r in rts:
            try:
                keys.append(variant_key(target, p, r))
            except ValueError as e:
                if str(e).startswith("--target"):
                    raise
                errors[p, r] = str(e)
    for p in precs:  # a precision (or runtime) that no pair can use is a mistake, not a pair to skip
        if all((p, r) in errors for r in rts):
            raise ValueError(errors[p, rts[0]])
    for r in rts:
        if all((p, r) in errors for p in precs):
            raise ValueError(errors[precs[0], r])
    return tuple(keys)


def parse_variants(keys: str | Sequence[str]) -> tuple[str, ...]:
    """Scenario keys (comma-separated or a list), checked: each parses, none repeats, one target for all.

    Raises:
        ValueError: naming --scenario.
    """
    out = split_list(keys)
    if not out:
        raise ValueError("--scenario is empty; name a scenario key such as cpu-eager-t2-b1-s128")
    scs = []
    for k in out:
        try:
            scs.append(Scenario.parse(k))
        except ValueError as e:
            raise ValueError(f"--scenario: {e}") from None
    if len(set(out)) != len(out):
        raise ValueError(f"--scenario repeats a key: {','.join(out)}")
    targets = sorted({target_of(s) for s in scs})
    if len(targets) > 1:
        raise ValueError(f"--scenario: the variants of one search share one target (device, threads, batch, "
                         f"sequence length), got {', '.join(targets)}; search each target on its own")
    return out


def resolve_variants(*, scenario: str | Sequence[str] | None = None, target: str | None = None,
                     precisions: str | Sequence[str] | None = None, runtimes: str | Sequence[str] | None = None,
                     default: str | None = None) -> tuple[str, ...]:
    """The variants a command was given: `--scenario` keys, or `--target` with `--precisions`/`--runtimes`
    (defaults fp32 and eager), or `default` (one key or a comma-separated list).

    Raises:
        ValueError: naming the flag: --scenario together with --target, --precisions/--runtimes without
            --target, or any problem of `expand_variants` / `parse_variants`.
    """
    given = split_list(scenario)
    if given and target:
        raise ValueError("--scenario and --target both name the variants: pass one of them")
    if not target and (precisions is not None or runtimes is not None):
        flag = "--precisions" if precisions is not None else "--runtimes"
        raise ValueError(f"{flag} needs --target (e.g. --target cpu-t2-b1-s64 {flag} ...); or name the scenario "
                         "keys with --scenario")
    if target:
        return expand_variants(target, ("fp32",) if precisions is None else precisions,
                               ("eager",) if runtimes is None else runtimes)
    if given:
        return parse_variants(given)
    if default is None:
        raise ValueError("no variant: pass --scenario KEY or --target with --precisions/--runtimes")
    return parse_variants(default)
