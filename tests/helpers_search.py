"""Helpers (not fixtures): a tiny, complete run directory for search and export tests, its tokenizers.

It holds what training would leave: run.json (task_spec, seed, max_length, task meta), tokenizer/, a
finished stage2/ checkpoint of the tiny seeded BERT, and a small local CSV task whose labels depend on
the tokens (so sub-networks differ in accuracy).
"""
from __future__ import annotations

import json
import random
from pathlib import Path

import torch

from elastic.model.config import BertArch
from elastic.model.modeling import ElasticBertForSequenceClassification
from elastic.model.weights import save_checkpoint
from tests.conftest import TINY, seeded_tiny

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(94)]
SCENARIO = "cpu-eager-t1-b1-s16"


def tiny_tokenizer():
    from transformers import BertTokenizer

    return BertTokenizer(vocab={w: i for i, w in enumerate(WORDS)})


def tiny_roberta_tokenizer(words: list[str] = WORDS[5:]):
    """A RoBERTa (byte-level BPE) tokenizer built offline: ids 0..4 are RoBERTa's specials (`<s>`, `<pad>`,
    `</s>`, `<unk>`, `<mask>`), then every character of `words`, alone and after the space mark `Ġ`
    (byte-level pre-tokenization splits letters from digits, so `w12` is `w`, `12`... character pieces)."""
    from transformers import RobertaTokenizer

    vocab = {t: i for i, t in enumerate(["<s>", "<pad>", "</s>", "<unk>", "<mask>", "Ġ"])}
    chars = sorted({c for w in words for c in w})
    for c in chars:
        vocab.setdefault(c, len(vocab))
    for c in chars:
        vocab.setdefault("Ġ" + c, len(vocab))
    return RobertaTokenizer(vocab=vocab, merges=[("Ġ", c) for c in chars])


def tiny_elastic(num_labels: int = 2, seed: int = 0, arch: BertArch = TINY) -> ElasticBertForSequenceClassification:
    return seeded_tiny(arch, num_labels, seed)


def _calibrate(model: ElasticBertForSequenceClassification) -> None:
    """Scale the random classifier up and centre it so that the full model predicts both classes
    about equally often and sub-networks (different pooled outputs) flip many predictions."""
    rng, tok = random.Random(1), tiny_tokenizer()
    texts = [" ".join(f"w{rng.randrange(94)}" for _ in range(rng.randint(3, 10))) for _ in range(200)]
    enc = tok(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        model.classifier.weight.mul_(200.0)
        logits = model(enc["input_ids"], enc["attention_mask"]).logits
        model.classifier.bias[1] -= (logits[:, 1] - logits[:, 0]).median()


def _write_task(d: Path, n: dict[str, int], model: ElasticBertForSequenceClassification) -> None:
    """Random sentences labelled by the full model itself (15% flipped): the full network scores
    about 85% and sub-networks that compute something else score less, so the search has a front."""
    rng, tok = random.Random(0), tiny_tokenizer()
    d.mkdir(parents=True)
    for split, count in n.items():
        texts = [" ".join(f"w{rng.randrange(94)}" for _ in range(rng.randint(3, 10))) for _ in range(count)]
        enc = tok(texts, padding=True, return_tensors="pt")
        with torch.no_grad():
            logits = model(enc["input_ids"], enc["attention_mask"]).logits
        labels = logits.argmax(-1).tolist()
        lines = ["sentence,label"]
        for text, label in zip(texts, labels):
            label = 1 - label if rng.random() < 0.15 else label
            lines.append(f"{text},{'pos' if label else 'neg'}")
        (d / f"{split}.csv").write_text("\n".join(lines) + "\n")


def make_tiny_run(root: Path, *, n_dev: int = 40, heldout: int = 0) -> Path:
    """Build `root/run` (a trained-looking run dir) and return it; `heldout` > 0 records that many of the last
    train examples as the held-out slice (as training with --importance-split train-heldout does)."""
    from elastic.data.tasks import load_task

    data, run = root / "task", root / "run"
    model = tiny_elastic(2)
    _calibrate(model)
    _write_task(data, {"train": 40, "dev": n_dev, "test": 30}, model)
    task = load_task(str(data), seed=42)
    assert task.label_names == ["neg", "pos"], task.label_names
    run.mkdir(parents=True)
    tiny_tokenizer().save_pretrained(str(run / "tokenizer"))
    for stage in ("teacher", "stage1", "stage2"):
        save_checkpoint(model, run / stage)
        (run / stage / "done.json").write_text(json.dumps({"steps": 10, "epochs": 1.0, "seconds": 1.0,
                                                           "finished_at": "2026-01-01T00:00:00+00:00"}))
    (run / "run.json").write_text(json.dumps({
        "task_spec": str(data), "task": task.to_meta(), "metric": task.metric, "seed": 42, "max_length": 16,
        "teacher": "tiny-random", "created": "2026-01-01T00:00:00+00:00",
        "stage_seconds": {"teacher": 1.0, "stage1": 2.0, "stage2": 3.0},
        "options": {"stage2": {"epochs": 1, "batch_size": 32, "lr": 2e-5}},
        **({"heldout_examples": heldout, "importance_split": "train-heldout"} if heldout else {})}, indent=2))
    return run
