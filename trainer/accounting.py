"""What a model costs, from its configuration alone: parameters (embedding and non-embedding), FLOPs per
token (forward and training) and training memory (parameters, gradients, optimizer state, activations).

Conventions (Kaplan et al. 2020): a matmul with an (m x n) weight costs 2mn FLOPs per token; attention's
scores and weighted sum cost 2 * 2 * n_layers * context * d_model per token at full context (the causal
half not discounted; a sliding window caps the context); training is three forwards (forward + backward).
A mixture of experts counts every expert's parameters but only the ``top_k`` experts a token visits (and
the router) in FLOPs. Non-embedding parameters leave out the input embeddings (tokens, learned positions);
an untied LM head counts as non-embedding.
"""

from __future__ import annotations

from trainer.model_config import ModelConfig


def _norm_params(config: ModelConfig) -> int:
    return (2 if config.norm == "layernorm" else 1) * config.d_model


def _feed_forward_params(config: ModelConfig) -> int:
    return (3 if config.activation == "swiglu" else 2) * config.d_model * config.d_ff


def _layer_matmul_params(config: ModelConfig, active: bool) -> int:
    """The weights of one block's matmuls; with ``active``, only those one token uses (its top-k experts)."""
    d = config.d_model
    attention = d * (config.n_heads + 2 * config.n_kv_heads) * config.head_dim + d * d
    if not config.n_experts:
        return attention + _feed_forward_params(config)
    experts = config.moe_top_k if active else config.n_experts
    return attention + experts * _feed_forward_params(config) + d * config.n_experts


def parameter_counts(config: ModelConfig) -> dict:
    """``total``, ``embedding`` (input token and learned position tables) and ``non_embedding``
    parameters; a tied LM head is the token embedding, counted once."""
    d = config.d_model
    embedding = config.vocab_size * d + (config.context_length * d if config.positions == "learned" else 0)
    per_layer = _layer_matmul_params(config, active=False) + 2 * _norm_params(config)
    non_embedding = config.n_layers * per_layer
    non_embedding += _norm_params(config) if config.norm_placement == "pre" else 0
    non_embedding += 0 if config.tie_embeddings else config.vocab_size * d
    return {"total": embedding + non_embedding, "embedding": embedding, "non_embedding": non_embedding}


def flops_per_token(config: ModelConfig) -> dict:
    """Forward and training FLOPs per token at full context: every matmul a token passes through (the LM
    head included, the embedding lookup not) plus attention's scores and weighted sum."""
    matmul = config.n_layers * _layer_matmul_params(config, active=True) + config.vocab_size * config.d_model
    context = min(config.sliding_window, config.context_length) if config.sliding_window else config.context_length
    attention = 2 * config.n_layers * context * config.d_model
    forward = 2 * matmul + 2 * attention
    return {"forward": forward, "training": 3 * forward}


def activation_elements_per_token(config: ModelConfig, context: int) -> int:
    """Values autograd keeps per token for the backward pass, estimated from the layer shapes (within ~10%
    of what the saved-tensor hooks record for the tested configurations; tests/test_variants.py)."""
    d = config.d_model
    attention = (12 if config.positions == "rope" else 10) * d  # RoPE keeps the rotated queries and keys too
    ffn = {"swiglu": 4, "relu": 1}.get(config.activation, 2) * config.d_ff  # relu keeps only its output
    if config.n_experts:
        ffn = config.moe_top_k * (ffn + 2 * d) + 4 * config.n_experts
    # attention dropout keeps the probabilities and the dropout mask, over the whole context even in a
    # sliding window (the window is a mask on the full scores)
    dropout = 2 * config.n_heads * context + 3 * d if config.dropout else 0
    return config.n_layers * (attention + ffn + dropout) + 3 * d


def training_memory(
    config: ModelConfig, batch_size: int, context: int | None = None, optimizer: str = "adamw", dtype: str = "float32"
) -> dict:
    """Bytes of training state: float32 ``parameters``, ``gradients``, ``optimizer`` state (AdamW: two
    moments per parameter; Muon: one momentum for the blocks' matrices, AdamW's two for the rest) and the
    ``activations`` of one micro-batch of ``batch_size`` rows of ``context`` tokens (2 bytes a value under
    bfloat16 autocast, else 4), and their ``total``."""
    counts = parameter_counts(config)
    hidden = config.n_layers * _layer_matmul_params(config, active=False)
    state = 4 * hidden + 8 * (counts["total"] - hidden) if optimizer == "muon" else 8 * counts["total"]
    context = context or config.context_length
    per_value = 2 if dtype == "bfloat16" else 4
    memory = {
        "parameters": 4 * counts["total"],
        "gradients": 4 * counts["total"],
        "optimizer": state,
        "activations": per_value * batch_size * context * activation_elements_per_token(config, context),
    }
    return {**memory, "total": sum(memory.values())}


def describe(config: ModelConfig, batch_size: int, optimizer: str = "adamw", dtype: str = "float32") -> str:
    """The counts above as a few lines of text (``refinery validate`` prints them for training files)."""
    counts, flops = parameter_counts(config), flops_per_token(config)
    memory = training_memory(config, batch_size, optimizer=optimizer, dtype=dtype)
    mb = {k: v / 2**20 for k, v in memory.items()}
    return (
        f"parameters: {counts['total']:,} ({counts['embedding']:,} embedding, {counts['non_embedding']:,} other)\n"
        f"FLOPs per token: {flops['forward']:,} forward, {flops['training']:,} training\n"
        f"training memory at batch {batch_size} x {config.context_length}: {mb['total']:,.1f} MiB = parameters "
        f"{mb['parameters']:,.1f} + gradients {mb['gradients']:,.1f} + {optimizer} state {mb['optimizer']:,.1f} + "
        f"activations {mb['activations']:,.1f} (estimated)"
    )
