"""``refinery quality train``: a fastText quality classifier from two sources of text, positive (``hq``)
and negative (``lq``), with a held-out split and its precision, recall and ROC AUC.

A source is a file, a directory (its files, recursively) or a glob: WARC / WET files (documents extracted
as the ``extract`` stage does), Parquet files with a ``text`` column (any stage's ``kept`` output), JSONL
with a ``text`` field, or plain text files (one document per file). The held-out split is by a hash of
the text, so it does not depend on the order of the inputs, and a document never lands on both sides.
Counts, precision and recall are of examples: documents, or their passages with ``chunk_words``.
"""

from __future__ import annotations

import logging
import os
import random
import tempfile
from dataclasses import dataclass

import numpy as np
import xxhash

from filters.classifiers import fasttext_line, label_probability
from pipeline.inputs import InputError, expand_inputs
from pipeline.reader import read_texts

log = logging.getLogger("refinery")
SOURCE_FORMATS = ("warc", "parquet", "jsonl", "text")


def source_files(source: str) -> list[str]:
    """The files of a source: the file itself, a glob's matches, or a folder's files of the known kinds
    (WARC/WET, Parquet, JSONL, .txt; recursively)."""
    try:
        return [f.path for f in expand_inputs([source], formats=SOURCE_FORMATS)]
    except InputError:
        raise FileNotFoundError(f"no input files in {source!r}") from None


def chunks(text: str, words: int) -> list[str]:
    """``text`` (one line) as consecutive passages of ``words`` words (a shorter tail of at least half that
    kept); the whole text when ``words`` is 0."""
    if not words:
        return [text]
    tokens = text.split(" ")
    out = [" ".join(tokens[i : i + words]) for i in range(0, len(tokens), words)]
    return [c for i, c in enumerate(out) if i == 0 or len(c.split(" ")) * 2 >= words]


def held_out(text: str, fraction: float) -> bool:
    """Whether a document belongs to the held-out split (a stable function of its text)."""
    return xxhash.xxh64_intdigest(text.encode("utf-8")) / 2**64 < fraction


@dataclass
class QualityReport:
    train: dict[str, int]
    valid: dict[str, int]
    precision: float
    recall: float
    f1: float
    accuracy: float
    auc: float
    threshold: float

    def render(self) -> str:
        trained = (
            f"train: {self.train['hq']} positive, {self.train['lq']} negative; " if any(self.train.values()) else ""
        )
        return (
            f"{trained}held out: {self.valid['hq']} positive, {self.valid['lq']} negative\n"
            f"held out at threshold {self.threshold}: precision {self.precision:.3f}, recall {self.recall:.3f}, "
            f"F1 {self.f1:.3f}, accuracy {self.accuracy:.3f}; ROC AUC {self.auc:.3f}"
        )


def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """The probability that a random positive scores above a random negative (ties count half)."""
    pos, neg = scores[positive], scores[~positive]
    if not len(pos) or not len(neg):
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))


def train_quality_classifier(
    positive: list[str],
    negative: list[str],
    output: str,
    *,
    valid_fraction: float = 0.1,
    epoch: int = 5,
    lr: float = 0.1,
    word_ngrams: int = 2,
    dim: int = 64,
    bucket: int = 1_000_000,
    min_chars: int = 100,
    chunk_words: int = 0,
    balance: bool = True,
    threshold: float = 0.5,
    seed: int = 0,
    threads: int | None = None,
) -> QualityReport:
    """Train on the positive and negative sources (lists of files, directories or globs), save the model to
    ``output`` (``.ftz``: quantized, a few MB; ``.bin``: ``bucket x dim`` floats) and report on the held-out
    split. With ``chunk_words``, every document
    gives passages of that many words as examples (more examples from few documents; a document's passages
    all fall on the same side of the split). ``balance`` repeats the smaller class's examples up to the size
    of the larger (fastText has no class weights). ``threads = 1`` makes training
    reproducible; more threads (default: all CPUs) are faster but not bit-for-bit repeatable."""
    import fasttext

    if not 0 <= valid_fraction < 1:
        raise ValueError(f"valid_fraction must be in [0, 1), got {valid_fraction}")
    counts = {"train": {"hq": 0, "lq": 0}, "valid": {"hq": 0, "lq": 0}}
    train: dict[str, list[str]] = {"hq": [], "lq": []}
    valid: list[tuple[str, bool]] = []
    for label, line in labelled_lines(positive, negative, min_chars):
        side = "valid" if held_out(line, valid_fraction) else "train"
        for example in chunks(line, chunk_words):
            counts[side][label] += 1
            if side == "valid":
                valid.append((example, label == "hq"))
            else:
                train[label].append(f"__label__{label} {example}\n")
    for label in ("hq", "lq"):
        if not train[label]:
            raise ValueError(f"no {'positive' if label == 'hq' else 'negative'} training documents")
    with tempfile.NamedTemporaryFile("w", suffix=".txt", encoding="utf-8", delete=False) as train_file:
        train_file.writelines(training_order(train, balance, seed))
    try:
        fasttext.FastText.eprint = lambda *args, **kwargs: None
        model = fasttext.train_supervised(
            train_file.name,
            epoch=epoch,
            lr=lr,
            wordNgrams=word_ngrams,
            dim=dim,
            bucket=bucket,
            seed=seed,
            thread=threads or os.cpu_count() or 1,
            verbose=0,
        )
        if output.endswith(".ftz"):  # keep the 100k most useful words and n-grams, 8-bit product quantization
            model.quantize(input=train_file.name, qnorm=True, cutoff=100_000, retrain=False)
    finally:
        os.unlink(train_file.name)
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    model.save_model(output)
    return _report(model, valid, counts, threshold)


def labelled_lines(positive: list[str], negative: list[str], min_chars: int):
    """(``hq`` or ``lq``, document as one line) for every document of the positive and negative sources."""
    for label, sources in (("hq", positive), ("lq", negative)):
        for source in sources:
            for path in source_files(source):
                for text in read_texts(path, min_chars):
                    yield label, fasttext_line(text)


def evaluate_quality_classifier(
    model: str, positive: list[str], negative: list[str], *, min_chars: int = 100, threshold: float = 0.5
) -> QualityReport:
    """Precision, recall, accuracy and ROC AUC of the fastText model at ``model`` (label ``hq``) on labelled
    sources: pages it was not trained on, such as another crawl or a reference set."""
    from filters.models import load_fasttext

    valid = [(line, label == "hq") for label, line in labelled_lines(positive, negative, min_chars)]
    counts = {label: sum((label == "hq") == is_hq for _, is_hq in valid) for label in ("hq", "lq")}
    return _report(load_fasttext(model), valid, {"train": {"hq": 0, "lq": 0}, "valid": counts}, threshold)


def training_order(train: dict[str, list[str]], balance: bool, seed: int) -> list[str]:
    """The training lines of both classes, the smaller class repeated to the larger's size with ``balance``,
    shuffled (fastText reads its file in order: one class after the other would bias it to the last)."""
    lines: list[str] = []
    largest = max(len(v) for v in train.values())
    for examples in train.values():
        lines += examples * (largest // len(examples) if balance else 1)
        if balance:
            lines += random.Random(seed).sample(examples, largest % len(examples))
    random.Random(seed).shuffle(lines)
    return lines


def _report(model, valid: list[tuple[str, bool]], counts: dict, threshold: float) -> QualityReport:
    scores = np.array([label_probability(model, line, "hq") for line, _ in valid])
    truth = np.array([is_hq for _, is_hq in valid], dtype=bool)
    predicted = scores >= threshold
    tp = int((predicted & truth).sum())
    precision = tp / max(int(predicted.sum()), 1)
    recall = tp / max(int(truth.sum()), 1)
    return QualityReport(
        train=counts["train"],
        valid=counts["valid"],
        precision=precision,
        recall=recall,
        f1=2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        accuracy=float((predicted == truth).mean()) if len(valid) else float("nan"),
        auc=roc_auc(scores, truth),
        threshold=threshold,
    )
