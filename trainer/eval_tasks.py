"""Likelihood tasks built offline from reference text, for models too small to answer questions: each item is
a context, a few choices and the true one, scored by the log-likelihood a model gives each choice
(:mod:`trainer.evaluation`), as DataDecide recommends for small models. Distractors come from the same
document, so a choice cannot be told from the others by its topic or vocabulary alone.

* ``cloze``: the last word of a sentence, after the text before it (up to ``CONTEXT_WORDS`` words), against
  other sentence-final words of the same document;
* ``next_sentence``: the sentence that follows a sentence, against other sentences of the same document.

Items depend only on the texts, the counts and the seed.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

CONTEXT_WORDS = 40  # words of context before a cloze's missing word
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(])")
_LAST_WORD = re.compile(r"^(.*\S)\s+([A-Za-z]{3,})([.!?])$", re.S)


@dataclass(frozen=True)
class Item:
    """One multiple-choice item: the model reads ``context`` and scores each choice as its continuation."""

    task: str
    document: str  # the id of the reference document it was built from
    context: str
    choices: tuple[str, ...]
    answer: int  # the index of the true choice

    def to_dict(self) -> dict:
        return {**self.__dict__, "choices": list(self.choices)}


def paragraphs(text: str) -> list[list[str]]:
    """The sentences of each paragraph of ``text``, in order: cut after ., ! or ? before a capital."""
    out = []
    for paragraph in re.split(r"\n\s*\n", text):
        found = _SENTENCE_END.split(" ".join(paragraph.split()))
        if found and found[0]:
            out.append(found)
    return out


def _prose(sentence: str) -> bool:
    """A sentence of 5 to 60 words with final punctuation (code, headings and tables rarely are)."""
    return 5 <= len(sentence.split()) <= 60 and sentence[-1] in ".!?"


def cloze_items(doc_id: str, text: str, count: int, choices: int, rng: random.Random) -> list[Item]:
    """Up to ``count`` last-word items of one document; distractors are other sentence-final words of it."""
    found = []  # (the text before the missing word, the word)
    for paragraph in paragraphs(text):
        for k, sentence in enumerate(paragraph):
            m = _LAST_WORD.match(sentence) if _prose(sentence) else None
            if m:
                before = " ".join([*paragraph[:k], m.group(1)]).split()[-CONTEXT_WORDS:]
                found.append((" ".join(before), m.group(2)))
    words = sorted({w for _, w in found})
    items = []
    for context, word in rng.sample(found, len(found)):
        others = [w for w in words if w.lower() != word.lower()]
        if len(others) < choices - 1:
            break
        options = [word, *rng.sample(others, choices - 1)]
        rng.shuffle(options)
        items.append(Item("cloze", doc_id, context, tuple(" " + w for w in options), options.index(word)))
        if len(items) == count:
            break
    return items


def next_sentence_items(doc_id: str, text: str, count: int, choices: int, rng: random.Random) -> list[Item]:
    """Up to ``count`` items of one document: a sentence, then the sentence after it in its paragraph among
    other sentences of the document."""
    pairs = [(a, b) for p in paragraphs(text) for a, b in zip(p, p[1:]) if _prose(a) and _prose(b)]
    pool = sorted({s for p in paragraphs(text) for s in p if _prose(s)})
    items = []
    for first, true in rng.sample(pairs, len(pairs)):
        others = [s for s in pool if s not in (first, true)]
        if len(others) < choices - 1:
            break
        options = [true, *rng.sample(others, choices - 1)]
        rng.shuffle(options)
        items.append(Item("next_sentence", doc_id, first, tuple(" " + s for s in options), options.index(true)))
        if len(items) == count:
            break
    return items


def build_items(documents: list[tuple[str, str]], per_document: int, choices: int = 4, seed: int = 0) -> list[Item]:
    """Every task's items from ``documents`` ((id, text) pairs): up to ``per_document`` of each task per
    document, each with ``choices`` choices."""
    items = []
    for task, make in (("cloze", cloze_items), ("next_sentence", next_sentence_items)):
        rng = random.Random(f"{seed}-{task}")
        for doc_id, text in documents:
            items += make(doc_id, text, per_document, choices, rng)
    return items
