"""Resumable training state on disk: the checkpoint of an interrupted run (weights, optimizer, RNGs, the
options it was made with: an `elastic.training.loop.LoopConfig`, typed `Any` here so that the loop can import this
module) and the best-scoring weights of model selection, both written atomically."""
from __future__ import annotations

import json
import math
import os
import random
import shutil
from contextlib import contextmanager
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Iterator, Optional

import torch
from safetensors.torch import load_file, save_file

from elastic.model.weights import load_checkpoint, save_checkpoint


class ResumeError(ValueError):
    """A checkpoint that cannot be resumed with the given options."""


CKPT_STATE = "state.json"


def save_training_state(ckpt_dir: Path, student: torch.nn.Module,
                        optimizer: torch.optim.Optimizer, step: int, rng: random.Random,
                        loop: Any, seconds: float) -> None:
    """Write a resumable checkpoint atomically (a fresh folder renamed over the old one)."""
    with _replaced_atomically(ckpt_dir) as tmp:
        save_checkpoint(student, tmp, {"step": step})
        # Optimizer moments are tensors in nested dicts: torch.save, read back with weights_only=True.
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        rngs = {"torch_rng": torch.get_rng_state()}
        if torch.cuda.is_available() and torch.cuda.is_initialized():  # dropout on a GPU draws from its RNG
            rngs["cuda_rng"] = torch.cuda.get_rng_state()
        save_file(rngs, str(tmp / "rng.safetensors"))
        state = {"step": step, "seconds": seconds, "python_rng": list(rng.getstate()),
                 "loop": _loop_key(loop)}
        (tmp / CKPT_STATE).write_text(json.dumps(state))


@contextmanager
def _replaced_atomically(directory: Path) -> Iterator[Path]:
    """Yield a fresh sibling folder to fill; on success it is renamed over `directory` (a crash at any
    point leaves either the old folder or the new one complete)."""
    tmp = directory.with_name(directory.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    yield tmp
    old = directory.with_name(directory.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if directory.exists():
        os.replace(directory, old)
    os.replace(tmp, directory)
    shutil.rmtree(old, ignore_errors=True)


def _loop_key(loop: Any) -> dict[str, Any]:
    d = asdict(loop)
    for k in ("save_every", "log_every"):  # may change on resume without changing the result
        d.pop(k)
    d["widths"], d["depths"] = list(d["widths"]), list(d["depths"])
    return d


def load_training_state(ckpt_dir: Path, student: torch.nn.Module,
                        optimizer: torch.optim.Optimizer, rng: random.Random, loop: Any) -> tuple[int, float]:
    """Restore weights, optimizer, RNGs from `ckpt_dir`; returns (step, seconds so far)."""
    state = json.loads((ckpt_dir / CKPT_STATE).read_text())
    now = _loop_key(loop)
    # An option added after the checkpoint was written counts as its default (so old checkpoints resume).
    defaults = {f.name: f.default for f in fields(type(loop)) if f.default is not MISSING}
    saved = {**{k: v for k, v in defaults.items() if k in now}, **state["loop"]}
    if saved != now:
        diff = sorted(k for k in saved.keys() | now.keys() if saved.get(k) != now.get(k))
        raise ResumeError(f"cannot resume {ckpt_dir}: it was made with different options ({', '.join(diff)}); "
                          "rerun with the original options or delete the checkpoint to start over")
    model, _ = load_checkpoint(ckpt_dir)
    student.load_state_dict(model.state_dict())
    # map_location: a checkpoint written on a GPU resumes anywhere (load_state_dict moves state to the params)
    optimizer.load_state_dict(torch.load(ckpt_dir / "optimizer.pt", weights_only=True, map_location="cpu"))
    rngs = load_file(str(ckpt_dir / "rng.safetensors"))
    torch.set_rng_state(rngs["torch_rng"])
    if "cuda_rng" in rngs and torch.cuda.is_available():
        torch.cuda.set_rng_state(rngs["cuda_rng"])
    v, internal, gauss = state["python_rng"]
    rng.setstate((v, tuple(internal), gauss))
    return int(state["step"]), float(state["seconds"])


BEST_META = "best.json"


def best_dir(ckpt_dir: Path) -> Path:
    """Where the best-scoring weights of a stage with model selection live (beside its checkpoint)."""
    return ckpt_dir.with_name(ckpt_dir.name + "_best")


def save_best(directory: Path, student: torch.nn.Module, step: int, score: float) -> None:
    """Write the selected weights atomically (a fresh folder renamed over the old one)."""
    with _replaced_atomically(directory) as tmp:
        save_checkpoint(student, tmp, {"step": step, "score": score})
        (tmp / BEST_META).write_text(json.dumps({"step": step, "score": score}))


@dataclass
class TrainResult:
    """Steps run, training seconds, last losses; with model selection, the step and score kept."""

    steps: int
    seconds: float
    last: dict[str, float] = field(default_factory=dict)
    selected_step: Optional[int] = None
    selected_score: Optional[float] = None


class BestWeights:
    """Model selection: the best-scoring weights seen so far, in memory and (with `directory`) on disk, so that
    a resumed run still ends on the best weights of its earlier part.

    Args:
        directory: where the best weights go (`best_dir(ckpt_dir)`); None keeps them in memory only.
        resume: reload the best weights an interrupted run left in `directory`.
    """

    def __init__(self, directory: Optional[Path], *, resume: bool) -> None:
        self.directory = directory
        self.step: Optional[int] = None
        self.score = -math.inf
        self.state: Optional[dict[str, torch.Tensor]] = None
        if resume and directory is not None and (directory / BEST_META).exists():
            meta = json.loads((directory / BEST_META).read_text())
            self.step, self.score = int(meta["step"]), float(meta["score"])
            self.state = load_checkpoint(directory)[0].state_dict()

    def offer(self, model: torch.nn.Module, step: int, score: float) -> bool:
        """Keep `model`'s weights if `score` beats the best so far; True when kept."""
        if score <= self.score:
            return False
        self.step, self.score = step, score
        self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if self.directory is not None:
            save_best(self.directory, model, step, score)
        return True

    def restore(self, model: torch.nn.Module, result: TrainResult) -> None:
        """Load the best weights into `model` (when any were kept) and note them in `result`."""
        if self.state is not None:
            model.load_state_dict(self.state)
            result.selected_step, result.selected_score = self.step, self.score
