"""A decoder-only Transformer: token embedding, blocks of causal attention and a feed-forward layer, final
norm, LM head (tied or not). The default is the Llama recipe: pre-norm RMSNorm, rotary positions, SwiGLU.

Every choice is a switch of :class:`ModelConfig`, usable alone or combined, for ablations: the activation
(SwiGLU, ReLU, GELU, SiLU), positions (RoPE, sinusoidal, learned, none), the norm (RMSNorm, LayerNorm) and
its placement (pre-norm; post-norm as in Vaswani et al. 2017: ``x = norm(x + sublayer(x))``, no final norm),
a dense feed-forward or a mixture of experts (trainer/moe.py), full causal or sliding-window attention,
multi-head, grouped-query or multi-query attention (``n_kv_heads``), and dropout.

Attention runs through ``scaled_dot_product_attention`` (``attention = "sdpa"``) or a plain implementation
(``"reference"``) that the tests compare it with. A :class:`KVCache` serves generation: the prompt is
prefilled at once, then new tokens attend to the cache; rows padded on the left compute what they would
alone. Rows that pack several examples (``segments``) attend within each example only, with positions
restarting at every example, so a packed row computes exactly what its examples would compute one by one.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from trainer.accounting import flops_per_token
from trainer.cache import KVCache
from trainer.loss import IGNORE, linear_cross_entropy
from trainer.model_config import ModelConfig
from trainer.moe import FeedForward, MixtureOfExperts


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


def make_norm(config: ModelConfig) -> nn.Module:
    if config.norm == "layernorm":
        return nn.LayerNorm(config.d_model, eps=config.norm_eps)
    return RMSNorm(config.d_model, config.norm_eps)


def rope_angles(head_dim: int, length: int, theta: float, device=None) -> torch.Tensor:
    """The rotary angles' cosines and sines, float32, shape (length, head_dim // 2, 2)."""
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim)
    angles = torch.outer(torch.arange(length, device=device, dtype=torch.float32), inv_freq)
    return torch.view_as_real(torch.polar(torch.ones_like(angles), angles))  # polar's cos and sin, to the bit


def apply_rope(x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """Rotate consecutive pairs (x1, x2) of ``x`` (batch, heads, time, head_dim) by the angles of their
    positions (``rope_angles``): (x1 cos - x2 sin, x1 sin + x2 cos), in float32. Eager PyTorch does it fastest
    as one complex multiplication; torch.compile generates no code for complex numbers (it falls back to an
    eager kernel and breaks fusion), so a compiled model takes the real arithmetic, which it fuses."""
    if torch.compiler.is_compiling():
        return rotate_pairs(x, angles)
    pairs = torch.view_as_complex(x.float().unflatten(-1, (-1, 2)))
    return torch.view_as_real(pairs * torch.view_as_complex(angles)).flatten(-2).type_as(x)


def rotate_pairs(x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """``apply_rope`` in real arithmetic."""
    x1, x2 = x.float().unflatten(-1, (-1, 2)).unbind(-1)
    cos, sin = angles.unbind(-1)
    return torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).flatten(-2).type_as(x)


def sinusoidal_table(length: int, dim: int) -> torch.Tensor:
    """Vaswani et al.'s positional encodings: PE[p, 2i] = sin(p / 10000^(2i/dim)), PE[p, 2i+1] = cos(...)."""
    angles = torch.outer(torch.arange(length, dtype=torch.float64), 10000.0 ** (-torch.arange(0, dim, 2) / dim))
    return torch.stack([angles.sin(), angles.cos()], dim=-1).flatten(-2).float()


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


def causal_mask(start: int, t: int, window: int, device) -> torch.Tensor:
    """(t, start + t): query ``start + i`` may see key j when j <= start + i (and j > start + i - window)."""
    query = torch.arange(start, start + t, device=device)[:, None]
    key = torch.arange(start + t, device=device)[None, :]
    mask = key <= query
    return mask & (key > query - window) if window else mask


class Attention(nn.Module):
    def __init__(self, config: ModelConfig, layer: int):
        super().__init__()
        self.config, self.layer = config, layer
        self.qkv = nn.Linear(config.d_model, (config.n_heads + 2 * config.n_kv_heads) * config.head_dim, bias=False)
        self.out = nn.Linear(config.d_model, config.d_model, bias=False)

    def forward(self, x, angles, cache: KVCache | None = None, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``mask`` (True: may attend) or, when None, plain causal attention aligned to the end of the keys."""
        c = self.config
        b, t, _ = x.shape
        q, k, v = self.qkv(x).split(
            [c.n_heads * c.head_dim, c.n_kv_heads * c.head_dim, c.n_kv_heads * c.head_dim], dim=-1
        )
        q = q.view(b, t, c.n_heads, c.head_dim).transpose(1, 2)
        k = k.view(b, t, c.n_kv_heads, c.head_dim).transpose(1, 2)
        v = v.view(b, t, c.n_kv_heads, c.head_dim).transpose(1, 2)
        if angles is not None:
            q, k = apply_rope(q, angles), apply_rope(k, angles)
        if cache is not None:
            k, v = cache.update(self.layer, k, v)
        if c.n_kv_heads != c.n_heads:
            repeat = c.n_heads // c.n_kv_heads
            k, v = k.repeat_interleave(repeat, dim=1), v.repeat_interleave(repeat, dim=1)
        dropout = c.dropout if self.training else 0.0
        if c.attention == "reference":
            y = reference_attention(q, k, v, causal=True, mask=mask)
        elif mask is not None:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)
        elif t == k.size(2):
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=dropout)
        elif t == 1:
            y = F.scaled_dot_product_attention(q, k, v)  # one new token attends to every cached one
        else:
            mask = causal_mask(k.size(2) - t, t, 0, x.device)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.out(y.transpose(1, 2).reshape(b, t, c.d_model))


class Block(nn.Module):
    """Attention then feed-forward, each a residual branch, normalised before (pre-norm) or after the
    residual sum (post-norm)."""

    def __init__(self, config: ModelConfig, layer: int):
        super().__init__()
        self.post_norm = config.norm_placement == "post"
        self.attn_norm = make_norm(config)
        self.attn = Attention(config, layer)
        self.mlp_norm = make_norm(config)
        if config.n_experts:
            self.mlp = MixtureOfExperts(
                config.d_model,
                config.d_ff,
                config.activation,
                config.n_experts,
                config.moe_top_k,
                config.moe_capacity_factor,
            )
        else:
            self.mlp = FeedForward(config.d_model, config.d_ff, config.activation)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x, angles, cache=None, mask=None):
        if self.post_norm:
            x = self.attn_norm(x + self.dropout(self.attn(x, angles, cache, mask)))
            return self.mlp_norm(x + self.dropout(self.mlp(x)))
        x = x + self.dropout(self.attn(self.attn_norm(x), angles, cache, mask))
        return x + self.dropout(self.mlp(self.mlp_norm(x)))


class Transformer(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.d_model)
        if config.positions == "learned":
            self.pos_embed = nn.Embedding(config.context_length, config.d_model)
        elif config.positions == "sinusoidal":
            self.register_buffer("pos_table", sinusoidal_table(config.context_length, config.d_model), persistent=False)
        if config.positions == "rope":
            self.register_buffer(
                "rope", rope_angles(config.head_dim, config.context_length, config.rope_theta), persistent=False
            )
        self.dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config, i) for i in range(config.n_layers))
        self.norm = make_norm(config) if config.norm_placement == "pre" else nn.Identity()
        self.head = None if config.tie_embeddings else nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.apply(self._init)
        for block in self.blocks:  # residual branches scaled down with depth (GPT-2)
            for proj in (block.attn.out, *(m.down for m in block.mlp.modules() if isinstance(m, FeedForward))):
                nn.init.normal_(proj.weight, std=0.02 / math.sqrt(2 * config.n_layers))

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)

    def _apply(self, fn, recurse=True):
        """As ``nn.Module._apply``, but the RoPE table stays float32: ``model.to(torch.bfloat16)`` (inference on
        a GPU) would otherwise round its cosines and sines to 8 bits, blurring distant positions."""
        super()._apply(fn, recurse)
        c = self.config
        if c.positions == "rope" and self.rope.dtype != torch.float32:
            self.rope = rope_angles(c.head_dim, c.context_length, c.rope_theta, device=self.rope.device)
        return self

    def _positions_and_mask(self, t: int, cache, segments, valid):
        """Each position's index (None: ``start + arange(t)`` for every row) and the attention mask (None:
        plain causal attention), for packed rows, padded rows in a cache, or plain rows."""
        c = self.config
        start = cache.length if cache is not None else 0
        if segments is not None:
            if cache is not None:
                raise ValueError("packed rows (segments) cannot be decoded against a KV cache")
            positions, mask = packed_positions_and_mask(segments)
            if c.sliding_window:
                mask = mask & causal_mask(0, t, c.sliding_window, segments.device)
            return positions, mask
        device = self.embed.weight.device
        positions = cache.prepare(t, valid) if cache is not None else None
        if cache is not None and cache.padded:
            # real keys only; every position may see itself, so a padding position stays finite
            mask = causal_mask(start, t, c.sliding_window, device) & cache.key_mask(t)
            diagonal = torch.arange(start + t, device=device) == torch.arange(start, start + t, device=device)[:, None]
            return positions, mask | diagonal
        if c.sliding_window and start + t > c.sliding_window:
            return positions, causal_mask(start, t, c.sliding_window, device)
        return positions, None

    def forward(
        self,
        idx: torch.Tensor,
        cache: KVCache | None = None,
        targets: torch.Tensor | None = None,
        *,
        segments: torch.Tensor | None = None,
        valid: torch.Tensor | None = None,
        reduction: str = "mean",
    ) -> torch.Tensor:
        """Logits (batch, time, vocab) of the tokens ``idx`` (batch, time), after those in ``cache``; given
        ``targets`` (batch, time; ``IGNORE`` where no loss is taken), the cross-entropy of predicting them
        instead ("mean" or "sum" over the counted targets), computed without materializing the logits
        (trainer/loss.py); in training a mixture of experts adds its load-balancing loss. ``segments``
        (batch, time) marks the examples packed into each row; ``valid`` (batch, time), with a cache, marks
        real tokens (False: left padding)."""
        start = cache.length if cache is not None else 0
        t = idx.size(1)
        if start + t > self.config.context_length:
            raise ValueError(f"{start + t} positions exceed the context length {self.config.context_length}")
        positions, mask = self._positions_and_mask(t, cache, segments, valid)
        x = self.embed(idx)
        angles = None
        if positions is None:
            positions = torch.arange(start, start + t, device=idx.device)
        if self.config.positions == "rope":
            angles = self.rope[positions]
            angles = angles[:, None] if angles.dim() == 4 else angles  # per-row positions: broadcast over heads
        elif self.config.positions == "learned":
            x = x + self.pos_embed(positions)
        elif self.config.positions == "sinusoidal":
            x = x + self.pos_table[positions].to(x.dtype)
        x = self.dropout(x)
        for block in self.blocks:
            x = block(x, angles, cache, mask)
        if cache is not None:
            cache.advance(t)
        x = self.norm(x)
        weight = self.embed.weight if self.head is None else self.head.weight
        if targets is None:
            return F.linear(x, weight)
        loss = linear_cross_entropy(x, weight, targets, reduction)
        if self.config.n_experts and self.training and self.config.moe_aux_weight:
            aux = sum(block.mlp.aux_loss for block in self.blocks) / self.config.n_layers
            scale = (targets != IGNORE).sum() if reduction == "sum" else 1
            loss = loss + self.config.moe_aux_weight * aux * scale
        return loss

    def num_parameters(self, embedding: bool = True) -> int:
        """Parameters (a tied embedding counted once), optionally without the input embeddings (tokens and
        learned positions)."""
        n = sum(p.numel() for p in self.parameters())
        if embedding:
            return n
        n -= self.embed.weight.numel()
        return n - (self.pos_embed.weight.numel() if self.config.positions == "learned" else 0)

    def flops_per_token(self) -> dict:
        """Forward and training FLOPs per token at full context (trainer/accounting.py)."""
        return flops_per_token(self.config)
