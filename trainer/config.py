"""A training run's configuration: model, data, optimizer, schedule and loop settings (one TOML table each).

::

    [model]      d_model = 256, n_layers = 4, n_heads = 4, context_length = 256, vocab_size = 2048 ...
    [data]       train = ["runs/demo/tokenize/shards/*"]
    [optim]      name = "adamw", lr = 3e-4, min_lr = 3e-5, weight_decay = 0.1, grad_clip = 1.0
    [schedule]   kind = "cosine", warmup_steps = 100
    [train]      steps = 1000, batch_size = 16, grad_accum = 1, out_dir = "runs/train"
    [distill]    teacher = "runs/big", weight = 0.9, temperature = 1.0   (optional: trainer/distill.py)
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field

from tokenizer.errors import invalid
from trainer.accounting import training_memory
from trainer.data import DataConfig
from trainer.distill import DistillConfig
from trainer.model_config import ModelConfig
from trainer.optim import OptimConfig
from trainer.schedule import ScheduleConfig
from trainer.storage import is_url


@dataclass(kw_only=True)
class LoopConfig:
    steps: int = 1000
    batch_size: int = 16
    grad_accum: int = 1
    seed: int = 1337
    device: str = "auto"  # auto: cuda if available, else cpu
    dtype: str = "auto"  # auto: bfloat16 autocast on GPU, float32 on CPU
    compile: bool = False
    threads: int = 0  # CPU threads; 0: the cores free when the run starts, kept by its resumptions
    eval_every: int = 100
    eval_batches: int = 20
    eval_at_start: bool = False  # also evaluate before the first step (the baseline of a fine-tuning run)
    log_every: int = 10
    checkpoint_every: int = 200
    out_dir: str = "runs/train"

    def __post_init__(self):
        for name in ("steps", "batch_size", "grad_accum", "eval_batches", "log_every"):
            if getattr(self, name) < 1:
                raise invalid(name, "must be >= 1")
        if self.dtype not in ("auto", "float32", "bfloat16"):
            raise invalid("dtype", "expected 'auto', 'float32' or 'bfloat16'")
        if self.device not in ("auto", "cpu", "cuda"):
            raise invalid("device", "expected 'auto', 'cpu' or 'cuda'")
        if self.threads < 0:
            raise invalid("threads", "must be >= 0 (0: the cores free when the run starts)")
        for name in ("eval_every", "checkpoint_every"):
            if getattr(self, name) < 0:
                raise invalid(name, "must be >= 0 (0: never)")
        blocked = "" if is_url(self.out_dir) else _existing_non_directory(self.out_dir)
        if blocked:
            raise invalid("out_dir", f"{blocked} is a file; expected a directory (or a path to create one at)")


def _existing_non_directory(path: str) -> str:
    """``path`` or the first of its parents that exists and is not a directory, or "" if none is."""
    path = os.path.abspath(path)
    while True:
        if os.path.exists(path):
            return "" if os.path.isdir(path) else path
        parent = os.path.dirname(path)
        if parent == path:
            return ""
        path = parent


# No machine holds more than this per process (the largest servers have tens of TiB of memory, the largest
# GPUs under 200 GB): a configuration whose estimated training memory exceeds it is a mistake, such as a
# d_model of 10**7, and is refused before anything is built.
MAX_TRAINING_BYTES = 64 * 2**40


def check_training_memory(model: ModelConfig, loop: LoopConfig, optimizer: str) -> None:
    """Raise :func:`invalid` when training ``model`` needs more than :data:`MAX_TRAINING_BYTES` per process
    by :func:`trainer.accounting.training_memory`'s estimate (bfloat16 activations unless the run is
    float32): naming ``model`` when its weights, gradients and optimizer state alone are too much, else
    ``train.batch_size`` (the activations of one micro-batch)."""
    dtype = "float32" if loop.dtype == "float32" else "bfloat16"
    memory = training_memory(model, loop.batch_size, optimizer=optimizer, dtype=dtype)
    if memory["total"] <= MAX_TRAINING_BYTES:
        return
    state = memory["total"] - memory["activations"]
    estimate = (
        f"an estimated {_tib(memory['total'])} to train ({_tib(state)} of parameters, gradients and {optimizer} "
        f"state, {_tib(memory['activations'])} of activations at batch_size {loop.batch_size} x "
        f"{model.context_length}), more than any machine holds; expected at most {_tib(MAX_TRAINING_BYTES)}"
    )
    raise invalid("model" if state > MAX_TRAINING_BYTES else "train.batch_size", estimate)


def _tib(n: float) -> str:
    return f"{n / 2**40:,.1f} TiB"


@dataclass(kw_only=True)
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: LoopConfig = field(default_factory=LoopConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)

    def __post_init__(self):
        check_training_memory(self.model, self.train, self.optim.name)

    def to_dict(self) -> dict:
        return asdict(self)
