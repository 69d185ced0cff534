"""Language identification with fastText ``lid.176`` (the quantized ``.ftz`` ships with refinery)."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field

from filters.base import RATIO_BINS, Document, Filter, Metric
from filters.models import DEFAULT_LID_MODEL, load_fasttext
from tokenizer.errors import require


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
        self._allowed = frozenset(self.languages)
        self._model_path = self.model or str(DEFAULT_LID_MODEL)
        local = "://" not in self._model_path or self._model_path.startswith("file://")
        require(
            not local or os.path.isfile(self._model_path.removeprefix("file://")),
            "model",
            f"no such file: {self._model_path}",
        )
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
