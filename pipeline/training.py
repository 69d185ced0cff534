"""``refinery train`` and ``refinery generate``: a training TOML file, validated like workflow files, runs
the trainer (:mod:`trainer`); a checkpoint and its tokenizer generate text."""

from __future__ import annotations

import os
import tomllib

from pipeline.schema import ConfigError, build, load_toml
from trainer.config import LoopConfig, TrainConfig
from trainer.data import DataConfig
from trainer.model import ModelConfig
from trainer.optim import OptimConfig
from trainer.schedule import ScheduleConfig

SECTIONS = {
    "model": ModelConfig,
    "data": DataConfig,
    "optim": OptimConfig,
    "schedule": ScheduleConfig,
    "train": LoopConfig,
}


def load_train_config(path: str, overrides: list[str] = ()) -> TrainConfig:
    """The training configuration in ``path`` with ``section.key=value`` overrides (values in TOML syntax);
    relative paths in the file are relative to it."""
    table = load_toml(path, "training configuration")
    for item in overrides:
        dotted, sep, raw = item.partition("=")
        section, dot, key = dotted.strip().partition(".")
        if not sep or not dot or not key:
            raise ConfigError(path, item, "an override is section.key=value, e.g. train.steps=100")
        try:
            value = tomllib.loads(f"v = {raw.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw.strip()  # a bare word: a string
        table.setdefault(section, {})[key] = value
    for name in table:
        if name not in SECTIONS:
            raise ConfigError(path, name, f"unknown section; expected one of: {', '.join(sorted(SECTIONS))}")
    if "data" not in table:
        raise ConfigError(path, "data", "missing required section (the training shards)")
    base = os.path.dirname(os.path.abspath(path))
    data = dict(table["data"])
    for key in ("train", "valid"):
        if isinstance(data.get(key), list):
            data[key] = [p if os.path.isabs(p) else os.path.join(base, p) for p in data[key] if isinstance(p, str)]
    loop = dict(table.get("train", {}))
    if isinstance(loop.get("out_dir"), str) and not os.path.isabs(loop["out_dir"]):
        loop["out_dir"] = os.path.join(base, loop["out_dir"])
    sections = {**table, "data": data, "train": loop}
    return TrainConfig(
        **{name: build(cls, sections.get(name, {}), file=path, key=name) for name, cls in SECTIONS.items()}
    )
