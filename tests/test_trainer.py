"""The trainer: every component against a reference, overfitting, exact resume, KV-cache generation."""

from __future__ import annotations

import json
import math
import os

import pytest
import torch
import torch.nn.functional as F

from pipeline.cli import main
from pipeline.models.configs import load_train_config
from pipeline.stages.tokenize import write_shard
from tests.helpers import FIXTURES
from tokenizer.bpe import Tokenizer
from tokenizer.errors import ConfigError
from tokenizer.shards import ShardWriter
from tokenizer.train import train_bpe
from trainer.checkpoint import CheckpointError, load_checkpoint
from trainer.config import LoopConfig, TrainConfig
from trainer.data import DataConfig, TokenData
from trainer.generate import generate
from trainer.loop import Trainer
from trainer.loss import cross_entropy, linear_cross_entropy
from trainer.model import (
    ModelConfig,
    RMSNorm,
    Transformer,
    apply_rope,
    reference_attention,
    rope_angles,
    rotate_pairs,
)
from trainer.moe import swiglu
from trainer.optim import OptimConfig, build_optimizers, zeropower_newton_schulz
from trainer.schedule import ScheduleConfig, lr_at

BPE = FIXTURES / "cs336/bpe"


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """Two token shards of real English text, and the tokenizer that made them."""
    return write_shards(tmp_path_factory.mktemp("shards"))


def write_shards(root):
    """Token shards of real English text under ``root/shards``, and their tokenizer under ``root/tokenizer``."""
    vocab, merges = train_bpe(BPE / "corpus.en", 512, ["<|endoftext|>"])
    tokenizer = Tokenizer(vocab, merges, ["<|endoftext|>"])
    tokenizer.save(root / "tokenizer")
    corpus = (BPE / "corpus.en").read_text(encoding="utf-8").split("\n\n")
    stories = (BPE / "tinystories_sample.txt").read_text(encoding="utf-8").split("<|endoftext|>")
    write_shard(str(root / "shards" / "a"), corpus, tokenizer, "<|endoftext|>")
    write_shard(str(root / "shards" / "b"), stories * 4, tokenizer, "<|endoftext|>")
    return root


def config(shards, out_dir, **train) -> TrainConfig:
    return TrainConfig(
        model=ModelConfig(vocab_size=512, context_length=32, d_model=64, n_layers=2, n_heads=4, n_kv_heads=2),
        data=DataConfig(train=[str(shards / "shards" / "*")], valid_fraction=0.1),
        optim=OptimConfig(lr=3e-3, min_lr=3e-4),
        schedule=ScheduleConfig(warmup_steps=5),
        train=LoopConfig(
            **{
                "steps": 30,
                "batch_size": 8,
                "eval_every": 10,
                "eval_batches": 2,
                "log_every": 5,
                "checkpoint_every": 0,
                "out_dir": str(out_dir),
                **train,
            }
        ),
    )


def test_sdpa_attention_equals_the_plain_implementation():
    torch.manual_seed(0)
    for n_kv in (4, 2, 1):  # multi-head, grouped-query, multi-query
        cfg = ModelConfig(vocab_size=100, context_length=24, d_model=32, n_layers=2, n_heads=4, n_kv_heads=n_kv)
        fast = Transformer(cfg)
        slow = Transformer(ModelConfig(**{**cfg.__dict__, "attention": "reference"}))
        slow.load_state_dict(fast.state_dict())
        idx = torch.randint(0, 100, (3, 24))
        torch.testing.assert_close(fast(idx), slow(idx), rtol=1e-5, atol=1e-5)
    q, k, v = (torch.randn(2, 3, 7, 8) for _ in range(3))
    torch.testing.assert_close(
        reference_attention(q, k, v, causal=True),
        F.scaled_dot_product_attention(q, k, v, is_causal=True),
        rtol=1e-5,
        atol=1e-6,
    )


def test_rmsnorm_swiglu_and_rope_match_their_definitions():
    torch.manual_seed(1)
    x = torch.randn(4, 5, 16) * 10
    norm = RMSNorm(16, 1e-5)
    norm.weight.data = torch.randn(16)
    expected = x / torch.sqrt((x.double() ** 2).mean(-1, keepdim=True) + 1e-5).float() * norm.weight
    torch.testing.assert_close(norm(x), expected, rtol=1e-5, atol=1e-5)
    model = Transformer(ModelConfig(vocab_size=10, d_model=16, n_heads=2, n_layers=1, context_length=8))
    mlp = model.blocks[0].mlp
    gate, up = mlp.gate_up.weight.chunk(2)
    torch.testing.assert_close(mlp(x), (F.silu(x @ gate.T) * (x @ up.T)) @ mlp.down.weight.T)
    # RoPE: pairs rotated by position * theta^(-2i/d) (written out with cos and sin), and attention scores
    # that depend only on the distance between positions
    angles = rope_angles(8, 16, 10000.0)
    q = torch.randn(1, 1, 16, 8)
    theta = torch.arange(16.0)[:, None] * 10000.0 ** (-torch.arange(0, 8, 2) / 8)
    x1, x2 = q[..., 0::2], q[..., 1::2]
    expected = torch.stack((x1 * theta.cos() - x2 * theta.sin(), x1 * theta.sin() + x2 * theta.cos()), -1).flatten(-2)
    torch.testing.assert_close(apply_rope(q, angles), expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(rotate_pairs(q, angles), expected, rtol=1e-5, atol=1e-5)  # the compiled path
    a, b = torch.randn(8), torch.randn(8)
    rotated_a = apply_rope(a.expand(1, 1, 16, 8), angles)[0, 0]
    rotated_b = apply_rope(b.expand(1, 1, 16, 8), angles)[0, 0]
    assert torch.allclose(rotated_a[3] @ rotated_b[1], rotated_a[9] @ rotated_b[7], atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_swiglu_gradient_equals_autograd_of_the_plain_expression_bit_for_bit(dtype):
    torch.manual_seed(2)
    gate_up = torch.randn(3, 7, 2 * 24, dtype=dtype, requires_grad=True)
    grad = torch.randn(3, 7, 24, dtype=dtype)
    gate, up = gate_up.chunk(2, dim=-1)
    (F.silu(gate) * up).backward(grad)
    expected, gate_up.grad = gate_up.grad, None
    out = swiglu(gate_up)
    out.backward(grad)
    assert out.grad_fn.name().endswith("_SwiGLUBackward")  # the hand-written backward ran
    assert torch.equal(out, F.silu(gate) * up) and torch.equal(gate_up.grad, expected)


def test_the_optimizer_is_fused_adamw_on_cpu():
    model = Transformer(ModelConfig(vocab_size=10, d_model=16, n_heads=2, n_layers=1, context_length=8))
    (adamw,) = build_optimizers(model, OptimConfig()).optimizers
    assert adamw.defaults["fused"] and not adamw.defaults["foreach"]


def test_torch_compile_captures_the_model_whole_in_real_arithmetic():
    """One graph, no breaks, and no complex tensors (inductor generates no code for them, which would cost
    fusion on a GPU); the compiled model computes what the eager one does. Checked with a backend that only
    records the graph, so no code generation is paid for."""
    torch.manual_seed(0)
    model = Transformer(ModelConfig(vocab_size=64, d_model=32, n_heads=4, n_kv_heads=2, n_layers=2, context_length=16))
    graphs, complex_values = [], []

    def inspect(graph_module, example_inputs):
        graphs.append(graph_module)
        for node in graph_module.graph.nodes:
            value = node.meta.get("example_value")
            if isinstance(value, torch.Tensor) and value.is_complex():
                complex_values.append(node.format_node())
        return graph_module.forward

    x = torch.randint(0, 64, (2, 16))
    compiled = torch.compile(model, backend=inspect, fullgraph=True)
    torch.testing.assert_close(compiled(x), model(x), rtol=1e-5, atol=1e-5)
    assert len(graphs) == 1 and complex_values == []
    torch._dynamo.reset()


def test_cross_entropy_on_large_bf16_logits():
    torch.manual_seed(2)
    logits = (torch.randn(4, 6, 1000) * 3000).bfloat16()
    targets = torch.randint(0, 1000, (4, 6))
    reference = -logits.double().log_softmax(-1).gather(-1, targets[..., None]).mean()
    loss = cross_entropy(logits, targets)
    assert torch.isfinite(loss) and abs(loss.item() - reference.item()) < 1e-3 * max(1.0, reference.item())


def test_blockwise_linear_cross_entropy_equals_logits_then_cross_entropy():
    torch.manual_seed(5)
    hidden = (torch.randn(3, 37, 24) * 4).requires_grad_()  # 111 rows: the last block is partial
    weight = (torch.randn(300, 24) * 2).requires_grad_()
    targets = torch.randint(0, 300, (3, 37))
    expected = cross_entropy(hidden @ weight.t(), targets)
    (2.5 * expected).backward()
    grads = hidden.grad.clone(), weight.grad.clone()
    hidden.grad = weight.grad = None
    loss = linear_cross_entropy(hidden, weight, targets, block_rows=16)
    (2.5 * loss).backward()  # the upstream gradient scales the precomputed ones
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(hidden.grad, grads[0])
    torch.testing.assert_close(weight.grad, grads[1])
    with torch.no_grad():
        torch.testing.assert_close(linear_cross_entropy(hidden, weight, targets, block_rows=16), expected)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = linear_cross_entropy(hidden, weight, targets, block_rows=16)
        low_expected = cross_entropy(hidden @ weight.t(), targets)
    assert abs(low.item() - low_expected.item()) < 1e-2 * expected.item()


def test_model_loss_path_equals_logits_path_with_tied_embeddings():
    torch.manual_seed(6)
    model = Transformer(ModelConfig(vocab_size=70, d_model=32, n_heads=4, n_layers=2, context_length=16))
    x, y = torch.randint(0, 70, (3, 16)), torch.randint(0, 70, (3, 16))
    cross_entropy(model(x), y).backward()
    expected = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    model(x, targets=y).backward()
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.grad, expected[name], msg=name)


def reference_adamw_step(params, grads, state, lr, betas, eps, weight_decay, step):
    b1, b2 = betas
    for p, g, decay in zip(params, grads, weight_decay):
        m, v = state.setdefault(
            id(p), (torch.zeros_like(p, dtype=torch.float64), torch.zeros_like(p, dtype=torch.float64))
        )
        m.mul_(b1).add_(g, alpha=1 - b1)
        v.mul_(b2).addcmul_(g, g, value=1 - b2)
        m_hat, v_hat = m / (1 - b1**step), v / (1 - b2**step)
        p.mul_(1 - lr * decay).sub_(lr * m_hat / (v_hat.sqrt() + eps))


def test_adamw_matches_the_textbook_update_over_many_steps():
    torch.manual_seed(3)
    model = Transformer(ModelConfig(vocab_size=50, d_model=16, n_heads=2, n_layers=1, context_length=8))
    ref = [p.detach().double().clone() for p in model.parameters()]
    decays = [0.1 if p.dim() >= 2 else 0.0 for p in model.parameters()]
    cfg = OptimConfig(lr=1e-2, min_lr=1e-3, weight_decay=0.1, betas=(0.9, 0.95), eps=1e-8)
    opt = build_optimizers(model, cfg)
    state = {}
    for step in range(1, 101):
        idx = torch.randint(0, 50, (2, 8))
        loss = cross_entropy(model(idx), torch.roll(idx, -1, 1))
        loss.backward()
        grads = [p.grad.double().clone() for p in model.parameters()]
        opt.step()
        opt.zero_grad()
        reference_adamw_step(ref, grads, state, 1e-2, (0.9, 0.95), 1e-8, decays, step)
    for p, r in zip(model.parameters(), ref):
        torch.testing.assert_close(p.double(), r, rtol=1e-4, atol=1e-5)


def test_muon_orthogonalises_and_trains(shards, tmp_path):
    g = torch.randn(64, 32)
    s = torch.linalg.svdvals(zeropower_newton_schulz(g))
    assert 0.5 < s.min() and s.max() < 1.5  # Muon's quintic iteration: singular values near 1
    cfg = config(shards, tmp_path / "muon", steps=30)
    cfg.optim = OptimConfig(name="muon", lr=3e-3, min_lr=3e-4, muon_lr=0.02)
    trainer = Trainer(cfg, progress=False)
    assert len(trainer.optimizers.optimizers) == 2
    last = trainer.run()
    first = json.loads(open(tmp_path / "muon" / "metrics.jsonl").readline())["loss"]
    assert last["loss"] < first - 0.5


def test_schedules_exact_values():
    cos = ScheduleConfig(kind="cosine", warmup_steps=10)
    assert lr_at(0, 110, 1.0, 0.1, cos) == pytest.approx(0.1)  # 1/10 of the way up
    assert lr_at(9, 110, 1.0, 0.1, cos) == pytest.approx(1.0)  # the peak; the decay runs from here to step 109
    assert lr_at(10, 110, 1.0, 0.1, cos) == pytest.approx(0.1 + 0.45 * (1 + math.cos(math.pi / 100)))
    assert lr_at(59, 110, 1.0, 0.1, cos) == pytest.approx(0.55)  # half way: (max + min) / 2
    assert lr_at(34, 110, 1.0, 0.1, cos) == pytest.approx(0.1 + 0.45 * (1 + math.cos(math.pi / 4)))
    assert lr_at(109, 110, 1.0, 0.1, cos) == 0.1 == lr_at(500, 110, 1.0, 0.1, cos)
    wsd = ScheduleConfig(kind="wsd", warmup_steps=10, decay_fraction=0.2)
    assert lr_at(50, 100, 1.0, 0.1, wsd) == 1.0 and lr_at(79, 100, 1.0, 0.1, wsd) == 1.0
    assert lr_at(80, 100, 1.0, 0.1, wsd) == pytest.approx(1.0 - 0.9 / 20)  # the decay's 20 steps end at 99
    assert lr_at(89, 100, 1.0, 0.1, wsd) == pytest.approx(0.55) and lr_at(99, 100, 1.0, 0.1, wsd) == 0.1


@pytest.mark.parametrize("kind", ["cosine", "wsd"])
def test_the_last_step_of_a_run_is_at_min_lr(kind):
    """The issue's case: WSD over 40 steps ended at 6.4e-4 for a min_lr of 3e-4, cosine at min_lr + 2e-8."""
    for total, warmup, fraction in [(40, 5, 0.2), (40, 0, 0.2), (41, 1, 0.5), (7, 3, 0.5), (1000, 100, 0.1)]:
        schedule = ScheduleConfig(kind=kind, warmup_steps=warmup, decay_fraction=fraction)
        rates = [lr_at(step, total, 3e-3, 3e-4, schedule) for step in range(total)]
        assert rates[-1] == 3e-4, (total, warmup, rates[-3:])
        assert max(rates) == pytest.approx(3e-3) == rates[max(warmup - 1, 0)]  # the peak ends the warmup
        assert all(a >= b for a, b in zip(rates[warmup:], rates[warmup + 1 :]))  # never back up after the peak
        assert min(rates[warmup : total - 1]) > 3e-4  # and reaches min_lr only at the end


def test_training_windows_start_anywhere_a_whole_window_fits(tmp_path):
    """A shard of length + 2 tokens holds two windows of length + 1 (inputs and their targets): both are
    drawn. One of exactly length + 1 tokens holds one, for training and for validation."""
    length = 8

    def shard(name, n):
        with ShardWriter(str(tmp_path / name), vocab_size=64, eos_id=n - 1, tokenizer_hash="test") as writer:
            writer.write(range(n - 1))  # then EOS: the ids 0 .. n - 1
        return str(tmp_path / name)

    data = TokenData(DataConfig(train=[shard("two", length + 2)], valid_fraction=0.0), length, seed=0)
    starts = [int(data.batch(1).inputs[0, 0]) for _ in range(64)]
    assert set(starts) == {0, 1}
    one = shard("one", length + 1)
    data = TokenData(DataConfig(train=[one], valid=[one]), length, seed=0)
    assert data.batch(2).inputs.tolist() == [list(range(length))] * 2
    (batch,) = data.validation_batches(4, 10)
    assert batch.inputs.tolist() == [list(range(length))] and batch.targets.tolist() == [list(range(1, length + 1))]


def test_a_tiny_model_overfits_one_batch():
    torch.manual_seed(4)
    model = Transformer(ModelConfig(vocab_size=64, d_model=64, n_heads=4, n_layers=2, context_length=16))
    opt = build_optimizers(model, OptimConfig(lr=3e-3, min_lr=3e-3, weight_decay=0.0))
    x, y = torch.randint(0, 64, (4, 16)), torch.randint(0, 64, (4, 16))
    for _ in range(200):
        loss = cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad()
    assert loss.item() < 0.05


def losses_by_step(path) -> list[tuple]:
    """(step, loss, validation loss) of every logged row, in order (a row logged twice would show)."""
    return [(row["step"], row["loss"], row.get("val_loss")) for row in map(json.loads, open(path))]


def test_resume_reproduces_the_uninterrupted_losses_exactly(shards, tmp_path):
    whole = Trainer(config(shards, tmp_path / "whole"), progress=False)
    assert whole.run()["lr"] == 3e-4  # the last step is at min_lr
    first = Trainer(config(shards, tmp_path / "split", checkpoint_every=10), progress=False)
    first.run(stop_after=13)  # interrupted after step 13: the checkpoint is at step 10
    del first
    resumed = Trainer(config(shards, tmp_path / "split", checkpoint_every=10), progress=False)
    assert resumed.step == 10
    resumed.run()
    assert losses_by_step(tmp_path / "split" / "metrics.jsonl") == losses_by_step(tmp_path / "whole" / "metrics.jsonl")
    assert resumed.step == 30


def test_damaged_checkpoints_are_refused(shards, tmp_path):
    trainer = Trainer(config(shards, tmp_path / "run", steps=3), progress=False)
    trainer.run()
    path = tmp_path / "run" / "checkpoint.pt"
    assert load_checkpoint(str(path))["step"] == 3
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(str(path))
    torch.save({"model": {}, "evil": "x"}, path)
    with pytest.raises(CheckpointError, match="incomplete checkpoint"):
        load_checkpoint(str(path))
    other = config(shards, tmp_path / "run", steps=3)
    other.model = ModelConfig(vocab_size=512, context_length=32, d_model=32, n_layers=1, n_heads=2)
    Trainer(config(shards, tmp_path / "run2", steps=3), progress=False).run()
    os.replace(tmp_path / "run2" / "checkpoint.pt", path)
    with pytest.raises(CheckpointError, match="another model"):
        Trainer(other, progress=False)


def test_resuming_names_changed_settings_and_refuses_another_optimizer(shards, tmp_path, capsys):
    Trainer(config(shards, tmp_path / "run", steps=3), progress=False).run()
    capsys.readouterr()
    longer = config(shards, tmp_path / "run", steps=6)
    longer.optim.lr = 1e-3
    assert Trainer(longer, progress=False).step == 3  # a longer run at another rate continues, and says so
    err = capsys.readouterr().err
    assert f"resuming {tmp_path / 'run'} at step 3 with settings changed since the checkpoint: " in err
    assert "optim.lr 0.003 -> 0.001" in err and "train.steps 3 -> 6" in err
    Trainer(config(shards, tmp_path / "run", steps=3), progress=False)
    assert "resuming" not in capsys.readouterr().err  # nothing changed, nothing said
    muon = config(shards, tmp_path / "run", steps=6)
    muon.optim.name = "muon"
    with pytest.raises(CheckpointError, match="trained with optim.name = 'adamw'.*use another out_dir"):
        Trainer(muon, progress=False)


def test_kv_cache_generation_equals_recomputation():
    torch.manual_seed(5)
    model = Transformer(ModelConfig(vocab_size=97, d_model=32, n_heads=4, n_kv_heads=2, n_layers=3, context_length=64))
    prompt = torch.randint(0, 97, (11,)).tolist()
    cached = generate(model, prompt, 40, temperature=0)
    full = generate(model, prompt, 40, temperature=0, use_cache=False)
    assert cached.tokens == full.tokens and len(cached.tokens) == 40
    sampled = [
        generate(model, prompt, 20, temperature=1.0, top_k=20, top_p=0.9, seed=7, use_cache=c).tokens
        for c in (True, False)
    ]
    assert sampled[0] == sampled[1]
    stop = cached.tokens[5]
    assert (
        generate(model, prompt, 40, temperature=0, eos_id=stop).tokens == cached.tokens[: cached.tokens.index(stop) + 1]
    )


def test_parameter_and_flop_counts():
    cfg = ModelConfig(vocab_size=1000, d_model=64, n_layers=2, n_heads=4, d_ff=128, context_length=32)
    model = Transformer(cfg)
    per_layer = 64 * 3 * 64 + 64 * 64 + 3 * 64 * 128 + 2 * 64  # qkv, out, gate_up and down, two norms
    assert model.num_parameters() == 1000 * 64 + 2 * per_layer + 64
    assert model.num_parameters(embedding=False) == 2 * per_layer + 64
    matmul = 2 * (64 * 3 * 64 + 64 * 64 + 3 * 64 * 128) + 1000 * 64
    assert model.flops_per_token() == {
        "forward": 2 * matmul + 4 * 2 * 32 * 64,
        "training": 3 * (2 * matmul + 4 * 2 * 32 * 64),
    }


def test_training_config_files_are_validated(shards, tmp_path):
    path = tmp_path / "train.toml"
    good = f'[data]\ntrain = ["{shards}/shards/*"]\n[model]\nd_model = 64\nn_heads = 4\n[train]\nout_dir = "out"\n'
    path.write_text(good)
    cfg = load_train_config(str(path), ["train.steps=7", "schedule.warmup_steps=2", "optim.name=muon"])
    assert cfg.train.steps == 7 and cfg.optim.name == "muon" and cfg.train.out_dir == str(tmp_path / "out")
    for text, key, message in [
        (good.replace("d_model = 64", "d_model = 60"), "model.n_heads", "d_model / n_heads must be even"),
        (good.replace("n_heads = 4", "n_heads = 4\nn_kv_heads = 3"), "model.n_kv_heads", "must divide n_heads"),
        (good + "[optim]\nlr = 2.0\n", "optim.lr", "expected 0 < min_lr <= lr < 1"),
        (good + "[schedule]\nkind = 'linear'\n", "schedule.kind", "expected 'cosine', 'wsd' or 'constant'"),
        (good.replace("[train]", "[train]\nbatch_size = 'big'"), "train.batch_size", "expected an integer"),
        (good + "[extra]\nx = 1\n", "extra", "unknown section"),
    ]:
        path.write_text(text)
        with pytest.raises(ConfigError) as err:
            load_train_config(str(path))
        assert err.value.key == key and message in str(err.value)


def test_training_files_that_cannot_run_are_refused_before_work_starts(shards, tmp_path, capsys):
    """Holes `refinery validate` used to accept, each failing later with a traceback or wrong results."""
    path = tmp_path / "train.toml"
    good = f'[data]\ntrain = ["{shards}/shards/*"]\n[model]\nd_model = 64\nn_heads = 4\n[train]\nout_dir = "out"\n'
    (tmp_path / "a-file").write_text("not a directory")
    for text, key, message in [
        (good.replace("d_model = 64", "d_model = 64\nd_ff = -10"), "model.d_ff", "must be >= 1"),
        (good.replace('"out"', '"a-file"'), "train.out_dir", "a-file is a file; expected a directory"),
        (good.replace('"out"', '"a-file/run"'), "train.out_dir", "a-file is a file; expected a directory"),
        (good.replace("d_model = 64", "d_model = 10_000_000"), "model", "more than any machine holds"),
        (good.replace("[train]", "[train]\nbatch_size = 100_000_000"), "train.batch_size", "of activations"),
        (good.replace("[train]", "[train]\nsteps = 50"), "schedule.warmup_steps", "100 leaves no step of"),
        (good + "[schedule]\nkind = 'constant'\nwarmup_steps = 1001\n", "schedule.warmup_steps", "more than"),
        (
            good + "[schedule]\nkind = 'wsd'\nwarmup_steps = 900\ndecay_fraction = 0.2\n",
            "schedule.decay_fraction",
            "the decay (200 of 1000 steps) overlaps the warmup (900 steps)",
        ),
    ]:
        path.write_text(text)
        with pytest.raises(ConfigError) as err:
            load_train_config(str(path))
        assert err.value.file == str(path) and err.value.key == key and message in err.value.expected, err.value
        assert main(["validate", str(path)]) == 2
        assert capsys.readouterr().err.strip() == f"error: {err.value}"
    path.write_text(good + "[schedule]\nkind = 'wsd'\nwarmup_steps = 800\ndecay_fraction = 0.2\n")
    assert load_train_config(str(path)).schedule.warmup_steps == 800  # the decay may start right after warmup


def test_the_gpu_benchmark_runs_tiny_on_cpu():
    import subprocess
    import sys

    from tests.helpers import ROOT

    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_train_gpu.py"), "--tiny", "--steps", "6"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "tokens/s" in run.stdout and "6 steps" in run.stdout
