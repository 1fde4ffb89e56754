"""Step-level equivalence with the released DynaBERT code (`../shared/reference/official-dynabert`).

The released `run_glue.py` is imported from where it lies (never copied, never edited) and run on a tiny
random BERT, the same initial weights loaded into both codes and the same batches in the same order:
- rewiring: its `compute_neuron_head_importance` + `reorder_neuron_head` vs our `compute_importance`
  (`grads="cumulative"`, file order, batch 8: the released behaviour) + `rewire`;
- stage 1 (`dynabertw --data_aug`) and stage 2 (`dynabert`): its real `train()` for 3 optimizer steps vs
  our `train_stage` with `pad_to_length=max_seq_length`; every sub-network's loss at every step and every
  weight after the last step must agree.
Our options that differ from our defaults here are the released recipe's (`padding max_length`,
importance grads `cumulative`, order `file`, batch 8). Dropout is 0 in both codes: the two models draw
their dropout masks in a different order from torch's RNG, so equal masks are impossible; with dropout 0
everything else (order of sub-networks, loss terms and weights, reductions, clipping, AdamW, schedule,
hidden-state matching, width rounding) is compared exactly.
"""
from __future__ import annotations

import argparse
import importlib
import random
import sys
import types
from pathlib import Path

import pytest
import torch

from elastic.model.config import BertArch
from elastic.data.tasks import EncodedSplit, encode_split, load_task, make_loader
from elastic.model.modeling import ElasticBertForSequenceClassification
from elastic.training.rewire import compute_importance, rewire
from elastic.training.loop import BatchPlan, LoopConfig
from elastic.training.train import Stage, train_stage

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
REF = SHARED / "reference" / "official-dynabert"
pytestmark = pytest.mark.skipif(
    not (REF / "run_glue.py").is_file(),
    reason=f"the released DynaBERT code is absent ({REF}): put the shared/ folder beside the checkout")

ARCH = BertArch(num_layers=4, hidden_size=64, num_heads=4, head_dim=16, intermediate_size=128, vocab_size=60,
                max_position_embeddings=64)
MAX_LEN, BATCH, N_TRAIN, N_DEV = 16, 8, 12, 20  # 12 sentences + their copy (--data_aug) = 3 steps of 8
WIDTHS, DEPTHS = (1.0, 0.75, 0.5, 0.25), (1.0, 0.75, 0.5)
LR = 2e-5
RTOL = 1e-5


# ---- the released code, imported in place ----------------------------------------------------------
def _import_released() -> types.ModuleType:
    """Import `run_glue` with its vendored transformers 2.1.1 (shadowing the installed one only while
    importing); six/boto3/botocore, imported for downloads only, are stubbed when missing."""
    saved = {k: sys.modules.pop(k) for k in list(sys.modules) if k == "transformers" or k.startswith("transformers.")}
    stubs = [n for n in ("six", "boto3", "botocore", "botocore.config", "botocore.exceptions") if n not in sys.modules]
    for name in stubs:
        sys.modules[name] = types.ModuleType(name)
    if "six" in stubs:
        sys.modules["six"].PY2, sys.modules["six"].string_types = False, (str,)
    if "botocore.config" in stubs:
        sys.modules["botocore.config"].Config = object
    if "botocore.exceptions" in stubs:
        sys.modules["botocore.exceptions"].ClientError = Exception
    sys.path.insert(0, str(REF))
    dont_write = sys.dont_write_bytecode
    sys.dont_write_bytecode = True  # leave the released folder as it is (no __pycache__)
    try:
        return importlib.import_module("run_glue")
    finally:
        sys.dont_write_bytecode = dont_write
        sys.path.remove(str(REF))
        sys.modules.pop("run_glue", None)
        for k in [k for k in sys.modules if k == "transformers" or k.startswith("transformers.")]:
            del sys.modules[k]  # the vendored modules stay reachable through run_glue's globals
        for name in stubs:
            sys.modules.pop(name, None)
        sys.modules.update(saved)


@pytest.fixture(scope="module")
def rg() -> types.ModuleType:
    return _import_released()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """GLUE-layout SST-2 of random words over a small vocabulary."""
    root = tmp_path_factory.mktemp("parity")
    words = [f"w{i}" for i in range(ARCH.vocab_size - 5)]
    (root / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n")
    rng = random.Random(0)

    def rows(n: int, longest: int) -> str:
        return "sentence\tlabel\n" + "".join(
            " ".join(rng.choice(words) for _ in range(rng.randint(2, longest))) + f"\t{rng.randint(0, 1)}\n"
            for _ in range(n))
    d = root / "SST-2"
    d.mkdir()
    (d / "train.tsv").write_text(rows(N_TRAIN, 10))  # training batches shorter than MAX_LEN: padding matters
    (d / "dev.tsv").write_text(rows(N_DEV, 20))  # some truncated
    # --data_aug reads this file; a copy of train keeps the distillation path on (as the reference run).
    (d / "train_SST-2_aug_with_logits.tsv").write_text((d / "train.tsv").read_text())
    return d


def released_args(data_dir: Path, out: Path, phase: str) -> argparse.Namespace:
    """The namespace `run_glue.main()` would build (its defaults) for one stage; no evaluation."""
    return argparse.Namespace(
        data_dir=str(data_dir), output_dir=str(out), model_type="bert", task_name="sst-2", output_mode="classification",
        max_seq_length=MAX_LEN, per_gpu_train_batch_size=BATCH, per_gpu_eval_batch_size=8,
        gradient_accumulation_steps=1, learning_rate=LR, weight_decay=0.0, num_train_epochs=1.0, warmup_steps=0,
        logging_steps=10_000, evaluate_during_training=False, seed=42, data_aug=True, training_phase=phase,
        width_mult_list=list(WIDTHS), depth_mult_list=list(DEPTHS) if phase == "dynabert" else [1.0],
        width_lambda1=1.0, width_lambda2=0.1, depth_lambda1=1.0, depth_lambda2=1.0,
        n_gpu=0, device=torch.device("cpu"), do_lower_case=True)


def released_model(rg: types.ModuleType, state: dict[str, torch.Tensor]):
    cfg = rg.BertConfig(vocab_size_or_config_json_file=ARCH.vocab_size, hidden_size=ARCH.hidden_size,
                        num_hidden_layers=ARCH.num_layers, num_attention_heads=ARCH.num_heads,
                        intermediate_size=ARCH.intermediate_size, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0, max_position_embeddings=ARCH.max_position_embeddings,
                        num_labels=2)
    cfg.output_attentions, cfg.output_hidden_states, cfg.output_intermediate = True, True, True  # as its main()
    model = rg.BertForSequenceClassification(cfg)
    model.load_state_dict(state)
    return model.eval()  # its from_pretrained() returns models in eval mode


def our_model(state: dict[str, torch.Tensor]) -> ElasticBertForSequenceClassification:
    model = ElasticBertForSequenceClassification(ARCH, 2, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    model.load_state_dict(state)  # the released keys (bert.*, classifier.*) are ours
    return model.eval()


@pytest.fixture(scope="module")
def init_state() -> dict[str, torch.Tensor]:
    """Random initial weights (our init, with non-trivial LayerNorms and biases)."""
    torch.manual_seed(0)
    model = ElasticBertForSequenceClassification(ARCH, 2)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm" in name or name.endswith("bias"):
                p.add_(0.1 * torch.randn_like(p))
    return {k: v.clone() for k, v in model.state_dict().items()}


def our_split(data_dir: Path, split: str) -> EncodedSplit:
    from transformers import BertTokenizerFast
    tok = BertTokenizerFast(vocab=str(data_dir.parent / "vocab.txt"), do_lower_case=True)
    return encode_split(load_task(str(data_dir)), split, tok, MAX_LEN)


def released_tokenizer(rg: types.ModuleType, data_dir: Path):
    return rg.BertTokenizer(str(data_dir.parent / "vocab.txt"), do_lower_case=True)


class Recorder(torch.nn.Module):
    """The released teacher, recording the batches `train()` feeds it (its data order)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model, self.batches = model, []

    def forward(self, **inputs):
        self.batches.append({k: v.clone() for k, v in inputs.items()})
        return self.model(**inputs)


def run_released(rg, monkeypatch, args, student, teacher) -> tuple[list[float], list[dict[str, torch.Tensor]]]:
    """Its real `train()`; returns every sub-network's loss (it prints each) and the batches of each step."""
    losses: list[float] = []
    monkeypatch.setattr(rg, "print", lambda *a, **k: losses.extend(float(x.detach()) for x in a if torch.is_tensor(x)),
                        raising=False)
    dataset = rg.load_and_cache_examples(args, args.task_name, released_tokenizer(rg, Path(args.data_dir)))
    rec = Recorder(teacher)
    rg.train(args, dataset, student, None, rec)
    per_step = 1 if args.training_phase == "dynabertw" else len(args.width_mult_list)  # it re-runs the teacher
    return losses, rec.batches[::per_step]


def in_our_order(batches: list[dict[str, torch.Tensor]], seed: int) -> EncodedSplit:
    """An EncodedSplit laid out so that our BatchPlan(seed) yields exactly `batches`, step by step."""
    rows = [(b["input_ids"][r], b["token_type_ids"][r], b["attention_mask"][r], int(b["labels"][r]))
            for b in batches for r in range(b["input_ids"].shape[0])]
    probe = EncodedSplit([[0]] * len(rows), [[0]] * len(rows), [0] * len(rows), False, 0)
    plan = BatchPlan(probe, BATCH, seed)
    slots: list = [None] * len(rows)
    for step in range(len(batches)):
        for r, i in enumerate(plan.indices(step)):
            slots[i] = rows[step * BATCH + r]
    n = [int(m.sum()) for _, _, m, _ in slots]
    return EncodedSplit([ids[:k].tolist() for (ids, _, _, _), k in zip(slots, n)],
                        [tt[:k].tolist() for (_, tt, _, _), k in zip(slots, n)], [s[3] for s in slots], False, 0)


def run_ours(monkeypatch, stage: Stage, student, teacher, data: EncodedSplit, steps: int, *,
             pad_to_length: int = MAX_LEN, adam_eps: str = "released", hidden: list[float] | None = None) -> list[float]:
    """Our `train_stage` at the released recipe (unless told otherwise); every sub-network's loss (and, into
    `hidden`, its hidden-state MSE term)."""
    import elastic.training.train as train_mod
    losses: list[float] = []
    from elastic.training.losses import distillation_loss as real  # not train_mod's: an earlier call may have wrapped it

    def recording(*a, **k):
        loss, parts = real(*a, **k)
        losses.append(float(loss.detach()))
        if hidden is not None:
            hidden.append(parts["hidden"])
        return loss, parts
    monkeypatch.setattr(train_mod, "distillation_loss", recording)
    loop = LoopConfig(total_steps=steps, batch_size=BATCH, lr=LR, seed=42, widths=WIDTHS,
                      depths=DEPTHS if stage is Stage.STAGE2 else (1.0,), pad_to_length=pad_to_length, adam_eps=adam_eps,
                      subnet_forward="separate", log_every=1000)
    train_stage(student, teacher, stage, data, loop, is_regression=False, progress=False)
    return losses


def assert_same_weights(ours: torch.nn.Module, released: torch.nn.Module, start: dict[str, torch.Tensor]) -> None:
    """Every weight equal (relative RTOL), and the update itself (after - start) close too, so that a
    step of the wrong size cannot hide behind weights that barely move."""
    r_state = released.state_dict()
    for k, v in ours.state_dict().items():
        torch.testing.assert_close(v, r_state[k], rtol=RTOL, atol=1e-7, msg=lambda m: f"weight {k}: {m}")
        upd_o, upd_r = v - start[k], r_state[k] - start[k]
        scale = float(upd_r.abs().max())
        if scale > 0:
            assert float((upd_o - upd_r).abs().max()) <= 1e-2 * scale, f"update of {k} differs"
    moved = sum(float((r_state[k] - start[k]).abs().max()) > 0 for k in r_state)
    assert moved > len(r_state) // 2, "training moved almost no weight: the comparison would be vacuous"


def test_tokenized_and_padded_like_released(rg, data_dir):
    """Our tokenization + `pad_to_length` give the released code's input tensors (same vocab, same text)."""
    args = released_args(data_dir, data_dir / "out", "dynabertw")
    released = rg.load_and_cache_examples(args, "sst-2", released_tokenizer(rg, data_dir), evaluate=True)
    ours = next(iter(make_loader(our_split(data_dir, "dev"), N_DEV, shuffle=False, pad_to_length=MAX_LEN)))
    for i, key in enumerate(("input_ids", "attention_mask", "token_type_ids", "labels")):
        assert torch.equal(ours[key], released.tensors[i]), key


def test_rewiring_matches_released(rg, data_dir, init_state):
    args = released_args(data_dir, data_dir / "out", "dynabertw")
    ref = released_model(rg, init_state)
    r_head, r_ffn = rg.compute_neuron_head_importance(args, ref, released_tokenizer(rg, data_dir))
    rg.reorder_neuron_head(ref, r_head, r_ffn)
    model = our_model(init_state)
    loader = make_loader(our_split(data_dir, "dev"), 8, shuffle=False, pad_to_length=MAX_LEN)  # its eval batches
    head, ffn, n = compute_importance(model, loader, is_regression=False, grads="cumulative")
    assert n == N_DEV
    torch.testing.assert_close(head, r_head.detach(), rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(ffn, torch.stack([x.detach() for x in r_ffn]), rtol=1e-5, atol=1e-7)
    per_batch, _, _ = compute_importance(our_model(init_state), loader, is_regression=False)
    assert not torch.allclose(per_batch, head), "the two gradient modes must differ, or the option is vacuous"
    rewire(model, head, ffn)
    ref_state = ref.state_dict()
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, ref_state[k], rtol=1e-5, atol=1e-7, msg=lambda m: f"rewired {k}: {m}")


@pytest.fixture(scope="module")
def released_stage1(rg, data_dir, init_state, tmp_path_factory) -> dict:
    """The released stage 1 (rewiring included) run once: its start weights, losses, batches and trained model."""
    args = released_args(data_dir, tmp_path_factory.mktemp("stage1"), "dynabertw")
    student = released_model(rg, init_state)
    head, ffn = rg.compute_neuron_head_importance(args, student, released_tokenizer(rg, data_dir))
    rg.reorder_neuron_head(student, head, ffn)
    start = {k: v.clone() for k, v in student.state_dict().items()}
    with pytest.MonkeyPatch.context() as mp:
        r_losses, batches = run_released(rg, mp, args, student, released_model(rg, init_state))
    return {"start": start, "losses": r_losses, "batches": batches, "model": student}


def test_stage1_steps_match_released(released_stage1, init_state, monkeypatch):
    r = released_stage1
    assert len(r["batches"]) == 3 and len(r["losses"]) == 3 * len(WIDTHS)
    ours = our_model(r["start"])
    losses = run_ours(monkeypatch, Stage.STAGE1, ours, our_model(init_state), in_our_order(r["batches"], 42), 3)
    torch.testing.assert_close(torch.tensor(losses), torch.tensor(r["losses"]), rtol=RTOL, atol=0)
    assert_same_weights(ours, r["model"], r["start"])


def test_stage2_steps_match_released(rg, data_dir, init_state, monkeypatch, tmp_path):
    args = released_args(data_dir, tmp_path, "dynabert")
    student = released_model(rg, init_state)
    r_losses, batches = run_released(rg, monkeypatch, args, student, released_model(rg, init_state))
    assert len(batches) == 3 and len(r_losses) == 3 * len(WIDTHS) * len(DEPTHS)
    ours = our_model(init_state)
    losses = run_ours(monkeypatch, Stage.STAGE2, ours, our_model(init_state), in_our_order(batches, 42), 3)
    torch.testing.assert_close(torch.tensor(losses), torch.tensor(r_losses), rtol=RTOL, atol=0)
    assert_same_weights(ours, student, init_state)


def test_our_defaults_are_not_the_released_recipe(released_stage1, init_state, monkeypatch):
    """The options are not vacuous: our default padding (to the longest example) changes the hidden-state MSE
    (the released code averages it over padded positions too), and torch's AdamW eps takes the weights out of
    the parity tolerance (parameters with tiny gradients move more in the first steps)."""
    r = released_stage1
    data = in_our_order(r["batches"], 42)
    hidden_longest: list[float] = []
    hidden_max: list[float] = []
    losses = run_ours(monkeypatch, Stage.STAGE1, our_model(r["start"]), our_model(init_state), data, 3,
                      pad_to_length=0, hidden=hidden_longest)
    run_ours(monkeypatch, Stage.STAGE1, our_model(r["start"]), our_model(init_state), data, 3, hidden=hidden_max)
    assert losses != r["losses"], "padding to the longest example left every loss bit-identical"
    h_l, h_m = torch.tensor(hidden_longest[len(WIDTHS):]), torch.tensor(hidden_max[len(WIDTHS):])  # after step 1
    rel = ((h_l - h_m).abs() / h_m.abs()).max()
    assert rel > 1e-2, f"padding to the longest example changed the hidden-state MSE by only {rel:.1e} (relative)"
    ours = our_model(r["start"])
    run_ours(monkeypatch, Stage.STAGE1, ours, our_model(init_state), data, 3, adam_eps="torch")
    with pytest.raises(AssertionError, match="weight|update"):
        assert_same_weights(ours, r["model"], r["start"])


def test_real_sst2_dev_tokenized_like_released(rg, tmp_path):
    """On the real SST-2 dev set with the embedded teacher's vocabulary, our fast tokenizer gives the released
    (2019, pure-Python) tokenizer's ids for every sentence (max length 64, as the reference run)."""
    sst2 = SHARED / "data" / "sst2"
    if not (sst2 / "dev.tsv").exists():
        pytest.skip(f"{sst2} is absent")
    from bench.step_time_vs_released import write_vocab
    from elastic.model.weights import default_teacher_path, load_tokenizer
    write_vocab(default_teacher_path(), tmp_path / "vocab.txt")
    feats = rg.convert_examples_to_features(rg.processors["sst-2"]().get_dev_examples(str(sst2)),
                                            rg.BertTokenizer(str(tmp_path / "vocab.txt"), do_lower_case=True),
                                            label_list=["0", "1"], max_length=64, output_mode="classification")
    ours = encode_split(load_task(str(sst2)), "dev", load_tokenizer(default_teacher_path()), 64)
    assert len(feats) == len(ours) == 872
    bad = [i for i, f in enumerate(feats) if f.input_ids[:sum(f.attention_mask)] != ours.input_ids[i]
           or f.label != ours.labels[i]]
    assert not bad, f"{len(bad)} dev sentences tokenized differently, first: {bad[:5]}"
