"""Inference: batched KV-cache decoding equals one-by-one decoding, speculative decoding keeps the target's
output (greedy) and distribution (sampling), int8 weights stay close and save/load exactly; the CLI."""

from __future__ import annotations

import pytest
import torch

from pipeline.cli import main
from pipeline.stages.tokenize import write_shard
from tests.helpers import FIXTURES
from tokenizer.bpe import Tokenizer
from tokenizer.train import train_bpe
from trainer.cache import KVCache
from trainer.config import LoopConfig, TrainConfig
from trainer.data import DataConfig
from trainer.generate import generate, generate_batch, load_model, probabilities
from trainer.int8 import Int8Linear, quantize_model
from trainer.loop import Trainer
from trainer.model import Transformer
from trainer.model_config import ModelConfig
from trainer.optim import OptimConfig
from trainer.quantize import heldout_loss, quantize_checkpoint
from trainer.schedule import ScheduleConfig
from trainer.speculative import accept_or_resample, speculative_generate

BPE = FIXTURES / "cs336/bpe"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Shards of real English text, their tokenizer, a target model and a draft 4x smaller, both trained
    briefly on the shards."""
    root = tmp_path_factory.mktemp("inference")
    vocab, merges = train_bpe(BPE / "corpus.en", 512, ["<|endoftext|>"])
    tokenizer = Tokenizer(vocab, merges, ["<|endoftext|>"])
    tokenizer.save(root / "tokenizer")
    stories = (BPE / "tinystories_sample.txt").read_text(encoding="utf-8").split("<|endoftext|>")
    write_shard(str(root / "shards" / "stories"), stories * 3, tokenizer, "<|endoftext|>")
    data = DataConfig(train=[str(root / "shards" / "*")], valid_fraction=0.1)
    for name, d_model, layers in (("target", 64, 3), ("draft", 32, 2)):
        Trainer(
            TrainConfig(
                model=ModelConfig(vocab_size=512, context_length=64, d_model=d_model, n_layers=layers, n_heads=4),
                data=data,
                optim=OptimConfig(lr=1e-2, min_lr=1e-3),
                schedule=ScheduleConfig(warmup_steps=10),
                train=LoopConfig(steps=120, batch_size=16, eval_every=0, checkpoint_every=0, out_dir=str(root / name)),
            ),
            progress=False,
        ).run()
    return root, tokenizer, data


def models(trained):
    root = trained[0]
    return load_model(str(root / "target" / "checkpoint.pt"))[0], load_model(str(root / "draft" / "checkpoint.pt"))[0]


def test_the_draft_is_about_four_times_smaller(trained):
    target, draft = models(trained)
    ratio = target.num_parameters(embedding=False) / draft.num_parameters(embedding=False)
    assert 3.5 < ratio < 6


def test_batched_generation_equals_one_by_one(trained):
    target, _ = models(trained)
    tokenizer = trained[1]
    texts = ["Once upon a time", "The cat", "Tom and his sister Lily went to the park to play with", "A"]
    prompts = [tokenizer.encode(t) for t in texts]
    assert len({len(p) for p in prompts}) == 4
    for sampling in ({"temperature": 0}, {"temperature": 1.0, "top_k": 40, "top_p": 0.9}):
        batched = generate_batch(target, prompts, 25, seed=11, **sampling)
        for row, prompt in enumerate(prompts):
            alone = generate_batch(target, [prompt], 25, seed=11 + row, **sampling)
            assert batched.tokens[row] == alone.tokens[0], (sampling, row)
        if sampling["temperature"] == 0:
            for row, prompt in enumerate(prompts):
                recomputed = generate(target, prompt, 25, temperature=0, use_cache=False)
                assert batched.tokens[row] == recomputed.tokens
    assert batched.prefill_tokens == sum(len(p) for p in prompts) and batched.decode_steps == 24


def test_padded_rows_compute_what_they_would_alone():
    """Logits, not only tokens: a left-padded row's prefill and decode logits equal the row run alone, for
    position variants that read positions (RoPE, learned) and a sliding window."""
    for overrides in ({}, {"positions": "learned"}, {"sliding_window": 4, "n_kv_heads": 2}):
        torch.manual_seed(0)
        model = Transformer(
            ModelConfig(vocab_size=50, context_length=32, d_model=32, n_layers=2, n_heads=4, **overrides)
        )
        model.eval()
        short, long = [3, 14, 15], [9, 2, 6, 5, 3, 5, 8]
        ids = torch.tensor([[0] * 4 + short, long])
        valid = torch.tensor([[False] * 4 + [True] * 3, [True] * 7])
        cache = KVCache(model.config, 2, 12, "cpu", torch.float32)
        batched = [model(ids, cache, valid=valid)[:, -1]]
        batched.append(model(torch.tensor([[7], [1]]), cache)[:, -1])
        for row, prompt in enumerate((short, long)):
            alone = KVCache(model.config, 1, 12, "cpu", torch.float32)
            torch.testing.assert_close(
                batched[0][row], model(torch.tensor([prompt]), alone)[0, -1], atol=1e-5, rtol=1e-5
            )
            step = model(torch.tensor([[(7, 1)[row]]]), alone)[0, -1]
            torch.testing.assert_close(batched[1][row], step, atol=1e-5, rtol=1e-5)


def test_stops_and_streaming(trained):
    target, _ = models(trained)
    prompt = trained[1].encode("Once upon a time")
    free = generate_batch(target, [prompt, prompt[:2]], 30, temperature=0).tokens
    eos = free[0][4]
    seq = free[1][6:8]
    stopped = generate_batch(target, [prompt, prompt[:2]], 30, temperature=0, eos_id=eos, stop_sequences=[seq])
    assert stopped.tokens[0] == free[0][: free[0].index(eos) + 1]
    assert stopped.tokens[1][-2:] == seq and free[1][: len(stopped.tokens[1])] == stopped.tokens[1]
    streamed: list[tuple[int, int]] = []
    out = generate_batch(target, [prompt], 10, temperature=0, on_token=lambda row, t: streamed.append((row, t)))
    assert streamed == [(0, t) for t in out.tokens[0]]
    halted = generate_batch(target, [prompt], 30, temperature=0, on_token=lambda row, t: t == free[0][2])
    assert halted.tokens[0] == free[0][:3]


@pytest.mark.parametrize("k", [1, 3, 6])
def test_greedy_speculative_decoding_equals_the_target_alone(trained, k):
    target, draft = models(trained)
    tokenizer = trained[1]
    for text in ("Once upon a time", "Lily"):
        prompt = tokenizer.encode(text)
        expected = generate(target, prompt, 40, temperature=0).tokens
        out = speculative_generate(target, draft, prompt, 40, k=k, temperature=0)
        assert out.tokens == expected
        assert 0 < out.accepted <= out.proposed and out.rounds < len(expected)
    # a draft that knows nothing (random weights) is mostly rejected, and the output is still the target's
    torch.manual_seed(3)
    stranger = Transformer(draft.config).eval()
    prompt = tokenizer.encode("Once upon a time")
    out = speculative_generate(target, stranger, prompt, 30, k=k, temperature=0)
    assert out.tokens == generate(target, prompt, 30, temperature=0).tokens


def stop_after(n: int):
    """An ``on_token`` callback that asks to stop at the n-th token."""
    seen: list[int] = []
    return lambda token: seen.append(token) or len(seen) == n


def test_speculative_decoding_streams_and_stops(trained):
    target, draft = models(trained)
    prompt = trained[1].encode("Once upon a time")
    streamed: list[int] = []
    out = speculative_generate(target, draft, prompt, 30, k=4, temperature=0, on_token=streamed.append)
    assert streamed == out.tokens and len(out.tokens) == 30
    for n in (1, 2, 7):  # a stop that falls inside a round of accepted proposals ends the output there
        halted = speculative_generate(target, draft, prompt, 30, k=4, temperature=0, on_token=stop_after(n))
        assert halted.tokens == out.tokens[:n]
    eos = out.tokens[5]
    assert (
        speculative_generate(target, draft, prompt, 30, k=4, temperature=0, eos_id=eos).tokens
        == out.tokens[: out.tokens.index(eos) + 1]
    )


def test_the_acceptance_rule_samples_the_target_distribution():
    generator = torch.Generator().manual_seed(0)
    p = torch.tensor([0.5, 0.3, 0.15, 0.05, 0.0])
    q = torch.tensor([0.1, 0.1, 0.2, 0.4, 0.2])
    counts = torch.zeros(5)
    n = 20000
    for _ in range(n):
        proposal = int(torch.multinomial(q, 1, generator=generator))
        ok, replacement = accept_or_resample(proposal, p, q, generator)
        counts[proposal if ok else replacement] += 1
    assert counts[4] == 0
    sigma = (n * p * (1 - p)).sqrt()
    assert ((counts - n * p).abs() <= 4 * sigma + 1e-9).all(), counts / n


def chi_square(counts: torch.Tensor, probs: torch.Tensor) -> float:
    expected = counts.sum() * probs
    keep = expected > 0
    assert counts[~keep].sum() == 0, "a token the target never samples was produced"
    return float(((counts[keep] - expected[keep]) ** 2 / expected[keep]).sum())


def test_sampled_speculative_tokens_follow_the_target_distribution():
    """First and second generated tokens over many seeds, tiny vocabulary: their frequencies against the
    target's exact distributions (the second one marginalised over the first), by a chi-square test."""
    torch.manual_seed(0)
    config = dict(vocab_size=6, context_length=16, n_heads=2, tie_embeddings=False)
    target = Transformer(ModelConfig(d_model=32, n_layers=2, **config)).eval()
    draft = Transformer(ModelConfig(d_model=16, n_layers=1, **config)).eval()
    for m in (target, draft):  # larger LM heads: distributions far from uniform, and far from each other
        torch.nn.init.normal_(m.head.weight, std=0.2)
    prompt = [1, 4, 2]
    sampling = {"temperature": 1.0, "top_k": 5, "top_p": None}
    with torch.no_grad():
        first = probabilities(target(torch.tensor([prompt]))[0, -1], **sampling)
        second = sum(
            first[a] * probabilities(target(torch.tensor([prompt + [a]]))[0, -1], **sampling) for a in range(6)
        )
        q = probabilities(draft(torch.tensor([prompt]))[0, -1], **sampling)
    assert (first - q).abs().sum() > 0.3  # the draft really is a different model
    runs = 1500
    counts = torch.zeros(2, 6)
    for seed in range(runs):
        out = speculative_generate(target, draft, prompt, 3, k=3, seed=seed, **sampling).tokens
        counts[0, out[0]] += 1
        counts[1, out[1]] += 1
    # 99.9% quantile of chi-square with 5 degrees of freedom: 20.5
    assert chi_square(counts[0], first) < 20.5
    assert chi_square(counts[1], second) < 20.5


def test_int8_linear_is_close_and_exactly_dequantized():
    torch.manual_seed(0)
    linear = torch.nn.Linear(64, 48, bias=False)
    q = Int8Linear.from_linear(linear)
    assert q.weight.dtype == torch.int8 and q.scale.shape == (48,)
    assert ((q.dequantized() - linear.weight).abs() <= q.scale[:, None] / 2 + 1e-7).all()  # round to nearest
    x = torch.randn(3, 5, 64)
    torch.testing.assert_close(q(x), x @ q.dequantized().T, rtol=1e-4, atol=1e-4)
    error = (q(x) - linear(x)).norm() / linear(x).norm()
    assert error < 0.01


def test_quantized_model_logits_stay_close_and_the_checkpoint_roundtrips(trained, tmp_path):
    root, _, data = trained
    path = str(root / "target" / "checkpoint.pt")
    full, _ = load_model(path)
    report = quantize_checkpoint(path, str(tmp_path / "int8.pt"), data)
    assert report["bytes_after"] < 0.6 * report["bytes_before"]
    assert abs(report["perplexity_after"] / report["perplexity_before"] - 1) < 0.02
    quantized, payload = load_model(str(tmp_path / "int8.pt"))
    assert payload["quantization"] == "int8-weight-only" and "optimizer" not in payload
    assert isinstance(quantized.blocks[0].attn.qkv, Int8Linear)
    x = torch.randint(0, 512, (2, 40))
    with torch.no_grad():
        a, b = full(x), quantized(x)
    assert (a.argmax(-1) == b.argmax(-1)).float().mean() > 0.95
    assert ((a - b).abs().max() / a.abs().max()) < 0.05
    # the loaded model computes exactly what the freshly quantized one does
    fresh = quantize_model(load_model(path)[0])
    with torch.no_grad():
        assert torch.equal(fresh(x), b)
    assert heldout_loss(quantized, data)[0] == pytest.approx(report["loss_after"], rel=1e-6)


def test_generate_and_quantize_commands(trained, tmp_path, capsys):
    root = trained[0]
    target, draft = str(root / "target"), str(root / "draft")
    args = ["generate", target, "--temperature", "0", "--max-new-tokens", "12"]
    assert main([*args, "--prompt", "Once upon a time"]) == 0
    streamed = capsys.readouterr()
    assert streamed.out.startswith("Once upon a time") and "prefill" in streamed.err and "decode" in streamed.err
    assert main([*args, "--prompt", "Once upon a time", "--draft", draft, "--draft-k", "3"]) == 0
    speculative = capsys.readouterr()
    assert speculative.out == streamed.out and "acceptance" in speculative.err
    assert main([*args, "--prompt", "Once upon a time", "--prompt", "The dog"]) == 0
    batched = capsys.readouterr().out
    assert batched.startswith("[1] 'Once upon a time' -> ") and "\n[2] 'The dog' -> " in batched
    assert streamed.out.strip().removeprefix("Once upon a time") in batched
    word = streamed.out.removeprefix("Once upon a time").split()[1]
    assert main([*args, "--prompt", "Once upon a time", "--stop", word]) == 0
    assert word not in capsys.readouterr().out.removeprefix("Once upon a time").split()[1:]
    out = tmp_path / "int8.pt"
    assert main(["quantize", target, "--out", str(out), "--eval-batches", "5"]) == 0
    printed = capsys.readouterr().out
    assert "perplexity" in printed and out.exists()
    assert main(["generate", str(out), "--prompt", "Once upon a time", "--temperature", "0"]) == 0
    assert capsys.readouterr().out.startswith("Once upon a time")


def test_bfloat16_inference_keeps_rotary_positions(trained):
    """GPU inference casts the model to bfloat16; the RoPE table must stay float32 (checked here on CPU)."""
    full, _ = models(trained)
    half, _ = models(trained)
    half = half.to(torch.bfloat16)
    assert half.rope.dtype == torch.float32 and half.embed.weight.dtype == torch.bfloat16
    x = torch.randint(0, 512, (2, 40))
    with torch.no_grad():
        a, b = full(x), half(x).float()
    assert (a.argmax(-1) == b.argmax(-1)).float().mean() > 0.9
    out = generate_batch(half, [x[0, :5].tolist(), x[1, :9].tolist()], 10, temperature=0)
    assert [len(t) for t in out.tokens] == [10, 10]
