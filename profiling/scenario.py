"""Where and how a latency is measured: device, runtime, dtype, threads, batch, sequence length.

Keys: `cpu-eager-t2-b1-s128` (CPU, fp32: as before dtypes existed), `cpu-eager-bf16-t2-b1-s128` (CPU in
another dtype), `cuda-eager-fp16-b1-s128` (GPU: the dtype is always named; no thread count, the GPU's
time does not depend on it).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, get_args

from elastic.model.config import BertArch

Device = Literal["cpu", "cuda"]
Runtime = Literal["eager", "eager-int8", "ort", "ort-int8"]
Dtype = Literal["fp32", "bf16", "fp16"]
DEVICES: tuple[str, ...] = get_args(Device)
RUNTIMES: tuple[str, ...] = get_args(Runtime)
DTYPES: tuple[str, ...] = get_args(Dtype)
_KEY = re.compile(r"^(?P<device>[a-z]+)-(?P<runtime>eager-int8|ort-int8|[a-z0-9]+)(-(?P<dtype>fp32|bf16|fp16))?"
                  r"(-t(?P<threads>-?\d+))?-b(?P<batch>-?\d+)-s(?P<seq_len>-?\d+)$")
_FORM = ("{device}-{runtime}[-{dtype}]-t{threads}-b{batch}-s{seq_len} (cpu) or "
         "cuda-{runtime}-{dtype}-b{batch}-s{seq_len}, e.g. cpu-eager-t2-b1-s128 or cuda-eager-fp16-b1-s128")


@dataclass(frozen=True)
class Scenario:
    """A measurement scenario; its `key` (e.g. `cpu-eager-t2-b1-s128`, `cuda-eager-bf16-b32-s128`) names it
    in every artifact.

    Construction checks what can be checked without a model or a machine (threads, batch, seq_len,
    device and runtime names); `check(arch)` adds the model's position table and this machine's GPU.
    """

    device: str = "cpu"
    runtime: str = "eager"
    threads: int = 2
    batch: int = 1
    seq_len: int = 128
    dtype: str = "fp32"  # eager runtimes run the extracted model in this dtype (ORT and INT8: fp32 only)

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise ValueError(f"scenario device must be one of {list(DEVICES)}, got '{self.device}'")
        if self.runtime not in RUNTIMES:
            raise ValueError(f"scenario runtime must be one of {list(RUNTIMES)}, got '{self.runtime}'")
        if self.dtype not in DTYPES:
            raise ValueError(f"scenario dtype must be one of {list(DTYPES)}, got '{self.dtype}'")
        if self.dtype != "fp32" and self.runtime != "eager":
            raise ValueError(f"scenario dtype {self.dtype} needs runtime eager (runtime '{self.runtime}' "
                             "measures the fp32 or INT8 model)")
        if self.device == "cuda":  # the key names no threads: one host thread launches the GPU's work
            object.__setattr__(self, "threads", 1)
        if self.threads < 1:
            raise ValueError(f"scenario threads must be >= 1, got {self.threads}")
        if self.batch < 1:
            raise ValueError(f"scenario batch must be >= 1, got {self.batch}")
        if self.seq_len < 1:
            raise ValueError(f"scenario seq_len must be >= 1, got {self.seq_len}")

    @property
    def key(self) -> str:
        if self.device == "cuda":
            return f"cuda-{self.runtime}-{self.dtype}-b{self.batch}-s{self.seq_len}"
        dtype = "" if self.dtype == "fp32" else f"-{self.dtype}"
        return f"{self.device}-{self.runtime}{dtype}-t{self.threads}-b{self.batch}-s{self.seq_len}"

    @property
    def uses_ort(self) -> bool:
        return self.runtime.startswith("ort")

    @property
    def int8(self) -> bool:
        return self.runtime.endswith("-int8")

    @classmethod
    def parse(cls, key: str) -> "Scenario":
        """Inverse of `key`.

        Raises:
            ValueError: the key is not of the form of `_FORM`, or names an impossible scenario.
        """
        m = _KEY.match(key.strip())
        if not m:
            raise ValueError(f"scenario key '{key}' is not of the form {_FORM}")
        if m["device"] == "cuda" and (m["threads"] is not None or m["dtype"] is None):
            raise ValueError(f"scenario key '{key}': a cuda key names its dtype and no threads, "
                             "e.g. cuda-eager-fp16-b1-s128")
        if m["device"] != "cuda" and m["threads"] is None:
            raise ValueError(f"scenario key '{key}' lacks -t{{threads}}, e.g. cpu-eager-t2-b1-s128")
        sc = cls(device=m["device"], runtime=m["runtime"], threads=int(m["threads"] or 1),
                 batch=int(m["batch"]), seq_len=int(m["seq_len"]), dtype=m["dtype"] or "fp32")
        if sc.key != key.strip():  # one spelling per scenario (cpu fp32 never names its dtype)
            raise ValueError(f"scenario key '{key}' is spelled '{sc.key}'")
        return sc

    def check(self, arch: BertArch) -> "Scenario":
        """Check the scenario can run this model on this machine; returns self.

        Raises:
            ValueError: sequence longer than the position table, cuda without a GPU, ORT on cuda.
        """
        if self.seq_len > arch.max_seq_len:
            raise ValueError(f"scenario seq_len {self.seq_len} is longer than the model's position table "
                             f"({arch.max_seq_len} positions); use a length <= {arch.max_seq_len} "
                             f"(--max-length, or the s<N> part of a --scenario key)")
        if self.device == "cuda":
            import torch

            if not torch.cuda.is_available():
                raise ValueError("scenario device 'cuda' but this machine has no usable GPU "
                                 "(torch.cuda.is_available() is False); use device cpu")
            if self.dtype == "bf16" and not torch.cuda.is_bf16_supported():
                raise ValueError(f"scenario dtype bf16: {torch.cuda.get_device_name(0)} has no bf16 support")
            if self.uses_ort:
                import onnxruntime as ort

                if "CUDAExecutionProvider" not in ort.get_available_providers():
                    raise ValueError(f"scenario runtime '{self.runtime}' on cuda needs onnxruntime-gpu "
                                     "(CUDAExecutionProvider is not available)")
        return self
