"""C4 rules (Raffel et al. 2020; TensorFlow Datasets ``c4_utils``), with datatrove v0.2.0 defaults.

Line rules remove lines (counted as events); document rules drop the document. Sentences are counted with
a regex (terminal punctuation followed by space or the end of the line) instead of NLTK's punkt.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from filters.base import RATIO_BINS, Document, Filter, Metric, log_bins
from tokenizer.errors import require

_CITATION = re.compile(r"\[\d*]|\[edit]|\[citation needed]")
_SENTENCE_END = re.compile(r"[.!?]+[\"')\]]*(?=\s|$)")
END_PUNCTUATION = (".", "?", "!", '"', "'")
POLICY_SUBSTRINGS = ("terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies")


@dataclass(kw_only=True)
class C4Quality(Filter):
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

    def __post_init__(self):
        for name in ("min_num_sentences", "min_words_per_line"):
            require(getattr(self, name) >= 0, name, "must be >= 0")
        require(self.max_word_length >= 1, "max_word_length", "must be >= 1")

    def metrics(self):
        return (
            Metric("c4_sentences", log_bins(1, 1e5, 25), integer=True, keep=(self.min_num_sentences, None)),
            Metric("c4_removed_lines_frac", RATIO_BINS),
        )

    def apply(self, doc: Document, events: Counter) -> str | None:
        lines = doc["text"].splitlines()
        kept: list[str] = []
        sentences = 0
        for line in lines:
            line = line.strip()
            tokens = line.split()
            if any(len(w) > self.max_word_length for w in tokens):
                events["line_too_long_word"] += 1
                continue
            if self.remove_citations:
                line = _CITATION.sub("", line)
            if self.filter_no_terminal_punct and (not line.endswith(END_PUNCTUATION) or line.endswith("...")):
                events["line_no_terminal_punct"] += 1
                continue
            if len(tokens) < self.min_words_per_line:
                events["line_too_few_words"] += 1
                continue
            lower = line.lower()
            if self.filter_lorem_ipsum and "lorem ipsum" in lower:
                return "lorem_ipsum"
            if self.filter_javascript and "javascript" in lower:
                events["line_javascript"] += 1
                continue
            if self.filter_curly_bracket and "{" in line:
                return "curly_bracket"
            if self.filter_policy and any(p in lower for p in POLICY_SUBSTRINGS):
                events["line_policy"] += 1
                continue
            sentences += max(1, len(_SENTENCE_END.findall(line)))
            kept.append(line)
        doc["c4_sentences"] = sentences
        doc["c4_removed_lines_frac"] = 1 - len(kept) / len(lines) if lines else 0.0
        if sentences < self.min_num_sentences:
            return "too_few_sentences"
        doc["text"] = "\n".join(kept).strip()
        return None
