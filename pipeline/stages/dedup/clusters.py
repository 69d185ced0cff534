"""What the clustering dedup stages (exact and MinHash) share: node ids, cluster resolution and the final
per-shard write.

A document is a *node*: ``shard index << 32 | row`` in its shard's input file, so node order is input order
(file path, then position). A cluster keeps its first document in input order; that choice does not
depend on the number of workers or on how files were split. Every other member is written to
``rejected`` with the reason ``<stage>.duplicate`` and, like the survivor, the cluster's id (the survivor's
document id) and size.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pyarrow as pa

from filters.base import Metric, log_bins
from pipeline.engine.phases import Work
from pipeline.engine.shuffle import read_partition, write_partitions
from pipeline.stages.base import GlobalContext, GlobalStage, shards_to_write, write_outputs
from pipeline.stats import StageStats

ROW_BITS = 32
MEMBERS = pa.schema([("node", pa.int64()), ("label", pa.int64()), ("survivor", pa.string()), ("size", pa.int64())])
CLUSTER_BINS = log_bins(2, 1e6, 30)
LARGEST_CLUSTERS = 20


def nodes_of(shard_index: int, count: int) -> np.ndarray:
    return (np.int64(shard_index) << ROW_BITS) + np.arange(count, dtype=np.int64)


def shard_of(nodes: np.ndarray) -> np.ndarray:
    return nodes >> ROW_BITS


def by_shard(nodes: np.ndarray, n: int) -> np.ndarray:
    """The partition that handles a node's shard (shards are dealt round-robin to partitions)."""
    return shard_of(nodes) % n


@dataclass
class ClusterStage(GlobalStage):
    """Shared by the stages whose result is clusters of duplicate documents (exact and MinHash)."""

    kind: ClassVar[str]

    def columns(self) -> list[pa.Field]:
        return [pa.field(f"{self.kind}_cluster", pa.string()), pa.field(f"{self.kind}_cluster_size", pa.int64())]

    def finish(
        self, ctx: GlobalContext, work: Work, labels_phase: str, producers: int, n: int, extra: dict | None = None
    ) -> None:
        """From (node, label) rows partitioned by the label's shard: resolve clusters, write every shard."""
        results = work.phase(
            "resolve",
            _resolve,
            [(work.parts(labels_phase, producers), p, work.part("resolve", p)) for p in range(n)],
            shared=(ctx, n),
        )
        sizes: Counter = Counter()
        largest: list = []
        for part_sizes, part_largest in results:
            sizes.update({int(k): v for k, v in part_sizes.items()})
            largest += part_largest
        largest.sort(key=lambda c: (-c[0], c[1]))
        ctx.run.write_json(
            ctx.run.path(self.name, "clusters.json"),
            {
                "clusters": sum(sizes.values()),
                "documents_in_clusters": sum(k * v for k, v in sizes.items()),
                "size_counts": {str(k): v for k, v in sorted(sizes.items())},
                "largest": [{"cluster": cid, "size": size} for size, cid in largest[:LARGEST_CLUSTERS]],
                **(extra or {}),
            },
        )
        work.phase(
            "write",
            _write_members,
            [(work.parts("resolve", n), p) for p in range(n)],
            shared=(ctx, n, self),
            mark=False,
        )


def _resolve(shared, inputs: list[str], p: int, out: str) -> tuple[dict, list]:
    """Per cluster: its size and its survivor's document id, sent to every member's shard."""
    ctx, n = shared
    table = read_partition(ctx.run, inputs, p, pa.schema([("node", pa.int64()), ("label", pa.int64())]))
    node, label = table["node"].to_numpy(), table["label"].to_numpy()
    unique, inverse, counts = np.unique(label, return_inverse=True, return_counts=True)
    ids = {}
    for s in np.unique(shard_of(unique)).tolist():
        column = ctx.column(s, "id")
        for lab in unique[shard_of(unique) == s].tolist():
            ids[lab] = column[lab & ((1 << ROW_BITS) - 1)]
    survivors = [ids[lab] for lab in unique.tolist()]
    members = pa.table(
        {
            "node": node,
            "label": label,
            "survivor": pa.array([survivors[i] for i in inverse.tolist()], pa.string()),
            "size": counts[inverse].astype(np.int64),
        },
        schema=MEMBERS,
    )
    write_partitions(ctx.run, out, members, by_shard(node, n), n)
    size_counts = Counter(counts.tolist())
    top = sorted(zip((-counts).tolist(), survivors))[:LARGEST_CLUSTERS]
    return {str(k): v for k, v in size_counts.items()}, [(-neg, cid) for neg, cid in top]


def _write_members(shared, inputs: list[str], p: int) -> None:
    """Write the kept and rejected documents of the shards of partition ``p``."""
    ctx, n, stage = shared
    members = read_partition(ctx.run, inputs, p, MEMBERS)
    member_shard = shard_of(members["node"].to_numpy())
    metric = Metric(f"{stage.kind}_cluster_size", CLUSTER_BINS, integer=True)
    for s in shards_to_write(ctx, stage, n, p):
        mine = members.filter(pa.array(member_shard == s)).to_pylist()
        info = {m["node"] & ((1 << ROW_BITS) - 1): m for m in mine}
        stats = StageStats(stage.name, stage.kind, ctx.shards[s].id)
        kept, rejected = [], []
        for row, doc in enumerate(ctx.documents(s)):
            stats.document_in(len(doc["text"].encode("utf-8")), len(doc["text"]))
            m = info.get(row)
            if m is not None:
                doc[f"{stage.kind}_cluster"], doc[f"{stage.kind}_cluster_size"] = m["survivor"], m["size"]
                if m["node"] != m["label"]:
                    doc["reason"] = f"{stage.name}.duplicate"
                    doc["detail"] = f"duplicate of {m['survivor']} (cluster of {m['size']})"
                    stats.document_dropped(doc["reason"])
                    rejected.append(doc)
                    continue
                stats.observe(metric, m["size"])
            stats.document_kept(doc["text"])
            kept.append(doc)
        write_outputs(ctx, stage, s, kept, rejected, stats)
