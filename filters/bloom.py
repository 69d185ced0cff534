"""A Bloom filter over 64-bit keys (hashes of paragraphs or n-grams), vectorised with numpy.

``k`` bit positions per key come from double hashing (Kirsch and Mitzenmacher 2006): two independent 64-bit
mixes ``h1``, ``h2`` of the key give ``h1 + i * h2`` for ``i < k``, each mapped to one of the ``m`` bits. A
filter sized for ``n`` keys at false-positive rate ``p`` has ``m = -n ln p / (ln 2)^2`` bits and
``k = round(-log2 p)``; once it holds ``n`` keys, an absent key is reported present with probability
``(1 - e^(-kn/m))^k`` (:func:`false_positive_bound`), and earlier queries, made against a sparser filter,
less often.
"""

from __future__ import annotations

import math

import numpy as np

from tokenizer.errors import require

_LN2 = math.log(2)
_SEEDS = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xC2B2AE3D27D4EB4F))


def bits_for(keys: int, false_positive_rate: float) -> int:
    """Bits (a multiple of 64) that hold ``keys`` keys at ``false_positive_rate``."""
    require(0 < false_positive_rate < 1, "false_positive_rate", "must be between 0 and 1 (exclusive)")
    bits = math.ceil(-max(keys, 1) * math.log(false_positive_rate) / _LN2**2)
    return max(64, -(-bits // 64) * 64)


def optimal_hashes(bits: int, keys: int) -> int:
    """The number of hash functions that minimises false positives for ``keys`` keys in ``bits`` bits."""
    return max(1, min(32, round(bits / max(keys, 1) * _LN2)))


def false_positive_bound(bits: int, hashes: int, keys: int) -> float:
    """The probability that an absent key is reported present once ``keys`` keys are in the filter."""
    return (1.0 - math.exp(-hashes * keys / bits)) ** hashes


def _mix(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser: every output bit depends on every input bit."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


class BloomFilter:
    """``bits`` bits (rounded up to a multiple of 64) and ``hashes`` positions per key."""

    def __init__(self, bits: int, hashes: int):
        require(bits >= 64, "bloom_bytes", "must be at least 8 bytes")
        require(hashes >= 1, "hashes", "must be >= 1")
        self.words = np.zeros(-(-bits // 64), dtype=np.uint64)
        self.bits = len(self.words) * 64
        self.hashes = hashes
        self._steps = np.arange(hashes, dtype=np.uint64)

    @classmethod
    def for_keys(cls, keys: int, false_positive_rate: float) -> "BloomFilter":
        """A filter sized to hold ``keys`` keys at ``false_positive_rate``."""
        bits = bits_for(keys, false_positive_rate)
        return cls(bits, optimal_hashes(bits, keys))

    @classmethod
    def of_size(cls, nbytes: int, keys: int) -> "BloomFilter":
        """A filter of ``nbytes`` bytes (rounded down to whole 64-bit words) expecting ``keys`` keys."""
        bits = max(64, nbytes * 8 // 64 * 64)
        return cls(bits, optimal_hashes(bits, keys))

    @property
    def nbytes(self) -> int:
        return self.words.nbytes

    def bound(self, keys: int) -> float:
        """:func:`false_positive_bound` of this filter once it holds ``keys`` keys."""
        return false_positive_bound(self.bits, self.hashes, keys)

    def fill(self) -> float:
        """The share of bits set; ``fill() ** hashes`` is the false-positive rate of the next query."""
        return int(np.bitwise_count(self.words).sum()) / self.bits

    def _positions(self, keys: np.ndarray) -> np.ndarray:
        """The ``hashes`` bit positions of every key, shape (len(keys), hashes): ``h1 + i * h2`` (mod 2^64),
        mapped to ``[0, bits)`` by its top 32 bits times ``bits``, shifted (no division) while ``bits``
        fits in 32 bits, else by ``mod bits``."""
        keys = np.asarray(keys, dtype=np.uint64)
        h1 = _mix(keys ^ _SEEDS[0])
        h2 = _mix(keys ^ _SEEDS[1]) | np.uint64(1)
        mixed = h1[:, None] + self._steps[None, :] * h2[:, None]
        if self.bits < 1 << 32:
            return ((mixed >> np.uint64(32)) * np.uint64(self.bits)) >> np.uint64(32)
        return mixed % np.uint64(self.bits)

    def contains(self, keys: np.ndarray) -> np.ndarray:
        """For each key, whether all its bits are set (true for every key added; sometimes for others)."""
        pos = self._positions(keys)
        bits = (self.words[pos >> np.uint64(6)] >> (pos & np.uint64(63))) & np.uint64(1)
        return bits.all(axis=1) if len(pos) else np.zeros(0, dtype=bool)

    def add(self, keys: np.ndarray) -> None:
        """Set the bits of every key."""
        pos = self._positions(keys).ravel()
        np.bitwise_or.at(self.words, pos >> np.uint64(6), np.uint64(1) << (pos & np.uint64(63)))

    def seen_then_add(self, keys: np.ndarray, groups: np.ndarray) -> np.ndarray:
        """For each key of a batch (in order), whether it was seen before: the filter holds it, or an equal key
        came earlier in the batch in another group (keys of one group, such as the n-grams of one paragraph,
        are all checked before any of them is added). Then every key is added. Equal keys inside a batch are
        found exactly; only keys from earlier batches can be false positives."""
        keys = np.asarray(keys, dtype=np.uint64)
        seen = self.contains(keys)
        if len(keys):
            _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
            seen |= groups[first[inverse]] != groups
        self.add(keys)
        return seen
