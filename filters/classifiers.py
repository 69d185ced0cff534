"""Model-based quality scoring: a fastText classifier's probability of the "high quality" label.

Any supervised fastText model works: one trained with ``refinery quality train`` (label ``hq`` against
``lq``), or DCLM's published classifier (``fasttext-oh-eli5``, label ``hq``) given by path or URL. Text is
put on one line with whitespace collapsed, the same way for training and scoring (:func:`fasttext_line`).
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from dataclasses import dataclass

from filters.base import Document, Filter, Metric, linear_bins
from filters.models import check_fasttext_file, load_fasttext
from tokenizer.errors import require

SCORE_BINS = linear_bins(0.0, 1.0, 100)
_WHITESPACE = re.compile(r"\s+")
OBTAIN_QUALITY = (
    "train one with `refinery quality train --positive ... --negative ... --output model.bin`, or download "
    "DCLM's classifier (Hugging Face mlfoundations/fasttext-oh-eli5, "
    "openhermes_reddit_eli5_vs_rw_v2_bigram_200k_train.bin, label 'hq')"
)


def fasttext_line(text: str) -> str:
    """``text`` as fastText reads one example: a single line, runs of whitespace made one space."""
    return _WHITESPACE.sub(" ", text).strip()


@functools.lru_cache(maxsize=16)
def classifier(path: str, label: str):
    """The fastText model at ``path``, checked to have ``label`` (a clear error naming its labels if not)."""
    model = load_fasttext(path)
    if "__label__" + label not in model.get_labels():
        labels = ", ".join(name.removeprefix("__label__") for name in model.get_labels())
        raise ValueError(f"{path} has no label {label!r}; its labels: {labels}")
    return model


def label_probability(model, text: str, label: str) -> float:
    """fastText's probability of ``label`` (without ``__label__``) for ``text`` (one line)."""
    labels, probs = model.predict(text, k=-1)
    for name, p in zip(labels, probs):
        if name == "__label__" + label:
            return min(float(p), 1.0)
    return 0.0


@dataclass(kw_only=True)
class QualityClassifier(Filter):
    """Annotate ``quality_score`` (the probability of ``label``) and keep documents scoring at least
    ``threshold``."""

    kind = "quality_classifier"
    path_params = ("model",)
    model: str
    label: str = "hq"
    threshold: float = 0.5

    def __post_init__(self):
        require(0 <= self.threshold <= 1, "threshold", "must be between 0 and 1")
        check_fasttext_file(self.model, "model", OBTAIN_QUALITY, self.label)

    def metrics(self):
        return (Metric("quality_score", SCORE_BINS, keep=(self.threshold, None)),)

    def apply(self, doc: Document, events: Counter) -> str | None:
        model = classifier(self.model, self.label)
        doc["quality_score"] = score = label_probability(model, fasttext_line(doc["text"]), self.label)
        return None if score >= self.threshold else "score_below_threshold"
