"""Deduplication primitives, per document and engine-free: normalisation, shingles, MinHash signatures
(datasketch, 64-bit scheme), LSH band keys, exact Jaccard, content hashes.

The pipeline (``pipeline/dedup*.py``) shuffles what these produce between workers; everything here is a
pure function of one document, so the same text always gives the same keys on any machine.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import numpy as np
import regex
import xxhash
from datasketch import MinHash

from tokenizer.errors import require

_SEPARATORS = re.compile(r"[\W_]+")  # punctuation and whitespace runs become one space
_COMBINING_MARKS = regex.compile(r"\p{Mn}+")  # what NFD splits off: accents
_PRIME = np.uint64(0x100000001B3)


def normalize(text: str) -> str:
    """Text as dedup compares it: NFD with accents removed, lower case, punctuation removed, whitespace
    collapsed to single spaces."""
    if not text.isascii():
        text = _COMBINING_MARKS.sub("", unicodedata.normalize("NFD", text))
    return _SEPARATORS.sub(" ", text.lower()).strip()


def hash64(data: str | bytes) -> int:
    """A 64-bit hash, the same in every process (xxh3)."""
    return xxhash.xxh3_64_intdigest(data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data)


def shingle_hashes(text: str, n: int) -> np.ndarray:
    """64-bit hashes of the word n-grams of the normalised text, in order (a text of fewer than ``n`` words is
    one shingle of all its words). Each word is hashed once (xxh3, in C); an n-gram's hash combines its
    words' hashes with a multiply-xorshift mix, vectorised: no n-gram string is ever built."""
    words = normalize(text).encode("utf-8", "surrogatepass").split()
    if not words:
        return np.empty(0, dtype=np.uint64)
    ids = np.fromiter(map(xxhash.xxh3_64_intdigest, words), dtype=np.uint64, count=len(words))
    width = min(n, len(ids))
    count = len(ids) - width + 1
    h = ids[:count].copy()
    for k in range(1, width):
        h = _mix(h * _PRIME + ids[k : k + count])
    return _mix(h ^ np.uint64(width))


def _mix(h: np.ndarray) -> np.ndarray:
    h = h ^ (h >> np.uint64(31))
    h = h * np.uint64(0xBF58476D1CE4E5B9)
    return h ^ (h >> np.uint64(29))


def shingle_set(text: str, n: int) -> np.ndarray:
    """Sorted unique 64-bit hashes of the word n-grams: a set for exact Jaccard."""
    return np.unique(shingle_hashes(text, n))


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Jaccard similarity of two sorted unique arrays (1.0 for two empty sets)."""
    if not len(a) and not len(b):
        return 1.0
    common = len(np.intersect1d(a, b, assume_unique=True))
    return common / (len(a) + len(b) - common)


@dataclass(kw_only=True)
class MinHashParams:
    """MinHash LSH settings. Defaults follow FineWeb: 5-word shingles, 112 hashes in 14 bands of 8 rows,
    64-bit hashes.

    Two documents with Jaccard similarity ``s`` share a band with probability ``1 - (1 - s**rows)**bands``
    (14 x 8: 0.92 at s = 0.8, 0.99 at s = 0.85); ``threshold`` is the similarity verification requires.
    """

    ngram_size: int = 5
    num_hashes: int = 112
    num_bands: int = 14
    threshold: float = 0.8
    seed: int = 1

    def __post_init__(self):
        require(self.ngram_size >= 1, "ngram_size", "must be >= 1")
        require(self.num_bands >= 1, "num_bands", "must be >= 1")
        require(
            self.num_hashes >= self.num_bands and self.num_hashes % self.num_bands == 0,
            "num_hashes",
            f"must be a multiple of num_bands ({self.num_bands})",
        )
        require(0 < self.threshold <= 1, "threshold", "must be in (0, 1]")

    @property
    def rows_per_band(self) -> int:
        return self.num_hashes // self.num_bands


class MinHasher:
    """MinHash signatures and LSH band keys of documents (one datasketch ``MinHash`` reused)."""

    def __init__(self, params: MinHashParams):
        self.params = params
        # shingles arrive already hashed (see shingle_hashes): datasketch applies its permutations to them
        self._minhash = MinHash(num_perm=params.num_hashes, seed=params.seed, scheme="affine64", hashfunc=int)

    def signature(self, text: str) -> np.ndarray:
        """The ``num_hashes`` minimum hash values of the document's shingles (uint64)."""
        self._minhash.clear()
        self._minhash.update_batch(shingle_hashes(text, self.params.ngram_size).tolist())
        return self._minhash.hashvalues.astype(np.uint64, copy=True)

    def band_keys(self, signature: np.ndarray) -> np.ndarray:
        """One 64-bit key per band: the hash of that band's rows. Equal keys in a band make candidates."""
        rows = self.params.rows_per_band
        data = signature.astype("<u8").tobytes()
        width = rows * 8
        return np.array(
            [hash64(data[b * width : (b + 1) * width]) for b in range(self.params.num_bands)], dtype=np.uint64
        )


def candidate_probability(similarity: float, num_bands: int, rows_per_band: int) -> float:
    """Probability that two documents of Jaccard ``similarity`` share at least one band."""
    return 1.0 - (1.0 - similarity**rows_per_band) ** num_bands
