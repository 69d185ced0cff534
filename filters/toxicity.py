"""Toxicity: classifier scores for profanity, NSFW or hate speech, and C4's bad-words rule.

The ``toxicity`` filter scores one category per instance (use several for several categories):

- ``model = ""``: the offline default, the profanity classifier inside the ``alt-profanity-check`` wheel (a
  linear SVM over TF-IDF, trained on English comments; MIT). Nothing is downloaded.
- ``model = PATH or URL``: a fastText classifier and its toxic ``label``, e.g. Dolma's Jigsaw models
  (https://dolma-artifacts.org/fasttext_models/jigsaw_fasttext_bigrams_20230515/
  jigsaw_fasttext_bigrams_nsfw_final.bin with label ``nsfw``, ..._hatespeech_final.bin with label
  ``toxic``).

These models know English only, so documents confidently in other languages are kept unscored and counted
as ``skipped_other_language`` instead of being guessed at. The language is the ``language`` annotation (of an
earlier ``language`` filter, or of the input) unless its ``language_score`` is below ``language_threshold``,
else lid.176's top label on the case-folded text: shouting confuses lid.176 (an all-caps English insult reads
as Japanese at 0.27-0.42, and as English at 0.80-0.89 once lower-cased). A page whose language is not
known with ``language_threshold`` is scored. A dropped document's ``detail`` is its most toxic line.
"""

from __future__ import annotations

import functools
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

from filters.base import Document, Filter, Metric
from filters.classifiers import SCORE_BINS, classifier, fasttext_line, label_probability
from filters.language import is_language_name
from filters.models import DEFAULT_LID_MODEL, check_fasttext_file, load_fasttext, local_copy, local_path
from tokenizer.errors import require

FASTTEXT_LABELS = {"nsfw": "nsfw", "hate_speech": "toxic"}  # Dolma's Jigsaw models
OBTAIN_JIGSAW = (
    "Dolma's Jigsaw classifiers are at https://dolma-artifacts.org/fasttext_models/jigsaw_fasttext_bigrams_20230515/"
    " (jigsaw_fasttext_bigrams_nsfw_final.bin, jigsaw_fasttext_bigrams_hatespeech_final.bin); "
    'or leave model = "" for the offline profanity classifier'
)
OBTAIN_BADWORDS = (
    "C4 used the English list of LDNOOBW: https://raw.githubusercontent.com/LDNOOBW/"
    "List-of-Dirty-Naughty-Obscene-and-Otherwise-Bad-Words/master/en (a URL works as the value too)"
)


@functools.lru_cache(maxsize=1)
def profanity_model():
    """A ``score(texts) -> probabilities`` for alt-profanity-check's model (loaded once per process).

    The model is scikit-learn's ``CalibratedClassifierCV`` over five linear SVMs on TF-IDF features.
    Calling its ``predict_proba`` one document at a time costs about 2 ms of overhead, so the five linear
    models and their sigmoid calibrations are applied here as one sparse-dense product, which must agree
    with ``predict_proba`` on probe texts (checked on load; otherwise ``predict_proba`` is used).
    """
    import numpy as np
    from profanity_check import profanity_check as shipped

    vectorizer, model = shipped.vectorizer, shipped.model
    try:
        parts = model.calibrated_classifiers_
        weights = np.stack([p.estimator.coef_[0] for p in parts], axis=1)  # (features, models)
        intercepts = np.array([p.estimator.intercept_[0] for p in parts])
        a = np.array([p.calibrators[0].a_ for p in parts])
        b = np.array([p.calibrators[0].b_ for p in parts])
    except (AttributeError, IndexError):  # another scikit-learn layout: use its own code path
        return lambda texts: model.predict_proba(vectorizer.transform(texts))[:, 1]

    def score(texts):
        decision = np.asarray(vectorizer.transform(texts) @ weights) + intercepts
        return (1.0 / (1.0 + np.exp(a * decision + b))).mean(axis=1)

    probes = ["you are a fucking idiot", "the weather is nice today", "Debian is a free operating system"]
    if not np.allclose(score(probes), model.predict_proba(vectorizer.transform(probes))[:, 1], atol=1e-9):
        return lambda texts: model.predict_proba(vectorizer.transform(texts))[:, 1]
    return score


@dataclass(kw_only=True)
class Toxicity(Filter):
    """Annotate ``toxicity_<category>`` (the probability of the toxic class) and drop documents scoring
    above ``threshold``. ``granularity = "line"`` scores every line of at least ``min_line_words`` words and
    takes the maximum (short toxic passages in long pages); "document" scores the page at once. Pages
    identified with at least ``language_threshold`` as a language outside ``languages`` are not scored."""

    kind = "toxicity"
    path_params = ("model",)
    category: str = "profanity"
    model: str = ""
    label: str = ""
    threshold: float = 0.5
    granularity: Literal["document", "line"] = "document"
    min_line_words: int = 3
    languages: list[str] = field(default_factory=lambda: ["en"])
    language_threshold: float = 0.5

    def __post_init__(self):
        require(re.fullmatch(r"[a-z0-9_]+", self.category) is not None, "category", "expected a-z, 0-9 and _")
        require(0 <= self.threshold <= 1, "threshold", "must be between 0 and 1")
        require(0 <= self.language_threshold <= 1, "language_threshold", "must be between 0 and 1")
        require(self.min_line_words >= 1, "min_line_words", "must be >= 1")
        for i, language in enumerate(self.languages):
            require(
                not is_language_name(language), f"languages[{i}]", f"a language code such as 'en', not {language!r}"
            )
        if self.model:
            self.label = self.label or FASTTEXT_LABELS.get(self.category, "")
            require(bool(self.label), "label", "name the toxic label of the fastText model (e.g. 'toxic')")
            check_fasttext_file(self.model, "model", OBTAIN_JIGSAW, self.label)
        else:
            require(not self.label, "label", "only for a fastText model; the offline default has none")
        self._annotation = f"toxicity_{self.category}"
        self._languages = frozenset(self.languages)

    def metrics(self):
        return (Metric(self._annotation, SCORE_BINS, keep=(None, self.threshold)),)

    def scores(self, texts: list[str]) -> list[float]:
        """The toxic-class probability of each text."""
        if not self.model:
            return [float(p) for p in profanity_model()(texts)]
        model = classifier(self.model, self.label)
        return [label_probability(model, fasttext_line(t), self.label) for t in texts]

    def _language(self, doc: Document) -> tuple[str, float]:
        """The document's language and its probability: the annotation unless its score is below
        ``language_threshold`` (an annotation without a score is taken as certain), else lid.176's top label on
        the case-folded text."""
        score = doc.get("language_score")
        if doc.get("language") and (score is None or score >= self.language_threshold):
            return doc["language"], 1.0 if score is None else score
        labels, probs = load_fasttext(str(DEFAULT_LID_MODEL)).predict(fasttext_line(doc["text"]).casefold())
        return labels[0].removeprefix("__label__"), float(probs[0])

    def _other_language(self, doc: Document) -> bool:
        if not self._languages:
            return False
        language, probability = self._language(doc)
        return language not in self._languages and probability >= self.language_threshold

    def apply(self, doc: Document, events: Counter) -> str | None:
        if self._other_language(doc):
            events["skipped_other_language"] += 1
            return None
        lines = [line for line in doc["text"].splitlines() if len(line.split()) >= self.min_line_words]
        if self.granularity == "line":
            line_scores = self.scores(lines) if lines else [0.0]
            score = max(line_scores)
        else:
            score = self.scores([doc["text"]])[0]
        doc[self._annotation] = score
        if score <= self.threshold:
            return None
        if self.granularity == "document":
            line_scores = self.scores(lines) if lines else [score]
        worst = max(range(len(line_scores)), key=line_scores.__getitem__)
        evidence = lines[worst] if lines else doc["text"]
        doc["detail"] = f"{self._annotation} {score:.3f}; most toxic line ({line_scores[worst]:.3f}): {evidence[:300]}"
        return "above_threshold"


@dataclass(kw_only=True)
class C4BadWords(Filter):
    """C4's bad-words rule: drop a document in which any word or phrase of the list ``words`` (one per line;
    a path or URL) occurs as a whole word, case-insensitively. The matched word is the ``detail``."""

    kind = "c4_badwords"
    path_params = ("words",)
    words: str

    def __post_init__(self):
        local = local_path(self.words)
        require(local is None or os.path.isfile(local), "words", f"no such file: {self.words}; {OBTAIN_BADWORDS}")

    def apply(self, doc: Document, events: Counter) -> str | None:
        words, phrases = _badwords(self.words)
        text = doc["text"].lower()
        found = next((w for w in _WORD.findall(text) if w in words), None)
        if found is None and phrases is not None:
            match = phrases.search(text)
            found = match.group(1) if match else None
        if found is None:
            return None
        doc["detail"] = f"bad word: {found}"
        return "bad_word"


_WORD = re.compile(r"\w+")


@functools.lru_cache(maxsize=4)
def _badwords(path: str) -> tuple[frozenset[str], re.Pattern | None]:
    r"""The list's single words (a set: a word matches as a maximal run of word characters, which is what
    C4's ``(?:\W|^)word(?:\W|$)`` means) and a regex for the entries with spaces or punctuation."""
    with open(local_copy(path), encoding="utf-8") as f:
        entries = {w.strip().lower() for w in f if w.strip()}
    if not entries:
        raise ValueError(f"{path}: the bad-words list is empty")
    words = frozenset(w for w in entries if _WORD.fullmatch(w))
    others = sorted(entries - words, key=len, reverse=True)
    phrases = re.compile(r"(?:\W|^)(" + "|".join(map(re.escape, others)) + r")(?:\W|$)") if others else None
    return words, phrases
