"""``line_dedup``: lines that occur more than once anywhere in the corpus are removed from every document that
holds them (CS336 semantics)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pyarrow as pa

from filters.base import RATIO_BINS, Metric
from pipeline.engine.phases import Work
from pipeline.engine.shuffle import partition_of, read_partition, write_partitions
from pipeline.stages.base import GlobalContext, GlobalStage, shards_to_write, write_outputs
from pipeline.stages.dedup.exact import hash128
from pipeline.stats import StageStats
from tokenizer.errors import require

LINE_COUNTS = pa.schema([("hi", pa.uint64()), ("lo", pa.uint64()), ("count", pa.int64()), ("shard", pa.int64())])
DUP_LINES = pa.schema([("hi", pa.uint64()), ("lo", pa.uint64()), ("shard", pa.int64())])


@dataclass(kw_only=True)
class LineDedupOptions:
    keep_blank_lines: bool = True
    docs_per_partition: int = 200_000

    def __post_init__(self):
        require(self.docs_per_partition >= 1, "docs_per_partition", "must be >= 1")


@dataclass
class LineDedupStage(GlobalStage):
    """Remove every line that occurs more than once in the corpus (in one document or several) from every
    document holding it; other lines keep their order. Blank lines are kept unless ``keep_blank_lines`` is
    false. A document left with no text is dropped as ``<stage>.empty_after_dedup``."""

    kind: ClassVar[str] = "line_dedup"
    name: str
    options: LineDedupOptions
    options_type: ClassVar[type] = LineDedupOptions

    def columns(self) -> list[pa.Field]:
        return [pa.field("lines_removed", pa.int64())]

    def run_global(self, ctx: GlobalContext) -> None:
        work = Work(ctx.run, self.name, ctx.executor)
        n = ctx.partitions(self.options.docs_per_partition)
        shards = len(ctx.shards)
        work.phase(
            "lines",
            _line_counts,
            [(s, work.part("lines", s)) for s in range(shards)],
            shared=(ctx, n, self.options.keep_blank_lines),
        )
        work.phase(
            "duplicates",
            _duplicate_lines,
            [(work.parts("lines", shards), p, work.part("duplicates", p)) for p in range(n)],
            shared=(ctx, n),
        )
        work.phase(
            "write",
            _remove_lines,
            [(work.parts("duplicates", n), p) for p in range(n)],
            shared=(ctx, n, self),
            mark=False,
        )


def _lines(text: str, keep_blank: bool):
    """(line with its ending, line content) pairs; blank lines are marked with a content of None."""
    for line in text.splitlines(keepends=True):
        content = line.rstrip("\r\n")
        yield line, None if keep_blank and not content.strip() else content


def _line_counts(shared, s: int, out: str) -> int:
    ctx, n, keep_blank = shared
    counts: Counter = Counter()
    for text in ctx.column(s, "text"):
        counts.update(hash128(content) for _, content in _lines(text, keep_blank) if content is not None)
    keys = list(counts)
    table = pa.table(
        {
            "hi": np.array([k[0] for k in keys], dtype=np.uint64),
            "lo": np.array([k[1] for k in keys], dtype=np.uint64),
            "count": np.array([counts[k] for k in keys], dtype=np.int64),
            "shard": np.full(len(keys), s, dtype=np.int64),
        },
        schema=LINE_COUNTS,
    )
    write_partitions(ctx.run, out, table, partition_of(table["lo"].to_numpy(), n), n)
    return len(keys)


def _duplicate_lines(shared, inputs: list[str], p: int, out: str) -> int:
    """Lines counted more than once over all shards, sent to every shard that holds them."""
    ctx, n = shared
    table = read_partition(ctx.run, inputs, p, LINE_COUNTS)
    hi, lo, count, shard = (table[c].to_numpy() for c in ("hi", "lo", "count", "shard"))
    order = np.lexsort((shard, lo, hi))
    hi, lo, count, shard = hi[order], lo[order], count[order], shard[order]
    new = np.r_[True, (hi[1:] != hi[:-1]) | (lo[1:] != lo[:-1])] if len(hi) else np.empty(0, dtype=bool)
    group = np.cumsum(new) - 1
    totals = np.bincount(group, weights=count).astype(np.int64) if len(group) else np.empty(0, dtype=np.int64)
    dup = totals[group] > 1 if len(group) else np.empty(0, dtype=bool)
    table = pa.table({"hi": hi[dup], "lo": lo[dup], "shard": shard[dup]}, schema=DUP_LINES)
    write_partitions(ctx.run, out, table, shard[dup] % n, n)
    return int(new[dup].sum()) if len(dup) else 0


def _remove_lines(shared, inputs: list[str], p: int) -> None:
    ctx, n, stage = shared
    table = read_partition(ctx.run, inputs, p, DUP_LINES)
    metric = Metric("lines_removed_frac", RATIO_BINS)
    for s in shards_to_write(ctx, stage, n, p):
        mine = table.filter(pa.compute.equal(table["shard"], s))
        duplicated = set(zip(mine["hi"].to_pylist(), mine["lo"].to_pylist()))
        stats = StageStats(stage.name, stage.kind, ctx.shards[s].id)
        kept, rejected = [], []
        for doc in ctx.documents(s):
            text = doc["text"]
            stats.document_in(len(text.encode("utf-8")), len(text))
            lines = list(_lines(text, stage.options.keep_blank_lines))
            remaining = [line for line, content in lines if content is None or hash128(content) not in duplicated]
            removed = len(lines) - len(remaining)
            doc["lines_removed"] = removed
            stats.observe(metric, removed / len(lines) if lines else 0.0)
            if removed:
                stats.events["lines_removed"] += removed
                stats.events["chars_removed"] += len(text) - sum(map(len, remaining))
                doc["text"] = "".join(remaining)
            if not doc["text"].strip():
                doc["reason"] = f"{stage.name}.empty_after_dedup"
                stats.document_dropped(doc["reason"])
                rejected.append(doc)
            else:
                stats.document_kept(doc["text"])
                kept.append(doc)
        write_outputs(ctx, stage, s, kept, rejected, stats)
