"""``refinery train``, ``refinery sft`` and ``refinery generate``: training and fine-tuning TOML files,
validated like workflow files (errors name the file, the key and what was expected), run the trainer
(:mod:`trainer`); a checkpoint and its tokenizer generate text."""

from __future__ import annotations

import os
import tomllib

from pipeline import storage
from pipeline.schema import build, load_toml
from pipeline.storage import StorageSettings
from tokenizer.errors import ConfigError
from trainer.chat import ChatTemplate
from trainer.checkpoint import CheckpointError, checkpoint_exists, load_checkpoint, model_config_of
from trainer.config import LoopConfig, TrainConfig
from trainer.data import DataConfig
from trainer.distill import DistillConfig, check_teacher
from trainer.model_config import ModelConfig
from trainer.optim import OptimConfig
from trainer.schedule import ScheduleConfig, schedule_problem
from trainer.sft import EvalConfig, InitConfig, LossConfig, SFTConfig, pretrained_model_config
from trainer.sft_data import SFTDataConfig

_SHARED_SECTIONS = {
    "model": ModelConfig,
    "data": DataConfig,
    "optim": OptimConfig,
    "schedule": ScheduleConfig,
    "train": LoopConfig,
}
SECTIONS = {**_SHARED_SECTIONS, "distill": DistillConfig}
SFT_SECTIONS = {
    **_SHARED_SECTIONS,
    "init": InitConfig,
    "data": SFTDataConfig,
    "template": ChatTemplate,
    "loss": LossConfig,
    "eval": EvalConfig,
}
# keys holding paths, relative to the file that names them: (section, key)
PATH_KEYS = [
    ("data", "train"),
    ("data", "valid"),
    ("train", "out_dir"),
    ("init", "checkpoint"),
    ("init", "tokenizer"),
    ("distill", "teacher"),
]


def _sections(path: str, overrides: list[str], allowed: dict, what: str) -> dict:
    """The tables of ``path`` with ``section.key=value`` overrides (values in TOML syntax) and relative paths
    made absolute."""
    table = load_toml(path, what)
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
        if name not in allowed and name != "storage":
            raise ConfigError(path, name, f"unknown section; expected one of: {', '.join(sorted(allowed))}, storage")
    if "storage" in table:  # object-storage settings: applied now, so shards and checkpoints by URL resolve
        storage.apply(build(StorageSettings, table.pop("storage"), file=path, key="storage"))
    if "data" not in table:
        raise ConfigError(path, "data", "missing required section (the training data)")
    base = os.path.dirname(os.path.abspath(path))

    def absolute(p):
        if not isinstance(p, str) or not p or "://" in p or os.path.isabs(p):
            return p
        return os.path.normpath(os.path.join(base, p))

    sections = {name: dict(t) if isinstance(t, dict) else t for name, t in table.items()}
    for section, key in PATH_KEYS:
        value = sections.get(section, {}).get(key) if isinstance(sections.get(section), dict) else None
        if isinstance(value, list):
            sections[section][key] = [absolute(p) for p in value]
        elif isinstance(value, str):
            sections[section][key] = absolute(value)
    return sections


class MissingCheckpoint(ConfigError):
    """A checkpoint the file names does not exist (yet): the ``[init] checkpoint`` of a fine-tuning file (the
    model is unknown) or a ``[distill] teacher``."""


def load_train_config(path: str, overrides: list[str] = ()) -> TrainConfig:
    """The training configuration in ``path`` with ``section.key=value`` overrides; relative paths in the
    file are relative to it."""
    sections = _sections(path, overrides, SECTIONS, "training configuration")
    built = {name: build(cls, sections.get(name, {}), file=path, key=name) for name, cls in SECTIONS.items()}
    config = _whole(path, TrainConfig, built)
    if config.distill.teacher:
        _check_teacher(path, config)
    return config


def _whole(path: str, cls: type, sections: dict):
    """The configuration of a whole run from its built sections, with the checks across sections (training
    memory, a schedule that runs its course in ``train.steps``) naming ``path``."""
    try:
        config = cls(**sections)
    except ConfigError as exc:
        raise exc.located(path) from None
    problem = schedule_problem(config.schedule, config.train.steps)
    if problem:
        raise ConfigError(path, *problem)
    return config


def _check_teacher(path: str, config: TrainConfig) -> None:
    """``[distill] teacher`` exists (else ``MissingCheckpoint``) and can teach the model."""
    teacher = config.distill.checkpoint_file()
    if not checkpoint_exists(teacher):
        raise MissingCheckpoint(path, "distill.teacher", f"no checkpoint at {teacher}")
    try:
        check_teacher(model_config_of(load_checkpoint(teacher), teacher), config.model)
    except CheckpointError as exc:
        raise ConfigError(path, "distill.teacher", str(exc)) from None
    except ConfigError as exc:
        raise ConfigError(path, "distill.teacher", f"{teacher}: {exc.expected}") from None


def load_sft_config(path: str, overrides: list[str] = ()) -> SFTConfig:
    """The fine-tuning configuration in ``path``: the model comes from ``[init] checkpoint`` when one is
    named (a ``[model]`` section is then an error), else from ``[model]``."""
    sections = _sections(path, overrides, SFT_SECTIONS, "fine-tuning configuration")
    sections.setdefault("train", {}).setdefault("eval_at_start", True)
    built = {
        name: build(cls, sections.get(name, {}), file=path, key=name)
        for name, cls in SFT_SECTIONS.items()
        if name != "model"
    }
    if built["init"].checkpoint:
        if "model" in sections:
            raise ConfigError(path, "model", "the model comes from [init] checkpoint; remove this section")
        if not checkpoint_exists(built["init"].checkpoint_file()):
            raise MissingCheckpoint(path, "init.checkpoint", f"no checkpoint at {built['init'].checkpoint_file()}")
        try:
            model = pretrained_model_config(built["init"])
        except CheckpointError as exc:
            raise ConfigError(path, "init.checkpoint", str(exc)) from None
    elif "model" not in sections:
        raise ConfigError(path, "model", "missing: name [init] checkpoint, or describe a new [model]")
    else:
        model = build(ModelConfig, sections["model"], file=path, key="model")
    return _whole(path, SFTConfig, {"model": model, **built})
