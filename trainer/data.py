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
    """Shard prefixes matching a path or glob (``x``, ``x.json``, ``dir/*``, ``dir/*.bin`` all work)."""
    pattern = pattern.removesuffix(".bin").removesuffix(".json").removesuffix(".idx")
    names = glob.glob(pattern + ".json") or glob.glob(pattern)
    prefixes = sorted({n.removesuffix(".json").removesuffix(".bin").removesuffix(".idx") for n in names})
    return [p for p in prefixes if os.path.exists(p + ".json")]


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
                if cut > length + 1:
                    self.train.append(tokens[:cut])
                    weights.append(weight * cut)
                if held and len(tokens) - cut > length + 1:
                    self.valid.append(tokens[cut:])
        for pattern in config.valid:
            self.valid += [ShardReader(p).tokens for p in find_shards(pattern)]
        if not self.train:
            raise invalid("train", f"no shard holds more than {length + 1} training tokens")
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
            start = int(torch.randint(len(tokens) - self.length - 1, (1,), generator=self.generator))
            rows.append(np.asarray(tokens[start : start + self.length + 1], dtype=np.int64))
        return _split(rows)

    def validation_batches(self, size: int, limit: int):
        """Up to ``limit`` batches of consecutive, non-overlapping windows (the last one possibly smaller):
        the same every time."""
        rows = []
        produced = 0
        for tokens in self.valid:
            for start in range(0, len(tokens) - self.length - 1, self.length):
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


def _split(rows: list[np.ndarray]) -> Batch:
    window = torch.from_numpy(np.stack(rows))
    return Batch(window[:, :-1], window[:, 1:])
