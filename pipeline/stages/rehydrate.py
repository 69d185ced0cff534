"""FineWeb-2's rehydration: after near-duplicate removal, a surviving document stands for its whole cluster,
and survivors of larger clusters are repeated in the training data by a table of cluster-size ranges.

The table is a list of ``[from_size, copies]`` pairs with increasing sizes, the first from size 1: a document
whose cluster holds ``size`` documents is written ``copies`` times, those of the last pair whose ``from_size``
is at most ``size``. FineWeb-2's published weights (github.com/huggingface/fineweb-2, README,
"Deduplication") are the default: unique documents once, clusters of 2 and 3 that many times, 4 three times,
5 to 99 five times, 100 to 999 eight times and 1000 or more once (very large clusters are assumed to be of
low quality). A document outside any cluster (no cluster size) counts as a cluster of 1.
"""

from __future__ import annotations

import numpy as np

from tokenizer.errors import require

FINEWEB2_WEIGHTS: list[tuple[int, int]] = [(1, 1), (2, 2), (3, 3), (5, 5), (100, 8), (1000, 1)]


def check_weights(weights: list[tuple[int, int]], key: str) -> None:
    """Raise a configuration error for ``key`` unless ``weights`` is a usable table."""
    sizes = [size for size, _ in weights]
    require(bool(weights) and sizes[0] == 1, key, "expected [from_size, copies] pairs, the first from size 1")
    require(all(a < b for a, b in zip(sizes, sizes[1:])), key, "cluster sizes must increase from pair to pair")
    require(all(copies >= 1 for _, copies in weights), key, "copies must be >= 1")


def buckets(cluster_sizes: list, weights: list[tuple[int, int]]) -> np.ndarray:
    """The row of ``weights`` that applies to each cluster size (None: a cluster of 1)."""
    sizes = np.array([1 if s is None else max(1, int(s)) for s in cluster_sizes], dtype=np.int64)
    limits = np.array([size for size, _ in weights], dtype=np.int64)
    return np.searchsorted(limits, sizes, side="right") - 1


def copies_of(bucket: np.ndarray, weights: list[tuple[int, int]]) -> np.ndarray:
    """How many times each document of the given buckets is written."""
    return np.array([c for _, c in weights], dtype=np.int64)[bucket]


def bucket_labels(weights: list[tuple[int, int]]) -> list[str]:
    """A statistics key per row of ``weights``: its cluster sizes and copies, as ``rehydrate.5-99.x5``."""
    labels = []
    for i, (size, count) in enumerate(weights):
        last = weights[i + 1][0] - 1 if i + 1 < len(weights) else None
        sizes = f"{size}+" if last is None else (str(size) if last == size else f"{size}-{last}")
        labels.append(f"rehydrate.{sizes}.x{count}")
    return labels
