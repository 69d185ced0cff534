"""Training data from packed token shards (memory-mapped): random contiguous windows for training, drawn
from shards in proportion to their tokens times their group's weight, and deterministic sequential windows
for validation. All randomness comes from one ``torch.Generator`` whose state the checkpoints keep, so a
resumed run draws the same windows as an uninterrupted one."""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch

from tokenizer.errors import invalid
from tokenizer.shards import ShardReader
from trainer.loss import IGNORE
from trainer.storage import is_url, remote_headers, remote_shards


class Batch(NamedTuple):
    """One micro-batch: token ids, their next-token targets (``IGNORE`` where no loss is taken) and, for rows
    that pack several examples, each position's example number (``segments``)."""

    inputs: torch.Tensor  # (rows, length) int64
    targets: torch.Tensor  # (rows, length) int64
    segments: torch.Tensor | None = None  # (rows, length) int64

    @property
    def counted(self) -> int:
        """How many targets enter the loss."""
        return int((self.targets != IGNORE).sum())

    def to(self, device: torch.device) -> "Batch":
        return Batch(*(t.to(device, non_blocking=True) if t is not None else None for t in self))


@dataclass(kw_only=True)
class DataConfig:
    train: list[str] = field(default_factory=list)  # shard paths or globs (of .json / .bin / prefixes)
    weights: list[float] = field(default_factory=list)  # one per entry of train; default all 1
    valid: list[str] = field(default_factory=list)  # validation shards; default: a tail of every train shard
    valid_fraction: float = 0.02

    def __post_init__(self):
        if not self.train:
            raise invalid("train", "expected at least one shard path or glob")
        if self.weights and len(self.weights) != len(self.train):
            raise invalid("weights", f"expected one weight per train entry ({len(self.train)})")
        if any(w < 0 for w in self.weights) or (self.weights and sum(self.weights) == 0):
            raise invalid("weights", "expected weights >= 0, not all 0")
        if not 0 <= self.valid_fraction < 1:
            raise invalid("valid_fraction", "must be in [0, 1)")


def find_shards(pattern: str) -> list[str]:
    """Shard prefixes matching a path or glob (``x``, ``x.json``, ``dir/*``, ``dir/*.bin`` all work); shards
    named by URL are fetched into the local cache first (:mod:`trainer.storage`)."""
    if is_url(pattern):
        return remote_shards(pattern)
    pattern = pattern.removesuffix(".bin").removesuffix(".json").removesuffix(".idx")
    names = glob.glob(pattern + ".json") or glob.glob(pattern)
    prefixes = sorted({n.removesuffix(".json").removesuffix(".bin").removesuffix(".idx") for n in names})
    return [p for p in prefixes if os.path.exists(p + ".json")]


def shards_exist(pattern: str) -> bool:
    """Whether any shard matches ``pattern``, without fetching remote ones."""
    if is_url(pattern):
        return bool(remote_headers(pattern))
    return bool(find_shards(pattern))


class TokenData:
    """Windows of ``length + 1`` tokens (inputs and their next-token targets) from a set of shards."""

    def __init__(self, config: DataConfig, length: int, seed: int):
        self.length = length
        groups = []
        for i, pattern in enumerate(config.train):
            found = find_shards(pattern)
            if not found:
                raise invalid("train", f"no shard matches {pattern!r}")
            groups.append((found, config.weights[i] if config.weights else 1.0))
        held = 0.0 if config.valid else config.valid_fraction
        self.train, weights = [], []
        self.valid = []
        for prefixes, weight in groups:
            for prefix in prefixes:
                tokens = ShardReader(prefix).tokens
                cut = len(tokens) - int(held * len(tokens))
                if cut > length:  # at least one window of length + 1 tokens
                    self.train.append(tokens[:cut])
                    weights.append(weight * cut)
                if held and len(tokens) - cut > length:
                    self.valid.append(tokens[cut:])
        for pattern in config.valid:
            self.valid += [ShardReader(p).tokens for p in find_shards(pattern)]
        if not self.train:
            raise invalid("train", f"no shard holds a window of {length + 1} training tokens")
        w = torch.tensor(weights, dtype=torch.float64)
        self.probabilities = w / w.sum()
        self.generator = torch.Generator().manual_seed(seed)
        self.vocab_size = max(ShardReader(p).header["vocab_size"] for g in groups for p in g[0])

    def batch(self, size: int) -> Batch:
        """``size`` random windows: inputs and targets, both (size, length)."""
        shards = torch.multinomial(self.probabilities, size, replacement=True, generator=self.generator)
        rows = []
        for s in shards.tolist():
            tokens = self.train[s]
            (start,) = window_starts(len(tokens), self.length, 1, self.generator).tolist()
            rows.append(np.asarray(tokens[start : start + self.length + 1], dtype=np.int64))
        return _split(rows)

    def validation_batches(self, size: int, limit: int):
        """Up to ``limit`` batches of consecutive, non-overlapping windows (the last one possibly smaller):
        the same every time."""
        rows = []
        produced = 0
        for tokens in self.valid:
            for start in range(0, len(tokens) - self.length, self.length):
                rows.append(np.asarray(tokens[start : start + self.length + 1], dtype=np.int64))
                if len(rows) == size:
                    yield _split(rows)
                    rows = []
                    produced += 1
                    if produced == limit:
                        return
        if rows:
            yield _split(rows)

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])


def window_starts(n_tokens: int, length: int, count: int, generator: torch.Generator | None) -> torch.Tensor:
    """``count`` uniform starts of windows of ``length + 1`` tokens (inputs and their targets) in a sequence
    of ``n_tokens``: every start from 0 to ``n_tokens - length - 1`` is possible."""
    if n_tokens <= length:
        raise ValueError(f"{n_tokens} tokens hold no window of {length + 1} (context {length} and its target)")
    return torch.randint(n_tokens - length, (count,), generator=generator)


def get_batch(
    tokens, batch_size: int, context_length: int, device="cpu", generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``batch_size`` random windows of an in-memory token array (a NumPy array, memory map or tensor of
    ids): inputs and their next-token targets, both (batch_size, context_length) int64 on ``device``."""
    starts = window_starts(len(tokens), context_length, batch_size, generator).tolist()
    rows = np.stack([np.asarray(tokens[s : s + context_length + 1], dtype=np.int64) for s in starts])
    window = torch.from_numpy(rows)
    if torch.device(device).type == "cuda":
        window = window.pin_memory().to(device, non_blocking=True)
    else:
        window = window.to(device)
    return window[:, :-1], window[:, 1:]


def _split(rows: list[np.ndarray]) -> Batch:
    window = torch.from_numpy(np.stack(rows))
    return Batch(window[:, :-1], window[:, 1:])
