"""``top_fraction``: keep the top fraction of the whole corpus by a score column (DCLM keeps its top 10% by the fastText
quality score), with the cut found across every shard, not per shard.

The threshold comes from histograms of the column, merged over all shards: a first pass of 1024 bins over
the scores' range finds the bin holding the cut, and two more passes zoom into that bin, so the threshold
is exact to about 1e-9 of the range whatever the number of documents, without ever gathering the scores
in one place. Documents scoring at least the threshold are kept (ties at the cut are all kept, so the kept
share can exceed ``fraction`` by the documents tied there); the rest, and documents without a score, are
rejected with the threshold as ``detail``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from filters.base import Metric, linear_bins
from pipeline.engine.phases import Work
from pipeline.stages.base import GlobalContext, GlobalStage, shards_to_write, write_outputs
from pipeline.stats import StageStats
from tokenizer.errors import require

BINS = 1024
ZOOM_PASSES = 3


@dataclass(kw_only=True)
class TopFractionOptions:
    column: str = "quality_score"
    fraction: float = 0.1

    def __post_init__(self):
        require(0 < self.fraction <= 1, "fraction", "must be in (0, 1]")


@dataclass
class TopFractionStage(GlobalStage):
    """Keep the ``fraction`` of documents with the highest ``column`` (an annotation of an earlier filter)."""

    kind: ClassVar[str] = "top_fraction"
    name: str
    options: TopFractionOptions
    options_type: ClassVar[type] = TopFractionOptions

    def run_global(self, ctx: GlobalContext) -> None:
        work = Work(ctx.run, self.name, ctx.executor)
        shards = range(len(ctx.shards))
        column = self.options.column
        if column not in {f.name for f in ctx.columns}:
            raise ValueError(f"{self.name}: no earlier stage writes the column {column!r}")
        ranges = work.phase("range", _range, [(s,) for s in shards], shared=(ctx, column))
        scored = sum(r[0] for r in ranges)
        lows = [r[1] for r in ranges if r[0]]
        highs = [r[2] for r in ranges if r[0]]
        threshold = math.inf
        if scored:
            wanted = math.ceil(self.options.fraction * scored)
            lo, hi, above = min(lows), max(highs), 0
            top = hi  # the highest score: the one bin edge that is included
            for zoom in range(ZOOM_PASSES):
                if lo == hi:
                    break
                calls = [(s, lo, hi, hi == top) for s in shards]
                parts = work.phase(f"histogram-{zoom}", _histogram, calls, shared=(ctx, column))
                counts = np.zeros(BINS, dtype=np.int64)
                for part in parts:
                    for b, c in part.items():
                        counts[int(b)] += c
                from_top = above + np.cumsum(counts[::-1])
                top_bin = int(np.searchsorted(from_top, wanted))  # bins counted from the top
                b = BINS - 1 - top_bin
                above = int(from_top[top_bin - 1]) if top_bin else above
                width = (hi - lo) / BINS
                lo, hi = lo + b * width, (lo + (b + 1) * width if b < BINS - 1 else hi)
            threshold = lo
        ctx.run.write_json(
            ctx.run.path(self.name, "threshold.json"),
            {"column": column, "fraction": self.options.fraction, "scored": scored, "threshold": threshold},
        )
        work.phase(
            "write",
            _select,
            [(s,) for s in shards],
            shared=(ctx, self, threshold),
            mark=False,
        )


def _scores(ctx: GlobalContext, s: int, column: str) -> np.ndarray:
    """The column's values in shard ``s`` (NaN where a document has none)."""
    return np.array([np.nan if v is None else float(v) for v in ctx.column(s, column)], dtype=np.float64)


def _range(shared, s: int) -> tuple[int, float, float]:
    ctx, column = shared
    values = _scores(ctx, s, column)
    values = values[~np.isnan(values)]
    return (len(values), float(values.min()), float(values.max())) if len(values) else (0, 0.0, 0.0)


def _histogram(shared, s: int, lo: float, hi: float, closed: bool) -> dict[str, int]:
    """Counts of the shard's values in ``BINS`` equal bins of [lo, hi) ([lo, hi] when ``closed``), sparse."""
    ctx, column = shared
    values = _scores(ctx, s, column)
    values = values[(values >= lo) & ((values <= hi) if closed else (values < hi))]
    index = np.minimum(((values - lo) / (hi - lo) * BINS).astype(np.int64), BINS - 1)
    found, counts = np.unique(index, return_counts=True)
    return {str(b): int(c) for b, c in zip(found.tolist(), counts.tolist())}


def _select(shared, s: int) -> None:
    ctx, stage, threshold = shared
    if s not in shards_to_write(ctx, stage, len(ctx.shards), s):
        return
    column = stage.options.column
    metric = Metric(column, linear_bins(0.0, 1.0, 100))
    stats = StageStats(stage.name, stage.kind, ctx.shards[s].id)
    kept, rejected = [], []
    for doc in ctx.documents(s):
        stats.document_in(len(doc["text"].encode("utf-8")), len(doc["text"]))
        value = doc.get(column)
        if value is not None and value >= threshold:
            stats.observe(metric, value)
            stats.document_kept(doc["text"])
            kept.append(doc)
            continue
        doc["reason"] = f"{stage.name}.{'no_score' if value is None else 'below_top_fraction'}"
        doc["detail"] = f"{column} {value} < {threshold:.6g} (the top {stage.options.fraction:g} of the corpus)"
        stats.document_dropped(doc["reason"])
        rejected.append(doc)
    write_outputs(ctx, stage, s, kept, rejected, stats)
