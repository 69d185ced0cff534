"""Architecture variants against references and limiting cases; counts of parameters, FLOPs and memory."""

from __future__ import annotations

import io
import math
from dataclasses import asdict

import pytest
import torch
import torch.nn.functional as F

from trainer.accounting import activation_elements_per_token, flops_per_token, parameter_counts, training_memory
from trainer.checkpoint import save_checkpoint
from trainer.generate import generate, load_model
from trainer.int8 import KIND, quantize_model
from trainer.model import Transformer, sinusoidal_table
from trainer.model_config import ModelConfig
from trainer.moe import FeedForward, MixtureOfExperts
from trainer.optim import OptimConfig, build_optimizers

TINY = dict(vocab_size=64, context_length=32, d_model=32, n_layers=2, n_heads=4)

VARIANTS = {
    "default": {},
    "relu": {"activation": "relu"},
    "gelu": {"activation": "gelu"},
    "silu": {"activation": "silu"},
    "sinusoidal": {"positions": "sinusoidal"},
    "learned": {"positions": "learned"},
    "nope": {"positions": "none"},
    "layernorm": {"norm": "layernorm"},
    "post-norm": {"norm_placement": "post"},
    "moe": {"n_experts": 4, "moe_top_k": 2},
    "sliding-window": {"sliding_window": 8},
    "gqa": {"n_kv_heads": 2},
    "mqa": {"n_kv_heads": 1},
    "dropout": {"dropout": 0.1},
    "combined": {
        "activation": "gelu",
        "positions": "learned",
        "norm": "layernorm",
        "norm_placement": "post",
        "n_experts": 2,
        "moe_top_k": 1,
        "sliding_window": 8,
        "n_kv_heads": 1,
        "dropout": 0.1,
        "tie_embeddings": False,
    },
}


def model(**overrides) -> Transformer:
    torch.manual_seed(0)
    return Transformer(ModelConfig(**{**TINY, **overrides})).eval()


def tokens(batch=2, t=24, seed=1) -> torch.Tensor:
    return torch.randint(0, TINY["vocab_size"], (batch, t), generator=torch.Generator().manual_seed(seed))


def test_sliding_window_as_long_as_the_sequence_is_full_attention():
    full, windowed = model(), model(sliding_window=24)
    x = tokens(t=24)
    torch.testing.assert_close(windowed(x), full(x))
    shorter = model(sliding_window=4)
    assert not torch.allclose(shorter(x), full(x))
    # the first 4 positions see nothing beyond the window, so they agree with full attention
    torch.testing.assert_close(shorter(x)[:, :4], full(x)[:, :4])


def test_sliding_window_equals_the_reference_with_an_explicit_band_mask():
    fast, reference = model(sliding_window=5), model(sliding_window=5, attention="reference")
    x = tokens()
    torch.testing.assert_close(fast(x), reference(x), rtol=1e-4, atol=1e-4)
    # changing a token more than the window back (and layers deep) leaves a position's logits alone
    single = model(sliding_window=5, n_layers=1)
    y = x.clone()
    y[:, 0] = (y[:, 0] + 1) % TINY["vocab_size"]
    torch.testing.assert_close(single(x)[:, 5:], single(y)[:, 5:])


@pytest.mark.parametrize("kv_heads", [1, 2, 4])
def test_grouped_query_attention_equals_multi_head_attention_with_shared_heads(kv_heads):
    grouped = model(n_kv_heads=kv_heads)
    mha = model()
    mha.load_state_dict({k: v for k, v in grouped.state_dict().items() if "qkv" not in k}, strict=False)
    hd, h = grouped.config.head_dim, grouped.config.n_heads
    for g_block, m_block in zip(grouped.blocks, mha.blocks):
        q, k, v = g_block.attn.qkv.weight.split([h * hd, kv_heads * hd, kv_heads * hd])
        expand = lambda w: w.view(kv_heads, hd, -1).repeat_interleave(h // kv_heads, 0).reshape(h * hd, -1)  # noqa: E731
        m_block.attn.qkv.weight.data = torch.cat([q, expand(k), expand(v)])
    x = tokens()
    torch.testing.assert_close(grouped(x), mha(x), rtol=1e-5, atol=1e-5)


def test_a_mixture_of_one_expert_equals_the_dense_feed_forward():
    dense = FeedForward(32, 64, "swiglu")
    moe = MixtureOfExperts(32, 64, "swiglu", n_experts=1, top_k=1, capacity_factor=1.0)
    moe.experts[0].load_state_dict(dense.state_dict())
    x = torch.randn(3, 7, 32)
    for mode in (moe.train, moe.eval):
        mode()
        torch.testing.assert_close(moe(x), dense(x))
    # and a whole model: one expert, weights copied from the dense model
    dense_model, moe_model = model(), model(n_experts=1, moe_top_k=1)
    state = {k.replace(".mlp.", ".mlp.experts.0."): v for k, v in dense_model.state_dict().items()}
    missing = moe_model.load_state_dict(state, strict=False).missing_keys
    assert all(k.endswith("router.weight") for k in missing)
    torch.testing.assert_close(moe_model(tokens()), dense_model(tokens()))


def test_mixture_routing_load_balancing_loss_and_capacity():
    moe = MixtureOfExperts(8, 16, "gelu", n_experts=4, top_k=2, capacity_factor=1.0)
    moe.router.weight.data.zero_()  # uniform router: ties go to experts 0 and 1
    x = torch.randn(1, 10, 8)
    moe.train()(x)
    assert moe.aux_loss.item() == pytest.approx(1.0)  # 4 * (0.5 * 0.25 + 0.5 * 0.25)
    # force every token to expert 0 with top-1 routing: in training only the first `capacity` tokens get
    # through; in evaluation none is dropped
    moe = MixtureOfExperts(8, 16, "gelu", n_experts=2, top_k=1, capacity_factor=0.5)
    moe.router.weight.data = torch.zeros(2, 8)
    moe.router.weight.data[0, 0] = 100.0
    x = torch.randn(1, 12, 8)
    x[..., 0] = 1.0
    out = moe.train()(x)
    capacity = math.ceil(0.5 * 12 * 1 / 2)
    assert (out[0, :capacity].abs().sum(-1) > 0).all() and (out[0, capacity:] == 0).all()
    assert moe.aux_loss.item() == pytest.approx(2 * 1.0 * 1.0, rel=1e-3)  # all load and probability on one
    assert (moe.eval()(x)[0].abs().sum(-1) > 0).all()


def test_sinusoidal_positions_equal_the_formula():
    table = sinusoidal_table(50, 16)
    for pos in (0, 1, 7, 49):
        for i in range(8):
            angle = pos / 10000 ** (2 * i / 16)
            assert float(table[pos, 2 * i]) == pytest.approx(math.sin(angle), abs=1e-6)
            assert float(table[pos, 2 * i + 1]) == pytest.approx(math.cos(angle), abs=1e-6)
    m = model(positions="sinusoidal", n_layers=1)
    x = tokens(batch=1, t=6)
    # the first block's input is the token embedding plus the table
    seen = {}
    m.blocks[0].register_forward_pre_hook(lambda _, args: seen.update(x=args[0]))
    m(x)
    torch.testing.assert_close(seen["x"], m.embed(x) + sinusoidal_table(32, 32)[:6])


def test_post_norm_normalises_after_each_residual_sum_as_in_the_paper():
    m = model(norm_placement="post", norm="layernorm")
    assert isinstance(m.norm, torch.nn.Identity)  # no final norm: the last block's output is normalised
    block = m.blocks[0]
    x = torch.randn(2, 5, 32)
    angles = m.rope[:5]
    h = block.attn_norm(x + block.attn(x, angles))
    torch.testing.assert_close(block(x, angles), block.mlp_norm(h + block.mlp(h)))
    pre = model(norm="layernorm").blocks[0]
    h = x + pre.attn(pre.attn_norm(x), angles)
    torch.testing.assert_close(pre(x, angles), h + pre.mlp(pre.mlp_norm(h)))


@pytest.mark.parametrize("activation", ["relu", "gelu", "silu"])
def test_plain_feed_forward_activations(activation):
    ff = FeedForward(8, 16, activation)
    x = torch.randn(4, 8)
    act = {"relu": F.relu, "gelu": F.gelu, "silu": F.silu}[activation]
    torch.testing.assert_close(ff(x), act(x @ ff.up.weight.T) @ ff.down.weight.T)


def test_dropout_acts_in_training_only():
    m = model(dropout=0.5)
    x = tokens()
    torch.testing.assert_close(m(x), m(x))
    m.train()
    assert not torch.allclose(m(x), m(x))


@pytest.mark.parametrize("name", list(VARIANTS))
def test_each_variant_trains_without_nan_and_its_cache_equals_recomputation(name):
    m = model(**VARIANTS[name]).train()
    optimizer = build_optimizers(m, OptimConfig(name="muon" if name == "combined" else "adamw", lr=3e-3))
    x = tokens(batch=4, t=32, seed=2)
    inputs, targets = x[:, :-1], x[:, 1:]
    losses = []
    for _ in range(25):
        loss = m(inputs, targets=targets)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < losses[0] - 0.5
    m.eval()
    prompt = x[0, :5].tolist()
    cached = generate(m, prompt, 20, temperature=0)
    assert cached.tokens == generate(m, prompt, 20, temperature=0, use_cache=False).tokens


@pytest.mark.parametrize("name", list(VARIANTS))
def test_parameter_counts_from_the_config_equal_the_model(name):
    m = model(**VARIANTS[name])
    counts = parameter_counts(m.config)
    assert counts["total"] == m.num_parameters() == sum(p.numel() for p in m.parameters())
    assert counts["non_embedding"] == m.num_parameters(embedding=False)


@pytest.mark.parametrize("name", list(VARIANTS))
def test_every_variant_loads_through_the_checkpoint_check_in_float_and_int8(name):
    """The check that a checkpoint's configuration describes its tensors knows every variant's tensors."""
    m = model(**VARIANTS[name]).eval()
    x = torch.randint(0, 64, (2, 16))
    for quantized in (False, True):
        if quantized:
            quantize_model(m)
        buffer = io.BytesIO()
        extra = {"quantization": KIND} if quantized else {"optimizer": {}, "step": 0, "rng": [], "data": []}
        save_checkpoint(buffer, {"model": m.state_dict(), "config": {"model": asdict(m.config)}, **extra})
        loaded = load_model(buffer)[0].eval()
        with torch.no_grad():
            assert torch.equal(loaded(x), m(x))


def test_parameter_and_flop_counts_equal_hand_counts():
    # GELU MLP, learned positions, LayerNorm, untied head, grouped-query attention
    c = ModelConfig(
        vocab_size=1000,
        context_length=64,
        d_model=64,
        n_layers=3,
        n_heads=8,
        n_kv_heads=2,
        activation="gelu",
        positions="learned",
        norm="layernorm",
        tie_embeddings=False,
    )
    qkv, out, mlp = 64 * (8 + 2 + 2) * 8, 64 * 64, 2 * 64 * 256  # d_ff = 4 d_model
    per_layer = qkv + out + mlp + 2 * (2 * 64)  # two LayerNorms with weight and bias
    assert parameter_counts(c) == {
        "embedding": 1000 * 64 + 64 * 64,
        "non_embedding": 3 * per_layer + 2 * 64 + 1000 * 64,
        "total": 1000 * 64 + 64 * 64 + 3 * per_layer + 2 * 64 + 1000 * 64,
    }
    forward = 2 * (3 * (qkv + out + mlp) + 1000 * 64) + 2 * 2 * 3 * 64 * 64
    assert flops_per_token(c) == {"forward": forward, "training": 3 * forward}
    # a mixture of 8 SwiGLU experts, top-2, post-norm RMSNorm, a 16-token window
    c = ModelConfig(
        vocab_size=500,
        context_length=128,
        d_model=32,
        n_layers=2,
        n_heads=4,
        d_ff=64,
        n_experts=8,
        moe_top_k=2,
        norm_placement="post",
        sliding_window=16,
    )
    attention, expert, router = 32 * 3 * 32 + 32 * 32, 3 * 32 * 64, 32 * 8
    assert parameter_counts(c) == {
        "embedding": 500 * 32,
        "non_embedding": 2 * (attention + 8 * expert + router + 2 * 32),  # no final norm
        "total": 500 * 32 + 2 * (attention + 8 * expert + router + 2 * 32),
    }
    forward = 2 * (2 * (attention + 2 * expert + router) + 500 * 32) + 2 * 2 * 2 * 16 * 32
    assert flops_per_token(c) == {"forward": forward, "training": 3 * forward}


def saved_tensor_values(m: Transformer, batch: int, t: int) -> int:
    """Float32 values autograd saves in one training forward (each storage once, parameters left out)."""
    params = {p.data_ptr() for p in m.parameters()} | {b.data_ptr() for b in m.buffers()}
    seen: dict = {}

    def pack(x):
        storage = x.untyped_storage()
        if storage.data_ptr() not in params:
            seen[storage.data_ptr()] = storage.nbytes()
        return x

    x = tokens(batch=batch, t=t)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda x: x):
        m.train()(x, targets=x)
    return sum(seen.values()) // 4


@pytest.mark.parametrize("name", ["default", "relu", "gelu", "moe", "dropout", "learned", "combined"])
def test_activation_memory_estimate_is_close_to_what_autograd_saves(name):
    m = model(**VARIANTS[name])
    # the difference between two batch sizes leaves out what does not grow with the batch
    measured = (saved_tensor_values(m, 4, 32) - saved_tensor_values(m, 2, 32)) / (2 * 32)
    assert activation_elements_per_token(m.config, 32) == pytest.approx(measured, rel=0.12)


def test_training_memory_adds_up():
    c = ModelConfig(**TINY)
    n = parameter_counts(c)["total"]
    adamw = training_memory(c, batch_size=8)
    assert adamw["parameters"] == adamw["gradients"] == 4 * n and adamw["optimizer"] == 8 * n
    assert adamw["activations"] == 4 * 8 * 32 * activation_elements_per_token(c, 32)
    assert adamw["total"] == sum(v for k, v in adamw.items() if k != "total")
    muon = training_memory(c, batch_size=8, optimizer="muon")
    assert adamw["optimizer"] > muon["optimizer"] > 4 * n
    assert training_memory(c, 8, dtype="bfloat16")["activations"] == adamw["activations"] // 2


def test_validate_prints_what_a_training_file_costs(capsys):
    from pipeline.cli import main
    from pipeline.models.configs import load_train_config
    from tests.helpers import ROOT

    path = str(ROOT / "workflows" / "train.toml")
    assert main(["validate", path]) == 0
    out = capsys.readouterr().out
    config = load_train_config(path)
    counts, flops = parameter_counts(config.model), flops_per_token(config.model)
    assert f"parameters: {counts['total']:,} ({counts['embedding']:,} embedding" in out
    assert f"{flops['training']:,} training" in out and "adamw state" in out
