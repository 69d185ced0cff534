"""Learning-rate schedules as a factor of the base rate: linear warmup then cosine decay to ``min_lr``, or
warmup-stable-decay (WSD: warmup, a constant plateau, then a linear decay to ``min_lr`` over the last
``decay_fraction`` of training)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from tokenizer.errors import invalid


@dataclass(kw_only=True)
class ScheduleConfig:
    kind: str = "cosine"
    warmup_steps: int = 100
    decay_fraction: float = 0.2

    def __post_init__(self):
        if self.kind not in ("cosine", "wsd", "constant"):
            raise invalid("kind", "expected 'cosine', 'wsd' or 'constant'")
        if self.warmup_steps < 0:
            raise invalid("warmup_steps", "must be >= 0")
        if not 0 < self.decay_fraction <= 1:
            raise invalid("decay_fraction", "must be in (0, 1]")


def lr_at(step: int, total_steps: int, lr: float, min_lr: float, schedule: ScheduleConfig) -> float:
    """The learning rate for optimizer step ``step`` (0-based) of ``total_steps``."""
    if step < schedule.warmup_steps:
        return lr * (step + 1) / schedule.warmup_steps
    if schedule.kind == "constant":
        return lr
    if schedule.kind == "cosine":
        span = max(1, total_steps - schedule.warmup_steps)
        progress = min(1.0, (step - schedule.warmup_steps) / span)
        return min_lr + 0.5 * (lr - min_lr) * (1 + math.cos(math.pi * progress))
    decay_start = total_steps - int(schedule.decay_fraction * total_steps)
    if step < decay_start:
        return lr
    progress = min(1.0, (step - decay_start) / max(1, total_steps - decay_start))
    return lr + (min_lr - lr) * progress
