"""Workflow files: a TOML description of a run, validated completely before any work starts.

::

    [run]
    name = "demo"                 # the run directory is <output>/<name>
    output = "../runs"            # optional; relative paths in this file are relative to this file
    on_error = "skip"             # a document that makes a filter raise: "skip" (counted) or "raise"

    [input]
    paths = ["../data/warc/*/*.warc.gz", "s3://bucket/crawl/*.warc.gz"]
    split_bytes = "64MiB"         # .gz files larger than this are read by several workers

    [[stages]]
    kind = "extract"
    main_content = true

    [[stages]]
    kind = "filter"
    name = "quality"
    [[stages.filters]]
    kind = "language"
    languages = ["en"]
"""

from __future__ import annotations

import glob
import itertools
import os
from dataclasses import dataclass, field
from typing import ClassVar, Literal

from pipeline import storage
from pipeline.inputs import InputError, InputFile, expand_inputs
from pipeline.reader import DEFAULT_MAX_DOCUMENT_BYTES, file_format
from pipeline.schema import ByteSize, build, describe, kind_and_name, load_toml, resolve_paths
from pipeline.stages import STAGE_KINDS
from pipeline.stages.base import Stage
from pipeline.stages.documents_input import DocumentsStage
from pipeline.stages.extract import ExtractStage
from pipeline.stages.tokenize import TokenizeStage
from pipeline.stages.training_shards import TrainingShardsStage
from pipeline.storage import StorageSettings
from tokenizer.errors import ConfigError, invalid

SECTIONS = ("run", "input", "storage", "stages", "train", "sft", "generate")


@dataclass(kw_only=True)
class RunConfig:
    name: str
    output: str = ""
    on_error: Literal["skip", "raise"] = "skip"

    def __post_init__(self):
        if not self.name or "/" in self.name or self.name in (".", ".."):
            raise invalid("name", f"expected a plain directory name, got {self.name!r}")


@dataclass(kw_only=True)
class InputConfig:
    paths: list[str]
    split_bytes: ByteSize = ByteSize(64 << 20)
    max_record_bytes: ByteSize = ByteSize(64 << 20)
    max_document_bytes: ByteSize = ByteSize(DEFAULT_MAX_DOCUMENT_BYTES)

    def __post_init__(self):
        if not self.paths:
            raise invalid("paths", "expected at least one path or glob")
        for name in ("split_bytes", "max_record_bytes", "max_document_bytes"):
            if getattr(self, name) < 1 << 16:
                raise invalid(name, f"expected at least 64KiB, got {int(getattr(self, name))}")


@dataclass(kw_only=True)
class ModelStep:
    """``[train]`` or ``[sft]`` of a workflow: a ``refinery train`` / ``refinery sft`` file, run after the
    document stages on this run's shards (train) or from this run's trained model (sft)."""

    config: str

    path_params: ClassVar[tuple[str, ...]] = ("config",)

    def __post_init__(self):
        if not os.path.isfile(self.config):
            raise invalid("config", f"no such file: {self.config}")


@dataclass(kw_only=True)
class GenerateStep:
    """``[generate]``: prompts answered by the last model of the run, printed in its summary."""

    prompts: list[str]
    max_new_tokens: int = 40
    temperature: float = 0.0
    seed: int = 0

    def __post_init__(self):
        if not self.prompts:
            raise invalid("prompts", "expected at least one prompt")
        if self.max_new_tokens < 1 or self.temperature < 0:
            raise invalid("max_new_tokens", "expected max_new_tokens >= 1 and temperature >= 0")


@dataclass
class Workflow:
    """A validated workflow: where it came from, its run settings, inputs and stages."""

    file: str
    run: RunConfig
    input: InputConfig
    stages: list[Stage]
    input_files: list[InputFile] = field(default_factory=list)
    train: ModelStep | None = None
    sft: ModelStep | None = None
    generate: GenerateStep | None = None
    storage: StorageSettings | None = None

    @property
    def base_dir(self) -> str:
        return os.path.dirname(os.path.abspath(self.file))

    def run_dir(self, output: str | None = None) -> str:
        """The run directory: ``output`` (command line, relative to the working directory), else ``run.output``
        (relative to the workflow file), else ``runs/`` in the working directory; then the run name."""
        if output:
            root = output
        elif self.run.output:
            root = self.run.output if "://" in self.run.output else os.path.join(self.base_dir, self.run.output)
        else:
            root = "runs"
        if "://" not in root:
            root = os.path.abspath(root)
        return f"{root.rstrip('/')}/{self.run.name}"

    def check_run_dir(self, run_dir: str, key: str) -> None:
        """Refuse a run directory that overlaps an input, either way: inside a folder an input pattern reads
        (a later run, or a wider glob, would read the run's own outputs as input), or holding an input (a
        ``--restart`` would delete it). ``key`` names the setting in the error."""
        for i, pattern in enumerate(self.input.paths):
            target, folder = reads_from(pattern, self.base_dir)
            if folder and inside(run_dir, target):
                raise ConfigError(
                    self.file,
                    key,
                    f"the run directory {run_dir} lies inside {target}, which input.paths[{i}] reads; "
                    "write runs outside the input directories",
                )
            if inside(target, run_dir):
                raise ConfigError(
                    self.file,
                    key,
                    f"input.paths[{i}] reads {target}, inside the run directory {run_dir}; a restart would delete "
                    "it: keep inputs outside the run directory",
                )
        for f in self.input_files:
            if inside(f.path, run_dir):
                raise ConfigError(self.file, key, f"the input file {f.path} lies inside the run directory {run_dir}")

    def normalized(self) -> dict:
        """What determines the outputs (inputs and stages), for comparing a rerun with the original run."""
        return {
            "input": {
                "files": [[f.path, f.size] for f in self.input_files],
                "split_bytes": int(self.input.split_bytes),
                "max_record_bytes": int(self.input.max_record_bytes),
                "max_document_bytes": int(self.input.max_document_bytes),
            },
            "stages": [repr(stage) for stage in self.stages],
            "on_error": self.run.on_error,
        }


def load_workflow(path: str) -> Workflow:
    """Parse and validate the workflow file at ``path``, resolving its inputs; raises :class:`ConfigError`."""
    table = load_toml(path, "workflow file")
    for key in table:
        if key not in SECTIONS:
            raise ConfigError(path, key, f"unknown section; expected one of: {', '.join(SECTIONS)}")
    for section in ("run", "input", "stages"):
        if section not in table:
            raise ConfigError(path, section, "missing required section")
    run = build(RunConfig, table["run"], file=path, key="run")
    inputs = build(InputConfig, table["input"], file=path, key="input")
    workflow = Workflow(path, run, inputs, [])
    if "storage" in table:
        workflow.storage = build(StorageSettings, table["storage"], file=path, key="storage")
        storage.apply(workflow.storage)
    if run.output:
        workflow.check_run_dir(workflow.run_dir(), "run.output")
    try:
        workflow.input_files = expand_inputs(inputs.paths, workflow.base_dir)
    except InputError as exc:
        raise ConfigError(path, f"input.paths[{exc.index}]", str(exc)) from None
    documents_input = _documents_input(path, workflow.input_files)
    workflow.stages = _stages(table["stages"], path, documents_input)
    _model_steps(workflow, table)
    if documents_input:  # documents (another run's, JSONL, text): read them in as the first stage
        try:
            workflow.stages.insert(0, DocumentsStage.for_inputs([f.path for f in workflow.input_files]))
        except ValueError as exc:
            raise ConfigError(path, "input.paths", str(exc)) from None
        if any(s.name == workflow.stages[0].name for s in workflow.stages[1:]):
            raise ConfigError(path, "stages", f"the name {workflow.stages[0].name!r} is taken by the documents input")
    return workflow


def _documents_input(path: str, files: list[InputFile]) -> bool:
    """Whether the inputs are documents (Parquet, JSONL, text) rather than WARC files; never both."""
    warc = [file_format(f.path) == "warc" for f in files]
    if any(warc) and not all(warc):
        raise ConfigError(path, "input.paths", "expected WARC files or documents (Parquet, JSONL, text), not both")
    return not any(warc)


def _model_steps(workflow: Workflow, table: dict) -> None:
    """``[train]``, ``[sft]`` and ``[generate]``, checked against the stages they need."""
    path, stages = workflow.file, workflow.stages
    for name in ("train", "sft"):
        if name in table:
            setattr(workflow, name, build(ModelStep, resolve_paths(ModelStep, table[name], path), file=path, key=name))
    if "generate" in table:
        workflow.generate = build(GenerateStep, table["generate"], file=path, key="generate")
    if (workflow.train or workflow.sft) and not isinstance(stages[-1], (TokenizeStage, TrainingShardsStage)):
        raise ConfigError(
            path, "train" if workflow.train else "sft", "needs a last stage of kind 'tokenize' or 'training_shards'"
        )
    if workflow.sft and not workflow.train:
        raise ConfigError(path, "sft", "needs a [train] section (fine-tuning starts from the model trained here)")
    if workflow.generate and not workflow.train:
        raise ConfigError(path, "generate", "needs a [train] section (a model to generate with)")


def _stages(entries, path: str, documents_input: bool) -> list[Stage]:
    if not isinstance(entries, list) or not entries:
        raise ConfigError(path, "stages", f"expected a non-empty list of [[stages]] tables, got {describe(entries)}")
    stages: list[Stage] = []
    for i, entry in enumerate(entries):
        key = f"stages[{i}]"
        kind, name = kind_and_name(entry, STAGE_KINDS, file=path, key=key, what="stage kind")
        if any(s.name == name for s in stages):
            raise ConfigError(path, f"{key}.name", f"a stage named {name!r} comes earlier; names must be unique")
        token_level = STAGE_KINDS[kind] is TrainingShardsStage  # the one stage that reads token shards
        if stages and isinstance(stages[-1], TrainingShardsStage):
            raise ConfigError(path, f"{key}.kind", "no stage can follow 'training_shards' (it writes the last shards)")
        if stages and isinstance(stages[-1], TokenizeStage) and not token_level:
            raise ConfigError(path, f"{key}.kind", "no document stage can follow 'tokenize' (it writes token shards)")
        if token_level and not (stages and isinstance(stages[-1], TokenizeStage)):
            raise ConfigError(path, f"{key}.kind", "'training_shards' must directly follow a 'tokenize' stage")
        stage = STAGE_KINDS[kind].from_table(entry, file=path, key=key)
        if documents_input and isinstance(stage, ExtractStage):
            raise ConfigError(path, f"{key}.kind", "the inputs are documents, which need no 'extract'")
        if not documents_input and (i == 0) != isinstance(stage, ExtractStage):
            where = "the first stage must be" if i == 0 else "only the first stage can be"
            raise ConfigError(path, f"{key}.kind", f"{where} 'extract' (it reads the WARC inputs)")
        stages.append(stage)
    return stages


def reads_from(pattern: str, base_dir: str) -> tuple[str, bool]:
    """What an input pattern reads: (path, is a folder). A glob reads below its static part, a folder below
    itself, a file only itself. Local paths come back absolute."""
    url = "://" in pattern
    path = pattern if url or os.path.isabs(pattern) else os.path.join(base_dir, pattern)
    sep = "/" if url else os.sep
    if not url:
        path = os.path.normpath(path)
    parts = path.rstrip(sep).split(sep)
    if any(glob.has_magic(part) for part in parts):
        return sep.join(itertools.takewhile(lambda part: not glob.has_magic(part), parts)) or sep, True
    return path.rstrip(sep) or sep, (not url and os.path.isdir(path)) or pattern.endswith("/")


def inside(path: str, folder: str) -> bool:
    """Whether ``path`` is ``folder`` or lies below it (paths or URLs, compared as written)."""
    path, folder = path.rstrip("/"), folder.rstrip("/")
    return path == folder or path.startswith(folder + "/")
