"""``exact_dedup``: documents with the same (normalised) text across the whole corpus; the first in input
order survives."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pyarrow as pa
import xxhash

from filters.dedup import normalize
from pipeline.engine.phases import Work
from pipeline.engine.shuffle import partition_of, read_partition, write_partitions
from pipeline.stages.base import GlobalContext
from pipeline.stages.dedup.clusters import ClusterStage, by_shard, nodes_of
from tokenizer.errors import require

KEYS = pa.schema([("hi", pa.uint64()), ("lo", pa.uint64()), ("node", pa.int64())])


def hash128(text: str) -> tuple[int, int]:
    """A 128-bit content hash as two 64-bit halves (collisions are negligible even across billions)."""
    digest = xxhash.xxh3_128_intdigest(text.encode("utf-8", "surrogatepass"))
    return digest >> 64, digest & 0xFFFFFFFFFFFFFFFF


@dataclass(kw_only=True)
class ExactDedupOptions:
    normalize: bool = True
    docs_per_partition: int = 200_000

    def __post_init__(self):
        require(self.docs_per_partition >= 1, "docs_per_partition", "must be >= 1")


@dataclass
class ExactDedupStage(ClusterStage):
    """Documents whose text (normalised: lower case, no punctuation or accents, collapsed whitespace) is
    identical; the first in input order survives."""

    kind: ClassVar[str] = "exact_dedup"
    name: str
    options: ExactDedupOptions
    options_type: ClassVar[type] = ExactDedupOptions

    def run_global(self, ctx: GlobalContext) -> None:
        work = Work(ctx.run, self.name, ctx.executor)
        n = ctx.partitions(self.options.docs_per_partition)
        shards = len(ctx.shards)
        work.phase(
            "keys",
            _document_keys,
            [(s, work.part("keys", s)) for s in range(shards)],
            shared=(ctx, n, self.options.normalize),
        )
        work.phase(
            "groups",
            _groups,
            [(work.parts("keys", shards), p, work.part("groups", p)) for p in range(n)],
            shared=(ctx, n),
        )
        self.finish(ctx, work, "groups", n, n)


def _document_keys(shared, s: int, out: str) -> int:
    ctx, n, normalized = shared
    texts = ctx.column(s, "text")
    halves = [hash128(normalize(t) if normalized else t) for t in texts]
    hi = np.array([h for h, _ in halves], dtype=np.uint64)
    lo = np.array([low for _, low in halves], dtype=np.uint64)
    table = pa.table({"hi": hi, "lo": lo, "node": nodes_of(s, len(texts))}, schema=KEYS)
    write_partitions(ctx.run, out, table, partition_of(lo, n), n)
    return len(texts)


def _groups(shared, inputs: list[str], p: int, out: str) -> int:
    """Documents with equal keys form a cluster labelled by its first node."""
    ctx, n = shared
    table = read_partition(ctx.run, inputs, p, KEYS)
    hi, lo, node = (table[c].to_numpy() for c in ("hi", "lo", "node"))
    order = np.lexsort((node, lo, hi))
    hi, lo, node = hi[order], lo[order], node[order]
    new = np.r_[True, (hi[1:] != hi[:-1]) | (lo[1:] != lo[:-1])] if len(hi) else np.empty(0, dtype=bool)
    group = np.cumsum(new) - 1
    sizes = np.bincount(group) if len(group) else np.empty(0, dtype=np.int64)
    label = node[np.flatnonzero(new)][group] if len(group) else node
    dup = sizes[group] > 1 if len(group) else np.empty(0, dtype=bool)
    members = pa.table({"node": node[dup], "label": label[dup]})
    write_partitions(ctx.run, out, members, by_shard(label[dup], n), n)
    return int(dup.sum())
