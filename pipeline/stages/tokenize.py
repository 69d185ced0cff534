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

import os
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from typing import ClassVar

import pyarrow as pa
import pyarrow.parquet as pq

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

COUNTS = pa.schema([("pretoken", pa.string()), ("count", pa.int64())])
TOKENS_PER_DOC = Metric("tokens_per_document", log_bins(1, 1e6, 30), integer=True)
EOT = "<|endoftext|>"


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
        return self.options.tokenizer or run.path(self.name, "tokenizer")

    def run_global(self, ctx: GlobalContext) -> None:
        work = Work(ctx.run, self.name, ctx.executor)
        if not self.options.tokenizer:
            quotas = _training_quotas(ctx, int(self.options.train_bytes))
            calls = [(s, quotas[s], work.part("pretokens", s)) for s in range(len(ctx.shards))]
            work.phase("pretokens", _count_shard, calls, shared=(ctx, self.options))
            work.phase("train", _train, [(work.parts("pretokens", len(ctx.shards)),)], shared=(ctx, self))
        work.phase("encode", _encode_shards, [(s,) for s in range(len(ctx.shards))], shared=(ctx, self), mark=False)


def _training_quotas(ctx: GlobalContext, budget: int) -> list[int]:
    """Bytes of text each shard contributes to training: the corpus's first ``budget`` bytes, in input order."""
    quotas = []
    for shard in ctx.shards:
        size = ctx.run.read_json(ctx.run.shard_stats(ctx.upstream, shard.id))["bytes_kept"]
        quotas.append(min(size, budget))
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
    tmp = ctx.run.temp_name(out)
    with ctx.run.open(tmp, "wb") as f:
        pq.write_table(table, f, compression="zstd")
    ctx.run.commit(tmp, out)
    return len(counts)


def _train(shared, inputs: list[str]) -> dict:
    """Sum the shards' pre-token counts (memory: distinct pre-tokens), run the merges, save the tokenizer."""
    ctx, stage = shared
    counts: Counter = Counter()
    for path in inputs:
        with ctx.run.open(path, "rb") as f:
            table = pq.read_table(f)
        counts.update(dict(zip(table["pretoken"].to_pylist(), table["count"].to_pylist())))
    if not counts:
        raise ValueError(f"stage {stage.name}: the corpus is empty, there is nothing to train a tokenizer on")
    options = stage.options
    vocab, merges = train_from_counts(counts, options.vocab_size, options.special_tokens)
    tokenizer = Tokenizer(vocab, merges, options.special_tokens)
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer.save(tmp)
        for name in sorted(os.listdir(tmp)):
            with open(os.path.join(tmp, name), "rb") as f:
                ctx.run.write_bytes(ctx.run.path(stage.name, "tokenizer", name), f.read())
    return {"vocab_size": len(vocab), "merges": len(merges), "distinct_pretokens": len(counts), "hash": tokenizer.hash}


def _load_tokenizer(run: RunDir, directory: str) -> Tokenizer:
    if "://" not in directory and os.path.isdir(directory):
        return Tokenizer.load(directory)
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("vocab.json", "merges.txt", "refinery.json"):
            with run.fs.open(f"{directory.rstrip('/')}/{name}", "rb") as src:
                data = src.read()
            with open(os.path.join(tmp, name), "wb") as dst:
                dst.write(data)
        return Tokenizer.load(tmp)


def _encode_shards(shared, s: int) -> None:
    """Encode one shard's documents into a token shard, then write its statistics (the completion marker)."""
    ctx, stage = shared
    if ctx.shards[s].id in ctx.run.done_shards(stage.name):
        return  # resuming: this shard was encoded before
    shard_id = ctx.shards[s].id
    tokenizer = _load_tokenizer(ctx.run, stage.tokenizer_dir(ctx.run))
    stats = StageStats(stage.name, stage.kind, shard_id)
    target = ctx.run.path(stage.name, "shards", shard_id)
    local = "://" not in ctx.run.url or ctx.run.url.startswith("file://")
    with tempfile.TemporaryDirectory() as tmp:
        prefix = target if local else os.path.join(tmp, shard_id)
        header = write_shard(prefix, ctx.column(s, "text"), tokenizer, stage.options.eos_token, stats)
        if not local:
            for suffix in (".bin", ".idx", ".json"):  # the header last: it marks the shard complete
                ctx.run.fs.put(prefix + suffix, target + suffix)
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
