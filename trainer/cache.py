"""The KV cache of generation: keys and values of every layer for the positions already seen, preallocated.

Rows of a batch may start with padding (prompts of different lengths, left-aligned to a common end). The
cache remembers which of its slots hold real tokens (``valid``) and how many real tokens each row has seen,
so that a row's positions and attention ignore its padding: a padded row computes what it would alone.
"""

from __future__ import annotations

import torch


class KVCache:
    """Keys and values (layers, batch, kv_heads, max_length, head_dim) and, per slot, whether it is real."""

    def __init__(self, config, batch: int, max_length: int, device, dtype):
        shape = (config.n_layers, batch, config.n_kv_heads, max_length, config.head_dim)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.valid = torch.ones(batch, max_length, dtype=torch.bool, device=device)
        self.seen = torch.zeros(batch, dtype=torch.long, device=device)  # real tokens per row so far
        self.padded = False  # whether any slot so far is padding (then attention needs an explicit mask)
        self.length = 0
        self.max_length = max_length

    def prepare(self, t: int, valid: torch.Tensor | None) -> torch.Tensor | None:
        """Mark the slots of ``t`` new tokens (``valid`` (batch, t): which are real; None: all) before the
        layers run; their positions (batch, t), or None while no row holds padding (positions are shared)."""
        end = self.length + t
        if end > self.max_length:
            raise ValueError(f"the KV cache holds {self.max_length} positions; {end} needed")
        if valid is None:
            self.valid[:, self.length : end] = True
            if not self.padded:
                return None
            valid = self.valid[:, self.length : end]
        else:
            self.valid[:, self.length : end] = valid
            self.padded = self.padded or not bool(valid.all())
        return (self.seen[:, None] + valid.long().cumsum(1) - 1).clamp(min=0)

    def advance(self, t: int) -> None:
        """Count the ``t`` new slots as seen, once every layer has stored them."""
        self.seen += self.valid[:, self.length : self.length + t].sum(1)
        self.length += t

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store a layer's keys and values for the new positions; every key and value so far."""
        end = self.length + k.size(2)
        self.k[layer, :, :, self.length : end] = k
        self.v[layer, :, :, self.length : end] = v
        return self.k[layer, :, :, :end], self.v[layer, :, :, :end]

    def rewind(self, length: int) -> None:
        """Forget every slot from ``length`` on (speculative decoding drops rejected draft tokens)."""
        if not 0 <= length <= self.length:
            raise ValueError(f"cannot rewind a cache of {self.length} positions to {length}")
        self.length = length
        self.seen = self.valid[:, :length].sum(1)

    def key_mask(self, t: int) -> torch.Tensor:
        """Which keys (batch, 1, 1, length + t) are real, for the ``t`` positions being added."""
        return self.valid[:, None, None, : self.length + t]
