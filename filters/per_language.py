"""Per-language thresholds of the rule filters, FineWeb-2 style.

A rule filter's ``per_language`` table maps a language (a lid.176 label, the ``language`` annotation that the
language filter writes) to values of the filter's numeric parameters::

    [stages.filters.per_language.zh]
    min_avg_word_length = 1
    max_avg_word_length = 5

A document in that language is judged by a copy of the filter with those values; a document without the
annotation, or in a language without a table, by the filter's own parameters. The codes are checked against
lid.176's labels when the filter is built, with the label the user probably meant.
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from collections import Counter
from collections.abc import Iterable

from filters.base import Document, Filter
from filters.language import check_language
from filters.models import DEFAULT_LID_MODEL, fasttext_labels
from tokenizer.errors import ConfigError, require


@functools.cache
def language_labels() -> tuple[str, ...]:
    """The labels of the shipped lid.176 model (read from its dictionary once per process)."""
    return tuple(fasttext_labels(str(DEFAULT_LID_MODEL)))


def check_language_codes(codes, key: str) -> None:
    """A configuration error for ``key.<code>`` unless every code is a lid.176 label."""
    labels = list(language_labels()) if codes else []
    for code in codes:
        check_language(code, labels, f"{key}.{code}")


class PerLanguageFilter(Filter):
    """A rule filter (a dataclass with a ``per_language`` field) with one copy of itself per language of that
    table, which judges the documents in that language. Subclasses implement ``judge`` (what ``apply`` is for
    other filters) and call :meth:`build_language_variants` at the end of ``__post_init__``."""

    per_language: dict[str, dict[str, float]]
    _variants: dict[str, PerLanguageFilter]

    def build_language_variants(self) -> None:
        """Check ``per_language`` and build the copy of this filter for each of its languages."""
        self._variants = {}
        check_language_codes(self.per_language, "per_language")
        for code, table in self.per_language.items():
            try:
                self._variants[code] = dataclasses.replace(self, per_language={}, **self.language_parameters(table))
            except ConfigError as exc:
                raise exc.located("", f"per_language.{code}") from None

    def language_parameters(self, table: dict[str, float], other_keys: Iterable[str] = ()) -> dict:
        """The parameter values one language's ``table`` sets, checked: numeric parameters (whole numbers for
        integer ones). A filter that takes ``other_keys`` too (n-gram fractions) extends this and sets them."""
        numeric = self.numeric_parameters()
        other = set(other_keys)
        values = {}
        for name, value in table.items():
            expected = ", ".join([*numeric, *sorted(other)])
            known = name in numeric or name in other
            require(known, name, f"not a numeric parameter of {self.kind}; expected one of: {expected}")
            require(type(value) in (int, float), name, f"expected a number, got {value!r}")
            if name in other:
                continue
            if numeric[name] is int:
                require(float(value).is_integer(), name, f"expected a whole number, got {value}")
                value = int(value)
            values[name] = value
        return values

    def numeric_parameters(self) -> dict[str, type]:
        """The filter's int and float parameters, by name."""
        hints = typing.get_type_hints(type(self))
        names = [f.name for f in dataclasses.fields(self) if f.init and not f.name.startswith("_")]
        return {name: hints[name] for name in sorted(names) if hints[name] in (int, float)}

    def for_document(self, doc: Document) -> PerLanguageFilter:
        """The copy of this filter that judges ``doc``: its language's, or this one."""
        return self._variants.get(doc.get("language"), self) if self._variants else self

    def apply(self, doc: Document, events: Counter) -> str | None:
        return self.for_document(doc).judge(doc, events)

    def judge(self, doc: Document, events: Counter) -> str | None:  # pragma: no cover - interface
        raise NotImplementedError

    def evidence(self, rule: str, doc: Document) -> str | None:
        """:meth:`Filter.evidence` with the bounds of the document's language; a bound that language's table
        set is named by its key there (``gopher_words = 12 < 20 (per_language.zh.min_doc_words)``)."""
        judge = self.for_document(doc)
        shown = super(PerLanguageFilter, judge).evidence(rule, doc)
        if judge is self or shown is None or not shown.endswith(")"):
            return shown
        language = doc["language"]
        head, _, param = shown[:-1].rpartition(" (")
        key = next((k for k in (param, rule) if k in self.per_language[language]), None)
        return f"{head} (per_language.{language}.{key})" if key else shown
