"""Learning-rate schedules as a factor of the base rate: linear warmup then cosine decay to ``min_lr``, or
warmup-stable-decay (WSD: warmup, a constant plateau, then a linear decay to ``min_lr`` over the last
``decay_fraction`` of training).

Steps are 0-based. Warmup reaches the full rate at step ``warmup_steps - 1``; the decay then runs over the
remaining steps so that the last step of the run (``total_steps - 1``) is exactly at ``min_lr``."""

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

    def decay_steps(self, total_steps: int) -> int:
        """WSD's decay: the last ``decay_fraction`` of the steps, at least one (the small epsilon keeps a
        fraction such as 0.29 x 100 from rounding down to 28)."""
        return max(1, math.floor(self.decay_fraction * total_steps + 1e-9))


def schedule_problem(schedule: ScheduleConfig, total_steps: int) -> tuple[str, str] | None:
    """``(key, what is wrong)`` when ``schedule`` cannot run its course in ``total_steps``: a warmup that
    leaves no step to decay (or, for a constant rate, is longer than the run), or a WSD decay that overlaps
    the warmup; None when it fits."""
    warmup = schedule.warmup_steps
    if schedule.kind == "constant":
        if warmup > total_steps:
            return "schedule.warmup_steps", f"{warmup} is more than train.steps ({total_steps})"
        return None
    if warmup >= total_steps:
        return (
            "schedule.warmup_steps",
            f"{warmup} leaves no step of train.steps ({total_steps}) to decay to optim.min_lr; "
            f"expected fewer than {total_steps}",
        )
    if schedule.kind == "wsd" and warmup + schedule.decay_steps(total_steps) > total_steps:
        decay = schedule.decay_steps(total_steps)
        return (
            "schedule.decay_fraction",
            f"the decay ({decay} of {total_steps} steps) overlaps the warmup ({warmup} steps); "
            "expected warmup_steps + decay_fraction x train.steps <= train.steps",
        )
    return None


def lr_at(step: int, total_steps: int, lr: float, min_lr: float, schedule: ScheduleConfig) -> float:
    """The learning rate for optimizer step ``step`` (0-based) of ``total_steps``; ``min_lr`` at the last
    step (``total_steps - 1``) and after."""
    if step < schedule.warmup_steps:
        return lr * (step + 1) / schedule.warmup_steps
    if schedule.kind == "constant":
        return lr
    if schedule.kind == "cosine":
        peak = max(schedule.warmup_steps, 1) - 1  # the last step at the full rate
        progress = _progress(step - peak, total_steps - 1 - peak)
        return min_lr + 0.5 * (lr - min_lr) * (1 + math.cos(math.pi * progress))
    decay = schedule.decay_steps(total_steps)
    progress = _progress(step - (total_steps - decay) + 1, decay)
    return min_lr + (lr - min_lr) * (1 - progress)


def _progress(done: int, span: int) -> float:
    """How far through a phase of ``span`` steps ``done`` steps are, within [0, 1] (1 for an empty phase)."""
    return min(1.0, max(0.0, done / span)) if span > 0 else 1.0
