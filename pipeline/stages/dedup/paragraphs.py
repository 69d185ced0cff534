"""``paragraph_dedup``: paragraphs seen earlier in the corpus are removed with a Bloom filter, as Dolma's
``dedupe`` (whole paragraphs) and DCLM's BFF (word n-grams of paragraphs, ``old-both``) do; a document most
of whose n-grams were seen before is dropped whole.

A paragraph is a line of the text (split at ``\\n``). Its keys are the 64-bit hashes of its normalised word
n-grams (``ngram_size``; a paragraph shorter than that is one n-gram of all its words), or with
``ngram_size = 0`` one hash of the whole normalised paragraph. Paragraphs of fewer than ``min_words`` words
have no keys: they are never removed and never remembered.

Phases: every shard writes its keys, in input order, partitioned by key; each partition runs its own Bloom
filter over its keys in input order (shards in order, documents and paragraphs in order), so "seen before"
means earlier in the input, and the answer depends on neither the number of workers nor how files were
split (see :func:`_chunks`). The partitions report how many keys of every paragraph they had seen, and the
last phase removes the paragraphs and documents over the thresholds (with each paragraph's key count, which
the keys phase wrote per shard, so nothing is hashed twice). Memory per partition is its filter
(sized from the keys it counted and ``false_positive_rate``, or a share of ``bloom_bytes``) plus one
shard's keys; the filters' sizes and false-positive bound are written to ``<stage>/bloom.json``.

Unlike BFF, every paragraph's n-grams enter the filter, removed or not: which of a partition's keys to add
cannot wait for the verdicts of the other partitions.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from filters.base import RATIO_BINS, Metric
from filters.bloom import BloomFilter
from filters.dedup import hash64, normalize, shingle_hashes
from pipeline.engine.phases import Work
from pipeline.engine.shuffle import partition_of, read_partition, write_partitions
from pipeline.schema import ByteSize
from pipeline.stages.base import GlobalContext, GlobalStage, shards_to_write, write_outputs
from pipeline.stats import StageStats
from tokenizer.errors import require

log = logging.getLogger("refinery")

KEYS = pa.schema([("key", pa.uint64()), ("unit", pa.int64())])
SEEN = pa.schema([("unit", pa.int64()), ("seen", pa.int64())])
COUNTS = pa.schema([("keys", pa.int32())])  # keys of every paragraph of a shard, in order
UNIT_BITS = 32  # a unit (paragraph) is its shard index << 32 | its number among the shard's paragraphs
CHUNK_KEYS = 1 << 12  # keys per batch: only keys of earlier batches can be false positives
NO_KEYS = np.empty(0, dtype=np.uint64)
DUP_FRACTION = Metric("paragraph_dup_frac", RATIO_BINS)


@dataclass(kw_only=True)
class ParagraphDedupOptions:
    """Defaults are DCLM's BFF run (13-grams, paragraphs of 13 words or more, thresholds 0.8)."""

    ngram_size: int = 13
    min_words: int = 13
    paragraph_threshold: float = 0.8
    document_threshold: float = 0.8
    false_positive_rate: float = 0.001
    bloom_bytes: ByteSize = ByteSize(0)
    docs_per_partition: int = 200_000

    def __post_init__(self):
        require(self.ngram_size >= 0, "ngram_size", "must be >= 0 (0: whole paragraphs)")
        require(self.min_words >= 0, "min_words", "must be >= 0")
        require(0 <= self.paragraph_threshold < 1, "paragraph_threshold", "must be in [0, 1)")
        require(0 <= self.document_threshold <= 1, "document_threshold", "must be in [0, 1] (1: never)")
        require(0 < self.false_positive_rate < 1, "false_positive_rate", "must be between 0 and 1 (exclusive)")
        require(self.bloom_bytes >= 0, "bloom_bytes", "must be >= 0 (0: sized from false_positive_rate)")
        require(self.docs_per_partition >= 1, "docs_per_partition", "must be >= 1")

    @property
    def key_name(self) -> str:
        return f"{self.ngram_size}-grams" if self.ngram_size else "paragraphs"


def document_keys(text: str, opts: ParagraphDedupOptions) -> tuple[np.ndarray, np.ndarray]:
    """The keys of a document's paragraphs and, for each key, its paragraph's number (keys in paragraph order).
    The n-grams of all paragraphs are hashed in one pass over the document's words, those that would span two
    paragraphs left out; a paragraph shorter than ``ngram_size`` words (but of ``min_words`` or more) is one
    key, the hash of its words."""
    norms = [normalize(p) if p and not p.isspace() else "" for p in text.split("\n")]
    counts = np.array([len(norm.split()) for norm in norms], dtype=np.int64)
    counted = counts >= max(1, opts.min_words)
    n = opts.ngram_size
    whole = np.flatnonzero(counted & (counts < n)) if n else np.flatnonzero(counted)
    keys = [np.array([hash64(norms[i]) for i in whole.tolist()], dtype=np.uint64)]
    numbers = [whole]
    long = np.flatnonzero(counted & (counts >= n)) if n else np.empty(0, dtype=np.int64)
    if len(long):
        paragraph_of_word = np.repeat(long, counts[long])
        hashes = shingle_hashes(" ".join(norms[i] for i in long.tolist()), n)
        if len(hashes) == len(paragraph_of_word) - n + 1:
            inside = paragraph_of_word[: len(hashes)] == paragraph_of_word[n - 1 :]
            keys.append(hashes[inside])
            numbers.append(paragraph_of_word[: len(hashes)][inside])
        else:  # normalising the normalised text changed its words (rare scripts): hash paragraph by paragraph
            each = [shingle_hashes(norms[i], n) for i in long.tolist()]
            keys.append(np.concatenate(each))
            numbers.append(np.repeat(long, [len(h) for h in each]))
    number = np.concatenate(numbers)
    order = np.argsort(number, kind="stable")
    return np.concatenate(keys)[order], number[order]


@dataclass
class ParagraphDedupStage(GlobalStage):
    """Remove paragraphs seen before (more than ``paragraph_threshold`` of their n-grams); drop documents
    more than ``document_threshold`` of whose n-grams were seen before, or left empty."""

    kind: ClassVar[str] = "paragraph_dedup"
    name: str
    options: ParagraphDedupOptions
    options_type: ClassVar[type] = ParagraphDedupOptions

    def columns(self) -> list[pa.Field]:
        return [pa.field("paragraphs_removed", pa.int64()), pa.field(DUP_FRACTION.name, pa.float64())]

    def run_global(self, ctx: GlobalContext) -> None:
        work = Work(ctx.run, self.name, ctx.executor)
        n = ctx.partitions(self.options.docs_per_partition)
        shards = len(ctx.shards)
        counts = work.phase(
            "keys",
            _write_keys,
            [(s, work.part("keys", s), work.part("counts", s)) for s in range(shards)],
            shared=(ctx, n, self.options),
        )
        filters = work.phase(
            "bloom",
            _run_filter,
            [(work.parts("keys", shards), p, work.part("bloom", p)) for p in range(n)],
            shared=(ctx, n, self.options, sum(counts)),
        )
        self._state_filters(ctx, filters)
        work.phase(
            "write",
            _write_documents,
            [(work.parts("bloom", n), p) for p in range(n)],
            shared=(ctx, n, self, filters, work.parts("counts", shards)),
            mark=False,
        )

    def _state_filters(self, ctx: GlobalContext, filters: list[dict]) -> None:
        """Write (and log) what the Bloom filters cost and the false-positive rate they guarantee."""
        statement = {
            "partitions": len(filters),
            "keys": sum(f["keys"] for f in filters),
            "bytes": sum(f["bytes"] for f in filters),
            "largest_filter_bytes": max(f["bytes"] for f in filters),
            "target_false_positive_rate": None if self.options.bloom_bytes else self.options.false_positive_rate,
            "false_positive_bound": max(f["bound"] for f in filters),
            "false_positive_rate_at_end": max(f["fill"] ** f["hashes"] for f in filters),
            "filters": filters,
        }
        ctx.run.write_json(ctx.run.path(self.name, "bloom.json"), statement)
        log.info(
            "%s: %d Bloom filters, %s bytes for %s keys (largest %s bytes); false positives at most %.3g per check",
            self.name,
            statement["partitions"],
            f"{statement['bytes']:,}",
            f"{statement['keys']:,}",
            f"{statement['largest_filter_bytes']:,}",
            statement["false_positive_bound"],
        )


def _write_keys(shared, s: int, out: str, counts_out: str) -> int:
    """Every key of shard ``s`` with its paragraph, in input order, partitioned by key; and how many keys each
    paragraph has (for the last phase)."""
    ctx, n, opts = shared
    keys, units, counts = [NO_KEYS], [np.empty(0, dtype=np.int64)], [np.empty(0, dtype=np.int64)]
    first = s << UNIT_BITS
    for text in ctx.column(s, "text"):
        found, paragraph = document_keys(text, opts)
        paragraphs = text.count("\n") + 1
        keys.append(found)
        units.append(first + paragraph)
        counts.append(np.bincount(paragraph, minlength=paragraphs))
        first += paragraphs
    table = pa.table({"key": np.concatenate(keys), "unit": np.concatenate(units)}, schema=KEYS)
    write_partitions(ctx.run, out, table, partition_of(table["key"].to_numpy(), n), n)
    per_paragraph = pa.table({"keys": np.concatenate(counts).astype(np.int32)}, schema=COUNTS)
    write_partitions(ctx.run, counts_out, per_paragraph, np.zeros(per_paragraph.num_rows, dtype=np.int64), 1)
    return table.num_rows


def _partition_rows(run, paths: list[str], p: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The (keys, units) of partition ``p`` from each producer file in turn, without reading them all at once."""
    for path in paths:
        with run.open(path, "rb") as f:
            reader = pq.ParquetFile(f)
            present = _present(reader)
            if p in present:
                group = reader.read_row_group(present.index(p))
                yield group["key"].to_numpy(), group["unit"].to_numpy()


def _present(reader: pq.ParquetFile) -> list[int]:
    """The partitions a producer file holds, one row group each (see :mod:`pipeline.engine.shuffle`)."""
    return json.loads(reader.schema_arrow.metadata[b"partitions"])


def _partition_size(run, paths: list[str], p: int) -> int:
    """Rows of partition ``p`` over all producer files, from the files' metadata."""
    total = 0
    for path in paths:
        with run.open(path, "rb") as f:
            reader = pq.ParquetFile(f)
            present = _present(reader)
            if p in present:
                total += reader.metadata.row_group(present.index(p)).num_rows
    return total


def _chunks(parts: Iterator[tuple[np.ndarray, np.ndarray]], size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The concatenated stream of ``parts`` cut into batches of about ``size`` keys, each ending where a
    paragraph ends. The cuts depend on the stream alone, not on where one producer file ends and the next
    begins, so the filter's answers do not depend on how the input was split into shards."""
    keys, units = NO_KEYS, np.empty(0, dtype=np.int64)
    for part_keys, part_units in parts:
        keys, units = np.concatenate([keys, part_keys]), np.concatenate([units, part_units])
        ends = np.flatnonzero(units[1:] != units[:-1]) + 1  # where a paragraph begins
        start = 0
        while (i := int(np.searchsorted(ends, start + size))) < len(ends):
            cut = int(ends[i])
            yield keys[start:cut], units[start:cut]
            start = cut
        keys, units = keys[start:], units[start:]
    if len(keys):
        yield keys, units


def _run_filter(shared, inputs: list[str], p: int, out: str) -> dict:
    """Partition ``p``'s keys through its Bloom filter in input order; write how many keys of each paragraph
    had been seen before (paragraphs with none are left out), partitioned by the paragraph's shard."""
    ctx, n, opts, total_keys = shared
    keys = _partition_size(ctx.run, inputs, p)
    if opts.bloom_bytes:
        bloom = BloomFilter.of_size(int(opts.bloom_bytes) * keys // max(total_keys, 1), keys)
    else:
        bloom = BloomFilter.for_keys(keys, opts.false_positive_rate)
    seen_units = [np.empty(0, dtype=np.int64)]
    for chunk_keys, chunk_units in _chunks(_partition_rows(ctx.run, inputs, p), CHUNK_KEYS):
        seen_units.append(chunk_units[bloom.seen_then_add(chunk_keys, chunk_units)])
    units, seen = np.unique(np.concatenate(seen_units), return_counts=True)
    table = pa.table({"unit": units, "seen": seen.astype(np.int64)}, schema=SEEN)
    write_partitions(ctx.run, out, table, (units >> UNIT_BITS) % n, n)
    return {
        "keys": keys,
        "seen": int(seen.sum()),
        "bytes": bloom.nbytes,
        "hashes": bloom.hashes,
        "bound": bloom.bound(keys),
        "fill": bloom.fill(),
    }


def _write_documents(shared, inputs: list[str], p: int) -> None:
    """Remove the paragraphs and drop the documents over the thresholds, for the shards of partition ``p``."""
    ctx, n, stage, filters, counts = shared
    table = read_partition(ctx.run, inputs, p, SEEN)
    shard_of_unit = table["unit"].to_numpy() >> UNIT_BITS
    for s in shards_to_write(ctx, stage, n, p):
        mine = table.filter(pa.array(shard_of_unit == s))
        seen: dict[int, int] = {}  # paragraph number in the shard -> its keys seen before, over all partitions
        for unit, count in zip(mine["unit"].to_pylist(), mine["seen"].to_pylist()):
            local = unit & ((1 << UNIT_BITS) - 1)
            seen[local] = seen.get(local, 0) + count
        stats = StageStats(stage.name, stage.kind, ctx.shards[s].id)
        for q in range(s, len(filters), len(ctx.shards)):  # each filter's size counted once, at one shard
            stats.events["bloom_bytes"] += filters[q]["bytes"]
            stats.events["bloom_keys"] += filters[q]["keys"]
        totals = read_partition(ctx.run, [counts[s]], 0, COUNTS)["keys"].to_numpy()
        kept, rejected = _write_shard(ctx.documents(s), seen, totals, stage, stats)
        write_outputs(ctx, stage, s, kept, rejected, stats)


def _write_shard(docs: list[dict], seen: dict[int, int], totals: np.ndarray, stage, stats) -> tuple[list, list]:
    """The kept and rejected documents of one shard, its paragraphs numbered in order from 0."""
    kept, rejected = [], []
    first = 0
    for doc in docs:
        stats.document_in(len(doc["text"].encode("utf-8")), len(doc["text"]))
        paragraphs = doc["text"].split("\n")
        hits = {i: seen[first + i] for i in range(len(paragraphs)) if first + i in seen}
        reason = _dedup_document(doc, paragraphs, hits, totals[first : first + len(paragraphs)].tolist(), stage, stats)
        first += len(paragraphs)
        stats.route(doc, stage.name, reason, kept, rejected)
    return kept, rejected


def _dedup_document(
    doc: dict, paragraphs: list[str], hits: dict[int, int], totals: list[int], stage: ParagraphDedupStage, stats
) -> str | None:
    """Apply the verdicts to one document: ``hits`` are the keys seen before per paragraph (those with any),
    ``totals`` its paragraphs' keys. The reason to drop it, or None (its text then without the removed
    paragraphs)."""
    opts = stage.options
    doc["paragraphs_removed"], doc[DUP_FRACTION.name] = 0, 0.0
    if not hits:
        stats.observe(DUP_FRACTION, 0.0)
        return None
    duplicated, total = sum(hits.values()), sum(totals)
    fraction = duplicated / total
    doc[DUP_FRACTION.name] = fraction
    stats.observe(DUP_FRACTION, fraction)
    removed = sorted(i for i, count in hits.items() if count / totals[i] > opts.paragraph_threshold)
    evidence = f"; first repeated paragraph: {paragraphs[removed[0]].strip()[:200]!r}" if removed else ""
    doc["paragraphs_removed"] = len(removed)
    if fraction > opts.document_threshold:
        doc["detail"] = (
            f"{duplicated} of {total} {opts.key_name} seen before ({fraction:.0%} > "
            f"{opts.document_threshold:.0%}){evidence}"
        )
        return "duplicate_document"
    if removed:
        gone = set(removed)
        text = "\n".join(para for i, para in enumerate(paragraphs) if i not in gone)
        if not text.strip():
            doc["detail"] = (
                f"{len(removed)} paragraphs removed, nothing left ({duplicated} of {total} {opts.key_name} seen "
                f"before){evidence}"
            )
            return "empty_after_dedup"  # the rejected document keeps its text
        stats.events["paragraphs_removed"] += len(removed)
        stats.events["chars_removed"] += len(doc["text"]) - len(text)
        doc["text"] = text
    return None
