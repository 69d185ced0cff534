"""``refinery ablate ABLATION.toml``: is the data better? Small models trained on every dataset at an equal token
budget, with one shared tokenizer and several seeds, scored without downloads.

::

    [ablation]
    base = "ablate-train.toml"     # a refinery train file: model, optimizer, schedule, batch (its [data] is set here)
    output = "../runs/ablate-demo" # relative to this file
    tokens = 262144                # training tokens of every trial: a multiple of batch x grad_accum x context
    seeds = 3                      # trials per dataset and shape (train.seed 0, 1, ...); at least 2
    cpus_per_trial = 1             # Ray resources of each trial; torch uses that many threads
    gpus_per_trial = 0
    curve_points = 8               # evaluations on the reference texts during training (the curves)

    [ablation.tokenizer]           # one tokenizer for every dataset:
    path = ""                      # an existing tokenizer folder, or else one trained on
    vocab_size = 2000              # an equal sample of every dataset: its first sample_bytes (the smallest
    sample_bytes = "1MiB"          # dataset's size when that is less), so no dataset gets a home advantage

    [ablation.eval]
    reference = ["../data/eval/*.jsonl"]   # held-out texts (JSONL / Parquet `text`, or text files)
    items_per_document = 8         # likelihood items of each task built from each reference document
    choices = 4
    ngram_size = 13                # a training document sharing a 13-word n-gram with a reference text is
    overlap = "drop"               # left out ("drop") or only counted ("keep")
    curve_tokens = 32768           # reference tokens scored at each point of the curves

    [[ablation.datasets]]          # two or more; each exactly one of:
    name = "filtered"
    run = "../runs/corpus"         #   a run directory, and its document stage (default: the last one)
    stage = "quality"
    # workflow = "corpus.toml"     #   a workflow file: its run (run or resumed first), and stage as above
    # documents = ["docs/*.jsonl"] #   document files (JSONL, Parquet, text)
    # shards = ["shards/*"]        #   token shards already written with tokenizer.path

    [ablation.shapes]              # optional: a small list of model shapes, paired lists of [model] keys
    "model.d_model" = [64, 128]
    "model.n_layers" = [2, 4]

Every trial's training configuration is built before anything runs, so a bad value is refused up front with
the file and the key.
"""

from __future__ import annotations

import glob
import json
import os
import re
from dataclasses import dataclass, field
from typing import Literal

from pipeline.models.configs import load_train_config
from pipeline.schema import ByteSize, build, check_name, describe, load_toml
from pipeline.stages.tokenize import EOT
from tokenizer.bpe import Tokenizer
from tokenizer.errors import ConfigError, invalid, require
from trainer.config import TrainConfig
from trainer.sweep import override_strings

SOURCES = ("run", "workflow", "documents", "shards")
_SHAPE_KEY = re.compile(r"model\.[a-z_]+")


@dataclass(kw_only=True)
class AblationSettings:
    """The ``[ablation]`` table's own keys."""

    base: str
    output: str
    tokens: int
    seeds: int = 3
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    curve_points: int = 8

    def __post_init__(self):
        require(self.tokens > 0, "tokens", "must be > 0 (training tokens of every trial)")
        require(self.seeds >= 2, "seeds", "at least 2: one seed cannot tell a difference from seed noise")
        require(self.cpus_per_trial > 0, "cpus_per_trial", "must be > 0")
        require(self.gpus_per_trial >= 0, "gpus_per_trial", "must be >= 0")
        require(self.curve_points >= 1, "curve_points", "must be >= 1")


@dataclass(kw_only=True)
class TokenizerSettings:
    """``[ablation.tokenizer]``: the shared tokenizer, given or trained on equal samples."""

    path: str = ""
    vocab_size: int = 2000
    sample_bytes: ByteSize = ByteSize(1 << 20)
    special_tokens: list[str] = field(default_factory=lambda: [EOT])
    eos_token: str = EOT

    def __post_init__(self):
        if self.path and not os.path.isfile(os.path.join(self.path, "vocab.json")):
            raise invalid("path", f"no tokenizer (vocab.json) in {self.path}")
        require(self.vocab_size >= 256 + len(self.special_tokens), "vocab_size", "at least 256 + special tokens")
        require(self.sample_bytes > 0, "sample_bytes", "must be > 0")
        require(self.eos_token in self.special_tokens, "eos_token", "must be one of special_tokens")


@dataclass(kw_only=True)
class EvalSettings:
    """``[ablation.eval]``: the reference texts, the tasks built from them and the overlap check."""

    reference: list[str]
    items_per_document: int = 8
    choices: int = 4
    seed: int = 0
    ngram_size: int = 13
    overlap: Literal["drop", "keep"] = "drop"
    curve_tokens: int = 32768  # reference tokens scored at each point of the curves

    def __post_init__(self):
        require(bool(self.reference), "reference", "expected at least one file or glob of reference texts")
        require(self.items_per_document >= 0, "items_per_document", "must be >= 0")
        require(self.choices >= 2, "choices", "at least 2")
        require(self.ngram_size >= 1, "ngram_size", "must be >= 1")
        require(self.curve_tokens >= 1, "curve_tokens", "must be >= 1")


@dataclass(kw_only=True)
class DatasetSpec:
    """One ``[[ablation.datasets]]`` entry: a name and exactly one source (paths made absolute)."""

    name: str
    run: str = ""
    workflow: str = ""
    stage: str = ""
    documents: list[str] = field(default_factory=list)
    shards: list[str] = field(default_factory=list)

    def __post_init__(self):
        given = [s for s in SOURCES if getattr(self, s)]
        require(len(given) == 1, "run", f"exactly one of {', '.join(SOURCES)}; got {', '.join(given) or 'none'}")
        require(not self.stage or bool(self.run or self.workflow), "stage", "only a run or a workflow has stages")

    def source(self) -> str:
        """Which of :data:`SOURCES` it is."""
        return next(s for s in SOURCES if getattr(self, s))


@dataclass
class Trial:
    """One model to train: a dataset, a shape (index into the shapes) and a seed, with its configuration."""

    id: str
    dataset: str
    shape: int
    seed: int
    config: TrainConfig

    def info(self) -> dict:
        return {"trial": self.id, "dataset": self.dataset, "shape": self.shape, "seed": self.seed}


@dataclass
class Ablation:
    """An ablation file, checked, every trial's configuration built."""

    path: str
    settings: AblationSettings
    tokenizer: TokenizerSettings
    eval: EvalSettings
    datasets: list[DatasetSpec]
    shapes: list[dict]
    output: str
    reference_files: list[str]
    trials: list[Trial]

    def path_of(self, *parts: str) -> str:
        return os.path.join(self.output, *parts)

    def definition(self) -> dict:
        """What ``definition.json`` records and a rerun must match."""
        record = {
            "datasets": [d.__dict__ for d in self.datasets],
            "tokenizer": {**self.tokenizer.__dict__, "sample_bytes": int(self.tokenizer.sample_bytes)},
            "eval": self.eval.__dict__,
            "reference_files": {f: os.path.getsize(f) for f in self.reference_files},  # changed texts: refused
            "trials": [{**t.info(), "config": t.config.to_dict()} for t in self.trials],
        }
        return json.loads(json.dumps(record))


def load_ablation(path: str) -> Ablation:
    """The ablation in ``path``, every trial's training configuration built."""
    table = load_toml(path, "ablation file")
    for name in table:
        if name != "ablation":
            raise ConfigError(path, name, "unknown section; an ablation file holds [ablation] and its subtables")
    spec = table.get("ablation")
    if not isinstance(spec, dict):
        raise ConfigError(path, "ablation", "missing [ablation] table (base, output, tokens, [[ablation.datasets]])")
    here = os.path.dirname(os.path.abspath(path))
    subtables = ("tokenizer", "eval", "datasets", "shapes")
    settings = build(AblationSettings, spec, file=path, key="ablation", skip=subtables)
    tokenizer = build(
        TokenizerSettings, _absolute(spec.get("tokenizer", {}), here, ("path",)), file=path, key="ablation.tokenizer"
    )
    if "eval" not in spec:
        raise ConfigError(path, "ablation.eval", 'missing: reference = ["files or globs of held-out texts"]')
    evals = build(EvalSettings, _absolute(spec["eval"], here, ("reference",)), file=path, key="ablation.eval")
    datasets = _datasets(path, spec.get("datasets"), here, tokenizer)
    shapes = _shapes(path, spec.get("shapes", {}))
    base = os.path.normpath(os.path.join(here, settings.base))
    if not os.path.isfile(base):
        raise ConfigError(path, "ablation.base", f"no training file at {base}")
    output = os.path.normpath(os.path.join(here, settings.output))
    files = sorted({f for pattern in evals.reference for f in glob.glob(pattern)})
    if not files:
        raise ConfigError(path, "ablation.eval.reference", f"no file matches {evals.reference}")
    vocab = len(Tokenizer.load(tokenizer.path)) if tokenizer.path else tokenizer.vocab_size
    ablation = Ablation(path, settings, tokenizer, evals, datasets, shapes, output, files, [])
    ablation.trials = _trials(ablation, base, vocab)
    return ablation


def describe_ablation(ablation: Ablation) -> str:
    """What ``refinery validate`` prints of an ablation file: its trials, budget and datasets."""
    s, first = ablation.settings, ablation.trials[0].config
    lines = [
        f"{ablation.path}: valid ablation; {len(ablation.datasets)} datasets x {len(ablation.shapes)} shape(s) x "
        f"{s.seeds} seeds = {len(ablation.trials)} trials of {s.tokens:,} tokens ({first.train.steps} steps) "
        f"-> {ablation.output}"
    ]
    for d in ablation.datasets:
        where = getattr(d, d.source())
        lines.append(f"  {d.name}: {d.source()} {where}" + (f", stage {d.stage}" if d.stage else ""))
    lines.append(f"  reference: {len(ablation.reference_files)} files")
    return "\n".join(lines)


def _absolute(table, here: str, keys: tuple[str, ...]):
    """``table`` with the path values of ``keys`` made relative to the ablation file."""
    if not isinstance(table, dict):
        return table

    def absolute(p):
        return os.path.normpath(os.path.join(here, p)) if isinstance(p, str) and p and "://" not in p else p

    return {
        k: ([absolute(p) for p in v] if isinstance(v, list) else absolute(v)) if k in keys else v
        for k, v in table.items()
    }


def _datasets(path: str, entries, here: str, tokenizer: TokenizerSettings) -> list[DatasetSpec]:
    if not isinstance(entries, list) or len(entries) < 2:
        raise ConfigError(
            path, "ablation.datasets", f"expected two or more [[ablation.datasets]], got {describe(entries)}"
        )
    out = []
    for i, entry in enumerate(entries):
        key = f"ablation.datasets[{i}]"
        entry = _absolute(entry, here, ("run", "workflow", "documents", "shards"))
        spec = build(DatasetSpec, entry, file=path, key=key)
        check_name(spec.name, file=path, key=f"{key}.name")
        if spec.name in [d.name for d in out]:
            raise ConfigError(path, f"{key}.name", f"{spec.name!r} names another dataset too")
        if spec.name == "tokenizer":
            raise ConfigError(path, f"{key}.name", "'tokenizer' names the shared tokenizer's folder; choose another")
        if spec.shards and not tokenizer.path:
            raise ConfigError(
                path,
                f"{key}.shards",
                "token shards need the tokenizer they were written with: "
                "set [ablation.tokenizer] path (or give the documents instead)",
            )
        if spec.workflow and not os.path.isfile(spec.workflow):
            raise ConfigError(path, f"{key}.workflow", f"no workflow file at {spec.workflow}")
        out.append(spec)
    return out


def _shapes(path: str, table) -> list[dict]:
    """The model shapes: paired lists of ``model.*`` keys (one shape, the base file's, when none)."""
    if not isinstance(table, dict):
        raise ConfigError(path, "ablation.shapes", f'expected a table of "model.key" = [values], got {describe(table)}')
    if not table:
        return [{}]
    lengths = set()
    for key, values in table.items():
        if not _SHAPE_KEY.fullmatch(key):
            raise ConfigError(path, f"ablation.shapes.{key}", 'expected a quoted "model.key" (a [model] setting)')
        if not isinstance(values, list) or not values:
            raise ConfigError(path, f"ablation.shapes.{key}", f"expected a non-empty list, got {describe(values)}")
        lengths.add(len(values))
    if len(lengths) > 1:
        raise ConfigError(
            path,
            "ablation.shapes",
            "the lists are paired (the i-th shape takes the i-th value of each): "
            f"give them one length, not {sorted(lengths)}",
        )
    return [{k: v[i] for k, v in table.items()} for i in range(lengths.pop())]


def _trials(ablation: Ablation, base: str, vocab: int) -> list[Trial]:
    """Every dataset x shape x seed, the base file with the ablation's data, budget and seed."""
    s, path = ablation.settings, ablation.path
    trials = []
    _config(path, base, {"data.train": ["unused"]}, "")  # the base file alone
    for shape_index, shape in enumerate(ablation.shapes):
        probe = _config(path, base, {**shape, "data.train": ["unused"]}, "", shape)
        per_step = probe.train.batch_size * probe.train.grad_accum * probe.model.context_length
        if s.tokens % per_step:
            low, high = s.tokens // per_step * per_step, (s.tokens // per_step + 1) * per_step
            raise ConfigError(
                path,
                "ablation.tokens",
                f"{s.tokens:,} is not a whole number of steps of {per_step:,} tokens (batch_size x grad_accum x "
                f"context_length); use {low:,} or {high:,}",
            )
        steps = s.tokens // per_step
        window = probe.train.batch_size * probe.model.context_length
        for dataset in ablation.datasets:
            for seed in range(s.seeds):
                tid = (
                    f"{dataset.name}-s{seed}" if len(ablation.shapes) == 1 else f"{dataset.name}-m{shape_index}-s{seed}"
                )
                overrides = {
                    **shape,
                    "model.vocab_size": vocab,
                    "data.train": [ablation.path_of("data", dataset.name, "*")],
                    "data.valid": [ablation.path_of("eval", "reference")],
                    "data.weights": [],
                    "train.steps": steps,
                    "train.seed": seed,
                    "train.eval_every": max(1, steps // s.curve_points),
                    "train.eval_batches": max(1, -(-ablation.eval.curve_tokens // window)),
                    "train.out_dir": ablation.path_of("trials", tid),
                }
                config = _config(path, base, overrides, f"trial {tid}: ", shape)
                trials.append(Trial(tid, dataset.name, shape_index, seed, config))
    return trials


def _config(path: str, base: str, overrides: dict, context: str, shape: dict | None = None) -> TrainConfig:
    """The base file with ``overrides``; an error is named after what set the value: a shape's key (or the
    shapes, when the shape made another key wrong), the token budget (the steps), else the base file."""
    try:
        return load_train_config(base, override_strings(overrides))
    except ConfigError as exc:
        if shape and exc.key in shape:
            where = f"ablation.shapes.{exc.key}"
        elif shape:
            where, context = "ablation.shapes", f"{context}shape {shape}: "
        else:
            where = "ablation.tokens" if exc.key == "train.steps" else "ablation.base"
        raise ConfigError(path, where, f"{context}{exc}") from None
