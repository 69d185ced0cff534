"""Connected components of a graph too large for one process.

Alternating large-star and small-star rounds (Kiveris et al., "Connected Components in MapReduce and
Beyond", 2014) over hash-partitioned edge files, until a full round leaves the edge set unchanged; the
graph is then a set of stars around the smallest node of each component. Every task holds one partition of
the edges, never the whole graph, and the number of rounds grows with the logarithm of the component size.

Edges are stored in both directions, as rows ``(key, other)`` partitioned by ``key``.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pyarrow as pa

from pipeline.engine.phases import Work
from pipeline.engine.shuffle import partition_of, read_partition, write_partitions

EDGES = pa.schema([("key", pa.int64()), ("other", pa.int64())])
LABELS = pa.schema([("node", pa.int64()), ("label", pa.int64())])
MAX_ROUNDS = 200


def both_directions(a: np.ndarray, b: np.ndarray) -> pa.Table:
    """Undirected edges ``a - b`` as rows (key, other) in both directions, duplicates removed."""
    pairs = np.unique(np.stack([np.minimum(a, b), np.maximum(a, b)], axis=1), axis=0) if len(a) else np.empty((0, 2))
    lo, hi = pairs[:, 0].astype(np.int64), pairs[:, 1].astype(np.int64)
    keep = lo != hi
    lo, hi = lo[keep], hi[keep]
    return pa.table({"key": np.concatenate([lo, hi]), "other": np.concatenate([hi, lo])}, schema=EDGES)


def write_edges(run, path: str, table: pa.Table, n: int) -> None:
    """Write edge rows partitioned by their key."""
    write_partitions(run, path, table, partition_of(table["key"].to_numpy(), n), n)


def connected_components(
    work: Work, edge_phase: str, producers: int, n: int, route: Callable[[np.ndarray, int], np.ndarray]
) -> tuple[str, int]:
    """Components of the graph whose edges the ``producers`` files of ``edge_phase`` hold (both directions,
    partitioned by key into ``n``). Writes (node, label = smallest node of its component) for every node
    with an edge, partitioned by ``route(labels, n)``; returns that phase's name and file count."""
    source, files, previous = edge_phase, producers, None
    for r in range(MAX_ROUNDS):
        inputs = work.parts(source, files)
        results = work.phase(
            f"cc-{r:03d}-large",
            _large_star,
            [(inputs, p, work.part(f"cc-{r:03d}-large", p)) for p in range(n)],
            shared=(work.run, n),
        )
        fingerprint = [sum(x[0] for x in results), sum(x[1] for x in results) % (1 << 64)]
        if fingerprint == previous:
            break
        previous = fingerprint
        large = work.parts(f"cc-{r:03d}-large", n)
        work.phase(
            f"cc-{r:03d}-small",
            _small_star,
            [(large, p, work.part(f"cc-{r:03d}-small", p)) for p in range(n)],
            shared=(work.run, n),
        )
        source, files = f"cc-{r:03d}-small", n
    else:
        raise RuntimeError(f"connected components did not converge in {MAX_ROUNDS} rounds")
    inputs = work.parts(source, files)
    work.phase(
        "cc-labels", _labels, [(inputs, p, work.part("cc-labels", p)) for p in range(n)], shared=(work.run, n, route)
    )
    return "cc-labels", n


def _grouped(table: pa.Table) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rows sorted by (key, other), the start of each key's group, and the smallest other per group."""
    key, other = table["key"].to_numpy(), table["other"].to_numpy()
    order = np.lexsort((other, key))
    key, other = key[order], other[order]
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]]) if len(key) else np.empty(0, dtype=np.int64)
    smallest = np.minimum.reduceat(other, starts) if len(key) else np.empty(0, dtype=np.int64)
    return key, other, starts, smallest


def _fingerprint(key: np.ndarray, other: np.ndarray) -> tuple[int, int]:
    """Count and order-independent checksum of the undirected edges (each counted at its smaller end)."""
    mine = key < other
    pairs = np.unique(np.stack([key[mine], other[mine]], axis=1), axis=0)
    if not len(pairs):
        return 0, 0
    mixed = pairs[:, 0].astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15) ^ pairs[:, 1].astype(np.uint64)
    mixed = (mixed ^ (mixed >> np.uint64(29))) * np.uint64(0xBF58476D1CE4E5B9)
    return len(pairs), int(mixed.sum(dtype=np.uint64))


def _large_star(shared, inputs: list[str], p: int, out: str) -> tuple[int, int]:
    """Each node links its larger neighbours to the smallest node among itself and its neighbours."""
    run, n = shared
    key, other, starts, smallest = _grouped(read_partition(run, inputs, p, EDGES))
    sizes = np.diff(np.r_[starts, len(key)])
    m = np.repeat(np.minimum(smallest, key[starts]) if len(key) else smallest, sizes)
    larger = other > key
    write_edges(run, out, _small_star_rows(m[larger], other[larger]), n)
    return _fingerprint(key, other)


def _small_star_rows(a: np.ndarray, b: np.ndarray) -> pa.Table:
    """Undirected edges as rows keyed by their larger end, the input of a small-star step."""
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    keep = lo != hi
    return pa.table({"key": hi[keep], "other": lo[keep]}, schema=EDGES)


def _small_star(shared, inputs: list[str], p: int, out: str) -> None:
    """Each node links itself and its smaller neighbours to the smallest of them."""
    run, n = shared
    key, other, starts, smallest = _grouped(read_partition(run, inputs, p, EDGES))
    m = np.repeat(smallest, np.diff(np.r_[starts, len(key)]))
    a = np.concatenate([other, smallest])
    b = np.concatenate([m, key[starts]])
    write_edges(run, out, both_directions(a, b), n)


def _labels(shared, inputs: list[str], p: int, out: str) -> int:
    """At convergence every node's label is the smallest of itself and its neighbours."""
    run, n, route = shared
    key, _, starts, smallest = _grouped(read_partition(run, inputs, p, EDGES))
    nodes = key[starts]
    labels = np.minimum(smallest, nodes)
    write_partitions(run, out, pa.table({"node": nodes, "label": labels}, schema=LABELS), route(labels, n), n)
    return len(nodes)
