#!/usr/bin/env python3
"""Sweep throughput: trials per hour of `refinery sweep` (one Ray task per trial, on a local Ray of 2 CPUs,
one CPU and one torch thread per trial) against the same trials run one after the other in one process (with
torch on one core, then on both): the anchors of the ratio.

    .venv/bin/python benchmarks/bench_sweep.py              # 8 trials of 60 steps, about a minute on 2 cores
    .venv/bin/python benchmarks/bench_sweep.py --steps 200  # longer trials, about 3 minutes

The trials: a grid of 4 widths (2 layers) x 2 learning rates on shards of the test fixtures' English text
(a 512-token BPE; built once under benchmarks/.work/sweep/). The sequential side calls the same
`trainer.sweep.run_trial` the Ray tasks call. Ray's start-up is timed apart; the sweep's time includes the
start of its worker processes, as a user's first sweep would.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "benchmarks" / ".work" / "sweep"
sys.path.insert(0, str(ROOT))

BASE = """
[model]
vocab_size = 512
context_length = 128
n_layers = 2
n_heads = 4
[data]
train = ["shards/*"]
valid_fraction = 0.05
[optim]
lr = 3e-3
min_lr = 3e-4
[schedule]
warmup_steps = 10
[train]
steps = {steps}
batch_size = 16
eval_every = 20
eval_batches = 4
checkpoint_every = 0
"""
SWEEP = """
[sweep]
base = "train.toml"
output = "{output}"
cpus_per_trial = 1
[sweep.grid]
"model.d_model" = [32, 48, 64, 96]
"optim.lr" = [3e-3, 1e-2]
"""


def shards() -> None:
    """Token shards of the test fixtures' text, once."""
    if (WORK / "shards" / "a.json").exists():
        return
    from pipeline.stages.tokenize import write_shard
    from tokenizer.bpe import Tokenizer
    from tokenizer.train import train_bpe

    text = ROOT / "tests" / "fixtures" / "cs336" / "bpe"
    vocab, merges = train_bpe(text / "corpus.en", 512, ["<|endoftext|>"])
    tokenizer = Tokenizer(vocab, merges, ["<|endoftext|>"])
    stories = (text / "tinystories_sample.txt").read_text(encoding="utf-8").split("<|endoftext|>")
    write_shard(
        str(WORK / "shards" / "a"),
        (text / "corpus.en").read_text(encoding="utf-8").split("\n\n"),
        tokenizer,
        "<|endoftext|>",
    )
    write_shard(str(WORK / "shards" / "b"), stories * 4, tokenizer, "<|endoftext|>")


def sweep_file(steps: int, output: str) -> str:
    (WORK / "train.toml").write_text(BASE.format(steps=steps))
    path = WORK / f"{output}.toml"
    path.write_text(SWEEP.format(output=output))
    shutil.rmtree(WORK / output, ignore_errors=True)
    return str(path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=60, help="training steps per trial (default 60)")
    args = ap.parse_args(argv)
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    WORK.mkdir(parents=True, exist_ok=True)
    shards()
    import torch

    from pipeline.engine.cluster import connect
    from pipeline.models.sweep_file import load_sweep
    from pipeline.models.sweeps import run_sweep
    from trainer.sweep import run_trial

    sequential = {}
    for threads in (1, 2):
        plan = load_sweep(sweep_file(args.steps, f"sequential-{threads}"))
        torch.set_num_threads(threads)
        started = time.perf_counter()
        for t in plan.trials:
            row = run_trial(t.config, t.id, t.overrides, plan.stop.divergence_factor)
            assert row["status"] == "done", row
        sequential[threads] = time.perf_counter() - started
    n = len(plan.trials)

    sweep = load_sweep(sweep_file(args.steps, "ray"))
    started = time.perf_counter()
    connect(num_cpus=2)
    ray_start_s = time.perf_counter() - started
    started = time.perf_counter()
    rows = run_sweep(sweep, progress=False)
    ray_s = time.perf_counter() - started
    assert all(r["status"] == "done" for r in rows), rows

    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs; {n} trials of {args.steps} steps")
    print(f"{'how':<46}{'wall s':>8}{'trials/hour':>13}{'sweep x':>9}")
    for threads, seconds in sequential.items():
        how = f"sequential, one process, {threads} torch thread{'s' if threads > 1 else ''}"
        print(f"{how:<46}{seconds:>8.1f}{n / seconds * 3600:>13,.0f}{seconds / ray_s:>8.2f}x")
    print(f"{'refinery sweep, Ray 2 CPUs, 1 CPU per trial':<46}{ray_s:>8.1f}{n / ray_s * 3600:>13,.0f}")
    print(f"Ray start-up, not counted above: {ray_start_s:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
