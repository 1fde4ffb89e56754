"""Our elastic BERT (full size) vs transformers' BertForSequenceClassification, same weights.

Writes results/model_parity_speed.{json,md}: median latency ratio ours/HF at batch 1 and batch 32,
sequence 128, 2 threads, and the max abs logit difference on real all-MiniLM-L6-v2 weights.
The two models are timed in alternating rounds so machine noise hits both alike.

Usage: python -m bench.model_parity_speed [--rounds 7]
"""
from __future__ import annotations

import argparse
import statistics
import sys

import torch
import torch.utils.benchmark as tb
from transformers import BertForSequenceClassification

from bench.common import fingerprint, write_result
from elastic.weights import default_teacher_path, load_default_teacher


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seq-len", type=int, default=128, help="tokens per sequence (128)")
    ap.add_argument("--min-run-time", type=float, default=1.0, help="seconds of timed calls per side per round")
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
        ratios, t_ours, t_hf = [], [], []
        for _ in range(args.rounds):
            with torch.inference_mode():
                a = tb.Timer("m(ids, mask)", globals={"m": ours, "ids": ids, "mask": mask},
                             num_threads=args.threads).blocked_autorange(min_run_time=args.min_run_time).median
                b = tb.Timer("m(input_ids=ids, attention_mask=mask)", globals={"m": hf, "ids": ids, "mask": mask},
                             num_threads=args.threads).blocked_autorange(min_run_time=args.min_run_time).median
            ratios.append(a / b)
            t_ours.append(a * 1e3)
            t_hf.append(b * 1e3)
        results[bs] = {"ratio": statistics.median(ratios), "ours_ms": statistics.median(t_ours),
                       "hf_ms": statistics.median(t_hf), "ratios": ratios}
        print(f"batch {bs}: ours {results[bs]['ours_ms']:.2f} ms, HF {results[bs]['hf_ms']:.2f} ms, "
              f"ratio {results[bs]['ratio']:.3f}")
    fp = fingerprint(args.threads)
    data = {"ratio_bs1": results[1]["ratio"], "ratio_bs32": results[32]["ratio"], "max_abs_diff": max_diff,
            "seq_len": args.seq_len, "rounds": args.rounds, "detail": {str(k): v for k, v in results.items()},
            "fingerprint": fp}
    md = f"""# Model parity and speed: ours vs transformers' BertForSequenceClassification

all-MiniLM-L6-v2 weights (6 layers, hidden 384), sequence {args.seq_len}, {args.threads} threads, eager fp32,
median of {args.rounds} alternating rounds of `torch.utils.benchmark` (each >= {args.min_run_time} s).

| batch | ours (ms) | transformers (ms) | ratio ours/HF (target <= 1.02) |
|---|---|---|---|
| 1 | {results[1]['ours_ms']:.2f} | {results[1]['hf_ms']:.2f} | {results[1]['ratio']:.3f} |
| 32 | {results[32]['ours_ms']:.2f} | {results[32]['hf_ms']:.2f} | {results[32]['ratio']:.3f} |

Max abs logit difference (real weights, padded batches): {max_diff:.2e}

Hardware: {fp['cpu']}, {fp['logical_cores']} logical cores, torch {fp['torch']}, transformers {fp['transformers']},
1-min load average at the end {fp.get('load_avg_1min', 'n/a')} (other jobs on the machine add noise to both sides alike).
Command: `{' '.join(sys.argv)}`
"""
    write_result("model_parity_speed", data, md)


if __name__ == "__main__":
    main()
