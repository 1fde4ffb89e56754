"""Where and how a latency is measured: device, runtime, threads, batch, sequence length."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, get_args

from elastic.config import BertArch

Device = Literal["cpu", "cuda"]
Runtime = Literal["eager", "eager-int8", "ort", "ort-int8"]
DEVICES: tuple[str, ...] = get_args(Device)
RUNTIMES: tuple[str, ...] = get_args(Runtime)
_KEY = re.compile(r"^(?P<device>[a-z]+)-(?P<runtime>[a-z0-9-]+?)-t(?P<threads>-?\d+)-b(?P<batch>-?\d+)"
                  r"-s(?P<seq_len>-?\d+)$")


@dataclass(frozen=True)
class Scenario:
    """A measurement scenario; its `key` (e.g. `cpu-eager-t2-b1-s128`) names it in every artifact.

    Construction checks what can be checked without a model or a machine (threads, batch, seq_len,
    device and runtime names); `check(arch)` adds the model's position table and this machine's GPU.
    """

    device: str = "cpu"
    runtime: str = "eager"
    threads: int = 2
    batch: int = 1
    seq_len: int = 128

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise ValueError(f"scenario device must be one of {list(DEVICES)}, got '{self.device}'")
        if self.runtime not in RUNTIMES:
            raise ValueError(f"scenario runtime must be one of {list(RUNTIMES)}, got '{self.runtime}'")
        if self.threads < 1:
            raise ValueError(f"scenario threads must be >= 1, got {self.threads}")
        if self.batch < 1:
            raise ValueError(f"scenario batch must be >= 1, got {self.batch}")
        if self.seq_len < 1:
            raise ValueError(f"scenario seq_len must be >= 1, got {self.seq_len}")

    @property
    def key(self) -> str:
        return f"{self.device}-{self.runtime}-t{self.threads}-b{self.batch}-s{self.seq_len}"

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
            ValueError: the key does not have the form `{device}-{runtime}-t{threads}-b{batch}-s{seq_len}`.
        """
        m = _KEY.match(key.strip())
        if not m:
            raise ValueError(f"scenario key '{key}' is not of the form "
                             "{device}-{runtime}-t{threads}-b{batch}-s{seq_len}, e.g. cpu-eager-t2-b1-s128")
        return cls(device=m["device"], runtime=m["runtime"], threads=int(m["threads"]),
                   batch=int(m["batch"]), seq_len=int(m["seq_len"]))

    def check(self, arch: BertArch) -> "Scenario":
        """Check the scenario can run this model on this machine; returns self.

        Raises:
            ValueError: sequence longer than the position table, cuda without a GPU, ORT on cuda.
        """
        if self.seq_len > arch.max_position_embeddings:
            raise ValueError(f"scenario seq_len {self.seq_len} is longer than the model's position table "
                             f"({arch.max_position_embeddings} positions); use a length <= {arch.max_position_embeddings} "
                             f"(--max-length, or the s<N> part of a --scenario key)")
        if self.device == "cuda":
            import torch

            if not torch.cuda.is_available():
                raise ValueError("scenario device 'cuda' but this machine has no usable GPU "
                                 "(torch.cuda.is_available() is False); use device cpu")
            if self.uses_ort:
                import onnxruntime as ort

                if "CUDAExecutionProvider" not in ort.get_available_providers():
                    raise ValueError(f"scenario runtime '{self.runtime}' on cuda needs onnxruntime-gpu "
                                     "(CUDAExecutionProvider is not available)")
        return self
