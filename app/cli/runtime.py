"""The `--device` / `--precision` flags of every computing subcommand, defined once."""
from __future__ import annotations

import argparse

from elastic.training.device import DEFAULT_DEVICE, DEFAULT_PRECISION, PRECISIONS, Runtime


def add_runtime_args(p: argparse.ArgumentParser, *, unset_is_none: bool = False) -> None:
    """Add `--device` and `--precision` to a subcommand (their defaults are defined here only).

    Args:
        unset_is_none: leave unset flags None (`dynabert run` layers presets and config files under its
            flags, and falls back to the defaults here itself).
    """
    p.add_argument("--device", default=None if unset_is_none else DEFAULT_DEVICE,
                   metavar="{auto,cpu,cuda,cuda:N,mps}",
                   help=f"where to compute: auto (CUDA when present, else cpu), cpu, cuda, cuda:N, mps "
                        f"(default {DEFAULT_DEVICE})")
    p.add_argument("--precision", default=None if unset_is_none else DEFAULT_PRECISION, choices=PRECISIONS,
                   help=f"fp32, bf16 or fp16: torch.autocast, fp16 trains with a grad scaler (default "
                        f"{DEFAULT_PRECISION})")


def runtime_from_args(args: argparse.Namespace) -> Runtime:
    """The checked `Runtime` of parsed arguments (a missing device is one `DeviceError` line)."""
    return Runtime(device=args.device, precision=args.precision).check()
