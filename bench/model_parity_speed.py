"""Our elastic BERT (full size) vs transformers' BertForSequenceClassification, same weights.

Writes results/model_parity_speed.{json,md}: median latency ratio ours/HF at batch 1 and batch 32,
sequence 128, 2 threads, and the max abs logit difference on real all-MiniLM-L6-v2 weights.
The two models are timed in paired rounds of alternating order so machine noise hits both alike.

Usage: python -m bench.model_parity_speed [--rounds 30] [--min-time 20]
"""
from __future__ import annotations

import argparse
import sys

import torch
from transformers import BertForSequenceClassification

from bench.common import fingerprint, write_result
from elastic.model.weights import default_teacher_path, load_default_teacher
from profiling.timing import paired_ratio


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=30, help="at least this many paired rounds per batch size")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seq-len", type=int, default=128, help="tokens per sequence (128)")
    ap.add_argument("--min-time", type=float, default=20.0, help="and at least this many seconds of rounds")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ours, tok = load_default_teacher(2)
    ours.eval()
    hf = BertForSequenceClassification.from_pretrained(str(default_teacher_path()), num_labels=2).eval()
    # Same (randomly initialised) head on both sides so logits are comparable.
    hf.classifier.load_state_dict(ours.classifier.state_dict())
    g = torch.Generator().manual_seed(0)
    results, max_diff = {}, 0.0
    for bs in (1, 32):
        ids = torch.randint(1000, 29000, (bs, args.seq_len), generator=g)
        mask = torch.ones_like(ids)
        mask[bs // 2:, args.seq_len * 3 // 4:] = 0  # some padding, as in real batches
        with torch.inference_mode():
            max_diff = max(max_diff, (ours(ids, mask).logits - hf(input_ids=ids, attention_mask=mask).logits)
                           .abs().max().item())
        with torch.inference_mode():
            # Paired rounds, order alternating (ours HF, HF ours, ...): one ratio per round.
            pr = paired_ratio(lambda: ours(ids, mask), lambda: hf(input_ids=ids, attention_mask=mask),
                              threads=args.threads, min_time_s=args.min_time, min_rounds=args.rounds, warmup=2)
        results[bs] = {"ratio": pr["ratio"], "ratio_iqr": pr["ratio_iqr"], "rounds": pr["rounds"],
                       "ours_ms": pr["median_ms"], "hf_ms": pr["ref_median_ms"]}
        settle = pr["settle"]
        print(f"batch {bs}: ours {results[bs]['ours_ms']:.2f} ms, HF {results[bs]['hf_ms']:.2f} ms, "
              f"ratio {results[bs]['ratio']:.3f} (IQR {pr['ratio_iqr']:.3f}, {pr['rounds']} rounds)")
    fp = fingerprint(args.threads)
    data = {"ratio_bs1": results[1]["ratio"], "ratio_bs32": results[32]["ratio"], "max_abs_diff": max_diff,
            "seq_len": args.seq_len, "min_rounds": args.rounds,
            "ratio_iqr_bs1": results[1]["ratio_iqr"], "ratio_iqr_bs32": results[32]["ratio_iqr"],
            "method": "paired rounds alternating the order (A B, B A, ...); median and IQR of per-round ratios",
            "settle": settle,
            "detail": {str(k): v for k, v in results.items()},
            "fingerprint": fp}
    rows = "\n".join(f"| {b} | {r['ours_ms']:.2f} | {r['hf_ms']:.2f} | {r['ratio']:.3f} | {r['ratio_iqr']:.3f} | "
                     f"{r['rounds']} |" for b, r in results.items())
    md = f"""# Model parity and speed: ours vs transformers' BertForSequenceClassification

all-MiniLM-L6-v2 weights (6 layers, hidden 384), sequence {args.seq_len}, {args.threads} threads, eager fp32,
paired rounds: one timed call of each model per round, each after untimed ones of the same model
({settle} here: warm caches, as when serving), the order alternating (ours HF, HF ours, ...), at least
{args.rounds} rounds and {args.min_time:g} s per batch size; the ratio is the median of the per-round ratios,
the times are medians per call.

| batch | ours (ms) | transformers (ms) | ratio ours/HF (target <= 1.02) | IQR of the ratios | rounds |
|---|---|---|---|---|---|
{rows}

Max abs logit difference (real weights, padded batches): {max_diff:.2e}

Hardware: {fp['cpu']}, {fp['logical_cores']} logical cores, torch {fp['torch']}, transformers {fp['transformers']},
1-min load average at the end {fp.get('load_avg_1min', 'n/a')} (other jobs on the machine add noise to both sides alike).
Command: `{' '.join(sys.argv)}`
"""
    write_result("model_parity_speed", data, md)


if __name__ == "__main__":
    main()
