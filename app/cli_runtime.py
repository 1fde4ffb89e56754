"""The `--device` / `--precision` flags of every computing subcommand, defined once."""
from __future__ import annotations

import argparse

from elastic.device import PRECISIONS, Runtime


def add_runtime_args(p: argparse.ArgumentParser) -> None:
    """Add `--device` and `--precision` to a subcommand (each default defined here only)."""
    p.add_argument("--device", default="auto", metavar="{auto,cpu,cuda,cuda:N,mps}",
                   help="where to compute: auto (CUDA when present, else cpu; default), cpu, cuda, cuda:N, mps")
    p.add_argument("--precision", default="fp32", choices=PRECISIONS,
                   help="fp32 (default), bf16 or fp16 (torch.autocast; fp16 trains with a grad scaler)")


def runtime_from_args(args: argparse.Namespace) -> Runtime:
    """The checked `Runtime` of parsed arguments (a missing device is one `DeviceError` line)."""
    return Runtime(device=args.device, precision=args.precision).check()
