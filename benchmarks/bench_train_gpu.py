#!/usr/bin/env python3
"""Train a ~124M-parameter model (GPT-2 small shape: 12 layers, 768 wide, 12 heads, 1024 context, 50257
tokens) for a few hundred steps in bf16 on one GPU and print tokens/s and MFU against the device's bf16 peak.

    python benchmarks/bench_train_gpu.py                     # on an H100 / H200-class GPU
    python benchmarks/bench_train_gpu.py --tiny --steps 5    # a tiny model on CPU: checks that it runs

It runs the real trainer (``trainer.loop.Trainer``) on synthetic token shards it writes first (random
tokens: the speed does not depend on the text), with ``torch.compile`` on GPU.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def write_random_shards(directory: Path, vocab: int, tokens: int) -> str:
    from tokenizer.shards import ShardWriter

    rng = np.random.default_rng(0)
    with ShardWriter(str(directory / "random"), vocab_size=vocab, eos_id=vocab - 1, tokenizer_hash="random") as w:
        for _ in range(max(1, tokens // 4096)):
            w.write(rng.integers(0, vocab - 1, 4095).tolist())
    return str(directory / "random")


def main(argv=None) -> int:
    from trainer.config import LoopConfig, TrainConfig
    from trainer.data import DataConfig
    from trainer.loop import Trainer, peak_flops
    from trainer.model_config import ModelConfig
    from trainer.optim import OptimConfig
    from trainer.schedule import ScheduleConfig

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tiny", action="store_true", help="a tiny model, for a CPU check")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch-size", type=int, default=0, help="sequences per step (default 16, tiny 4)")
    ap.add_argument("--no-compile", action="store_true")
    args = ap.parse_args(argv)
    if args.tiny:
        model = ModelConfig(vocab_size=512, context_length=64, d_model=64, n_layers=2, n_heads=4)
    else:
        model = ModelConfig(vocab_size=50304, context_length=1024, d_model=768, n_layers=12, n_heads=12, d_ff=2048)
    batch = args.batch_size or (4 if args.tiny else 16)
    with tempfile.TemporaryDirectory() as tmp:
        shards = write_random_shards(Path(tmp), model.vocab_size, max(200_000, batch * model.context_length * 20))
        config = TrainConfig(
            model=model,
            data=DataConfig(train=[shards], valid_fraction=0.0),
            optim=OptimConfig(lr=6e-4, min_lr=6e-5),
            schedule=ScheduleConfig(warmup_steps=10),
            train=LoopConfig(
                steps=args.steps,
                batch_size=batch,
                log_every=max(1, args.steps // 10),
                eval_every=0,
                checkpoint_every=0,
                out_dir=str(Path(tmp) / "out"),
                compile=torch.cuda.is_available() and not args.no_compile,
            ),
        )
        trainer = Trainer(config, resume=False, progress=False)
        n = trainer.model.num_parameters()
        flops = trainer.model.flops_per_token()["training"]
        print(
            f"device {trainer.device}, {n / 1e6:.1f}M parameters, {flops / 1e9:.2f} GFLOPs per token (training), "
            f"batch {batch} x {model.context_length}, compile {config.train.compile}"
        )
        started = time.perf_counter()
        trainer.run()
        wall = time.perf_counter() - started
        rows = [json.loads(line) for line in open(Path(tmp) / "out" / "metrics.jsonl")]
    timed = [r for r in rows if "tokens_per_s" in r][1:] or [r for r in rows if "tokens_per_s" in r]
    tps = float(np.median([r["tokens_per_s"] for r in timed]))
    peak = peak_flops(trainer.device)
    mfu = (
        f"{tps * flops / peak:.1%} of {peak / 1e12:.0f} TFLOP/s bf16" if peak else "n/a (no known peak for this device)"
    )
    print(
        f"{args.steps} steps in {wall:.1f} s; median {tps:,.0f} tokens/s after the first window; MFU {mfu}; "
        f"final loss {rows[-1]['loss']:.3f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
