"""Deduplication primitives, per document and engine-free: normalisation, shingles, MinHash signatures
(datasketch's affine64 scheme, computed in C by :mod:`filters._minhash`), LSH bands fitted to a threshold,
band keys, exact Jaccard, content hashes.

The pipeline (``pipeline/stages/dedup/``) shuffles what these produce between workers; everything here is a
pure function of the documents, so the same text always gives the same keys on any machine.
"""

from __future__ import annotations

import re
import unicodedata
import warnings
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import regex
import xxhash
from scipy.integrate import quad

from filters import _minhash
from tokenizer.errors import require

_SEPARATORS = re.compile(r"[\W_]+")  # punctuation and whitespace runs become one space
_COMBINING_MARKS = regex.compile(r"\p{Mn}+")  # what NFD splits off: accents
_PRIME = np.uint64(0x100000001B3)
# LSH bands are fitted to the threshold as datasketch fits them (weighted areas of false positives and false
# negatives), weighted towards recall: verification removes a false positive, nothing recovers a miss
FALSE_POSITIVE_WEIGHT = 0.05
FALSE_NEGATIVE_WEIGHT = 0.95
MIN_CANDIDATE_PROBABILITY = 0.9  # of comparing a pair at the threshold; below it, a configuration is warned of


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
    one shingle of all its words). Each word is hashed once (XXH64); an n-gram's hash folds its words' hashes
    with a multiply-xorshift mix (``h = mix(h * 0x100000001B3 + word)``, then ``mix(h ^ width)``). In C."""
    return np.frombuffer(_minhash.shingle_hashes(_prepared(text), n), dtype=np.uint64)


def _prepared(text: str) -> str:
    """The text as the C code reads it: lower case and without accents. The C code splits it into words as
    :func:`normalize` does (runs of ``str.isalnum`` characters), so no normalised string is built."""
    if text.isascii():
        return text  # the C code lower-cases ASCII letters itself
    return _minhash.strip_marks(unicodedata.normalize("NFD", text), _mark_bitmap()).lower()


@lru_cache(maxsize=1)
def _mark_bitmap() -> bytes:
    """One bit per code point, set for the combining marks that :func:`normalize` removes (``\\p{Mn}`` of the
    regex module, read from the module itself): the C code removes them in one pass."""
    marks = np.zeros(0x110000, dtype=bool)
    for found in _COMBINING_MARKS.finditer("".join(map(chr, range(0x110000)))):
        marks[found.start() : found.end()] = True
    return np.packbits(marks, bitorder="little").tobytes()


def _mix(h: np.ndarray) -> np.ndarray:
    h = h ^ (h >> np.uint64(31))
    h = h * np.uint64(0xBF58476D1CE4E5B9)
    return h ^ (h >> np.uint64(29))


def shingle_set(text: str, n: int) -> np.ndarray:
    """Sorted unique 64-bit hashes of the word n-grams: a set for exact Jaccard."""
    return _sorted_unique(shingle_hashes(text, n))


def _sorted_unique(hashes: np.ndarray) -> np.ndarray:
    hashes = np.sort(hashes)  # sort and mask: several times faster than np.unique on a few thousand values
    return hashes[np.r_[True, hashes[1:] != hashes[:-1]]] if len(hashes) else hashes


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Jaccard similarity of two sorted unique arrays (1.0 for two empty sets)."""
    if not len(a) and not len(b):
        return 1.0
    common = _minhash.intersection_size(
        np.ascontiguousarray(a, dtype=np.uint64), np.ascontiguousarray(b, dtype=np.uint64)
    )
    return common / (len(a) + len(b) - common)


@dataclass(kw_only=True)
class MinHashParams:
    """MinHash LSH settings: 5-word shingles (FineWeb's) and 112 hashes; ``threshold`` is the similarity a pair
    must reach (verification checks it exactly). ``num_bands`` = 0 (the default) derives bands and rows from
    ``threshold`` and ``num_hashes`` (:func:`lsh_bands`: at 0.8, FineWeb's 14 x 8); explicit bands split the
    hashes evenly. A configuration that compares a pair at the threshold with probability below 0.9 is warned
    of, with that probability.

    Two documents with Jaccard similarity ``s`` share a band with probability ``1 - (1 - s**rows)**bands``.
    """

    ngram_size: int = 5
    num_hashes: int = 112
    num_bands: int = 0
    threshold: float = 0.8
    seed: int = 1
    bands: int = field(init=False)
    rows_per_band: int = field(init=False)

    def __post_init__(self):
        require(self.ngram_size >= 1, "ngram_size", "must be >= 1")
        require(self.num_hashes >= 1, "num_hashes", "must be >= 1")
        require(self.num_bands >= 0, "num_bands", "must be >= 0 (0: derived from threshold and num_hashes)")
        require(
            self.num_bands == 0 or (self.num_hashes >= self.num_bands and self.num_hashes % self.num_bands == 0),
            "num_hashes",
            f"must be a multiple of num_bands ({self.num_bands})",
        )
        require(0 < self.threshold <= 1, "threshold", "must be in (0, 1]")
        if self.num_bands:
            self.bands, self.rows_per_band = self.num_bands, self.num_hashes // self.num_bands
        else:
            self.bands, self.rows_per_band = lsh_bands(self.threshold, self.num_hashes)
        probability = candidate_probability(self.threshold, self.bands, self.rows_per_band)
        if probability < MIN_CANDIDATE_PROBABILITY:
            warnings.warn(
                f"MinHash LSH with {self.bands} bands x {self.rows_per_band} rows compares a pair at the threshold "
                f"(Jaccard {self.threshold}) with probability {probability:.3f}, below {MIN_CANDIDATE_PROBABILITY}: "
                "near-duplicates will be missed (leave num_bands unset to fit bands to the threshold)",
                stacklevel=3,
            )


@lru_cache(maxsize=64)
def lsh_bands(
    threshold: float,
    num_hashes: int,
    false_positive_weight: float = FALSE_POSITIVE_WEIGHT,
    false_negative_weight: float = FALSE_NEGATIVE_WEIGHT,
    min_probability: float = MIN_CANDIDATE_PROBABILITY,
) -> tuple[int, int]:
    """Bands x rows (their product at most ``num_hashes``) minimising datasketch's objective: the weighted
    areas under the candidate probability below the threshold (false positives) and above 1 minus it (false
    negatives), among the choices that compare a pair at the threshold with at least ``min_probability``
    (all choices when none does). With weights 0.5 / 0.5 and no minimum it is datasketch's
    ``MinHashLSH(threshold, num_perm)``."""
    best, fallback = None, None
    for bands in range(1, num_hashes + 1):
        for rows in range(1, num_hashes // bands + 1):
            fp = quad(candidate_probability, 0.0, threshold, args=(bands, rows))[0]
            fn = quad(_miss_probability, threshold, 1.0, args=(bands, rows))[0]
            error = false_positive_weight * fp + false_negative_weight * fn
            if fallback is None or error < fallback[0]:
                fallback = (error, bands, rows)
            if candidate_probability(threshold, bands, rows) >= min_probability and (best is None or error < best[0]):
                best = (error, bands, rows)
    return (best or fallback)[1:]


def datasketch_permutations(num_hashes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The (a, b) of datasketch's ``MinHash(num_perm=num_hashes, seed=seed, scheme="affine64")``: odd 64-bit
    multipliers and 64-bit offsets from ``numpy.random.RandomState(seed)``."""
    gen = np.random.RandomState(seed)
    a = gen.randint(0, 1 << 63, num_hashes, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    b = gen.randint(0, 1 << 64, num_hashes, dtype=np.uint64)
    return a, b


class MinHasher:
    """MinHash signatures and LSH band keys of documents. A signature is the first ``bands x rows`` values of
    datasketch's affine64 ``MinHash(num_perm=num_hashes, seed=seed)`` over the document's shingle hashes
    (:func:`shingle_hashes`), computed in C for a whole batch of documents at once."""

    def __init__(self, params: MinHashParams):
        self.params = params
        a, b = datasketch_permutations(params.num_hashes, params.seed)
        used = params.bands * params.rows_per_band
        self._a, self._b = np.ascontiguousarray(a[:used]), np.ascontiguousarray(b[:used])

    def signatures(self, texts: list[str]) -> np.ndarray:
        """One row of ``bands x rows`` minimum hash values (uint64) per document."""
        data = _minhash.signatures([_prepared(t) for t in texts], self.params.ngram_size, self._a, self._b)
        return np.frombuffer(data, dtype=np.uint64).reshape(len(texts), len(self._a))

    def signatures_and_sets(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The signatures, and every document's shingle set (as :func:`shingle_set` gives it) from the same
        pass over its text: document ``i``'s set is ``values[offsets[i]:offsets[i + 1]]``."""
        data, hashes, counts = _minhash.signatures(
            [_prepared(t) for t in texts], self.params.ngram_size, self._a, self._b, True
        )
        hashes = np.frombuffer(hashes, dtype=np.uint64)
        bounds = np.r_[0, np.cumsum(np.frombuffer(counts, dtype=np.int64))]
        sets = [_sorted_unique(hashes[bounds[i] : bounds[i + 1]]) for i in range(len(texts))]
        offsets = np.r_[0, np.cumsum([len(x) for x in sets], dtype=np.int64)].astype(np.int64)
        values = np.concatenate(sets) if sets else np.empty(0, dtype=np.uint64)
        return np.frombuffer(data, dtype=np.uint64).reshape(len(texts), len(self._a)), offsets, values

    def band_keys(self, signatures: np.ndarray) -> np.ndarray:
        """One 64-bit key per document and band, folding that band's rows: equal keys in a band make
        candidates (distinct rows collide with probability about 2**-64)."""
        rows = signatures.reshape(len(signatures), self.params.bands, self.params.rows_per_band)
        keys = np.full(rows.shape[:2], np.uint64(self.params.rows_per_band))
        for r in range(self.params.rows_per_band):
            keys = _mix(keys * _PRIME + rows[:, :, r])
        return keys


def candidate_probability(similarity: float, num_bands: int, rows_per_band: int) -> float:
    """Probability that two documents of Jaccard ``similarity`` share at least one band."""
    return 1.0 - (1.0 - similarity**rows_per_band) ** num_bands


def _miss_probability(similarity: float, num_bands: int, rows_per_band: int) -> float:
    return 1.0 - candidate_probability(similarity, num_bands, rows_per_band)
