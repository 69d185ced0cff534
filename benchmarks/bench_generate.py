#!/usr/bin/env python3
"""Inference on CPU: decode tokens/s next to Hugging Face ``generate()``, speculative decoding and int8.

    .venv/bin/python benchmarks/bench_generate.py            # needs `pip install transformers` and the demo run
    .venv/bin/python benchmarks/bench_generate.py --quick

1. Decode tokens/s at batch 1 and 8 for refinery's ``generate_batch`` and ``LlamaForCausalLM.generate``
   (KV cache, greedy) on the same Llama-shaped model: our weights are copied into the HF model (query and
   key rows permuted from RoPE's interleaved pairs to HF's halves), and the benchmark checks that both
   produce the same tokens. Decode speed = new tokens after the first / (time for N tokens - time for 1),
   the same external measurement on both sides; best of the repeats, interleaved.
2. Speculative decoding: a target and a draft about 4x smaller (non-embedding parameters) are trained on
   the demo run's shards (``runs/demo/tokenize/shards``, from ``./dev demo``), and a second draft of the
   same shape is distilled from the target (trainer/distill.py) on the same shards for as many steps; each
   draft's expected acceptance at temperature 1 (the mean of sum(min(p, q)) over held-out positions), then
   decode tokens/s of the target alone and with each draft, greedy and sampled, and the acceptance rate,
   for several k; prompts from held-out text and from training text (where the models agree more).
3. Int8 weight-only quantization of the target: held-out perplexity before and after, and decode speed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trainer.cache import KVCache  # noqa: E402
from trainer.config import LoopConfig, TrainConfig  # noqa: E402
from trainer.data import DataConfig, TokenData  # noqa: E402
from trainer.distill import DistillConfig  # noqa: E402
from trainer.generate import generate_batch, load_model  # noqa: E402
from trainer.loop import Trainer  # noqa: E402
from trainer.model import Transformer  # noqa: E402
from trainer.model_config import ModelConfig  # noqa: E402
from trainer.optim import OptimConfig  # noqa: E402
from trainer.quantize import heldout_loss, quantize_model, weight_bytes  # noqa: E402
from trainer.schedule import ScheduleConfig  # noqa: E402
from trainer.speculative import speculative_generate  # noqa: E402

WORK = ROOT / "benchmarks" / ".work" / "generate"
SHAPES = [  # (name, vocab, d_model, layers, heads, d_ff, context)
    ("small", 8192, 256, 6, 8, 704, 512),
    ("medium", 32000, 512, 8, 8, 1408, 512),
]


def hf_copy(ours: Transformer):
    """A ``LlamaForCausalLM`` computing what ``ours`` computes."""
    from transformers import LlamaConfig, LlamaForCausalLM

    c = ours.config
    hf = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=c.vocab_size,
            hidden_size=c.d_model,
            intermediate_size=c.d_ff,
            num_hidden_layers=c.n_layers,
            num_attention_heads=c.n_heads,
            num_key_value_heads=c.n_kv_heads,
            max_position_embeddings=c.context_length,
            tie_word_embeddings=True,
            rms_norm_eps=c.norm_eps,
            rope_theta=c.rope_theta,
            attn_implementation="sdpa",
        )
    ).eval()
    hd = c.head_dim
    halves = torch.cat([torch.arange(0, hd, 2), torch.arange(1, hd, 2)])  # HF rotates (x_i, x_{i + hd/2})

    def heads_to_halves(w: torch.Tensor, heads: int) -> torch.Tensor:
        return w.view(heads, hd, -1)[:, halves].reshape(heads * hd, -1)

    with torch.no_grad():
        hf.model.embed_tokens.weight.copy_(ours.embed.weight)
        hf.model.norm.weight.copy_(ours.norm.weight)
        for block, layer in zip(ours.blocks, hf.model.layers):
            q, k, v = block.attn.qkv.weight.split([c.n_heads * hd, c.n_kv_heads * hd, c.n_kv_heads * hd])
            layer.self_attn.q_proj.weight.copy_(heads_to_halves(q, c.n_heads))
            layer.self_attn.k_proj.weight.copy_(heads_to_halves(k, c.n_kv_heads))
            layer.self_attn.v_proj.weight.copy_(v)
            layer.self_attn.o_proj.weight.copy_(block.attn.out.weight)
            gate, up = block.mlp.gate_up.weight.chunk(2)
            layer.mlp.gate_proj.weight.copy_(gate)
            layer.mlp.up_proj.weight.copy_(up)
            layer.mlp.down_proj.weight.copy_(block.mlp.down.weight)
            layer.input_layernorm.weight.copy_(block.attn_norm.weight)
            layer.post_attention_layernorm.weight.copy_(block.mlp_norm.weight)
    return hf


def timed(fn, *args) -> float:
    started = time.perf_counter()
    fn(*args)
    return time.perf_counter() - started


def decode_speed(shape, batch: int, new: int, repeats: int) -> tuple[float, float, bool]:
    """Decode tokens/s of ours and HF's at ``batch`` prompts of different lengths, and whether the tokens agree."""
    _, vocab, d, layers, heads, ff, context = shape
    torch.manual_seed(0)
    ours = Transformer(
        ModelConfig(vocab_size=vocab, d_model=d, n_layers=layers, n_heads=heads, d_ff=ff, context_length=context)
    ).eval()
    hf = hf_copy(ours)
    lengths = [64 - 5 * (i % 4) for i in range(batch)]
    prompts = [torch.randint(0, vocab, (n,)).tolist() for n in lengths]
    ids = torch.zeros(batch, max(lengths), dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, p in enumerate(prompts):
        ids[row, -len(p) :], mask[row, -len(p) :] = torch.tensor(p), 1

    def run_ours(n):
        return generate_batch(ours, prompts, n, temperature=0).tokens

    def run_hf(n):
        with torch.inference_mode():
            out = hf.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=n,
                min_new_tokens=n,
                do_sample=False,
                use_cache=True,
                pad_token_id=0,
            )
        return [row[max(lengths) :].tolist() for row in out]

    same = run_ours(new) == run_hf(new)
    best = {"ours": 0.0, "hf": 0.0}
    for _ in range(repeats):
        for name, fn in (("ours", run_ours), ("hf", run_hf)):
            fn(2)  # warm-up
            elapsed = timed(fn, new) - timed(fn, 1)
            best[name] = max(best[name], batch * (new - 1) / elapsed)
    return best["ours"], best["hf"], same


def train(name: str, model: ModelConfig, data: DataConfig, steps: int, teacher: str = "") -> str:
    out = WORK / f"{name}-{steps}-steps"
    if not (out / "checkpoint.pt").exists() or not (out / "done").exists():
        config = TrainConfig(
            model=model,
            data=data,
            optim=OptimConfig(lr=3e-3, min_lr=3e-4),
            schedule=ScheduleConfig(warmup_steps=30),
            train=LoopConfig(steps=steps, batch_size=16, eval_every=0, checkpoint_every=0, out_dir=str(out)),
            distill=DistillConfig(teacher=teacher),
        )
        Trainer(config, progress=False).run()
        (out / "done").write_text("")
    return str(out / "checkpoint.pt")


def speculative(data: DataConfig, steps: int, prompts: int, new: int) -> None:
    shape = dict(vocab_size=2048, context_length=256, d_model=256, n_heads=8)
    target_path = train("target", ModelConfig(n_layers=8, **shape), data, steps)
    draft_path = train("draft", ModelConfig(n_layers=2, **shape), data, steps)
    distilled_path = train("draft-distilled", ModelConfig(n_layers=2, **shape), data, steps, teacher=target_path)
    target, draft = load_model(target_path)[0], load_model(draft_path)[0]
    drafts = {"trained": draft, "distilled": load_model(distilled_path)[0]}
    ratio = target.num_parameters(embedding=False) / draft.num_parameters(embedding=False)
    print(
        f"\ntarget {target.num_parameters(embedding=False) / 1e6:.1f}M non-embedding parameters, draft "
        f"{draft.num_parameters(embedding=False) / 1e6:.1f}M ({ratio:.1f}x smaller), {steps} steps each on the "
        "demo shards"
    )
    costs = {n: step_ms(target, n) for n in (1, 3, 5, 7)}
    print(
        f"one decode step: target {costs[1]:.2f} ms, draft {step_ms(draft, 1):.2f} ms; the target scoring 3 / 5 / 7 "
        f"tokens at once: {costs[3]:.2f} / {costs[5]:.2f} / {costs[7]:.2f} ms"
    )
    for name, model in drafts.items():
        agreement, kl = expected_acceptance(target, model, data)
        print(f"{name} draft: expected acceptance {agreement:.1%} at temperature 1, KL(target || draft) {kl:.3f}")
    windows = next(TokenData(data, 32, seed=0).validation_batches(prompts, 1)).inputs.tolist()
    seen = TokenData(data, 32, seed=1).batch(prompts).inputs.tolist()
    print(
        f"{'prompts':<10}{'draft':<11}{'mode':<18}{'k':>3}{'alone tok/s':>13}{'spec tok/s':>12}{'speed-up':>10}"
        f"{'accepted':>10}"
    )
    for label, starts in (("held-out", windows), ("training", seen)):
        for temperature in (0.0, 0.8):
            mode = "greedy" if temperature == 0 else f"sampled T={temperature}"
            alone = decode_rate(
                [generate_batch(target, [p], new, temperature=temperature, seed=i) for i, p in enumerate(starts)]
            )
            for name, model in drafts.items():
                for k in (2, 4, 6):
                    outs = [
                        speculative_generate(target, model, p, new, k=k, temperature=temperature, seed=i)
                        for i, p in enumerate(starts)
                    ]
                    rate = decode_rate(outs)
                    accepted = sum(o.accepted for o in outs) / sum(o.proposed for o in outs)
                    print(
                        f"{label:<10}{name:<11}{mode:<18}{k:>3}{alone:>13.1f}{rate:>12.1f}{rate / alone:>9.2f}x"
                        f"{accepted:>10.0%}",
                        flush=True,
                    )
    quantized(target_path, data, windows, new)


@torch.inference_mode()
def expected_acceptance(target: Transformer, draft: Transformer, data: DataConfig) -> tuple[float, float]:
    """The mean over held-out positions of sum(min(p, q)) (the chance that a sampled proposal is accepted,
    at temperature 1) and of KL(p || q), p the target's next-token distribution and q the draft's."""
    agreement = kl = positions = 0.0
    for batch in TokenData(data, target.config.context_length, seed=0).validation_batches(8, 10):
        p, q = target(batch.inputs).log_softmax(-1), draft(batch.inputs).log_softmax(-1)
        agreement += torch.minimum(p, q).exp().sum().item()
        kl += (p.exp() * (p - q)).sum().item()
        positions += batch.inputs.numel()
    return agreement / positions, kl / positions


@torch.inference_mode()
def step_ms(model: Transformer, tokens: int, repeats: int = 200) -> float:
    """Milliseconds for one forward pass of ``tokens`` new tokens after 32 cached ones."""
    cache = KVCache(model.config, 1, 64, "cpu", torch.float32)
    model(torch.randint(0, model.config.vocab_size, (1, 32)), cache)
    ids = torch.randint(0, model.config.vocab_size, (1, tokens))
    started = time.perf_counter()
    for _ in range(repeats):
        model(ids, cache)
        cache.rewind(32)
    return (time.perf_counter() - started) / repeats * 1000


def decode_rate(outs) -> float:
    """New tokens after the first per second of decoding, over several generations."""
    produced = sum(len(o.tokens[0] if isinstance(o.tokens[0], list) else o.tokens) - 1 for o in outs)
    return produced / sum(o.decode_s for o in outs)


def quantized(path: str, data: DataConfig, windows: list[list[int]], new: int) -> None:
    full = load_model(path)[0]
    q = quantize_model(load_model(path)[0])
    before, after = heldout_loss(full, data, batches=40)[0], heldout_loss(q, data, batches=40)[0]
    speeds = {}
    for name, model in (("float32", full), ("int8", q)):
        decode_s = produced = 0.0
        for prompt in windows:
            out = generate_batch(model, [prompt], new, temperature=0)
            decode_s, produced = decode_s + out.decode_s, produced + len(out.tokens[0]) - 1
        speeds[name] = produced / decode_s
    ppl_before, ppl_after = torch.tensor(before).exp().item(), torch.tensor(after).exp().item()
    print(
        f"\nint8 weight-only (target): weights {weight_bytes(full) / 1e6:.1f} MB -> {weight_bytes(q) / 1e6:.1f} MB; "
        f"held-out perplexity {ppl_before:.3f} -> {ppl_after:.3f} ({ppl_after / ppl_before - 1:+.2%}); "
        f"decode {speeds['float32']:.1f} -> {speeds['int8']:.1f} tokens/s at batch 1"
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="the small shape, one repeat, fewer prompts")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--train-steps", type=int, default=400)
    ap.add_argument("--shards", default=str(ROOT / "runs/demo/tokenize/shards/*"))
    ap.add_argument("--no-hf", action="store_true", help="skip the comparison with Hugging Face generate()")
    args = ap.parse_args(argv)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'shape':<10}{'batch':>6}{'ours tok/s':>12}{'HF tok/s':>10}{'ours/HF':>9}  same tokens")
    for shape in [] if args.no_hf else SHAPES[:1] if args.quick else SHAPES:
        for batch in (1, 8):
            ours, hf, same = decode_speed(shape, batch, args.new_tokens, 1 if args.quick else args.repeats)
            print(f"{shape[0]:<10}{batch:>6}{ours:>12.1f}{hf:>10.1f}{ours / hf:>8.2f}x  {same}", flush=True)
    if not any(Path(p).exists() for p in __import__("glob").glob(args.shards + ".json")):
        print(f"\nno shards at {args.shards}: run ./dev demo first for the speculative and int8 parts")
        return 0
    os.makedirs(WORK, exist_ok=True)
    data = DataConfig(train=[args.shards], valid_fraction=0.05)
    speculative(data, args.train_steps, 4 if args.quick else 8, args.new_tokens)
    return 0


if __name__ == "__main__":
    sys.exit(main())
