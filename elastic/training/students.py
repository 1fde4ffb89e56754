"""Students of the baseline recipes (DistilBERT- and TinyBERT-style), built from the run's teacher.

A `Student` is an elastic model plus the fixed `SubnetConfig` it always runs at:

- DistilBERT-style: a SMALLER elastic model (`num_layers = depth`) whose layer j is a copy of teacher
  layer `layers[j]` (every other layer by default); it runs at its own full config.
- TinyBERT-style, offline: heads and FFN neurons are cut, hidden size is not, so the student is the
  rewired teacher itself run at a fixed `SubnetConfig` and trained with `subnet=cfg` only. This is exactly
  `extract(rewired_teacher, cfg)` (same function, same trainable weights: units outside `cfg` get no
  gradient and never run); latency and export still go through `extract`.
- TinyBERT-style from a checkpoint (`--student-init`): any HF BERT directory, at its own full config;
  it may have another depth, hidden size or head count than the teacher.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from typing import Optional, Sequence

import torch

from elastic.model.config import BertArch, SubnetConfig
from elastic.training.losses import matched_teacher_indices
from elastic.model.modeling import ElasticBertForSequenceClassification


@dataclass
class Student:
    """A student model and the sub-network it runs.

    Attributes:
        model: the trainable elastic model.
        subnet: the fixed config every forward pass uses (validated against `model.arch`).
        in_teacher: the same network described as a sub-network of the teacher (for `config_json`
            and MACs comparable with the grid); None when the student is not a part of the teacher.
        hidden_map: teacher hidden-state index (embedding output = 0) matched to each student hidden state.
        attention_map: teacher layer whose attention probabilities each student layer matches.
    """

    model: ElasticBertForSequenceClassification
    subnet: SubnetConfig
    in_teacher: Optional[SubnetConfig]
    hidden_map: tuple[int, ...]
    attention_map: tuple[int, ...]

    def __post_init__(self) -> None:
        self.subnet.validate(self.model.arch)
        n = len(self.subnet.layers)
        if len(self.hidden_map) != n + 1 or len(self.attention_map) != n:
            raise ValueError(f"a student with {n} layers needs {n + 1} hidden-map and {n} attention-map entries, "
                             f"got {len(self.hidden_map)} and {len(self.attention_map)}")


def distilbert_layers(num_layers: int, depth: int) -> tuple[int, ...]:
    """Teacher layers copied into a DistilBERT-style student of `depth` layers: every other one from 0.

    Layer j copies teacher layer `(j * num_layers) // depth`: 6 -> 3 keeps (0, 2, 4), 12 -> 6 keeps
    (0, 2, 4, 6, 8, 10), the same layers as DynaBERT's depth multiplier depth/num_layers. (DistilBERT's
    own 12 -> 6 script took 0, 2, 4, 7, 9, 11; pass those explicitly as `layers` to reproduce it.)

    Args:
        num_layers: teacher layers L.
        depth: student layers, 1..L.

    Returns:
        Sorted teacher layer indices.
    """
    if not 1 <= depth <= num_layers:
        raise ValueError(f"DistilBERT student depth must be in 1..{num_layers} (the teacher's layers), got {depth}")
    return tuple((j * num_layers) // depth for j in range(depth))


def teacher_maps(layers: Sequence[int], num_teacher_layers: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Hidden and attention matching for a student made of teacher layers `layers` (DynaBERT's rule).

    Student hidden j matches teacher hidden `[0] + layers[1:] + [L]` (as DynaBERT stage 2); student layer
    j's attention matches the teacher layer that produced that hidden state (TinyBERT takes the last
    layer of each block): for (0, 2, 4) of 6 the maps are (0, 2, 4, 6) and (1, 3, 5).

    Returns:
        (hidden_map, attention_map).
    """
    hidden = tuple(matched_teacher_indices(list(layers), num_teacher_layers))
    return hidden, tuple(i - 1 for i in hidden[1:])


def uniform_teacher_maps(num_student_layers: int, num_teacher_layers: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """TinyBERT's uniform layer mapping for a student of another depth: hidden j <- teacher j*L_t//L_s.

    Returns:
        (hidden_map, attention_map); for 4 student / 12 teacher layers: (0, 3, 6, 9, 12), (2, 5, 8, 11).
    """
    if not 1 <= num_student_layers <= num_teacher_layers:
        raise ValueError(f"the student has {num_student_layers} layers; TinyBERT's layer mapping needs "
                         f"1..{num_teacher_layers} (the teacher's layers)")
    hidden = tuple((j * num_teacher_layers) // num_student_layers for j in range(num_student_layers + 1))
    return hidden, tuple(i - 1 for i in hidden[1:])


@torch.no_grad()
def distilbert_student(teacher: ElasticBertForSequenceClassification, layers: Sequence[int]) -> Student:
    """DistilBERT's initialisation: a `len(layers)`-layer copy of the teacher keeping `layers`.

    Args:
        teacher: the fine-tuned teacher (not modified).
        layers: teacher layers to copy, sorted (e.g. `distilbert_layers(L, depth)`).

    Returns:
        A `Student` whose model has `num_layers = len(layers)`; embeddings, pooler and classifier are
        copies of the teacher's; student layer j equals teacher layer `layers[j]`.
    """
    in_teacher = SubnetConfig.full(teacher.arch)
    in_teacher = SubnetConfig(tuple(layers), in_teacher.heads[:len(layers)],
                              in_teacher.ffn[:len(layers)]).validate(teacher.arch)
    arch: BertArch = replace(teacher.arch, num_layers=len(layers))
    model = ElasticBertForSequenceClassification(
        arch, teacher.num_labels, hidden_dropout_prob=teacher.hidden_dropout_prob,
        attention_probs_dropout_prob=teacher.attention_probs_dropout_prob)
    src = teacher.state_dict()
    state = {}
    for key in model.state_dict():
        parts = key.split(".")
        if key.startswith("bert.encoder.layer."):
            parts[3] = str(layers[int(parts[3])])  # bert.encoder.layer.<j>.… <- teacher layer layers[j]
        state[key] = src[".".join(parts)].clone()
    model.load_state_dict(state, strict=True)
    hidden, attn = teacher_maps(in_teacher.layers, teacher.arch.num_layers)
    return Student(model, SubnetConfig.full(arch), in_teacher, hidden, attn)


def subnet_student(rewired_teacher: ElasticBertForSequenceClassification, cfg: SubnetConfig) -> Student:
    """The offline TinyBERT-style student: the rewired teacher's sub-network `cfg`, run at `cfg` only.

    Equivalent to `extract(rewired_teacher, cfg)` (which keeps the most important heads and neurons,
    as rewiring put them first) but kept as an elastic model so training can use `subnet=cfg`.

    Args:
        rewired_teacher: the rewired fine-tuned teacher (copied, not modified).
        cfg: the sub-network (e.g. `SubnetConfig.uniform(arch, 0.5, 0.5)`).
    """
    cfg.validate(rewired_teacher.arch)
    hidden, attn = teacher_maps(cfg.layers, rewired_teacher.arch.num_layers)
    model = copy.deepcopy(rewired_teacher)
    model.requires_grad_(True)  # a teacher that was frozen for distillation passes on requires_grad=False
    return Student(model, cfg, cfg, hidden, attn)


def checkpoint_student(model: ElasticBertForSequenceClassification, teacher_arch: BertArch) -> Student:
    """A student loaded from any checkpoint (e.g. a real TinyBERT), run at its full config.

    Raises:
        ValueError: another vocabulary (distillation feeds both models the same token ids), or more
            layers than the teacher.
    """
    if model.arch.vocab_size != teacher_arch.vocab_size:
        raise ValueError(f"the student checkpoint has a vocabulary of {model.arch.vocab_size} tokens, the teacher "
                         f"{teacher_arch.vocab_size}: distillation needs the same tokenizer")
    hidden, attn = uniform_teacher_maps(model.arch.num_layers, teacher_arch.num_layers)
    return Student(model, SubnetConfig.full(model.arch), None, hidden, attn)
