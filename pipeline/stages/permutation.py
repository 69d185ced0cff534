"""A seeded pseudo-random permutation of ``[0, n)`` that any worker evaluates for any subset of indices,
without ever holding the whole permutation: where document ``i`` of a corpus goes after a global shuffle.

It is a balanced Feistel network (six rounds of splitmix64's mixer, keyed by the seed) on the smallest even
number of bits that covers ``n``, with cycle walking: an index that lands outside ``[0, n)`` is permuted
again until it lands inside, which keeps the map a bijection of ``[0, n)`` (at most four steps are expected,
since the network's domain is under ``4n``).
"""

from __future__ import annotations

import numpy as np

ROUNDS = 6
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: a bijection of 64-bit words in which every input bit moves every output bit."""
    x = x.astype(np.uint64)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


class SeededPermutation:
    """A bijection of ``[0, n)`` chosen by ``seed``; call it on an array of indices."""

    def __init__(self, n: int, seed: int):
        if n < 1 or not 0 <= seed < 1 << 64:
            raise ValueError(f"expected n >= 1 and a seed in [0, 2**64), got n={n}, seed={seed}")
        self.n = n
        self.half = (max(1, (n - 1).bit_length()) + 1) // 2
        self.mask = np.uint64((1 << self.half) - 1)
        self.keys = mix64(np.arange(1, ROUNDS + 1, dtype=np.uint64) * _GOLDEN + mix64(np.array([seed]))[0])

    def __call__(self, indices: np.ndarray) -> np.ndarray:
        """Where each of ``indices`` (in ``[0, n)``) goes, as int64."""
        indices = np.asarray(indices, dtype=np.uint64)
        if len(indices) and int(indices.max()) >= self.n:
            raise ValueError(f"indices must be in [0, {self.n})")
        out = self._network(indices)
        walking = np.flatnonzero(out >= self.n)
        while len(walking):
            out[walking] = self._network(out[walking])
            walking = walking[out[walking] >= self.n]
        return out.astype(np.int64)

    def _network(self, x: np.ndarray) -> np.ndarray:
        half = np.uint64(self.half)
        left, right = x >> half, x & self.mask
        for key in self.keys:
            left, right = right, left ^ (mix64(right ^ key) & self.mask)
        return (left << half) | right
