"""Text units the rule filters share: words (a fast regex tokenizer close to NLTK's Treebank output:
punctuation split from words, ``...`` kept whole) and symbol-only tokens."""

from __future__ import annotations

import re

_WORD = re.compile(r"\w+(?:[-'’.]\w+)*|\.\.\.|[^\w\s]")
_SYMBOLS_ONLY = re.compile(r"[\W_]+")
_LETTER = re.compile(r"[^\W\d_]")

_last_text: str | None = None
_last_words: list[str] = []


def words(text: str) -> list[str]:
    """Word and punctuation tokens of ``text``; the last result is reused for the same string object, so
    filters that run one after another on an unchanged document tokenize it once."""
    global _last_text, _last_words
    if text is not _last_text:
        _last_words = _WORD.findall(text)
        _last_text = text
    return _last_words


def is_symbol(token: str) -> bool:
    """True for tokens made only of punctuation and symbols (no letter or digit)."""
    return _SYMBOLS_ONLY.fullmatch(token) is not None


def has_letter(token: str) -> bool:
    """True when ``token`` contains at least one letter."""
    return _LETTER.search(token) is not None


def duplicates(items: list[str]) -> tuple[int, int]:
    """How many items equal an earlier item, and their total length in characters."""
    seen: set[str] = set()
    count = chars = 0
    for item in items:
        if item in seen:
            count += 1
            chars += len(item)
        else:
            seen.add(item)
    return count, chars
