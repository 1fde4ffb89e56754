"""Shared fixtures: the tiny seeded BERT of STYLE.md and paths to the shared data."""
from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from elastic.model.config import BertArch  # noqa: E402
from elastic.model.modeling import ElasticBertForSequenceClassification  # noqa: E402

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
TINY = BertArch(num_layers=4, hidden_size=32, num_heads=4, head_dim=8, intermediate_size=64,
                vocab_size=99, max_position_embeddings=64)
# RoBERTa's differences: positions counted from its padding index 1 (so 2 more rows), one token type.
TINY_ROBERTA = replace(TINY, model_type="roberta", pad_token_id=1, type_vocab_size=1, max_position_embeddings=66,
                       layer_norm_eps=1e-5)
TINY_BY_BACKBONE = {"bert": TINY, "roberta": TINY_ROBERTA}


def seeded_tiny(arch: BertArch = TINY, num_labels: int = 3, seed: int = 0) -> ElasticBertForSequenceClassification:
    """Seeded tiny elastic model in eval mode, with non-trivial LayerNorm/bias values so that a wrong
    copy or key mix-up cannot hide."""
    torch.manual_seed(seed)
    model = ElasticBertForSequenceClassification(arch, num_labels=num_labels)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm" in name or name.endswith("bias"):
                p.add_(0.1 * torch.randn_like(p))
    return model.eval()


def batch_for(arch: BertArch) -> dict[str, torch.Tensor]:
    """A seeded (3, 12) batch with padding; RoBERTa's has its pad id in padded positions and one token type."""
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(1, 99, (3, 12), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 8:] = 0
    mask[2, 5:] = 0
    types = torch.zeros_like(ids)
    if arch.model_type == "roberta":
        ids = torch.where(ids == arch.pad_token_id, ids + 1, ids)
        ids = torch.where(mask.bool(), ids, torch.full_like(ids, arch.pad_token_id))
    else:
        types[0, 6:] = 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


@pytest.fixture
def tiny_arch() -> BertArch:
    return TINY


@pytest.fixture
def tiny_model() -> ElasticBertForSequenceClassification:
    """Seeded tiny elastic BERT in eval mode, with non-trivial LayerNorm parameters."""
    return seeded_tiny(TINY)


@pytest.fixture
def tiny_batch() -> dict[str, torch.Tensor]:
    return batch_for(TINY)


@pytest.fixture(params=sorted(TINY_BY_BACKBONE))
def backbone_model_batch(request) -> tuple[ElasticBertForSequenceClassification, dict[str, torch.Tensor]]:
    """(tiny seeded elastic model, batch) for each supported backbone."""
    arch = TINY_BY_BACKBONE[request.param]
    return seeded_tiny(arch), batch_for(arch)


def shared_data(name: str) -> Path:
    """Path of a shared data set, or skip the test when ../shared/data is absent."""
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"{path} is absent (the shared data sets live beside the checkout)")
    return path


@pytest.fixture(scope="session")
def real_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A runs directory holding one tiny run (`tests.real_run.RUN`) made once per session by the real commands
    (train-teacher ... export): every artifact comes from its own writer. Read-only: copy it to break a file."""
    from tests.real_run import RUN, make_real_run

    root = tmp_path_factory.mktemp("real-runs")
    make_real_run(root, RUN)
    return root
