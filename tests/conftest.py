"""Shared fixtures: the tiny seeded BERT of STYLE.md and paths to the shared data."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from elastic.config import BertArch  # noqa: E402
from elastic.model import ElasticBertForSequenceClassification  # noqa: E402

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
TINY = BertArch(num_layers=4, hidden_size=32, num_heads=4, head_dim=8, intermediate_size=64,
                vocab_size=99, max_position_embeddings=64)


@pytest.fixture
def tiny_arch() -> BertArch:
    return TINY


@pytest.fixture
def tiny_model() -> ElasticBertForSequenceClassification:
    """Seeded tiny elastic BERT in eval mode, with non-trivial LayerNorm parameters."""
    torch.manual_seed(0)
    model = ElasticBertForSequenceClassification(TINY, num_labels=3)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm" in name or name.endswith("bias"):
                p.add_(0.1 * torch.randn_like(p))
    return model.eval()


@pytest.fixture
def tiny_batch() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(1, 99, (3, 12), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 8:] = 0
    mask[2, 5:] = 0
    types = torch.zeros_like(ids)
    types[0, 6:] = 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def shared_data(name: str) -> Path:
    """Path of a shared data set, or skip the test when ../shared/data is absent."""
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"{path} is absent (the shared data sets live beside the checkout)")
    return path
