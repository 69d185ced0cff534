"""``sentence_dedup``: C4's rule as datatrove's ``SentenceDedup`` applies it: "we discarded all but one of any
three-sentence span occurring more than once in the data set". The first occurrence in input order (file
path, then position) is kept; every later copy of the span is cut out of its document, and a document that
lost sentences is dropped when fewer than ``min_doc_words`` words or ``min_num_sentences`` sentences are
left (one that lost none is kept whatever its length).

Sentences end at ``.``, ``!`` or ``?`` (with closing quotes or brackets) before whitespace, and at line
breaks; datatrove uses spaCy's or NLTK's sentence splitter, which does not split at line breaks. A span is
the hash of its sentences normalised as datatrove's ``simplify_text`` does it (lower case, numbers to 0, no
punctuation or accents, whitespace collapsed). Phases, as in ``line_dedup``: span hashes per shard,
partitioned by hash; the later occurrences of each hash found per partition (exactly, by sorting); every
shard rewritten.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pyarrow as pa

from filters.base import RATIO_BINS, Metric
from filters.dedup import hash64, normalize
from filters.text import words
from pipeline.engine.phases import Work
from pipeline.engine.shuffle import partition_of, read_partition, write_partitions
from pipeline.stages.base import GlobalContext, GlobalStage, shards_to_write, write_outputs
from pipeline.stages.dedup.clusters import nodes_of, shard_of
from pipeline.stats import StageStats
from tokenizer.errors import require

SPANS = pa.schema([("hash", pa.uint64()), ("node", pa.int64()), ("sentence", pa.int32())])
LATER = pa.schema([("node", pa.int64()), ("sentence", pa.int32())])
_SENTENCE_END = re.compile(r"[.!?]+[\"'”’)\]]*(?=\s|$)|\n")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
REMOVED_FRACTION = Metric("sentences_removed_frac", RATIO_BINS)


@dataclass(kw_only=True)
class SentenceDedupOptions:
    """Defaults are datatrove's ``SentDedupConfig``."""

    n_sentences: int = 3
    min_doc_words: int = 50
    min_num_sentences: int = 3
    docs_per_partition: int = 200_000

    def __post_init__(self):
        require(self.n_sentences >= 1, "n_sentences", "must be >= 1")
        require(self.min_doc_words >= 0, "min_doc_words", "must be >= 0")
        require(self.min_num_sentences >= 0, "min_num_sentences", "must be >= 0")
        require(self.docs_per_partition >= 1, "docs_per_partition", "must be >= 1")


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of every sentence of ``text``, surrounding whitespace left out."""
    spans: list[tuple[int, int]] = []
    start = 0
    for m in _SENTENCE_END.finditer(text):
        _add_span(spans, text, start, m.start() if m.group() == "\n" else m.end())
        start = m.end()
    _add_span(spans, text, start, len(text))
    return spans


def _add_span(spans: list, text: str, start: int, end: int) -> None:
    piece = text[start:end]
    stripped = piece.strip()
    if stripped:
        left = start + len(piece) - len(piece.lstrip())
        spans.append((left, left + len(stripped)))


def span_hashes(text: str, n: int) -> list[tuple[int, int]]:
    """(sentence index, hash) of every run of ``n`` consecutive sentences whose normalised text is not empty."""
    spans = sentence_spans(text)
    simple = [normalize(_NUMBER.sub("0", text[a:b])) for a, b in spans]
    out = []
    for i in range(len(simple) - n + 1):
        joined = " ".join(simple[i : i + n])
        if joined.strip():
            out.append((i, hash64(joined)))
    return out


@dataclass
class SentenceDedupStage(GlobalStage):
    """Cut every repeated span of ``n_sentences`` sentences but its first occurrence; drop documents left
    too short."""

    kind: ClassVar[str] = "sentence_dedup"
    name: str
    options: SentenceDedupOptions
    options_type: ClassVar[type] = SentenceDedupOptions

    def columns(self) -> list[pa.Field]:
        return [pa.field("sentences_removed", pa.int64())]

    def run_global(self, ctx: GlobalContext) -> None:
        work = Work(ctx.run, self.name, ctx.executor)
        n = ctx.partitions(self.options.docs_per_partition)
        shards = len(ctx.shards)
        work.phase(
            "spans", _write_spans, [(s, work.part("spans", s)) for s in range(shards)], shared=(ctx, n, self.options)
        )
        work.phase(
            "later",
            _later_occurrences,
            [(work.parts("spans", shards), p, work.part("later", p)) for p in range(n)],
            shared=(ctx, n),
        )
        work.phase(
            "write", _cut_spans, [(work.parts("later", n), p) for p in range(n)], shared=(ctx, n, self), mark=False
        )


def _write_spans(shared, s: int, out: str) -> int:
    ctx, n, opts = shared
    texts = ctx.column(s, "text")
    hashes, nodes, sentences = [], [], []
    for node, text in zip(nodes_of(s, len(texts)).tolist(), texts):
        for sentence, h in span_hashes(text, opts.n_sentences):
            hashes.append(h)
            nodes.append(node)
            sentences.append(sentence)
    table = pa.table(
        {
            "hash": np.array(hashes, dtype=np.uint64),
            "node": np.array(nodes, dtype=np.int64),
            "sentence": np.array(sentences, dtype=np.int32),
        },
        schema=SPANS,
    )
    write_partitions(ctx.run, out, table, partition_of(table["hash"].to_numpy(), n), n)
    return table.num_rows


def _later_occurrences(shared, inputs: list[str], p: int, out: str) -> int:
    """Every occurrence of a span hash but the first in input order, sent to its document's shard."""
    ctx, n = shared
    table = read_partition(ctx.run, inputs, p, SPANS)
    h, node, sentence = (table[c].to_numpy() for c in ("hash", "node", "sentence"))
    order = np.lexsort((sentence, node, h))
    h, node, sentence = h[order], node[order], sentence[order]
    later = np.r_[False, h[1:] == h[:-1]] if len(h) else np.empty(0, dtype=bool)
    table = pa.table({"node": node[later], "sentence": sentence[later]}, schema=LATER)
    write_partitions(ctx.run, out, table, shard_of(node[later]) % n, n)
    return int(later.sum())


def _cut_spans(shared, inputs: list[str], p: int) -> None:
    ctx, n, stage = shared
    table = read_partition(ctx.run, inputs, p, LATER)
    node = table["node"].to_numpy()
    for s in shards_to_write(ctx, stage, n, p):
        mine = shard_of(node) == s
        starts: dict[int, list[int]] = {}
        for row, sentence in zip((node[mine] & 0xFFFFFFFF).tolist(), table["sentence"].to_numpy()[mine].tolist()):
            starts.setdefault(row, []).append(sentence)
        stats = StageStats(stage.name, stage.kind, ctx.shards[s].id)
        kept, rejected = [], []
        for row, doc in enumerate(ctx.documents(s)):
            stats.document_in(len(doc["text"].encode("utf-8")), len(doc["text"]))
            reason = _cut_document(doc, sorted(starts.get(row, [])), stage.options, stats)
            stats.route(doc, stage.name, reason, kept, rejected)
        write_outputs(ctx, stage, s, kept, rejected, stats)


def _cut_document(doc: dict, starts: list[int], opts: SentenceDedupOptions, stats: StageStats) -> str | None:
    """Cut the spans of ``n_sentences`` sentences starting at ``starts``; the reason to drop the document."""
    doc["sentences_removed"] = 0
    if not starts:
        stats.observe(REMOVED_FRACTION, 0.0)
        return None
    text = doc["text"]
    spans = sentence_spans(text)
    removed = {i for start in starts for i in range(start, min(start + opts.n_sentences, len(spans)))}
    pieces, previous_end = [], 0
    for i, (_, end) in enumerate(spans):
        if i not in removed:
            pieces.append(text[previous_end:end])  # with the whitespace before it, as datatrove keeps it
        previous_end = end
    new_text = "".join(pieces).lstrip()
    stats.observe(REMOVED_FRACTION, len(removed) / len(spans))
    doc["sentences_removed"] = len(removed)
    left_words, left_sentences = len(words(new_text)), len(sentence_spans(new_text))
    if new_text and left_words >= opts.min_doc_words and left_sentences >= opts.min_num_sentences:
        stats.events["sentences_removed"] += len(removed)
        stats.events["chars_removed"] += len(text) - len(new_text)
        doc["text"] = new_text
        return None
    first = text[spans[starts[0]][0] : spans[min(starts[0] + opts.n_sentences, len(spans)) - 1][1]]
    doc["detail"] = (
        f"{len(removed)} of {len(spans)} sentences repeat earlier spans, leaving {left_words} words and "
        f"{left_sentences} sentences (at least {opts.min_doc_words} and {opts.min_num_sentences} needed); "
        f"first repeated span: {first[:300]!r}"
    )
    return "too_short_after_dedup"  # the rejected document keeps its whole text, repeated spans included
