#!/usr/bin/env python3
"""Training tokens/s on CPU: refinery's Transformer next to Hugging Face ``LlamaForCausalLM`` with the same
shape (width, depth, heads, feed-forward size, vocabulary, sequence length, batch), in the same run.

    .venv/bin/python benchmarks/bench_train_cpu.py            # needs `pip install transformers`
    .venv/bin/python benchmarks/bench_train_cpu.py --quick
    .venv/bin/python benchmarks/bench_train_cpu.py --compile    # both models under torch.compile

One step = forward, cross-entropy, backward and an AdamW step (torch's fused AdamW on both sides: refinery's
trainer and HF's ``Trainer`` both default to it), on a fixed random batch; both models in the same process
and precision, interleaved, best of the repeats.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SHAPES = [  # (name, vocab, d_model, layers, heads, d_ff, context, batch)
    ("demo (workflows/train.toml)", 2048, 128, 4, 4, 384, 128, 16),
    ("small", 8192, 256, 6, 8, 704, 256, 8),
    ("medium", 8192, 384, 6, 6, 1024, 256, 8),
    ("GPT-2-small-like", 32000, 768, 12, 12, 2048, 512, 2),
]


def models(vocab, d, layers, heads, ff, context):
    from transformers import LlamaConfig, LlamaForCausalLM

    from trainer.model import Transformer
    from trainer.model_config import ModelConfig

    ours = Transformer(
        ModelConfig(vocab_size=vocab, d_model=d, n_layers=layers, n_heads=heads, d_ff=ff, context_length=context)
    )
    hf = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=vocab,
            hidden_size=d,
            intermediate_size=ff,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            num_key_value_heads=heads,
            max_position_embeddings=context,
            tie_word_embeddings=True,
            rms_norm_eps=1e-5,
            attn_implementation="sdpa",
        )
    )
    assert ours.num_parameters() == sum(p.numel() for p in hf.parameters()), "the two models differ in size"
    return ours, hf


def measure(shape, dtype: str, repeats: int, steps: int, compile: bool = False) -> tuple[float, float]:
    _, vocab, d, layers, heads, ff, context, batch = shape
    ours, hf = models(vocab, d, layers, heads, ff, context)
    run_ours, run_hf = (torch.compile(ours), torch.compile(hf)) if compile else (ours, hf)
    x = torch.randint(0, vocab, (batch, context))
    y = torch.roll(x, -1, 1)
    opt_ours = torch.optim.AdamW(ours.parameters(), lr=1e-4, fused=True)
    opt_hf = torch.optim.AdamW(hf.parameters(), lr=1e-4, fused=True)

    def autocast():
        return torch.autocast("cpu", dtype=torch.bfloat16) if dtype == "bfloat16" else contextlib.nullcontext()

    def step_ours():
        with autocast():
            loss = run_ours(x, targets=y)  # the trainer's loss path (trainer/loss.py)
        loss.backward()
        opt_ours.step()
        opt_ours.zero_grad(set_to_none=True)

    def step_hf():
        with autocast():
            loss = run_hf(input_ids=x, labels=x).loss
        loss.backward()
        opt_hf.step()
        opt_hf.zero_grad(set_to_none=True)

    best = {"ours": 0.0, "hf": 0.0}
    for _ in range(repeats):
        for name, step in (("ours", step_ours), ("hf", step_hf)):
            step()  # warm-up (and compilation)
            started = time.perf_counter()
            for _ in range(steps):
                step()
            best[name] = max(best[name], batch * context * steps / (time.perf_counter() - started))
    return best["ours"], best["hf"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="the first two shapes, one repeat")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default: all cores)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--compile", action="store_true", help="run both models under torch.compile")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    shapes = SHAPES[:2] if args.quick else SHAPES
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU capability "
        f"{torch.backends.cpu.get_cpu_capability()}{', torch.compile' if args.compile else ''}"
    )
    print(f"{'shape':<30}{'dtype':<10}{'ours tok/s':>12}{'HF tok/s':>12}{'ours/HF':>9}")
    for shape in shapes:
        for dtype in ("float32", "bfloat16"):
            steps = 2 if shape[1] >= 32000 else 5
            ours, hf = measure(shape, dtype, 1 if args.quick else args.repeats, steps, args.compile)
            print(f"{shape[0]:<30}{dtype:<10}{ours:>12,.0f}{hf:>12,.0f}{ours / hf:>8.2f}x", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
