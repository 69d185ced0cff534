"""FineWeb's own quality rules (Penedo et al. 2024), with datatrove v0.2.0 thresholds and comparisons.

For a document whose ``language`` annotation is not English, a line also ends in punctuation when it ends in
any Unicode sentence terminal (``。``, ``।``, ``؟``: FineWeb-2's datatrove counts those too), its words are
segmented when its language is written without spaces, and ``per_language`` tables set thresholds.
"""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass, field

from filters.base import RATIO_BINS, Document, Metric, linear_bins
from filters.per_language import PerLanguageFilter
from filters.text import ENGLISH, duplicates, sentence_terminals, words
from tokenizer.errors import require

STOP_CHARS = (".", "'", '"', "!", "?")


@dataclass(kw_only=True)
class FineWebQuality(PerLanguageFilter):
    """Drop documents whose lines rarely end in punctuation, are mostly short, repeat, or form a list."""

    kind = "fineweb"
    line_punct_thr: float = 0.12
    line_punct_exclude_zero: bool = False
    short_line_thr: float = 0.67
    short_line_length: int = 30
    char_duplicates_ratio: float = 0.01
    new_line_ratio: float = 0.3
    per_language: dict[str, dict[str, float]] = field(default_factory=dict)

    def __post_init__(self):
        for name in ("line_punct_thr", "short_line_thr", "char_duplicates_ratio"):
            require(0 <= getattr(self, name) <= 1, name, "must be between 0 and 1")
        require(self.short_line_length >= 0, "short_line_length", "must be >= 0")
        require(self.new_line_ratio >= 0, "new_line_ratio", "must be >= 0")
        self.build_language_variants()

    def metrics(self):
        return (
            Metric("fineweb_line_punct_ratio", RATIO_BINS, keep=(self.line_punct_thr, None)),
            Metric("fineweb_short_line_ratio", RATIO_BINS, keep=(None, self.short_line_thr)),
            Metric("fineweb_char_dup_ratio", RATIO_BINS, keep=(None, self.char_duplicates_ratio)),
            Metric("fineweb_newline_word_ratio", linear_bins(0, 2, 40), keep=(None, self.new_line_ratio)),
        )

    def rule_metrics(self):
        return {
            "line_punct_ratio": ("fineweb_line_punct_ratio", "line_punct_thr"),
            "short_line_ratio": ("fineweb_short_line_ratio", "short_line_thr"),
            "char_dup_ratio": ("fineweb_char_dup_ratio", "char_duplicates_ratio"),
            "list_ratio": ("fineweb_newline_word_ratio", "new_line_ratio"),
        }

    def judge(self, doc: Document, events: Counter) -> str | None:
        text, language = doc["text"], doc.get("language") or None
        lines = text.split("\n")
        if language in (None, ENGLISH):
            ratio = sum(1 for line in lines if line.endswith(STOP_CHARS)) / len(lines)
        else:
            stop_chars = _stop_chars_any_language()
            ratio = sum(1 for line in lines if line[-1:] in stop_chars) / len(lines)
        doc["fineweb_line_punct_ratio"] = ratio
        if ratio <= self.line_punct_thr and not (ratio == 0 and self.line_punct_exclude_zero):
            return "line_punct_ratio"
        ratio = sum(1 for line in lines if len(line) <= self.short_line_length) / len(lines)
        doc["fineweb_short_line_ratio"] = ratio
        if ratio >= self.short_line_thr:
            return "short_line_ratio"
        non_empty = [line for line in lines if line.strip()]
        ratio = duplicates(non_empty)[1] / max(len(text) - text.count("\n"), 1)
        doc["fineweb_char_dup_ratio"] = ratio
        if ratio >= self.char_duplicates_ratio:
            return "char_dup_ratio"
        ratio = text.count("\n") / max(len(words(text, language)), 1)
        doc["fineweb_newline_word_ratio"] = ratio
        if ratio > self.new_line_ratio:
            return "list_ratio"
        return None


@functools.cache
def _stop_chars_any_language() -> frozenset[str]:
    return frozenset(STOP_CHARS) | sentence_terminals()
