"""C4 rules (Raffel et al. 2020; TensorFlow Datasets ``c4_utils``), with datatrove v0.2.0 defaults.

Line rules remove lines (counted as events); document rules drop the document (a page dropped for a line
gives that line as its ``detail``). Sentences are counted with a regex (terminal punctuation followed by
space or the end of the line) instead of NLTK's punkt.

For a document whose ``language`` annotation is not English, any Unicode sentence terminal also ends a line
and a sentence (``。`` needs no space after it), the words of a line are segmented when its language is
written without spaces, and ``per_language`` tables set thresholds.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from dataclasses import dataclass, field

import regex

from filters.base import RATIO_BINS, Document, Metric, log_bins
from filters.per_language import PerLanguageFilter
from filters.segmentation import segmenter
from filters.text import ENGLISH, is_symbol, sentence_terminals, words
from tokenizer.errors import require

_CITATION = re.compile(r"\[\d*]|\[edit]|\[citation needed]")
_SENTENCE_END = re.compile(r"[.!?]+[\"')\]]*(?=\s|$)")
_SENTENCE_END_ANY_LANGUAGE = regex.compile(r"[.!?]+[\"')\]]*(?=\s|$)|[^\P{Sentence_Terminal}.!?]+")
END_PUNCTUATION = (".", "?", "!", '"', "'")
POLICY_SUBSTRINGS = ("terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies")


@dataclass(kw_only=True)
class C4Quality(PerLanguageFilter):
    """Keep lines ending in terminal punctuation with enough words; drop pages with lorem ipsum, curly
    brackets, or too few sentences left."""

    kind = "c4"
    remove_citations: bool = True
    filter_no_terminal_punct: bool = True
    min_num_sentences: int = 5
    min_words_per_line: int = 3
    max_word_length: int = 1000
    filter_lorem_ipsum: bool = True
    filter_javascript: bool = True
    filter_curly_bracket: bool = True
    filter_policy: bool = True
    per_language: dict[str, dict[str, float]] = field(default_factory=dict)

    def __post_init__(self):
        for name in ("min_num_sentences", "min_words_per_line"):
            require(getattr(self, name) >= 0, name, "must be >= 0")
        require(self.max_word_length >= 1, "max_word_length", "must be >= 1")
        self.build_language_variants()

    def metrics(self):
        return (
            Metric("c4_sentences", log_bins(1, 1e5, 25), integer=True, keep=(self.min_num_sentences, None)),
            Metric("c4_removed_lines_frac", RATIO_BINS),
        )

    def rule_metrics(self):
        return {"too_few_sentences": ("c4_sentences", "min_num_sentences")}

    def judge(self, doc: Document, events: Counter) -> str | None:
        language = doc.get("language") or None
        english = language in (None, ENGLISH)
        end_punctuation = END_PUNCTUATION if english else _end_punctuation_any_language()
        sentence_end = _SENTENCE_END if english else _SENTENCE_END_ANY_LANGUAGE
        segmented = segmenter(language) is not None
        lines = doc["text"].splitlines()
        kept: list[str] = []
        sentences = 0
        for line in lines:
            line = line.strip()
            tokens = [w for w in words(line, language) if not is_symbol(w)] if segmented else line.split()
            if any(len(w) > self.max_word_length for w in tokens):
                events["line_too_long_word"] += 1
                continue
            if self.remove_citations:
                line = _CITATION.sub("", line)
            if self.filter_no_terminal_punct and (not line.endswith(end_punctuation) or line.endswith("...")):
                events["line_no_terminal_punct"] += 1
                continue
            if len(tokens) < self.min_words_per_line:
                events["line_too_few_words"] += 1
                continue
            lower = line.lower()
            if self.filter_lorem_ipsum and "lorem ipsum" in lower:
                doc["detail"] = f"lorem ipsum in line: {line[:300]}"
                return "lorem_ipsum"
            if self.filter_javascript and "javascript" in lower:
                events["line_javascript"] += 1
                continue
            if self.filter_curly_bracket and "{" in line:
                doc["detail"] = f"curly bracket in line: {line[:300]}"
                return "curly_bracket"
            if self.filter_policy and any(p in lower for p in POLICY_SUBSTRINGS):
                events["line_policy"] += 1
                continue
            sentences += max(1, len(sentence_end.findall(line)))
            kept.append(line)
        doc["c4_sentences"] = sentences
        doc["c4_removed_lines_frac"] = 1 - len(kept) / len(lines) if lines else 0.0
        if sentences < self.min_num_sentences:
            return "too_few_sentences"
        doc["text"] = "\n".join(kept).strip()
        return None


@functools.cache
def _end_punctuation_any_language() -> tuple[str, ...]:
    return END_PUNCTUATION + tuple(sorted(sentence_terminals()))
