"""``training_shards``: the per-input token shards of ``tokenize`` merged into fixed-size, globally shuffled
training shards, optionally rehydrated (FineWeb-2, :mod:`pipeline.stages.rehydrate`) and exported for other
trainers (:mod:`tokenizer.export`). It comes directly after ``tokenize``::

    [[stages]]
    kind = "training_shards"
    documents_per_shard = 100000     # every shard holds this many documents, the last one the rest
    seed = 0                         # the order: the same seed, the same shards, on one worker or many
    exports = ["parquet", "megatron"]
    rehydrate = false                # true: repeat survivors of near-duplicate clusters by their size
    cluster_size_column = "minhash_dedup_cluster_size"
    upsampling_weights = [[1, 1], [2, 2], [3, 3], [5, 5], [100, 8], [1000, 1]]   # FineWeb-2's

Documents stay whole and each is written once (or its number of copies). The shuffle never gathers the
corpus: the ``N`` document copies, numbered in input order (shard, row, copy), go to the places of a seeded
permutation of ``[0, N)`` (:mod:`pipeline.stages.permutation`), so copy ``g`` at ``place`` lands in output
shard ``place // documents_per_shard``, row ``place % documents_per_shard``. Phases: ``count`` (documents and
copies per input shard), ``scatter`` (each input shard's copies, with their rows, into one partition per
output shard, :mod:`pipeline.engine.shuffle`), ``write`` (each output shard orders its rows and writes its
files), then each input shard's statistics, the stage's completion markers. A task holds one input or one
output shard. The scattered copy of the corpus is deleted once the stage is done.

Outputs: ``<run>/<stage>/shards/<nnnnn>.{bin,idx,json}`` (:mod:`tokenizer.shards`, what ``refinery train``
reads), ``megatron/<nnnnn>.{bin,idx}``, ``parquet/<nnnnn>.parquet`` and ``manifest.json`` (every shard's
documents and tokens).
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import numpy as np
import pyarrow as pa

from pipeline.documents import load_column
from pipeline.engine.phases import Work
from pipeline.engine.shuffle import read_partition, write_partitions
from pipeline.rundir import RunDir
from pipeline.stages.base import GlobalContext, GlobalStage
from pipeline.stages.permutation import SeededPermutation
from pipeline.stages.rehydrate import FINEWEB2_WEIGHTS, bucket_labels, buckets, check_weights, copies_of
from pipeline.stats import StageStats
from tokenizer.errors import require
from tokenizer.export import export_shard

log = logging.getLogger("refinery")
SCATTERED = pa.schema([("row", pa.int64()), ("tokens", pa.large_binary())])


@dataclass(kw_only=True)
class TrainingShardsOptions:
    documents_per_shard: int = 100_000
    seed: int = 0
    exports: list[Literal["megatron", "parquet"]] = field(default_factory=list)
    rehydrate: bool = False
    cluster_size_column: str = "minhash_dedup_cluster_size"
    upsampling_weights: list[tuple[int, int]] = field(default_factory=lambda: list(FINEWEB2_WEIGHTS))

    def __post_init__(self):
        require(self.documents_per_shard >= 1, "documents_per_shard", "must be >= 1")
        require(self.seed >= 0, "seed", "must be >= 0")
        require(len(set(self.exports)) == len(self.exports), "exports", "each format once")
        check_weights(self.upsampling_weights, "upsampling_weights")


@dataclass
class TrainingShardsStage(GlobalStage):
    """Merge the token shards of the ``tokenize`` stage before it into shuffled, fixed-size training shards."""

    kind: ClassVar[str] = "training_shards"
    name: str
    options: TrainingShardsOptions
    options_type: ClassVar[type] = TrainingShardsOptions

    def run_global(self, ctx: GlobalContext) -> None:
        options = self.options
        if options.rehydrate and options.cluster_size_column not in {f.name for f in ctx.columns}:
            raise ValueError(f"{self.name}: no earlier stage writes {options.cluster_size_column!r} to rehydrate by")
        work = Work(ctx.run, self.name, ctx.executor)
        inputs = range(len(ctx.shards))
        shared = (ctx, self, _documents_stage(ctx.run, ctx.upstream))
        counts = work.phase("count", _count, [(s,) for s in inputs], shared=shared)
        total = sum(c["copies"] for c in counts)
        outputs = math.ceil(total / options.documents_per_shard)
        firsts = np.cumsum([0] + [c["copies"] for c in counts]).tolist()
        scattered = work.parts("scatter", len(ctx.shards))
        if total:
            calls = [(s, counts[s]["documents"], firsts[s], total, work.part("scatter", s)) for s in inputs]
            work.phase("scatter", _scatter, calls, shared=shared)
            written = work.phase(
                "write",
                _write,
                [(j, outputs) for j in range(outputs)],
                shared=(ctx, self, scattered, _shared_header(counts)),
            )
        else:
            written = []
            log.warning("%s: the token shards hold no document: no training shard written", self.name)
        ctx.run.write_json(ctx.run.path(self.name, "manifest.json"), self.manifest(written))
        _copy_tokenizer(ctx.run, ctx.upstream, self.name)
        done = ctx.run.done_shards(self.name)
        calls = [(s, counts[s]) for s in inputs if ctx.shards[s].id not in done]
        work.phase("stats", _write_stats, calls, shared=(ctx, self), mark=False)
        if ctx.run.exists(ctx.run.path(self.name, "_work", "scatter")):
            ctx.run.fs.rm(ctx.run.path(self.name, "_work", "scatter"), recursive=True)

    def manifest(self, written: list[dict]) -> dict:
        """What ``manifest.json`` says: the settings that made the shards, and each shard's counts."""
        options = self.options
        return {
            "documents_per_shard": options.documents_per_shard,
            "seed": options.seed,
            "rehydrate": options.upsampling_weights if options.rehydrate else None,
            "exports": options.exports,
            "documents": sum(w["documents"] for w in written),
            "tokens": sum(w["tokens"] for w in written),
            "shards": written,
        }


def _copy_tokenizer(run: RunDir, tokenize: str, stage: str) -> None:
    """The tokenizer the upstream stage trained, beside these shards too (``<stage>/tokenizer``), where the
    trainer and ``refinery shards inspect`` look for the tokenizer of a folder of shards."""
    source = run.path(tokenize, "tokenizer")
    files = [p for p in run.sizes(source) if not p.endswith("/")]
    for path, data in run.read_many(files).items():
        run.write_bytes(run.path(stage, "tokenizer", path.rsplit("/", 1)[-1]), data)


def _documents_stage(run: RunDir, tokenize: str) -> str:
    """The stage whose kept documents ``tokenize`` encoded (row for row): the one before it in the run."""
    names = [s["name"] for s in run.read_json(run.path("workflow.json"))["stages"]]
    return names[names.index(tokenize) - 1]


def _shared_header(counts: list[dict]) -> dict:
    """The header fields every input token shard shares (dtype, vocabulary, EOS, tokenizer), checked."""
    headers = {json.dumps(c["header"], sort_keys=True) for c in counts if c["header"]}
    if len(headers) > 1:
        raise ValueError(f"the token shards disagree on their format or tokenizer: {sorted(headers)}")
    return json.loads(headers.pop())


def _read_token_shard(run: RunDir, prefix: str, tokens: bool) -> tuple[dict, np.ndarray, bytes]:
    """A token shard's header, document offsets and (when ``tokens``) its ``.bin`` bytes, local or remote."""
    found = run.read_json(prefix + ".json")
    with run.open(prefix + ".idx", "rb") as f:
        offsets = np.frombuffer(f.read(), dtype="<u8").astype(np.int64)
    data = b""
    if tokens:
        with run.open(prefix + ".bin", "rb") as f:
            data = f.read()
        if len(data) != found["tokens"] * np.dtype(found["dtype"]).itemsize:
            raise ValueError(f"{prefix}.bin: {len(data)} bytes, but the header says {found['tokens']} tokens")
    if len(offsets) != found["documents"] + 1 or offsets[-1] != found["tokens"]:
        raise ValueError(f"{prefix}.idx does not match its header")
    return found, offsets, data


def _copies(ctx: GlobalContext, stage: TrainingShardsStage, source: str, s: int, n: int) -> tuple[np.ndarray, dict]:
    """How many times each of the ``n`` documents of input shard ``s`` is written, and the documents per
    rehydration bucket (statistics keys)."""
    options = stage.options
    if not options.rehydrate:
        return np.ones(n, dtype=np.int64), {}
    sizes = load_column(ctx.run, ctx.run.kept(source, ctx.shards[s].id), options.cluster_size_column)
    if len(sizes) != n:
        raise ValueError(f"{stage.name}: shard {ctx.shards[s].id} has {n} token documents, {len(sizes)} in {source}")
    bucket = buckets(sizes, options.upsampling_weights)
    per_bucket = np.bincount(bucket, minlength=len(options.upsampling_weights)).tolist()
    labels = bucket_labels(options.upsampling_weights)
    return copies_of(bucket, options.upsampling_weights), {k: v for k, v in zip(labels, per_bucket) if v}


def _count(shared, s: int) -> dict:
    """Documents, tokens and copies of input shard ``s``, and its header's shared fields."""
    ctx, stage, source = shared
    shard_id = ctx.shards[s].id
    tokenized = ctx.run.read_json(ctx.run.shard_stats(ctx.upstream, shard_id))
    count = {"documents": 0, "tokens": 0, "copies": 0, "tokens_written": 0, "buckets": {}, "header": None}
    count["bytes"] = tokenized["bytes_in"]
    if not tokenized["docs_kept"]:
        return count  # no documents, no token shard
    found, offsets, _ = _read_token_shard(ctx.run, ctx.run.path(ctx.upstream, "shards", shard_id), tokens=False)
    copies, count["buckets"] = _copies(ctx, stage, source, s, len(offsets) - 1)
    count.update(documents=len(offsets) - 1, tokens=int(offsets[-1]), copies=int(copies.sum()))
    count["tokens_written"] = int((np.diff(offsets) * copies).sum())
    count["header"] = {k: v for k, v in found.items() if k not in ("tokens", "documents")}
    return count


def _scatter(shared, s: int, n: int, first: int, total: int, out: str) -> int:
    """Send every copy of the ``n`` documents of input shard ``s`` to its output shard with its row there;
    copies are numbered ``first``, ``first + 1``, ... in order of documents."""
    ctx, stage, source = shared
    per_shard = stage.options.documents_per_shard
    outputs = math.ceil(total / per_shard)
    if not n:  # no token shard
        write_partitions(ctx.run, out, SCATTERED.empty_table(), np.empty(0, dtype=np.int64), outputs)
        return 0
    prefix = ctx.run.path(ctx.upstream, "shards", ctx.shards[s].id)
    found, offsets, data = _read_token_shard(ctx.run, prefix, tokens=True)
    byte_offsets = pa.py_buffer((offsets * np.dtype(found["dtype"]).itemsize).tobytes())
    documents = pa.LargeBinaryArray.from_buffers(pa.large_binary(), n, [None, byte_offsets, pa.py_buffer(data)])
    copies, _ = _copies(ctx, stage, source, s, n)
    places = SeededPermutation(total, stage.options.seed)(np.arange(first, first + int(copies.sum())))
    table = pa.table(
        {"row": places % per_shard, "tokens": documents.take(pa.array(np.repeat(np.arange(n), copies)))},
        schema=SCATTERED,
    )
    write_partitions(ctx.run, out, table, places // per_shard, outputs)
    return len(places)


def _write(shared, j: int, outputs: int) -> dict:
    """Output shard ``j``: its documents in row order, written as a token shard and in every export format."""
    ctx, stage, scattered, common = shared
    name = f"{j:05d}"
    files = [f"shards/{name}.json", f"shards/{name}.bin", f"shards/{name}.idx"] + [
        path for fmt in stage.options.exports for path in _export_names(fmt, name)
    ]
    if all(ctx.run.exists(ctx.run.path(stage.name, f)) for f in files):  # resuming: written before
        done = ctx.run.read_json(ctx.run.path(stage.name, files[0]))
        return {"name": name, "documents": done["documents"], "tokens": done["tokens"]}
    table = read_partition(ctx.run, scattered, j, SCATTERED)
    order = np.argsort(table["row"].to_numpy(), kind="stable")
    if not np.array_equal(table["row"].to_numpy()[order], np.arange(len(order))):
        raise RuntimeError(f"{stage.name}: output shard {name} did not receive each of its rows once")
    documents = table["tokens"].take(pa.array(order)).combine_chunks()
    bounds = np.frombuffer(documents.buffers()[1], dtype=np.int64)[documents.offset : documents.offset + len(order) + 1]
    data = memoryview(documents.buffers()[2])[bounds[0] : bounds[-1]]
    offsets = (bounds - bounds[0]) // np.dtype(common["dtype"]).itemsize
    extra = {"shard": j, "shards": outputs, "seed": stage.options.seed}
    local = ctx.run.local
    with tempfile.TemporaryDirectory() as tmp:
        root = ctx.run.path(stage.name) if local else tmp
        os.makedirs(os.path.join(root, "shards"), exist_ok=True)
        written = _write_token_shard(os.path.join(root, "shards", name), data, offsets, {**common, **extra})
        for fmt in stage.options.exports:
            export_shard(os.path.join(root, "shards", name), os.path.join(root, fmt), fmt)
        if not local:  # the token shard's header last: it marks the shard complete
            for path in files[1:] + files[:1]:
                ctx.run.fs.put(os.path.join(tmp, path), ctx.run.path(stage.name, path))
    return {"name": name, "documents": written["documents"], "tokens": written["tokens"]}


def _export_names(fmt: str, name: str) -> list[str]:
    """The files, relative to the stage's folder, that export ``fmt`` of output shard ``name`` writes."""
    return [f"megatron/{name}.bin", f"megatron/{name}.idx"] if fmt == "megatron" else [f"parquet/{name}.parquet"]


def _write_token_shard(prefix: str, data, offsets: np.ndarray, fields: dict) -> dict:
    """Documents that already end with their EOS (``data``: the ``.bin`` bytes; ``offsets``: where each
    starts, in tokens, and the total) as a token shard in :mod:`tokenizer.shards`' format, whose header
    takes ``fields`` (dtype, vocabulary, EOS, tokenizer and extras) and the counts; returns the header."""
    written = {**fields, "tokens": int(offsets[-1]), "documents": len(offsets) - 1}
    for suffix, payload in ((".bin", data), (".idx", offsets.astype("<u8").tobytes())):
        with open(prefix + suffix + ".tmp", "wb") as f:
            f.write(payload)
        os.replace(prefix + suffix + ".tmp", prefix + suffix)
    with open(prefix + ".json.tmp", "w") as f:  # the header last, as ShardWriter writes it
        json.dump(written, f, indent=1)
    os.replace(prefix + ".json.tmp", prefix + ".json")
    return written


def _write_stats(shared, s: int, count: dict) -> None:
    """Input shard ``s``'s statistics: its documents and tokens in, the copies written, per rehydration
    bucket too. Written after every output shard: they mark the stage done."""
    ctx, stage = shared
    stats = StageStats(stage.name, stage.kind, ctx.shards[s].id)
    stats.histograms = {}  # this stage sees tokens, not text: no text lengths to show
    stats.docs_in = stats.docs_kept = count["documents"]
    stats.bytes_in = stats.bytes_kept = count["bytes"]
    stats.events.update(
        {"tokens": count["tokens"], "documents_written": count["copies"], "tokens_written": count["tokens_written"]}
    )
    stats.events.update(count["buckets"])
    ctx.run.write_json(ctx.run.shard_stats(stage.name, ctx.shards[s].id), stats.to_json())
