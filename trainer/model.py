"""A decoder-only Transformer: token embedding, pre-norm blocks (RMSNorm, causal attention with RoPE and
optional grouped-query heads, SwiGLU feed-forward), final RMSNorm, LM head (tied or not).

Attention runs through ``scaled_dot_product_attention`` (``attention = "sdpa"``) or a plain implementation
(``"reference"``) that the tests compare it with. A :class:`KVCache` serves generation: the prompt is
prefilled at once, then one token at a time attends to the cache. Rows that pack several examples
(``segments``) attend within each example only, with positions restarting at every example, so a packed row
computes exactly what its examples would compute one by one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from trainer.errors import ConfigValueError
from trainer.loss import linear_cross_entropy


@dataclass(kw_only=True)
class ModelConfig:
    vocab_size: int = 2048
    context_length: int = 256
    d_model: int = 256
    n_layers: int = 4
    n_heads: int = 4
    n_kv_heads: int = 0  # 0: as many as n_heads (multi-head); fewer: grouped-query attention
    d_ff: int = 0  # 0: 8/3 d_model rounded up to a multiple of 64 (SwiGLU's usual size)
    tie_embeddings: bool = True
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5
    attention: str = "sdpa"

    def __post_init__(self):
        for name in ("vocab_size", "context_length", "d_model", "n_layers", "n_heads"):
            if getattr(self, name) < 1:
                raise ConfigValueError(name, "must be >= 1")
        if self.d_model % self.n_heads:
            raise ConfigValueError("n_heads", f"must divide d_model ({self.d_model})")
        if (self.d_model // self.n_heads) % 2:
            raise ConfigValueError("n_heads", "d_model / n_heads must be even (RoPE rotates pairs)")
        if self.n_kv_heads == 0:
            self.n_kv_heads = self.n_heads
        if self.n_kv_heads < 1 or self.n_heads % self.n_kv_heads:
            raise ConfigValueError("n_kv_heads", f"must divide n_heads ({self.n_heads})")
        if self.d_ff == 0:
            self.d_ff = 64 * math.ceil(8 * self.d_model / 3 / 64)
        if self.attention not in ("sdpa", "reference"):
            raise ConfigValueError("attention", "expected 'sdpa' or 'reference'")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads


class RMSNorm(nn.Module):
    """x / sqrt(mean(x^2) + eps) * weight, computed in float32."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return h.type_as(x) * self.weight


def rope_angles(head_dim: int, length: int, theta: float, device=None) -> torch.Tensor:
    """The rotary angles as unit complex numbers, shape (length, head_dim // 2)."""
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim)
    angles = torch.outer(torch.arange(length, device=device, dtype=torch.float32), inv_freq)
    return torch.polar(torch.ones_like(angles), angles)


def apply_rope(x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """Rotate consecutive pairs of ``x`` (batch, heads, time, head_dim), each pair a complex number, by the
    angles of their positions (one complex multiplication: a single kernel)."""
    pairs = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2))
    return torch.view_as_real(pairs * angles).flatten(-2).type_as(x)


def reference_attention(q, k, v, causal: bool, mask: torch.Tensor | None = None) -> torch.Tensor:
    """softmax(q k^T / sqrt(d)) v with an optional causal mask aligned to the end (for a KV cache), or an
    explicit boolean ``mask`` (True: may attend)."""
    scores = (q.float() @ k.float().transpose(-2, -1)) / math.sqrt(q.size(-1))
    if causal and mask is None:
        tq, tk = q.size(-2), k.size(-2)
        mask = torch.ones(tq, tk, dtype=torch.bool, device=q.device).tril(diagonal=tk - tq)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return (scores.softmax(-1) @ v.float()).type_as(q)


def packed_positions_and_mask(segments: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For rows of consecutive examples (``segments``: (batch, time), the example number of each position),
    each position's index within its example and the attention mask (batch, 1, time, time) that lets a
    position see only the earlier positions of its own example."""
    t = segments.size(1)
    index = torch.arange(t, device=segments.device).expand_as(segments)
    starts = torch.ones_like(segments, dtype=torch.bool)
    starts[:, 1:] = segments[:, 1:] != segments[:, :-1]
    first = torch.where(starts, index, torch.zeros_like(index)).cummax(dim=1).values
    causal = torch.ones(t, t, dtype=torch.bool, device=segments.device).tril()
    mask = (segments[:, :, None] == segments[:, None, :]) & causal
    return index - first, mask[:, None]


class KVCache:
    """Keys and values of every layer for positions already seen, preallocated to ``max_length``."""

    def __init__(self, config: ModelConfig, batch: int, max_length: int, device, dtype):
        shape = (config.n_layers, batch, config.n_kv_heads, max_length, config.head_dim)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.length = 0
        self.max_length = max_length

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        end = self.length + k.size(2)
        if end > self.max_length:
            raise ValueError(f"the KV cache holds {self.max_length} positions; {end} needed")
        self.k[layer, :, :, self.length : end] = k
        self.v[layer, :, :, self.length : end] = v
        return self.k[layer, :, :, :end], self.v[layer, :, :, :end]


class Attention(nn.Module):
    def __init__(self, config: ModelConfig, layer: int):
        super().__init__()
        self.config, self.layer = config, layer
        self.qkv = nn.Linear(config.d_model, (config.n_heads + 2 * config.n_kv_heads) * config.head_dim, bias=False)
        self.out = nn.Linear(config.d_model, config.d_model, bias=False)

    def forward(self, x, angles, cache: KVCache | None = None, mask: torch.Tensor | None = None) -> torch.Tensor:
        c = self.config
        b, t, _ = x.shape
        q, k, v = self.qkv(x).split(
            [c.n_heads * c.head_dim, c.n_kv_heads * c.head_dim, c.n_kv_heads * c.head_dim], dim=-1
        )
        q = q.view(b, t, c.n_heads, c.head_dim).transpose(1, 2)
        k = k.view(b, t, c.n_kv_heads, c.head_dim).transpose(1, 2)
        v = v.view(b, t, c.n_kv_heads, c.head_dim).transpose(1, 2)
        q, k = apply_rope(q, angles), apply_rope(k, angles)
        if cache is not None:
            k, v = cache.update(self.layer, k, v)
        if c.n_kv_heads != c.n_heads:
            repeat = c.n_heads // c.n_kv_heads
            k, v = k.repeat_interleave(repeat, dim=1), v.repeat_interleave(repeat, dim=1)
        if c.attention == "reference":
            y = reference_attention(q, k, v, causal=True, mask=mask)
        elif mask is not None:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        elif t == k.size(2):
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        elif t == 1:
            y = F.scaled_dot_product_attention(q, k, v)  # one new token attends to every cached one
        else:
            mask = torch.ones(t, k.size(2), dtype=torch.bool, device=x.device).tril(diagonal=k.size(2) - t)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.out(y.transpose(1, 2).reshape(b, t, c.d_model))


class SwiGLU(nn.Module):
    """down(silu(gate x) * up x), with gate and up as one matrix (one larger matmul instead of two)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.gate_up = nn.Linear(config.d_model, 2 * config.d_ff, bias=False)
        self.down = nn.Linear(config.d_ff, config.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        return self.down(F.silu(gate) * up)


class Block(nn.Module):
    def __init__(self, config: ModelConfig, layer: int):
        super().__init__()
        self.attn_norm = RMSNorm(config.d_model, config.norm_eps)
        self.attn = Attention(config, layer)
        self.mlp_norm = RMSNorm(config.d_model, config.norm_eps)
        self.mlp = SwiGLU(config)

    def forward(self, x, angles, cache=None, mask=None):
        x = x + self.attn(self.attn_norm(x), angles, cache, mask)
        return x + self.mlp(self.mlp_norm(x))


class Transformer(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.d_model)
        self.blocks = nn.ModuleList(Block(config, i) for i in range(config.n_layers))
        self.norm = RMSNorm(config.d_model, config.norm_eps)
        self.head = None if config.tie_embeddings else nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.register_buffer(
            "rope", rope_angles(config.head_dim, config.context_length, config.rope_theta), persistent=False
        )
        self.apply(self._init)
        for block in self.blocks:  # residual branches scaled down with depth (GPT-2)
            for proj in (block.attn.out, block.mlp.down):
                nn.init.normal_(proj.weight, std=0.02 / math.sqrt(2 * config.n_layers))

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)

    def forward(
        self,
        idx: torch.Tensor,
        cache: KVCache | None = None,
        targets: torch.Tensor | None = None,
        *,
        segments: torch.Tensor | None = None,
        reduction: str = "mean",
    ) -> torch.Tensor:
        """Logits (batch, time, vocab) of the tokens ``idx`` (batch, time), after those in ``cache``; given
        ``targets`` (batch, time; ``IGNORE`` where no loss is taken), the cross-entropy of predicting them
        instead ("mean" or "sum" over the counted targets), computed without materializing the logits
        (trainer/loss.py). ``segments`` (batch, time) marks the examples packed into each row."""
        start = cache.length if cache is not None else 0
        t = idx.size(1)
        if start + t > self.config.context_length:
            raise ValueError(f"{start + t} positions exceed the context length {self.config.context_length}")
        mask = None
        if segments is None:
            angles = self.rope[start : start + t]
        else:
            if cache is not None:
                raise ValueError("packed rows (segments) cannot be decoded against a KV cache")
            positions, mask = packed_positions_and_mask(segments)
            angles = self.rope[positions][:, None]  # (batch, 1, time, head_dim / 2): one angle per row and head
        x = self.embed(idx)
        for block in self.blocks:
            x = block(x, angles, cache, mask)
        if cache is not None:
            cache.length += t
        x = self.norm(x)
        weight = self.embed.weight if self.head is None else self.head.weight
        return F.linear(x, weight) if targets is None else linear_cross_entropy(x, weight, targets, reduction)

    def num_parameters(self, embedding: bool = True) -> int:
        """Parameters (a tied embedding counted once), optionally without the input embedding."""
        n = sum(p.numel() for p in self.parameters())
        return n if embedding else n - self.embed.weight.numel()

    def flops_per_token(self) -> dict:
        """Forward and training (forward + backward = 3x) FLOPs per token at full context: every matmul
        (the LM head included, the embedding lookup not) plus attention's scores and weighted sum."""
        c = self.config
        matmul = sum(p.numel() for n, p in self.named_parameters() if p.dim() == 2 and not n.startswith("embed"))
        matmul += c.vocab_size * c.d_model if self.head is None else 0
        attention = 2 * c.n_layers * c.context_length * c.d_model  # q k^T and p v, per token
        forward = 2 * matmul + 2 * attention
        return {"forward": forward, "training": 3 * forward}
