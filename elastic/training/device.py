"""Device and numeric precision: the one place that knows about CUDA, MPS, autocast and grad scaling.

Like transformers' `Trainer`, the model code never sees a device or a dtype: callers build a `Runtime`
from the user's `--device` / `--precision`, move models and batches with it, and run forward passes
inside `runtime.autocast()`. The training loop steps through an `Amp` (the fp16 grad scaler when one is
needed). With `Runtime()` (cpu, fp32) every helper is an identity or a no-op, so the CPU fp32 numbers
are exactly those of code that never heard of this module.
"""
from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ContextManager, Iterable, Literal, Mapping, Optional, get_args

if TYPE_CHECKING:  # torch is imported where it is used: the CLI parser imports this module, never torch
    import torch

DeviceSpec = str  # "auto" | "cpu" | "cuda" | "cuda:N" | "mps"
Precision = Literal["fp32", "bf16", "fp16"]
PRECISIONS: tuple[str, ...] = get_args(Precision)
# What `--device` / `--precision` mean when not given (the CLI flags and the pipeline options).
DEFAULT_DEVICE, DEFAULT_PRECISION = "auto", "fp32"


def torch_dtype(precision: Precision) -> "torch.dtype":
    """fp32 -> torch.float32, bf16 -> torch.bfloat16, fp16 -> torch.float16."""
    import torch

    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


_DEVICE_RE = re.compile(r"^(auto|cpu|mps(:0)?|cuda(:\d+)?)$")


class DeviceError(ValueError):
    """A device or precision this machine cannot provide (one line, no traceback in the CLI)."""


def resolve_device(spec: DeviceSpec = "auto") -> torch.device:
    """The torch device for a `--device` value, checked against this machine.

    `auto` is CUDA when present, else cpu. Under torchrun (`LOCAL_RANK` set) a plain `cuda` means this
    process's own GPU, `cuda:LOCAL_RANK`.

    Raises:
        DeviceError: unknown spelling, or a device this machine lacks.
    """
    import torch

    spec = str(spec).strip().lower()
    if not _DEVICE_RE.match(spec):
        raise DeviceError(f"--device must be auto, cpu, cuda, cuda:N or mps, got '{spec}'")
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    if spec == "cpu":
        return torch.device("cpu")
    if spec.startswith("mps"):
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise DeviceError("--device mps: no Apple MPS device on this machine; use --device cpu or auto")
        return torch.device("mps")
    if not torch.cuda.is_available():
        raise DeviceError(f"--device {spec}: no CUDA device on this machine (torch {torch.__version__}, "
                          f"torch.cuda.is_available() is False); use --device cpu or auto")
    index = int(spec.split(":")[1]) if ":" in spec else int(os.environ.get("LOCAL_RANK", "0"))
    if index >= torch.cuda.device_count():
        raise DeviceError(f"--device {spec}: this machine has {torch.cuda.device_count()} CUDA device(s) "
                          f"(0..{torch.cuda.device_count() - 1})")
    return torch.device("cuda", index)


@dataclass(frozen=True)
class Runtime:
    """Where and in which precision a command computes.

    Attributes:
        device: `auto`, `cpu`, `cuda`, `cuda:N` or `mps` (resolved lazily by `torch_device`).
        precision: `fp32` (no autocast), `bf16` or `fp16` (torch.autocast; fp16 trains with a grad
            scaler). Weights stay fp32 in every precision (mixed precision, not half-precision weights).
    """

    device: DeviceSpec = "cpu"
    precision: Precision = "fp32"

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise DeviceError(f"--precision must be one of {', '.join(PRECISIONS)}, got '{self.precision}'")
        if not _DEVICE_RE.match(str(self.device).strip().lower()):
            raise DeviceError(f"--device must be auto, cpu, cuda, cuda:N or mps, got '{self.device}'")

    @property
    def torch_device(self) -> "torch.device":
        return resolve_device(self.device)

    @property
    def dtype(self) -> "torch.dtype":
        return torch_dtype(self.precision)

    def check(self) -> "Runtime":
        """Resolve the device and check the precision works there; returns self so calls chain.

        Raises:
            DeviceError: the device is missing, or bf16 on a GPU without bf16 support.
        """
        import torch

        dev = self.torch_device
        if dev.type == "cuda" and self.precision == "bf16" and not torch.cuda.is_bf16_supported():
            raise DeviceError(f"--precision bf16: {torch.cuda.get_device_name(dev)} has no bf16 support; "
                              "use --precision fp16 or fp32")
        return self

    def describe(self) -> str:
        """E.g. `cpu/fp32`, `cuda:0/bf16`."""
        return f"{self.torch_device}/{self.precision}"

    # ---- moving things ------------------------------------------------------------------------
    def module(self, *modules: Optional["torch.nn.Module"]) -> None:
        """Move models (in place) to the device; None entries are skipped."""
        dev = self.torch_device
        for m in modules:
            if m is not None:
                m.to(dev)

    def batch(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        """A batch dict with its tensors on the device (the same tensors on cpu)."""
        import torch

        dev = self.torch_device
        return {k: v.to(dev, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}

    # ---- precision ------------------------------------------------------------------------------
    def autocast(self) -> ContextManager:
        """`torch.autocast` on the device in the chosen dtype; a null context in fp32."""
        if self.precision == "fp32":
            return contextlib.nullcontext()
        import torch

        return torch.autocast(device_type=self.torch_device.type, dtype=self.dtype)

    def amp(self) -> "Amp":
        """The backward/step helper of a training loop (with a grad scaler in fp16)."""
        return Amp(self)

    def dist_backend(self) -> str:
        """torch.distributed backend: NCCL for CUDA, gloo otherwise."""
        return "nccl" if self.torch_device.type == "cuda" else "gloo"

    def synchronize(self) -> None:
        """Wait for queued kernels (timing must not stop the clock before the GPU is done)."""
        synchronize(self.torch_device)


CPU_FP32 = Runtime()


def synchronize(device: "torch.device | str") -> None:
    """Block until `device` has finished its queued work (no-op on cpu)."""
    import torch

    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    elif dev.type == "mps":
        torch.mps.synchronize()


class Amp:
    """Backward and optimizer step under the runtime's precision.

    fp32 and bf16: plain `backward()`, gradient clipping, `optimizer.step()`. fp16: losses are scaled
    by a `torch.amp.GradScaler`, gradients unscaled before clipping, and steps with inf/NaN gradients
    skipped (the scaler's usual dance).
    """

    def __init__(self, runtime: Runtime) -> None:
        import torch

        self.runtime = runtime
        self.scaler = (torch.amp.GradScaler(runtime.torch_device.type)
                       if runtime.precision == "fp16" else None)

    def backward(self, loss: "torch.Tensor") -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def step(self, optimizer: "torch.optim.Optimizer", params: Iterable["torch.nn.Parameter"],
             max_norm: float) -> None:
        """Clip the global gradient norm to `max_norm`, then step (and update the scale in fp16)."""
        import torch

        params = list(params)
        if self.scaler is None:
            torch.nn.utils.clip_grad_norm_(params, max_norm)
            optimizer.step()
            return
        self.scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(params, max_norm)
        self.scaler.step(optimizer)
        self.scaler.update()


def init_distributed(runtime: Runtime) -> None:
    """Join the torchrun process group (NCCL on CUDA, gloo otherwise); nothing outside torchrun."""
    import torch
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dev = runtime.torch_device
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group(runtime.dist_backend())
