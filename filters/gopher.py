"""Gopher quality and repetition rules (Rae et al. 2021, appendix A), with datatrove v0.2.0 thresholds.

Metrics are computed in rule order and stop at the first failing rule, so a document dropped early has no
value for the later metrics. Differences from datatrove, both deliberate: words come from
:func:`filters.text.words` (a regex close to NLTK's tokenizer, many times faster); datatrove's
``max_non_alpha_words_ratio`` is named for what it is, ``min_alpha_words_ratio``.

Both filters read the document's ``language`` annotation: its words are segmented when the language is
written without spaces, and ``per_language`` tables (:mod:`filters.per_language`) set thresholds per
language. Stop words are per language too: ``stop_words`` serve English and documents whose language is not
known, ``per_language_stop_words`` other languages; a document in a language with no list is not judged by
the stop-word rule (counted as the event ``stop_words_unknown_for_language``) rather than dropped for lacking
English words.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from filters.base import RATIO_BINS, Document, Metric, linear_bins, log_bins
from filters.per_language import PerLanguageFilter, check_language_codes
from filters.text import ENGLISH, duplicates, has_letter, is_symbol, words
from tokenizer.errors import require

STOP_WORDS = ("the", "be", "to", "of", "and", "that", "have", "with")
_PARAGRAPH_BREAK = re.compile(r"\n{2,}")
_LINE_BREAKS = re.compile(r"\n+")


@dataclass(kw_only=True)
class GopherQuality(PerLanguageFilter):
    """Document-level quality heuristics: length, word length, symbols, bullets, alphabetic words, stop words."""

    kind = "gopher_quality"
    min_doc_words: int = 50
    max_doc_words: int = 100_000
    min_avg_word_length: float = 3.0
    max_avg_word_length: float = 10.0
    max_symbol_word_ratio: float = 0.1
    max_bullet_lines_ratio: float = 0.9
    max_ellipsis_lines_ratio: float = 0.3
    min_alpha_words_ratio: float = 0.8
    min_stop_words: int = 2
    stop_words: list[str] = field(default_factory=lambda: list(STOP_WORDS))
    per_language: dict[str, dict[str, float]] = field(default_factory=dict)
    per_language_stop_words: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self):
        require(0 <= self.min_doc_words <= self.max_doc_words, "min_doc_words", "must be >= 0 and <= max_doc_words")
        require(
            0 <= self.min_avg_word_length <= self.max_avg_word_length,
            "min_avg_word_length",
            "must be >= 0 and <= max_avg_word_length",
        )
        for name in (
            "max_symbol_word_ratio",
            "max_bullet_lines_ratio",
            "max_ellipsis_lines_ratio",
            "min_alpha_words_ratio",
        ):
            require(0 <= getattr(self, name) <= 1, name, "must be between 0 and 1")
        require(self.min_stop_words >= 0, "min_stop_words", "must be >= 0")
        check_language_codes(self.per_language_stop_words, "per_language_stop_words")
        self._stop_words = {code: frozenset(listed) for code, listed in self.per_language_stop_words.items()}
        self._stop_words.setdefault(None, frozenset(self.stop_words))
        self._stop_words.setdefault(ENGLISH, frozenset(self.stop_words))
        self.build_language_variants()

    def metrics(self):
        return (
            Metric("gopher_words", log_bins(1, 1e6, 30), True, (self.min_doc_words, self.max_doc_words)),
            Metric(
                "gopher_mean_word_length",
                linear_bins(0, 20, 40),
                keep=(self.min_avg_word_length, self.max_avg_word_length),
            ),
            Metric("gopher_hash_ratio", RATIO_BINS, keep=(None, self.max_symbol_word_ratio)),
            Metric("gopher_ellipsis_ratio", RATIO_BINS, keep=(None, self.max_symbol_word_ratio)),
            Metric("gopher_bullet_lines_ratio", RATIO_BINS, keep=(None, self.max_bullet_lines_ratio)),
            Metric("gopher_ellipsis_lines_ratio", RATIO_BINS, keep=(None, self.max_ellipsis_lines_ratio)),
            Metric("gopher_alpha_words_ratio", RATIO_BINS, keep=(self.min_alpha_words_ratio, None)),
            Metric("gopher_stop_words", log_bins(1, 1e5, 25), True, (self.min_stop_words, None)),
        )

    def rule_metrics(self):
        return {
            "too_few_words": ("gopher_words", "min_doc_words"),
            "too_many_words": ("gopher_words", "max_doc_words"),
            "mean_word_length_below_min": ("gopher_mean_word_length", "min_avg_word_length"),
            "mean_word_length_above_max": ("gopher_mean_word_length", "max_avg_word_length"),
            "hash_ratio_above_max": ("gopher_hash_ratio", "max_symbol_word_ratio"),
            "ellipsis_ratio_above_max": ("gopher_ellipsis_ratio", "max_symbol_word_ratio"),
            "bullet_lines_above_max": ("gopher_bullet_lines_ratio", "max_bullet_lines_ratio"),
            "ellipsis_lines_above_max": ("gopher_ellipsis_lines_ratio", "max_ellipsis_lines_ratio"),
            "alpha_words_below_min": ("gopher_alpha_words_ratio", "min_alpha_words_ratio"),
            "too_few_stop_words": ("gopher_stop_words", "min_stop_words"),
        }

    def judge(self, doc: Document, events: Counter) -> str | None:
        text, language = doc["text"], doc.get("language") or None
        tokens = words(text, language)
        content_words = [w for w in tokens if w.isalnum() or not is_symbol(w)]
        n = len(content_words)
        doc["gopher_words"] = n
        if n < max(self.min_doc_words, 1):
            return "too_few_words"
        if n > self.max_doc_words:
            return "too_many_words"
        mean_length = sum(map(len, content_words)) / n
        doc["gopher_mean_word_length"] = mean_length
        if mean_length < self.min_avg_word_length:
            return "mean_word_length_below_min"
        if mean_length > self.max_avg_word_length:
            return "mean_word_length_above_max"
        n_tokens = len(tokens)
        doc["gopher_hash_ratio"] = text.count("#") / n_tokens
        if doc["gopher_hash_ratio"] > self.max_symbol_word_ratio:
            return "hash_ratio_above_max"
        doc["gopher_ellipsis_ratio"] = (text.count("...") + text.count("…")) / n_tokens
        if doc["gopher_ellipsis_ratio"] > self.max_symbol_word_ratio:
            return "ellipsis_ratio_above_max"
        lines = text.splitlines() or [""]
        bullets = sum(1 for s in lines if s.lstrip().startswith(("•", "-")))
        doc["gopher_bullet_lines_ratio"] = bullets / len(lines)
        if doc["gopher_bullet_lines_ratio"] > self.max_bullet_lines_ratio:
            return "bullet_lines_above_max"
        ellipsis_lines = sum(1 for s in lines if s.rstrip().endswith(("...", "…")))
        doc["gopher_ellipsis_lines_ratio"] = ellipsis_lines / len(lines)
        if doc["gopher_ellipsis_lines_ratio"] > self.max_ellipsis_lines_ratio:
            return "ellipsis_lines_above_max"
        alpha = sum(1 for w in tokens if w.isalpha() or has_letter(w))
        doc["gopher_alpha_words_ratio"] = alpha / n_tokens
        if doc["gopher_alpha_words_ratio"] < self.min_alpha_words_ratio:
            return "alpha_words_below_min"
        stop = self._stop_words.get(language)
        if stop is None:
            events["stop_words_unknown_for_language"] += 1
            return None
        doc["gopher_stop_words"] = sum(1 for w in tokens if w in stop)
        if doc["gopher_stop_words"] < self.min_stop_words:
            return "too_few_stop_words"
        return None


def _pairs(value, name: str) -> list[tuple[int, float]]:
    pairs = [(int(n), float(frac)) for n, frac in value]
    for n, frac in pairs:
        require(n >= 1, name, f"n-gram size must be >= 1, got {n}")
        require(frac >= 0, name, f"fraction for {n}-grams must be >= 0 (above 1 disables the rule), got {frac}")
    return pairs


@dataclass(kw_only=True)
class GopherRepetition(PerLanguageFilter):
    """Repetition within a document: duplicated paragraphs and lines, frequent and duplicated n-grams. In a
    ``per_language`` table, an n-gram fraction is set by its rule's name (``top_2_gram = 0.25``)."""

    kind = "gopher_repetition"
    dup_para_frac: float = 0.3
    dup_para_char_frac: float = 0.2
    dup_line_frac: float = 0.3
    dup_line_char_frac: float = 0.2
    top_n_grams: list[tuple[int, float]] = field(default_factory=lambda: [(2, 0.2), (3, 0.18), (4, 0.16)])
    dup_n_grams: list[tuple[int, float]] = field(
        default_factory=lambda: [(5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11), (10, 0.10)]
    )
    per_language: dict[str, dict[str, float]] = field(default_factory=dict)

    def __post_init__(self):
        for name in ("dup_para_frac", "dup_para_char_frac", "dup_line_frac", "dup_line_char_frac"):
            require(0 <= getattr(self, name) <= 1, name, "must be between 0 and 1")
        self.top_n_grams = _pairs(self.top_n_grams, "top_n_grams")
        self.dup_n_grams = _pairs(self.dup_n_grams, "dup_n_grams")
        self.build_language_variants()

    def language_parameters(self, table, other_keys=()):
        """Numeric parameters, and n-gram fractions by rule name."""
        rules = {f"top_{n}_gram": ("top_n_grams", n) for n, _ in self.top_n_grams}
        rules |= {f"dup_{n}_gram": ("dup_n_grams", n) for n, _ in self.dup_n_grams}
        values = super().language_parameters(table, other_keys=rules)
        for key in table.keys() & rules.keys():
            require(table[key] >= 0, key, "must be >= 0 (above 1 disables the rule)")
            name, size = rules[key]
            pairs = values.get(name, getattr(self, name))
            values[name] = [(n, float(table[key]) if n == size else frac) for n, frac in pairs]
        return values

    def metrics(self):
        limits = {
            "rep_dup_para_frac": self.dup_para_frac,
            "rep_dup_para_char_frac": self.dup_para_char_frac,
            "rep_dup_line_frac": self.dup_line_frac,
            "rep_dup_line_char_frac": self.dup_line_char_frac,
        }
        limits |= {f"rep_top_{n}_gram_char_frac": frac for n, frac in self.top_n_grams}
        limits |= {f"rep_dup_{n}_gram_char_frac": frac for n, frac in self.dup_n_grams}
        return tuple(Metric(name, RATIO_BINS, keep=(None, limit)) for name, limit in limits.items())

    def rule_metrics(self):
        rules = {name: (f"rep_{name}", name) for name in ("dup_para_frac", "dup_para_char_frac")}
        rules |= {name: (f"rep_{name}", name) for name in ("dup_line_frac", "dup_line_char_frac")}
        rules |= {f"top_{n}_gram": (f"rep_top_{n}_gram_char_frac", "top_n_grams") for n, _ in self.top_n_grams}
        rules |= {f"dup_{n}_gram": (f"rep_dup_{n}_gram_char_frac", "dup_n_grams") for n, _ in self.dup_n_grams}
        return rules

    def judge(self, doc: Document, events: Counter) -> str | None:
        text = doc["text"]
        n_chars = max(len(text), 1)
        paragraphs = _PARAGRAPH_BREAK.split(text.strip())
        dups, dup_chars = duplicates(paragraphs)
        doc["rep_dup_para_frac"] = dups / len(paragraphs)
        if doc["rep_dup_para_frac"] > self.dup_para_frac:
            return "dup_para_frac"
        doc["rep_dup_para_char_frac"] = dup_chars / n_chars
        if doc["rep_dup_para_char_frac"] > self.dup_para_char_frac:
            return "dup_para_char_frac"
        lines = _LINE_BREAKS.split(text)
        dups, dup_chars = duplicates(lines)
        doc["rep_dup_line_frac"] = dups / len(lines)
        if doc["rep_dup_line_frac"] > self.dup_line_frac:
            return "dup_line_frac"
        doc["rep_dup_line_char_frac"] = dup_chars / n_chars
        if doc["rep_dup_line_char_frac"] > self.dup_line_char_frac:
            return "dup_line_char_frac"
        ngrams = _NGrams(words(text, doc.get("language") or None))
        for n, limit in self.top_n_grams:
            value = ngrams.top_chars(n) / n_chars
            doc[f"rep_top_{n}_gram_char_frac"] = value
            if value > limit:
                return f"top_{n}_gram"
        for n, limit in self.dup_n_grams:
            value = ngrams.duplicated_chars(n) / n_chars
            doc[f"rep_dup_{n}_gram_char_frac"] = value
            if value > limit:
                return f"dup_{n}_gram"
        return None


class _NGrams:
    """Word n-grams of one document as 64-bit hashes, counted with numpy.

    An n-gram can only repeat where its first n-1 words repeat, so each size is computed from the repeated
    positions of the size below: after the first sizes, only a small part of a document is looked at.
    Characters are counted as datatrove does: a most frequent n-gram is its words joined by spaces, a
    duplicated n-gram the sum of its word lengths. Hash collisions (probability ~ L^2 / 2^64 for L words)
    are the only departure from comparing strings.
    """

    _MIX = np.uint64(0x9E3779B97F4A7C15)

    def __init__(self, tokens: list[str]):
        self._ids = np.array(list(map(hash, tokens)), dtype=np.int64).view(np.uint64)
        lengths = np.fromiter(map(len, tokens), dtype=np.int64, count=len(tokens))
        self._prefix = np.concatenate(([0], np.cumsum(lengths)))
        self._levels: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def _repeated(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Start positions (ascending) and hashes of the n-grams that occur more than once."""
        if n not in self._levels:
            if n == 1:
                positions, hashes = np.arange(len(self._ids)), self._ids
            else:
                below, below_hashes = self._repeated(n - 1)
                inside = below + n <= len(self._ids)
                positions = below[inside]
                hashes = below_hashes[inside] * self._MIX + self._ids[positions + n - 1]
            _, inverse, counts = np.unique(hashes, return_inverse=True, return_counts=True)
            repeated = counts[inverse] >= 2
            self._levels[n] = (positions[repeated], hashes[repeated])
        return self._levels[n]

    def top_chars(self, n: int) -> int:
        """Characters covered by the most frequent n-gram: its length times its count (first one on ties)."""
        if len(self._ids) < n:
            return 0
        positions, hashes = self._repeated(n)
        if not len(positions):  # every n-gram occurs once: the first one is the most frequent
            return int(self._prefix[n] + n - 1)
        _, first, counts = np.unique(hashes, return_index=True, return_counts=True)
        top = counts.max()
        start = positions[first[counts == top].min()]
        return int((self._prefix[start + n] - self._prefix[start] + n - 1) * top)

    def duplicated_chars(self, n: int) -> int:
        """Characters in n-grams that repeat an earlier n-gram, scanning left to right and jumping over each
        duplicate found (so overlapping repeats are not counted twice). N-grams that occur once never count
        and never cause a jump, so the scan visits the repeated ones only."""
        positions, hashes = self._repeated(n)
        if not len(positions):
            return 0
        _, inverse = np.unique(hashes, return_inverse=True)
        chars = (self._prefix[positions + n] - self._prefix[positions]).tolist()
        seen = [False] * (int(inverse.max()) + 1)
        total = resume = 0
        for start, value, size in zip(positions.tolist(), inverse.tolist(), chars):
            if start < resume:
                continue  # jumped over
            if seen[value]:
                total += size
                resume = start + n
            else:
                seen[value] = True
        return total
