"""The model's configuration (the ``[model]`` table of a training file): sizes and every architecture switch,
checked on construction. Separate from :mod:`trainer.model` so that cost accounting (:mod:`trainer.accounting`)
reads it without the model's code."""

from __future__ import annotations

import math
from dataclasses import dataclass

from tokenizer.errors import invalid

CHOICES = {
    "activation": ("swiglu", "relu", "gelu", "silu"),
    "positions": ("rope", "sinusoidal", "learned", "none"),
    "norm": ("rmsnorm", "layernorm"),
    "norm_placement": ("pre", "post"),
    "attention": ("sdpa", "reference"),
}


@dataclass(kw_only=True)
class ModelConfig:
    vocab_size: int = 2048
    context_length: int = 256
    d_model: int = 256
    n_layers: int = 4
    n_heads: int = 4
    n_kv_heads: int = 0  # 0: as many as n_heads (multi-head); fewer: grouped-query; 1: multi-query attention
    d_ff: int = 0  # 0: 8/3 d_model rounded up to a multiple of 64 for SwiGLU, 4 d_model for the others
    tie_embeddings: bool = True
    activation: str = "swiglu"
    positions: str = "rope"
    rope_theta: float = 10000.0
    norm: str = "rmsnorm"
    norm_placement: str = "pre"
    norm_eps: float = 1e-5
    sliding_window: int = 0  # 0: full causal attention; w: each position sees itself and the w - 1 before it
    dropout: float = 0.0  # on attention weights, after each sublayer and after the embedding (training only)
    n_experts: int = 0  # 0: a dense feed-forward; n: a mixture of n experts of d_ff each
    moe_top_k: int = 2
    moe_capacity_factor: float = 1.25  # 0: no capacity limit
    moe_aux_weight: float = 0.01  # weight of the load-balancing loss added to the training loss
    attention: str = "sdpa"

    def __post_init__(self):
        for name in ("vocab_size", "context_length", "d_model", "n_layers", "n_heads"):
            if getattr(self, name) < 1:
                raise invalid(name, "must be >= 1")
        for name, allowed in CHOICES.items():
            if getattr(self, name) not in allowed:
                raise invalid(name, "expected one of " + ", ".join(repr(a) for a in allowed))
        if self.d_model % self.n_heads:
            raise invalid("n_heads", f"must divide d_model ({self.d_model})")
        if self.positions == "rope" and (self.d_model // self.n_heads) % 2:
            raise invalid("n_heads", "d_model / n_heads must be even (RoPE rotates pairs)")
        if self.positions == "sinusoidal" and self.d_model % 2:
            raise invalid("d_model", "must be even for sinusoidal positions (sine and cosine pairs)")
        if self.n_kv_heads == 0:
            self.n_kv_heads = self.n_heads
        if self.n_kv_heads < 1 or self.n_heads % self.n_kv_heads:
            raise invalid("n_kv_heads", f"must divide n_heads ({self.n_heads})")
        if self.d_ff < 0:
            raise invalid("d_ff", "must be >= 1 (or 0: 8/3 d_model for SwiGLU, 4 d_model for the others)")
        for name in ("rope_theta", "norm_eps"):
            if not getattr(self, name) > 0:
                raise invalid(name, "must be > 0")
        if self.d_ff == 0:
            self.d_ff = 64 * math.ceil(8 * self.d_model / 3 / 64) if self.activation == "swiglu" else 4 * self.d_model
        if self.sliding_window < 0:
            raise invalid("sliding_window", "must be >= 0 (0: full attention)")
        if not 0 <= self.dropout < 1:
            raise invalid("dropout", "must be in [0, 1)")
        if self.n_experts < 0 or (self.n_experts and not 1 <= self.moe_top_k <= self.n_experts):
            raise invalid("moe_top_k", f"must be in [1, n_experts] ({self.n_experts})")
        if self.moe_capacity_factor < 0 or self.moe_aux_weight < 0:
            raise invalid("moe_capacity_factor", "moe_capacity_factor and moe_aux_weight must be >= 0")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads
