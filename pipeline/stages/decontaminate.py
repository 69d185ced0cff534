"""``decontaminate``: drop documents that share a long word n-gram (13 words by default, as GPT-3 did) with an
evaluation set, or with ``action = "cut"`` cut the shared passages out of them.

Evaluation sets are named lists of files, folders or globs of text, JSONL or Parquet files, read by
:mod:`pipeline.reader` (the ``text`` of each JSONL line or Parquet row, a text file whole). Their n-grams are
hashed as MinHash hashes shingles (:func:`filters.dedup.shingle_hashes`: normalised words, so case, accents
and punctuation do not hide a copy) into one sorted array, built once per worker process: memory grows with
the evaluation sets (14 bytes per distinct n-gram), never with the corpus. An item shorter than
``ngram_size`` words is one n-gram of all its words and matches only a document made of exactly its words.

A contaminated document names the sets it matched (column ``contaminated_by``, counted per set in the
labels) and, as ``detail``, how many n-grams it shares and the first shared passage as it appears in the
document, with the evaluation item it comes from. With ``action = "cut"`` the words covered by shared
n-grams are cut out (a document left without words is dropped as ``empty_after_cut``; one whose words
cannot be placed in its text, which normalisation can cause in rare scripts, is dropped as contaminated).
"""

from __future__ import annotations

import functools
import itertools
import logging
import os
import re
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
import pyarrow as pa

from filters.base import Metric, log_bins
from filters.dedup import normalize, shingle_hashes
from pipeline.inputs import InputError, expand_inputs
from pipeline.reader import read_documents
from pipeline.schema import build
from pipeline.stages.base import Stage
from pipeline.stats import StageStats
from tokenizer.errors import ConfigError, require

log = logging.getLogger("refinery")

EVAL_FORMATS = ("parquet", "jsonl", "text")
MATCHED = Metric("contaminated_ngrams", log_bins(1, 1e5, 25), integer=True)
_WORD = re.compile(r"[^\W_]+")  # the words normalize() keeps, found in the original text


@dataclass(kw_only=True)
class DecontaminateOptions:
    eval_sets: dict[str, list[str]]
    ngram_size: int = 13
    action: Literal["drop", "cut"] = "drop"

    def __post_init__(self):
        require(bool(self.eval_sets), "eval_sets", "expected at least one evaluation set: name = [paths or globs]")
        for name, patterns in self.eval_sets.items():
            require(bool(patterns), f"eval_sets.{name}", "expected at least one path, folder or glob")
        require(self.ngram_size >= 1, "ngram_size", "must be >= 1")


@dataclass
class EvalIndex:
    """The n-gram hashes of the evaluation sets: sorted, unique, each with the first set and item holding it."""

    hashes: np.ndarray
    sets: np.ndarray
    items: np.ndarray
    set_names: list[str]
    item_ids: list[str]

    def any_of(self, hashes: np.ndarray) -> bool:
        """Whether any of ``hashes`` is in the index (sorted first: a sorted search is about twice as fast)."""
        if not len(self.hashes) or not len(hashes):
            return False
        needles = np.sort(hashes)
        pos = np.minimum(np.searchsorted(self.hashes, needles), len(self.hashes) - 1)
        return bool((self.hashes[pos] == needles).any())

    def lookup(self, hashes: np.ndarray) -> np.ndarray:
        """For each hash, its position in the index, or -1."""
        if not len(self.hashes):
            return np.full(len(hashes), -1, dtype=np.int64)
        pos = np.minimum(np.searchsorted(self.hashes, hashes), len(self.hashes) - 1)
        return np.where(self.hashes[pos] == hashes, pos, -1)


@functools.lru_cache(maxsize=2)
def eval_index(files: tuple[tuple[str, tuple[str, ...]], ...], ngram_size: int) -> EvalIndex:
    """The index of the evaluation sets ``files`` ((set name, its files) pairs), built once per process."""
    hashes, sets, items, item_ids = [], [], [], []
    for set_number, (name, paths) in enumerate(files):
        count = short = 0
        for path in paths:
            for doc in read_documents(path):
                found = shingle_hashes(doc["text"], ngram_size)
                if not len(found):
                    continue
                hashes.append(found)
                sets.append(np.full(len(found), set_number, dtype=np.uint16))
                items.append(np.full(len(found), len(item_ids), dtype=np.int32))
                item_ids.append(str(doc["id"]))
                count += 1
                short += len(found) == 1 and len(normalize(doc["text"]).split()) < ngram_size
        log.info(
            "evaluation set %s: %d items (%d shorter than %d words) in %d files",
            name,
            count,
            short,
            ngram_size,
            len(paths),
        )
    if not hashes:
        empty = np.empty(0, dtype=np.uint64)
        return EvalIndex(empty, empty.astype(np.uint16), empty.astype(np.int32), [n for n, _ in files], [])
    every = np.concatenate(hashes)
    unique, first = np.unique(every, return_index=True)
    index = EvalIndex(
        unique, np.concatenate(sets)[first], np.concatenate(items)[first], [n for n, _ in files], item_ids
    )
    log.info("evaluation index: %d distinct %d-grams, %.1f MB", len(unique), ngram_size, _nbytes(index) / 1e6)
    return index


def _nbytes(index: EvalIndex) -> int:
    return index.hashes.nbytes + index.sets.nbytes + index.items.nbytes


def word_spans(text: str, count: int) -> list[tuple[int, int]] | None:
    """Where the first ``count`` words of ``normalize(text)`` are in ``text``; None when they cannot be placed
    (combining marks inside words, which normalisation removes)."""
    spans = [m.span() for m in itertools.islice(_WORD.finditer(text), count)]
    if text.isascii():
        return spans
    words = [word.lower() if word.isascii() else normalize(word) for word in (text[a:b] for a, b in spans)]
    return spans if words == normalize(text).split()[:count] else None


def matched_ranges(spans: list[tuple[int, int]], starts: np.ndarray, n: int) -> list[tuple[int, int]]:
    """Character ranges covered by the n-grams starting at the word positions ``starts``, merged."""
    out: list[tuple[int, int]] = []
    for start in starts.tolist():
        a, b = spans[start][0], spans[min(start + n, len(spans)) - 1][1]
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(b, out[-1][1]))
        else:
            out.append((a, b))
    return out


def cut_out(text: str, ranges: list[tuple[int, int]]) -> str:
    """``text`` without the character ranges ``ranges`` (sorted, disjoint), stripped."""
    pieces, position = [], 0
    for a, b in ranges:
        pieces.append(text[position:a])
        position = b
    return ("".join(pieces) + text[position:]).strip()


@dataclass
class DecontaminateStage(Stage):
    """Drop (or cut) what a document shares with the evaluation sets. ``files`` are each set's files and
    sizes, found when the workflow was read (so a rerun against changed evaluation files is refused)."""

    kind: ClassVar[str] = "decontaminate"
    name: str
    options: DecontaminateOptions
    files: dict[str, list[tuple[str, int]]]

    @classmethod
    def from_table(cls, table: dict, *, file: str, key: str) -> "DecontaminateStage":
        options = build(DecontaminateOptions, table, file=file, key=key, skip=("kind", "name"))
        base = os.path.dirname(os.path.abspath(file))
        files = {}
        for name, patterns in options.eval_sets.items():
            try:
                found = expand_inputs(patterns, base, formats=EVAL_FORMATS)
            except InputError as exc:
                raise ConfigError(file, f"{key}.eval_sets.{name}[{exc.index}]", str(exc)) from None
            files[name] = [(f.path, f.size) for f in found]
        return cls(name=table.get("name", cls.kind), options=options, files=files)

    def columns(self) -> list[pa.Field]:
        return [pa.field("contaminated_by", pa.string()), pa.field(MATCHED.name, pa.int64())]

    def index(self) -> EvalIndex:
        files = tuple((name, tuple(path for path, _ in paths)) for name, paths in self.files.items())
        return eval_index(files, self.options.ngram_size)

    def run(self, ctx, docs):
        index = self.index()
        stats = StageStats(self.name, self.kind, ctx.shard.id)
        kept, rejected = [], []
        for doc in docs:
            stats.document_in(len(doc["text"].encode("utf-8")), len(doc["text"]))
            stats.route(doc, self.name, self._check(doc, index, stats), kept, rejected)
        return kept, rejected, stats

    def _check(self, doc: dict, index: EvalIndex, stats: StageStats) -> str | None:
        """Annotate one document; the reason to drop it, or None (cut out of it what it shares, if asked)."""
        n = self.options.ngram_size
        text = doc["text"]
        hashes = shingle_hashes(text, n)
        doc["contaminated_by"], doc[MATCHED.name] = None, 0
        if not index.any_of(hashes):
            return None
        found = index.lookup(hashes)
        starts = np.flatnonzero(found >= 0)
        set_numbers = sorted(set(index.sets[found[starts]].tolist()))
        names = [index.set_names[i] for i in set_numbers]
        doc["contaminated_by"], doc[MATCHED.name] = ",".join(names), len(starts)
        for name in names:
            stats.count_label("contaminated_by", name)
        stats.events["ngrams_matched"] += len(starts)
        stats.observe(MATCHED, len(starts))
        spans = word_spans(text, int(starts[-1 if self.options.action == "cut" else 0]) + n)
        first = found[starts[0]]
        passage = (
            text[slice(*matched_ranges(spans, starts[:1], n)[0])]
            if spans is not None
            else " ".join(normalize(text).split()[starts[0] : starts[0] + n])
        )
        doc["detail"] = (
            f"{len(starts)} {n}-grams shared with {', '.join(names)}; first from "
            f"{index.set_names[index.sets[first]]} item {index.item_ids[index.items[first]]}: {passage[:300]!r}"
        )
        if self.options.action == "drop" or spans is None:
            return "contaminated"
        cut = cut_out(text, matched_ranges(spans, starts, n))
        if not _WORD.search(cut):
            return "empty_after_cut"
        stats.events["docs_cut"] += 1
        stats.events["chars_cut"] += len(text) - len(cut)
        doc["text"] = cut
        return None
