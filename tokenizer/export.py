"""Token shards (:mod:`tokenizer.shards`) written in the formats other trainers read. Every token of a shard is
exported once, EOS included, and every document stays one unit:

* ``megatron``: Megatron-LM's indexed dataset (``megatron.core.datasets.indexed_dataset.IndexedDataset``),
  ``<name>.bin`` + ``<name>.idx``. The ``.bin`` is our ``.bin`` byte for byte (uint16, or uint32 ids stored
  as Megatron's int32); the ``.idx`` is ``MMIDIDX\\0\\0``, version 1 (uint64), the dtype code (uint8), the
  sequence and document-index counts (uint64), then each sequence's length in tokens (int32), its byte
  offset (int64) and the document index (int64: 0, 1, ..., n, one sequence per document). A document's
  sequence ends with its EOS, as Megatron's ``preprocess_data.py --append-eod`` writes it.
* ``parquet``: one row per document, column ``input_ids`` (list of int32: the document's ids and its EOS),
  which ``datasets.load_dataset("parquet", data_files=...)`` reads.

Files are written under temporary names and renamed, the ``.idx`` after the ``.bin``.
"""

from __future__ import annotations

import os
import shutil
import struct

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tokenizer.shards import ShardReader

FORMATS = ("megatron", "parquet")
MEGATRON_MAGIC = b"MMIDIDX\x00\x00"
MEGATRON_DTYPE_CODES = {"uint16": 8, "uint32": 4}  # Megatron has no uint32: ids below 2**31 are the same int32 bytes
PARQUET_SCHEMA = pa.schema([("input_ids", pa.list_(pa.int32()))])
PARQUET_ROWS_PER_GROUP = 1024


def export_shard(prefix: str, out_dir: str, fmt: str) -> list[str]:
    """Write the shard ``prefix`` into ``out_dir`` (same base name) in format ``fmt``; the files written."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; expected one of: {', '.join(FORMATS)}")
    shard = ShardReader(prefix)
    out = os.path.join(out_dir, os.path.basename(shard.prefix))
    os.makedirs(out_dir, exist_ok=True)
    if fmt == "megatron":
        write_megatron(shard, out)
        return [out + ".bin", out + ".idx"]
    write_parquet(shard, out + ".parquet")
    return [out + ".parquet"]


def write_megatron(shard: ShardReader, out_prefix: str) -> None:
    """``shard`` as Megatron-LM's ``<out_prefix>.bin`` and ``.idx``."""
    if shard.header["vocab_size"] > 1 << 31:
        raise ValueError(f"{shard.prefix}: a vocabulary of {shard.header['vocab_size']} does not fit Megatron's int32")
    offsets = shard.offsets.astype(np.int64)
    documents = len(offsets) - 1
    index = b"".join(
        [
            MEGATRON_MAGIC,
            struct.pack("<Q", 1),
            struct.pack("<B", MEGATRON_DTYPE_CODES[shard.dtype.name]),
            struct.pack("<Q", documents),
            struct.pack("<Q", documents + 1),
            np.diff(offsets).astype("<i4").tobytes(),
            (offsets[:-1] * shard.dtype.itemsize).astype("<i8").tobytes(),
            np.arange(documents + 1, dtype="<i8").tobytes(),
        ]
    )
    shutil.copyfile(shard.prefix + ".bin", out_prefix + ".bin.tmp")
    os.replace(out_prefix + ".bin.tmp", out_prefix + ".bin")
    with open(out_prefix + ".idx.tmp", "wb") as f:
        f.write(index)
    os.replace(out_prefix + ".idx.tmp", out_prefix + ".idx")


def write_parquet(shard: ShardReader, path: str) -> None:
    """``shard`` as a Parquet file of ``input_ids`` rows, one per document (EOS included)."""
    offsets = shard.offsets.astype(np.int64)
    with pq.ParquetWriter(path + ".tmp", PARQUET_SCHEMA, compression="zstd") as writer:
        for first in range(0, len(offsets) - 1, PARQUET_ROWS_PER_GROUP):
            bounds = offsets[first : first + PARQUET_ROWS_PER_GROUP + 1]
            values = np.asarray(shard.tokens[bounds[0] : bounds[-1]], dtype=np.int32)
            rows = pa.ListArray.from_arrays(pa.array((bounds - bounds[0]).astype(np.int32)), pa.array(values))
            writer.write_table(pa.Table.from_arrays([rows], schema=PARQUET_SCHEMA))
    os.replace(path + ".tmp", path)
