"""Near-duplicate documents with MinHash LSH, clustered across the whole corpus on Ray.

Phases (each a set of tasks over partitioned files, see :mod:`pipeline.engine.phases`):
signatures and band keys per shard (with verification, also each document's shingle set, from the same pass
over its text, into a file per shard); candidate pairs per bucket partition (documents sharing a band key);
optionally, each pair's true Jaccard similarity of shingle sets, joined in two steps (the first document's
set read where it lives and sent to the second's partition, the second's read there); connected components
of the verified pairs (:mod:`pipeline.stages.dedup.components`); then clusters resolved and every shard written.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from filters.dedup import MinHasher, MinHashParams, jaccard
from pipeline.engine.phases import Work
from pipeline.engine.shuffle import partition_of, read_partition, write_partitions
from pipeline.stages.base import GlobalContext
from pipeline.stages.dedup.clusters import ClusterStage, by_shard, nodes_of, shard_of
from pipeline.stages.dedup.components import both_directions, connected_components, write_edges
from tokenizer.errors import require

BANDS = pa.schema([("band", pa.int64()), ("key", pa.uint64()), ("node", pa.int64())])
PAIRS = pa.schema([("u", pa.int64()), ("v", pa.int64())])
SETS = pa.schema([("shingles", pa.large_list(pa.uint64()))])  # one row per document of a shard, in order
# a first document, its partners in one destination partition, and its shingle set (sent once per partition)
FIRST_WITH_SET = pa.schema([("u", pa.int64()), ("vs", pa.list_(pa.int64())), ("u_shingles", pa.list_(pa.uint64()))])


@dataclass(kw_only=True)
class MinHashOptions(MinHashParams):
    """MinHash parameters plus: ``verify`` candidate pairs by true Jaccard; buckets of more than
    ``max_bucket_size`` documents are verified as a star around their first document instead of all their
    pairs; ``docs_per_partition`` sizes the shuffles."""

    verify: bool = True
    max_bucket_size: int = 64
    docs_per_partition: int = 200_000

    def __post_init__(self):
        super().__post_init__()
        require(self.max_bucket_size >= 2, "max_bucket_size", "must be >= 2")
        require(self.docs_per_partition >= 1, "docs_per_partition", "must be >= 1")


@dataclass
class MinHashDedupStage(ClusterStage):
    """Near-duplicates by MinHash LSH; one document per connected component of (verified) candidate pairs
    survives, the first in input order."""

    kind: ClassVar[str] = "minhash_dedup"
    name: str
    options: MinHashOptions
    options_type: ClassVar[type] = MinHashOptions

    def run_global(self, ctx: GlobalContext) -> None:
        work = Work(ctx.run, self.name, ctx.executor)
        n = ctx.partitions(self.options.docs_per_partition)
        shards = len(ctx.shards)
        opts = self.options
        sets = work.parts("sets", shards) if opts.verify else [None] * shards
        work.phase(
            "bands",
            _band_keys,
            [(s, work.part("bands", s), sets[s]) for s in range(shards)],
            shared=(ctx, n, opts),
        )
        candidates = work.phase(
            "buckets",
            _buckets,
            [(work.parts("bands", shards), p, work.part("buckets", p)) for p in range(n)],
            shared=(ctx, n, opts),
        )
        edges = "buckets"
        verified = None
        if opts.verify:
            work.phase(
                "verify-first",
                _attach_first_shingles,
                [(work.parts("buckets", n), p, work.part("verify-first", p)) for p in range(n)],
                shared=(ctx, n, sets),
            )
            verified = work.phase(
                "verify",
                _verify,
                [(work.parts("verify-first", n), p, work.part("verify", p)) for p in range(n)],
                shared=(ctx, n, opts, sets),
            )
            edges = "verify"
        labels, producers = connected_components(work, edges, n, n, by_shard)
        pairs = {"bands": opts.bands, "rows": opts.rows_per_band, "candidate_pairs": sum(candidates)}
        if verified is not None:
            pairs["verified_pairs"] = sum(verified)
        self.finish(ctx, work, labels, producers, n, pairs)


def _band_keys(shared, s: int, out: str, sets: str | None) -> int:
    """Band keys of shard ``s``'s documents, partitioned by bucket; with ``sets``, also their shingle sets."""
    ctx, n, opts = shared
    hasher = MinHasher(opts)
    texts = ctx.column(s, "text")
    if sets is None:
        signatures = hasher.signatures(texts)
    else:
        signatures, offsets, values = hasher.signatures_and_sets(texts)
        _write_sets(ctx.run, sets, offsets, values)
    keys = hasher.band_keys(signatures)
    rows = len(texts) * opts.bands
    band = np.tile(np.arange(opts.bands, dtype=np.int64), len(texts))
    table = pa.table(
        {"band": band, "key": keys.reshape(rows), "node": np.repeat(nodes_of(s, len(texts)), opts.bands)},
        schema=BANDS,
    )
    bucket = keys.reshape(rows) ^ (band.astype(np.uint64) * np.uint64(0xD6E8FEB86659FD93))
    write_partitions(ctx.run, out, table, partition_of(bucket, n), n)
    return len(texts)


def _write_sets(run, path: str, offsets: np.ndarray, values: np.ndarray) -> None:
    """A shard's shingle sets, uncompressed and without dictionaries: they are random 64-bit values."""
    table = pa.table({"shingles": pa.LargeListArray.from_arrays(pa.array(offsets), pa.array(values))}, schema=SETS)
    with run.writer(path) as f:
        pq.write_table(table, f, compression="none", use_dictionary=False)


def _buckets(shared, inputs: list[str], p: int, out: str) -> int:
    """Candidate pairs: documents that share a band key. Without verification, a star around each bucket's
    first document connects it; with verification, every pair of a bucket (up to ``max_bucket_size``)."""
    ctx, n, opts = shared
    table = read_partition(ctx.run, inputs, p, BANDS)
    band, key, node = (table[c].to_numpy() for c in ("band", "key", "node"))
    order = np.lexsort((node, key, band))
    band, key, node = band[order], key[order], node[order]
    new = np.r_[True, (band[1:] != band[:-1]) | (key[1:] != key[:-1])] if len(band) else np.empty(0, dtype=bool)
    starts = np.flatnonzero(new)
    sizes = np.diff(np.r_[starts, len(band)])
    group = np.cumsum(new) - 1
    first = node[starts][group] if len(group) else node
    star = (sizes[group] > 1) & (node != first) if len(group) else np.empty(0, dtype=bool)
    u, v = [first[star]], [node[star]]
    if opts.verify:
        for start, size in zip(
            starts[(sizes > 2) & (sizes <= opts.max_bucket_size)].tolist(),
            sizes[(sizes > 2) & (sizes <= opts.max_bucket_size)].tolist(),
        ):
            pairs = np.array(list(combinations(node[start : start + size].tolist(), 2)), dtype=np.int64)
            u.append(pairs[:, 0])
            v.append(pairs[:, 1])
    u, v = np.concatenate(u), np.concatenate(v)
    pairs = (
        np.unique(np.stack([np.minimum(u, v), np.maximum(u, v)], axis=1), axis=0)
        if len(u)
        else np.empty((0, 2), dtype=np.int64)
    )
    if opts.verify:
        table = pa.table({"u": pairs[:, 0], "v": pairs[:, 1]}, schema=PAIRS)
        write_partitions(ctx.run, out, table, by_shard(pairs[:, 0], n), n)
    else:
        write_edges(ctx.run, out, both_directions(pairs[:, 0], pairs[:, 1]), n)
    return len(pairs)


def _shingle_sets(ctx: GlobalContext, sets: list[str], nodes: np.ndarray) -> dict[int, np.ndarray]:
    """Shingle sets of the given documents, read from their shards' set files (written with the bands)."""
    found = {}
    for s in np.unique(shard_of(nodes)).tolist():
        with ctx.run.reader(sets[s]) as f:
            column = pq.read_table(f).column("shingles").combine_chunks()
        offsets, values = column.offsets.to_numpy(), column.values.to_numpy()
        for node in np.unique(nodes[shard_of(nodes) == s]).tolist():
            row = node & 0xFFFFFFFF
            found[node] = values[offsets[row] : offsets[row + 1]]
    return found


def _attach_first_shingles(shared, inputs: list[str], p: int, out: str) -> int:
    """Send each first document's shingle set to the partitions of its partners, once per partition."""
    ctx, n, sets = shared
    table = read_partition(ctx.run, inputs, p, PAIRS)
    u, v = table["u"].to_numpy(), table["v"].to_numpy()
    dest = by_shard(v, n)
    order = np.lexsort((v, dest, u))
    u, v, dest = u[order], v[order], dest[order]
    new = np.r_[True, (u[1:] != u[:-1]) | (dest[1:] != dest[:-1])] if len(u) else np.empty(0, dtype=bool)
    starts = np.flatnonzero(new)
    firsts = u[starts]
    first_sets = _shingle_sets(ctx, sets, firsts)
    rows = pa.table(
        {
            "u": firsts,
            "vs": np.split(v, starts[1:]) if len(u) else [],
            "u_shingles": [first_sets[x] for x in firsts.tolist()],
        },
        schema=FIRST_WITH_SET,
    )
    write_partitions(ctx.run, out, rows, dest[starts], n)
    return len(u)


def _verify(shared, inputs: list[str], p: int, out: str) -> int:
    """Keep the pairs whose true Jaccard similarity reaches the threshold; they are the graph's edges."""
    ctx, n, opts, set_files = shared
    table = read_partition(ctx.run, inputs, p, FIRST_WITH_SET)
    partners = table["vs"].to_numpy(zero_copy_only=False)
    first_sets = table["u_shingles"].to_numpy(zero_copy_only=False)
    sets = _shingle_sets(ctx, set_files, np.concatenate(partners) if len(partners) else np.empty(0, np.int64))
    us, vs = [], []
    for u, partner_list, u_set in zip(table["u"].to_pylist(), partners, first_sets):
        u_set = np.asarray(u_set, dtype=np.uint64)
        for v in partner_list.tolist():
            if jaccard(u_set, sets[v]) >= opts.threshold:
                us.append(u)
                vs.append(v)
    write_edges(ctx.run, out, both_directions(np.array(us, dtype=np.int64), np.array(vs, dtype=np.int64)), n)
    return len(us)
