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
    tmp = run.temp_name(path)
    with run.open(tmp, "wb") as f, pq.ParquetWriter(f, schema, compression="zstd") as writer:
        start = 0
        for p in present:
            writer.write_table(
                table.slice(start, int(counts[p])).replace_schema_metadata(schema.metadata),
                row_group_size=int(counts[p]),
            )
            start += int(counts[p])
    run.commit(tmp, path)


def read_partition(run: RunDir, paths: list[str], partition: int, schema: pa.Schema) -> pa.Table:
    """Rows of ``partition`` from every file in ``paths`` (an empty table with ``schema`` if none)."""
    parts = []
    for path in paths:
        with run.open(path, "rb") as f:
            reader = pq.ParquetFile(f)
            present = json.loads(reader.schema_arrow.metadata[b"partitions"])
            if partition in present:
                parts.append(reader.read_row_group(present.index(partition)))
    if not parts:
        return schema.empty_table()
    return pa.concat_tables(parts).replace_schema_metadata(None)
