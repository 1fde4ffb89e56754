"""TinyBERT-style data augmentation: masked-LM word replacement (off by default).

For each training sentence, `n_per_example` new sentences: every whole word that is a single
word piece is, with probability `p_replace`, masked and replaced by a word sampled from the masked
LM's top-k predictions (all chosen words of a sentence are masked at once, a cheaper variant of
TinyBERT's one-word-at-a-time loop; TinyBERT's GloVe path for multi-piece words is left out).
Augmented sentences keep the source label, which the distillation stages never read: they learn
from the teacher's logits. The masked LM must be a local checkpoint WITH its MLM head.
"""
from __future__ import annotations

import os
from typing import Any, Sequence

import torch
from tqdm.auto import tqdm

from elastic.data.tasks import EncodedSplit, TaskData, encode_split


class AugmentError(ValueError):
    """A masked-LM checkpoint that cannot be used for augmentation."""


def load_mlm(path: str | os.PathLike):
    """(model, tokenizer) of a masked-LM checkpoint directory; a clear error if it lacks the MLM head."""
    from transformers import AutoModelForMaskedLM, AutoTokenizer
    if not os.path.isdir(path):
        raise AugmentError(f"masked-LM checkpoint {path} is not a directory; give a local checkpoint "
                           "(e.g. a downloaded bert-base-uncased)")
    try:
        model, info = AutoModelForMaskedLM.from_pretrained(str(path), output_loading_info=True)
        tokenizer = AutoTokenizer.from_pretrained(str(path))
    except (OSError, ValueError, KeyError) as e:
        raise AugmentError(f"cannot load a masked LM from {path}: {str(e)[:300]}") from None
    head_missing = [k for k in info.get("missing_keys", []) if "predictions" in k or "lm_head" in k]
    if head_missing:
        raise AugmentError(f"{path} has no masked-LM head (missing {head_missing[0]}, ...): augmentation needs a "
                           "checkpoint trained with MLM, e.g. bert-base-uncased; sentence-embedding models "
                           "such as all-MiniLM-L6-v2 have none")
    if tokenizer.mask_token_id is None:
        raise AugmentError(f"the tokenizer in {path} has no [MASK] token")
    return model.eval(), tokenizer


@torch.no_grad()
def augment_texts(texts: Sequence[str], *, n_per_example: int, mlm_checkpoint: str | os.PathLike, seed: int,
                  p_replace: float = 0.4, top_k: int = 15, batch_size: int = 32,
                  progress: bool = False) -> list[str]:
    """New sentences by masked-LM word replacement, `n_per_example` per input, in input order.

    Args:
        texts: source sentences (whitespace-tokenized words).
        n_per_example: augmented copies per sentence.
        mlm_checkpoint: local masked-LM checkpoint directory.
        seed: seeds the word choice and the sampling (a local generator).
        p_replace: probability that an eligible word is replaced.
        top_k: sample replacements among the k most likely tokens.
        batch_size: sentences per masked-LM forward.

    Returns:
        len(texts) * n_per_example sentences: copies of text 0 first, then of text 1, ...
    """
    if n_per_example < 1:
        raise ValueError(f"n_per_example must be >= 1, got {n_per_example}")
    model, tok = load_mlm(mlm_checkpoint)
    g = torch.Generator().manual_seed(seed)
    special = set(tok.all_special_ids)
    jobs: list[tuple[list[str], list[int]]] = []  # (words, indices of words to replace)
    for text in texts:
        words = text.split()
        eligible = [i for i, w in enumerate(words) if any(c.isalpha() for c in w) and len(tok.tokenize(w)) == 1]
        for _ in range(n_per_example):
            pick = [i for i in eligible if float(torch.rand((), generator=g)) < p_replace]
            jobs.append((words, pick))
    out: list[str] = []
    for start in tqdm(range(0, len(jobs), batch_size), desc="augment", disable=not progress):
        chunk = jobs[start:start + batch_size]
        masked = [" ".join(tok.mask_token if i in set(pick) else w for i, w in enumerate(words))
                  for words, pick in chunk]
        enc = tok(masked, padding=True, truncation=True, max_length=128, return_tensors="pt")
        logits = model(**enc).logits  # (B, T, V)
        for row, (words, pick) in enumerate(chunk):
            positions = (enc["input_ids"][row] == tok.mask_token_id).nonzero().flatten().tolist()
            new = list(words)
            for wi, pos in zip(pick, positions):  # truncation may drop trailing masks: those words stay
                cand = [c for c in logits[row, pos].topk(top_k + len(special)).indices.tolist() if c not in special]
                cand = cand[:top_k]
                choice = tok.convert_ids_to_tokens(cand[int(torch.randint(len(cand), (), generator=g))])
                if not choice.startswith("##"):
                    new[wi] = choice
            out.append(" ".join(new))
    return out


def augment_encoded(task: TaskData, train: EncodedSplit, tokenizer: Any, *, n_per_example: int,
                    mlm_checkpoint: str | os.PathLike | None, max_length: int, seed: int) -> EncodedSplit:
    """The training split plus its augmented copies, tokenized by the student's tokenizer.

    `train` must be the first `len(train)` rows of the task's train split (as `elastic.training.stages` builds it).

    Returns:
        An EncodedSplit with the original examples first, then the augmented ones.
    """
    if mlm_checkpoint is None:
        raise AugmentError("--augment needs --mlm-checkpoint DIR (a masked-LM checkpoint with its MLM head)")
    if task.has_pair:
        raise AugmentError("augmentation supports single-sentence tasks only; drop --augment for pair tasks")
    df = task.splits["train"].iloc[:len(train)]
    new = augment_texts(df["text_a"].tolist(), n_per_example=n_per_example, mlm_checkpoint=mlm_checkpoint,
                        seed=seed, progress=True)
    labels = [lab for lab in df["label"].tolist() for _ in range(n_per_example)]
    aug_task = TaskData(task.name, task.text_columns, task.label_names, task.metric, task.is_regression,
                        {"train": df.iloc[:0].__class__({"text_a": new, "label": labels})})
    extra = encode_split(aug_task, "train", tokenizer, max_length)
    return EncodedSplit(train.input_ids + extra.input_ids, train.token_type_ids + extra.token_type_ids,
                        list(train.labels) + list(extra.labels), train.is_regression, train.pad_token_id)
