"""Text units the rule filters share: words (a fast regex tokenizer close to NLTK's Treebank output:
punctuation split from words, ``...`` kept whole), symbol-only tokens, and sentence-final punctuation.

English, and text whose language is not known, take the ``re`` pattern that the datatrove comparisons were
made with. Other languages take the same pattern in the ``regex`` module, whose ``\\w`` includes combining
marks (Thai vowels and tones, Devanagari vowel signs: ``re`` cuts ``हिन्दी`` into six tokens), and languages
written without spaces have their runs of letters cut into words by :mod:`filters.segmentation`.
"""

from __future__ import annotations

import functools
import re

import regex

from filters.segmentation import segmenter

_PATTERN = r"\w+(?:[-'’.]\w+)*|\.\.\.|[^\w\s]"
_WORD = re.compile(_PATTERN)
_WORD_WITH_MARKS = regex.compile(_PATTERN)
_SYMBOLS_ONLY = re.compile(r"[\W_]+")
_LETTER = re.compile(r"[^\W\d_]")
ENGLISH = "en"

_last: tuple[str | None, str | None] = (None, None)
_last_words: list[str] = []


def words(text: str, language: str | None = None) -> list[str]:
    """Word and punctuation tokens of ``text`` in ``language`` (a lid.176 label; None when unknown). The last
    result is reused for the same string object and language, so filters that run one after another on an
    unchanged document tokenize it once."""
    global _last, _last_words
    if text is not _last[0] or language != _last[1]:
        _last_words = _tokenize(text, language)
        _last = (text, language)
    return _last_words


def _tokenize(text: str, language: str | None) -> list[str]:
    if language is None or language == ENGLISH:
        return _WORD.findall(text)
    tokens = _WORD_WITH_MARKS.findall(text)
    cut = segmenter(language)
    if cut is None:
        return tokens
    return [word for token in tokens for word in (cut(token) if len(token) > 1 and not token.isascii() else (token,))]


def is_symbol(token: str) -> bool:
    """True for tokens made only of punctuation and symbols (no letter or digit)."""
    return _SYMBOLS_ONLY.fullmatch(token) is not None


def has_letter(token: str) -> bool:
    """True when ``token`` contains at least one letter."""
    return _LETTER.search(token) is not None


@functools.cache
def sentence_terminals() -> frozenset[str]:
    """Every character with Unicode's Sentence_Terminal property (``.``, ``。``, ``！``, ``।``, ``۔``, ``።``, ...)."""
    return frozenset(regex.findall(r"\p{Sentence_Terminal}", "".join(map(chr, range(0x20000)))))


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
