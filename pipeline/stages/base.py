"""What every stage kind shares: the interfaces of per-shard and global stages, the context each runs in,
and the driver that runs a chain of per-shard stages on one shard and writes its outputs.

A per-shard :class:`Stage` turns one shard's documents into kept documents, rejected documents (with their
reason) and a :class:`~pipeline.stats.StageStats`. A :class:`GlobalStage` (dedup, top fraction, tokenize)
needs every shard of its input at once: it runs phases of tasks through the engine and still writes its
outputs shard by shard. Nothing here knows Ray: a benchmark or a test can call :func:`process_shard`
directly, and global stages get their executor from :class:`GlobalContext`.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from typing import ClassVar

import pyarrow as pa

from pipeline.documents import document_schema, load_column, load_documents, write_documents
from pipeline.engine.executor import Executor
from pipeline.inputs import Shard
from pipeline.rundir import RunDir
from pipeline.schema import build, resolve_paths
from pipeline.stats import StageStats


@dataclass
class ShardContext:
    """What a stage needs besides its documents: where to write, which shard, how to treat errors."""

    run: RunDir
    shard: Shard
    on_error: str = "skip"
    max_record_bytes: int = 1 << 26
    max_document_bytes: int = 8 << 20


class Stage:
    """A step of a workflow applied shard by shard. Subclasses set ``kind`` (the name a workflow file uses),
    build themselves from their workflow table (``from_table``) and are registered in
    :data:`pipeline.stages.STAGE_KINDS`."""

    kind: ClassVar[str]
    name: str

    def columns(self) -> list[pa.Field]:
        """The annotation columns this stage adds to documents."""
        return []

    def run(self, ctx: ShardContext, docs: list[dict] | None) -> tuple[list[dict], list[dict], StageStats]:
        raise NotImplementedError  # pragma: no cover - interface


@dataclass
class GlobalContext:
    """What a global stage needs: the run, every shard, the stage whose kept documents it reads, where its
    tasks run, and the annotation columns of its outputs."""

    run: RunDir
    shards: list[Shard]
    upstream: str
    executor: Executor
    columns: list[pa.Field]
    _upstream_stats: list[dict] | None = field(default=None, repr=False)

    _empty: frozenset[int] | None = field(default=None, repr=False)

    def __getstate__(self) -> dict:
        """Tasks read what they need themselves: the statistics stay in the driver, and only which shards kept
        nothing upstream (and so have no file to ask the storage for) travels, once the driver has read them."""
        empty = self._empty
        if self._upstream_stats is not None:
            empty = frozenset(i for i, stats in enumerate(self._upstream_stats) if stats["docs_kept"] == 0)
        return {**self.__dict__, "_upstream_stats": None, "_empty": empty}

    def documents(self, index: int) -> list[dict]:
        """The input documents of shard ``index``."""
        if self._empty is not None and index in self._empty:
            return []
        return load_documents(self.run, self.run.kept(self.upstream, self.shards[index].id))

    def column(self, index: int, name: str) -> list:
        """One column of the input documents of shard ``index``."""
        if self._empty is not None and index in self._empty:
            return []
        return load_column(self.run, self.run.kept(self.upstream, self.shards[index].id), name)

    def upstream_stats(self) -> list[dict]:
        """The upstream stage's statistics of every shard, in shard order (read at once, then kept)."""
        if self._upstream_stats is None:
            paths = [self.run.shard_stats(self.upstream, s.id) for s in self.shards]
            data = self.run.read_many(paths)
            self._upstream_stats = [json.loads(data[p]) for p in paths]
        return self._upstream_stats

    def input_size(self) -> int:
        """Documents in the input (from the upstream stage's statistics)."""
        return sum(s["docs_kept"] for s in self.upstream_stats())

    def partitions(self, docs_per_partition: int) -> int:
        """How many partitions the shuffles of this stage use: fixed by the input size, not the workers."""
        return max(1, min(4096, math.ceil(self.input_size() / docs_per_partition)))


class GlobalStage(Stage):
    """A stage that needs every shard of its input at once; it writes per-shard outputs like the others.
    Its workflow table holds ``name`` and the fields of its ``options_type`` dataclass."""

    options_type: ClassVar[type]

    @classmethod
    def from_table(cls, table: dict, *, file: str, key: str) -> "GlobalStage":
        """The stage described by its workflow table; errors name ``file`` and ``key``."""
        table = resolve_paths(cls.options_type, table, file)
        options = build(cls.options_type, table, file=file, key=key, skip=("kind", "name"))
        return cls(name=table.get("name", cls.kind), options=options)

    def run_global(self, ctx: GlobalContext) -> None:
        raise NotImplementedError  # pragma: no cover - interface


def output_fields(stages: list[Stage]) -> list[list[pa.Field]]:
    """For each stage, the annotation columns of its outputs: those of every stage up to and including it."""
    out: list[list[pa.Field]] = []
    columns: dict[str, pa.Field] = {}
    for stage in stages:
        columns.update((f.name, f) for f in stage.columns())
        out.append(list(columns.values()))
    return out


def process_shard(
    ctx: ShardContext,
    stages: list[Stage],
    done: list[bool],
    upstream: str | None = None,
    fields: list[list[pa.Field]] | None = None,
) -> dict:
    """Run ``stages`` on one shard, skipping those marked ``done``; write kept, rejected, then stats.
    The first stage reads the kept documents of ``upstream`` (None: the first stage reads the input file);
    ``fields`` are the output columns per stage (default: from these stages alone).

    Returns a small summary (documents in and kept per stage) for progress display.
    """
    run, shard = ctx.run, ctx.shard
    fields = fields or output_fields(stages)
    done = list(done)
    for i in range(len(stages) - 1, 0, -1):  # a stage to run needs its input: redo the stage before if it is gone
        if not done[i] and done[i - 1] and _input_lost(run, stages[i - 1].name, shard.id):
            done[i - 1] = False
    docs: list[dict] | None = None
    summary = {}
    for i, stage in enumerate(stages):
        if done[i]:
            docs = None
            continue
        source = stages[i - 1].name if i > 0 else upstream
        if docs is None and source is not None:
            docs = load_documents(run, run.kept(source, shard.id))
        started = time.perf_counter()
        kept, rejected, stats = stage.run(ctx, docs)
        stats.elapsed_s = time.perf_counter() - started
        write_shard_outputs(run, stage.name, shard.id, kept, rejected, stats, fields[i])
        summary[stage.name] = (stats.docs_in, stats.docs_kept)
        docs = kept
    return summary


def _input_lost(run: RunDir, stage: str, shard: str) -> bool:
    """Whether ``stage`` kept documents of ``shard`` whose file is gone (no documents: no file)."""
    return not run.exists(run.kept(stage, shard)) and run.read_json(run.shard_stats(stage, shard))["docs_kept"] > 0


def write_shard_outputs(
    run: RunDir, stage: str, shard: str, kept: list, rejected: list, stats: StageStats, columns: list[pa.Field]
) -> None:
    """Kept and rejected documents of one shard, then its statistics (the shard's completion marker)."""
    write_documents(run, run.kept(stage, shard), kept, document_schema(columns))
    write_documents(run, run.rejected(stage, shard), rejected, document_schema(columns, rejected=True))
    run.write_json(run.shard_stats(stage, shard), stats.to_json())


def shards_to_write(ctx: GlobalContext, stage: Stage, n: int, p: int) -> list[int]:
    """The shards of partition ``p`` (dealt round-robin) whose outputs are not written yet (all of them,
    unless resuming)."""
    done = ctx.run.done_shards(stage.name)
    return [s for s in range(p, len(ctx.shards), n) if ctx.shards[s].id not in done]


def write_outputs(ctx: GlobalContext, stage: Stage, s: int, kept: list, rejected: list, stats: StageStats) -> None:
    """A global stage's outputs of shard ``s``: kept and rejected documents, then its statistics."""
    write_shard_outputs(ctx.run, stage.name, ctx.shards[s].id, kept, rejected, stats, ctx.columns)
