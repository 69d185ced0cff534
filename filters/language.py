"""Language identification with fastText ``lid.176`` (the quantized ``.ftz`` ships with refinery).

The languages a filter keeps are checked against the model's labels when it is built: a name ("english"), a
regional tag ("en_US") or another code ("eng") would drop every document, so it is refused with the label
meant ("did you mean 'en'?"), found in ``filters/data/language_names.txt``.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from filters.base import RATIO_BINS, Document, Filter, Metric
from filters.models import DEFAULT_LID_MODEL, check_fasttext_file, load_fasttext
from tokenizer.errors import invalid, require

LANGUAGE_NAMES = Path(__file__).parent / "data" / "language_names.txt"
OBTAIN_LID = (
    'leave model = "" for the shipped lid.176.ftz, or download fastText\'s full model: '
    "https://dl.fbaipublicfiles.com/fasttext/supervised-models/lid.176.bin"
)


@dataclass(kw_only=True)
class LanguageFilter(Filter):
    """Annotate ``language`` and ``language_score`` (top-1); keep documents in which one of ``languages``
    scores above ``threshold`` (datatrove semantics: strictly above). An empty ``languages`` keeps every
    language that scores above the threshold."""

    kind = "language"
    labels = ("language",)
    path_params = ("model",)
    languages: list[str] = field(default_factory=lambda: ["en"])
    threshold: float = 0.65
    model: str = ""

    def __post_init__(self):
        require(0 <= self.threshold <= 1, "threshold", "must be between 0 and 1")
        self._model_path = self.model or str(DEFAULT_LID_MODEL)
        model_labels = check_fasttext_file(self._model_path, "model", OBTAIN_LID)
        if model_labels is not None:
            for i, language in enumerate(self.languages):
                check_language(language, model_labels, f"languages[{i}]")
        self._allowed = frozenset(self.languages)
        # above 0.5 only the top label can pass; below it, any label may
        self._k = 1 if self.threshold >= 0.5 else -1

    def metrics(self):
        return (Metric("language_score", RATIO_BINS, keep=(self.threshold, None)),)

    def predict(self, text: str) -> list[tuple[str, float]]:
        """Top labels (without ``__label__``) and probabilities for ``text``."""
        labels, probs = load_fasttext(self._model_path).predict(text.replace("\n", " "), k=self._k)
        return [(label.removeprefix("__label__"), min(float(p), 1.0)) for label, p in zip(labels, probs)]

    def apply(self, doc: Document, events: Counter) -> str | None:
        top = self.predict(doc["text"])
        doc["language"], doc["language_score"] = top[0]
        if not self._allowed:
            return None if top[0][1] > self.threshold else "score_below_threshold"
        if any(lang in self._allowed and p > self.threshold for lang, p in top):
            return None
        return "score_below_threshold" if top[0][0] in self._allowed else "not_allowed"


def check_language(language: str, model_labels: list[str], key: str) -> None:
    """A configuration error for ``key`` unless ``language`` is one of the model's labels, with the label the
    user probably meant."""
    if language in model_labels:
        return
    meant = suggest_labels(language, model_labels)
    hint = f"; did you mean {' or '.join(map(repr, meant))}?" if meant else ""
    examples = ", ".join(repr(label) for label in model_labels[:5])
    raise invalid(key, f"{language!r} is not a label of the language model (codes such as {examples}){hint}")


def suggest_labels(value: str, model_labels: list[str]) -> list[str]:
    """The labels of ``model_labels`` that ``value`` probably means: 'en' for 'EN', 'en_US', 'eng' or 'english'
    (also for a near miss such as 'englsh'); several for an ambiguous name ('frisian'), none if unknown."""
    labels = set(model_labels)
    wanted = value.strip().casefold()
    base = re.split(r"[-_]", wanted)[0]
    for candidate in (wanted, base):
        if candidate in labels:
            return [candidate]
    index = _language_index()
    for candidate in (wanted, base, *difflib.get_close_matches(wanted, index, n=1, cutoff=0.85)):
        found = sorted(index.get(candidate, set()) & labels)
        if found:
            return found
    return []


def is_language_name(value: str) -> bool:
    """Whether ``value`` is a language's name ('English', 'german') and no language code ('lao' is both)."""
    wanted = value.strip().casefold()
    return wanted in _language_index() and wanted not in _language_codes()


@functools.lru_cache(maxsize=1)
def _language_codes() -> frozenset[str]:
    """The labels of lid.176 and their ISO 639-2/3 codes."""
    rows = [line.split("\t") for line in _table_lines()]
    return frozenset(code for label, _, codes in rows for code in (label, *codes.split()))


@functools.lru_cache(maxsize=1)
def _language_index() -> dict[str, set[str]]:
    """Lower-case names and codes -> lid.176 labels, from ``language_names.txt``. A language's full names and
    codes come first; the last word of a qualified name ('greek' in 'modern greek') only when no full name or
    code is that word."""
    exact: dict[str, set[str]] = {}
    partial: dict[str, set[str]] = {}
    for label, names, codes in (line.split("\t") for line in _table_lines()):
        for name in names.split(";"):
            name = re.sub(r"\(.*?\)", "", name).strip().casefold()
            exact.setdefault(name, set()).add(label)
            head, _, tail = name.partition(", ")
            for word in {head, name.split()[-1]} if tail or " " in name else ():
                partial.setdefault(word, set()).add(label)
        for code in codes.split():
            exact.setdefault(code, set()).add(label)
    return {**partial, **exact}


def _table_lines() -> list[str]:
    lines = LANGUAGE_NAMES.read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line and not line.startswith("#")]
