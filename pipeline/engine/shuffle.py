"""Data moved between the workers of a global stage: each producer task writes one Parquet file holding
rows for every destination partition (one row group each); a consumer reads its partition from every
producer file. Memory per task is one partition, and the partition count is fixed by the data, not by the
number of workers, so results do not depend on how many workers ran.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.rundir import RunDir

_MIX = np.uint64(0x9E3779B97F4A7C15)
WHOLE_FILE_BYTES = 4 << 20  # object storage: smaller producer files are fetched whole
FETCH_BATCH = 16  # ... this many at a time


def partition_of(values: np.ndarray, n: int) -> np.ndarray:
    """A partition in ``[0, n)`` for each 64-bit value, well spread even for sequential values."""
    mixed = values.astype(np.uint64) * _MIX
    return ((mixed >> np.uint64(32)) % np.uint64(n)).astype(np.int64)


def write_partitions(run: RunDir, path: str, table: pa.Table, partition: np.ndarray, n: int) -> None:
    """Write ``table`` to ``path`` with its rows grouped by ``partition`` (values in ``[0, n)``), atomically."""
    order = np.argsort(partition, kind="stable")
    table = table.take(pa.array(order))
    counts = np.bincount(partition, minlength=n)
    present = [int(p) for p in np.flatnonzero(counts)]
    schema = table.schema.with_metadata({b"partitions": json.dumps(present).encode()})
    # no dictionary encoding: shuffled columns are mostly hashes and node ids, on which building dictionaries
    # costs ten times the rest of the write and saves nothing
    with run.writer(path) as f, pq.ParquetWriter(f, schema, compression="zstd", use_dictionary=False) as writer:
        start = 0
        for p in present:
            writer.write_table(
                table.slice(start, int(counts[p])).replace_schema_metadata(schema.metadata),
                row_group_size=int(counts[p]),
            )
            start += int(counts[p])


def read_partition(run: RunDir, paths: list[str], partition: int, schema: pa.Schema) -> pa.Table:
    """Rows of ``partition`` from every file in ``paths`` (an empty table with ``schema`` if none). On object
    storage, small files are fetched whole, a batch at a time in parallel (one request each); larger ones by
    ranges (the footer, then the partition's row group), so a consumer never downloads other partitions."""
    parts = []
    for f in _opened(run, paths):
        with f:
            reader = pq.ParquetFile(f)
            present = json.loads(reader.schema_arrow.metadata[b"partitions"])
            if partition in present:
                parts.append(reader.read_row_group(present.index(partition)))
    if not parts:
        return schema.empty_table()
    return pa.concat_tables(parts).replace_schema_metadata(None)


def _opened(run: RunDir, paths: list[str]):
    """A seekable file for every path, in order."""
    if run.local:
        for path in paths:
            yield run.fs.open(path, "rb")
        return
    sizes: dict[str, int] = {}
    for folder in dict.fromkeys(p.rsplit("/", 1)[0] for p in paths):
        sizes.update(run.sizes(folder))
    for i in range(0, len(paths), FETCH_BATCH):
        batch = paths[i : i + FETCH_BATCH]
        whole = run.read_many([p for p in batch if sizes.get(p, WHOLE_FILE_BYTES) < WHOLE_FILE_BYTES])
        for path in batch:
            yield pa.BufferReader(whole[path]) if path in whole else run.fs.open(path, "rb")
