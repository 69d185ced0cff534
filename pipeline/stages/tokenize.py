"""``tokenize``: train a BPE tokenizer on the corpus (pre-token counts in parallel, the merge loop in one
task), then encode every shard in parallel into packed token shards (:mod:`tokenizer.shards`).

In a workflow, ``tokenize`` comes after the document stages::

    [[stages]]
    kind = "tokenize"
    vocab_size = 32000           # train on this run's corpus ...
    train_bytes = "1GiB"         # ... on its first documents up to this size, in input order
    # tokenizer = "path/to/dir"  # ... or encode with an existing tokenizer instead

The tokenizer lands in ``<run>/<stage>/tokenizer/`` (GPT-2 files, ``refinery.json``, HF ``tokenizer.json``),
the shards in ``<run>/<stage>/shards/<shard>.{bin,idx,json}``.
"""

from __future__ import annotations

import functools
import logging
import os
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from typing import ClassVar

import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.core import url_to_fs

from filters.base import Metric, log_bins
from pipeline.engine.phases import Work
from pipeline.rundir import RunDir
from pipeline.schema import ByteSize
from pipeline.stages.base import GlobalContext, GlobalStage
from pipeline.stats import StageStats
from tokenizer.bpe import Tokenizer
from tokenizer.errors import invalid, require
from tokenizer.shards import ShardWriter
from tokenizer.train import count_pretokens, train_from_counts

log = logging.getLogger("refinery")
COUNTS = pa.schema([("pretoken", pa.string()), ("count", pa.int64())])
TOKENS_PER_DOC = Metric("tokens_per_document", log_bins(1, 1e6, 30), integer=True)
EOT = "<|endoftext|>"
COUNT_FILES_PER_FETCH = 64  # pre-token count files fetched at once by the training task (memory: 64 of them)


@dataclass(kw_only=True)
class TokenizeOptions:
    tokenizer: str = ""
    vocab_size: int = 32000
    special_tokens: list[str] = field(default_factory=lambda: [EOT])
    eos_token: str = EOT
    train_bytes: ByteSize = ByteSize(1 << 30)

    path_params: ClassVar[tuple[str, ...]] = ("tokenizer",)

    def __post_init__(self):
        if not self.tokenizer:
            require(
                self.vocab_size >= 256 + len(set(self.special_tokens)),
                "vocab_size",
                f"must be at least 256 bytes + {len(set(self.special_tokens))} special tokens",
            )
        elif "://" not in self.tokenizer and not os.path.isdir(self.tokenizer):
            raise invalid("tokenizer", f"no such tokenizer directory: {self.tokenizer}")
        require(all(self.special_tokens), "special_tokens", "must not hold an empty string")
        duplicates = sorted({t for t in self.special_tokens if self.special_tokens.count(t) > 1})
        require(not duplicates, "special_tokens", f"each token once; listed twice: {', '.join(duplicates)}")
        require(self.eos_token in self.special_tokens, "eos_token", "must be one of special_tokens")
        require(self.train_bytes > 0, "train_bytes", "must be > 0")


@dataclass
class TokenizeStage(GlobalStage):
    """Train a tokenizer on the corpus (unless one is given) and encode every shard into token shards."""

    kind: ClassVar[str] = "tokenize"
    name: str
    options: TokenizeOptions
    options_type: ClassVar[type] = TokenizeOptions

    def tokenizer_dir(self, run: RunDir) -> str:
        return self.options.tokenizer or run.full(self.name, "tokenizer")

    def run_global(self, ctx: GlobalContext) -> None:
        work = Work(ctx.run, self.name, ctx.executor)
        if not self.options.tokenizer:
            quotas = _training_quotas(ctx, int(self.options.train_bytes))
            calls = [(s, quotas[s], work.part("pretokens", s)) for s in range(len(ctx.shards))]
            work.phase("pretokens", _count_shard, calls, shared=(ctx, self.options))
            [trained] = work.phase("train", _train, [(work.parts("pretokens", len(ctx.shards)),)], shared=(ctx, self))
            if trained is None:
                log.warning("%s: the corpus is empty: no tokenizer trained, no token shards written", self.name)
        done = ctx.run.done_shards(self.name)  # resuming: shards encoded before are not redone
        todo = [(s,) for s, shard in enumerate(ctx.shards) if shard.id not in done]
        work.phase("encode", _encode_shards, todo, shared=(ctx, self), mark=False)


def _training_quotas(ctx: GlobalContext, budget: int) -> list[int]:
    """Bytes of text each shard contributes to training: the corpus's first ``budget`` bytes, in input order."""
    quotas = []
    for stats in ctx.upstream_stats():
        quotas.append(min(stats["bytes_kept"], budget))
        budget -= quotas[-1]
    return quotas


def _count_shard(shared, s: int, quota: int, out: str) -> int:
    ctx, options = shared
    counts: Counter = Counter()
    if quota > 0:
        texts, used = [], 0
        for text in ctx.column(s, "text"):
            if used >= quota:
                break
            texts.append(text)
            used += len(text.encode("utf-8"))
        counts = count_pretokens(texts, options.special_tokens)
    table = pa.table({"pretoken": list(counts), "count": list(counts.values())}, schema=COUNTS)
    with ctx.run.writer(out) as f:
        pq.write_table(table, f, compression="zstd")
    return len(counts)


def _train(shared, inputs: list[str]) -> dict | None:
    """Sum the shards' pre-token counts (memory: distinct pre-tokens), run the merges, save the tokenizer;
    None when the corpus is empty (nothing to train on, and nothing to encode)."""
    ctx, stage = shared
    counts: Counter = Counter()
    for start in range(0, len(inputs), COUNT_FILES_PER_FETCH):
        fetched = ctx.run.read_many(inputs[start : start + COUNT_FILES_PER_FETCH])  # concurrently
        for path in inputs[start : start + COUNT_FILES_PER_FETCH]:
            table = pq.read_table(pa.BufferReader(fetched.pop(path)))
            counts.update(dict(zip(table["pretoken"].to_pylist(), table["count"].to_pylist())))
    if not counts:
        return None
    options = stage.options
    vocab, merges = train_from_counts(counts, options.vocab_size, options.special_tokens)
    tokenizer = Tokenizer(vocab, merges, options.special_tokens)
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer.save(tmp)
        for name in sorted(os.listdir(tmp)):
            with open(os.path.join(tmp, name), "rb") as f:
                ctx.run.write_bytes(ctx.run.path(stage.name, "tokenizer", name), f.read())
    return {"vocab_size": len(vocab), "merges": len(merges), "distinct_pretokens": len(counts), "hash": tokenizer.hash}


@functools.lru_cache(maxsize=4)
def _load_tokenizer(directory: str) -> Tokenizer:
    """The tokenizer in a local folder or at a URL (copied to a temporary folder first)."""
    if "://" not in directory and os.path.isdir(directory):
        return Tokenizer.load(directory)
    fs, root = url_to_fs(directory)
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("vocab.json", "merges.txt", "refinery.json"):
            remote = f"{root.rstrip('/')}/{name}"
            if name == "refinery.json" and not fs.exists(remote):
                continue  # GPT-2's own files: special tokens from their shape
            with fs.open(remote, "rb") as src:
                data = src.read()
            with open(os.path.join(tmp, name), "wb") as dst:
                dst.write(data)
        return Tokenizer.load(tmp)


def _encode_shards(shared, s: int) -> None:
    """Encode one shard's documents into a token shard, then write its statistics (the completion marker)."""
    ctx, stage = shared
    shard_id = ctx.shards[s].id
    stats = StageStats(stage.name, stage.kind, shard_id)
    texts = ctx.column(s, "text")
    stats.events["tokens"] = 0
    if texts:  # no documents, no token shard (a folder of shards holds no empty ones)
        tokenizer = _load_tokenizer(stage.tokenizer_dir(ctx.run))
        target = ctx.run.path(stage.name, "shards", shard_id)
        local = ctx.run.local
        with tempfile.TemporaryDirectory() as tmp:
            prefix = target if local else os.path.join(tmp, shard_id)
            header = write_shard(prefix, texts, tokenizer, stage.options.eos_token, stats)
            if not local:  # the data and index together, then the header: it marks the shard complete
                ctx.run.fs.put([prefix + ".bin", prefix + ".idx"], [target + ".bin", target + ".idx"])
                with open(prefix + ".json", "rb") as f:  # one PUT (fs.put first lists the target)
                    ctx.run.write_bytes(target + ".json", f.read())
        stats.events["tokens"] = header["tokens"]
    ctx.run.write_json(ctx.run.shard_stats(stage.name, shard_id), stats.to_json())


def write_shard(prefix: str, texts, tokenizer: Tokenizer, eos_token: str, stats: StageStats | None = None) -> dict:
    """Encode ``texts`` (one document each) into the token shard ``prefix``; returns its header."""
    eos = tokenizer.special_ids[eos_token]
    with ShardWriter(prefix, vocab_size=len(tokenizer), eos_id=eos, tokenizer_hash=tokenizer.hash) as writer:
        for text in texts:
            ids = tokenizer.encode(text)
            writer.write(ids)
            if stats is not None:
                stats.document_in(len(text.encode("utf-8")), len(text))
                stats.document_kept(text)
                stats.observe(TOKENS_PER_DOC, len(ids) + 1)
    return writer.header


def bytes_per_token(stats: dict) -> float | None:
    """Text bytes per token of a tokenize stage's merged statistics."""
    tokens = stats.get("events", {}).get("tokens")
    return stats["bytes_in"] / tokens if tokens else None
