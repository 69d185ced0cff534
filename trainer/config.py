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

from dataclasses import asdict, dataclass, field

from tokenizer.errors import invalid
from trainer.data import DataConfig
from trainer.distill import DistillConfig
from trainer.model_config import ModelConfig
from trainer.optim import OptimConfig
from trainer.schedule import ScheduleConfig


@dataclass(kw_only=True)
class LoopConfig:
    steps: int = 1000
    batch_size: int = 16
    grad_accum: int = 1
    seed: int = 1337
    device: str = "auto"  # auto: cuda if available, else cpu
    dtype: str = "auto"  # auto: bfloat16 autocast on GPU, float32 on CPU
    compile: bool = False
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


@dataclass(kw_only=True)
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: LoopConfig = field(default_factory=LoopConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)

    def to_dict(self) -> dict:
        return asdict(self)
