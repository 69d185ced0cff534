"""Documents on disk: one Parquet file (zstd) per stage, shard and outcome, with a schema fixed by the
stages that produced it, so that any output opens with pandas, DuckDB or ``datasets.load_dataset``."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.rundir import RunDir

DOCUMENT_FIELDS = [
    pa.field("id", pa.string()),
    pa.field("url", pa.string()),
    pa.field("date", pa.string()),
    pa.field("text", pa.string()),
    pa.field("source", pa.string()),
    pa.field("offset", pa.int64()),
    pa.field("http_status", pa.int32()),
    pa.field("content_type", pa.string()),
    pa.field("charset", pa.string()),
    pa.field("charset_source", pa.string()),
]
REJECTED_FIELDS = [pa.field("reason", pa.string()), pa.field("detail", pa.string())]
ROW_GROUP = 2000


def document_schema(extra: list[pa.Field], rejected: bool = False) -> pa.Schema:
    """The schema of kept (or rejected) documents with the given annotation columns."""
    return pa.schema(DOCUMENT_FIELDS + extra + (REJECTED_FIELDS if rejected else []))


def write_documents(run: RunDir, path: str, docs: list[dict], schema: pa.Schema) -> None:
    """Write ``docs`` to ``path`` atomically (temporary name, then rename), in row groups. No documents, no
    file (a folder of Parquet files then holds no empty ones, which ``datasets.load_dataset`` refuses); a
    file an earlier attempt left at ``path`` is removed."""
    if not docs:
        if run.local and run.exists(path):  # object storage: never written, since no attempt differs
            run.fs.rm(path)
        return
    with run.writer(path) as f, pq.ParquetWriter(f, schema, compression="zstd") as writer:
        for i in range(0, len(docs), ROW_GROUP):
            writer.write_table(pa.Table.from_pylist(docs[i : i + ROW_GROUP], schema=schema))


def load_documents(run: RunDir, path: str) -> list[dict]:
    """All documents of one Parquet file, as dicts; none if it was not written (no documents)."""
    try:
        with run.reader(path) as f:
            return pq.read_table(f).to_pylist()
    except FileNotFoundError:
        return []


def load_column(run: RunDir, path: str, name: str) -> list:
    """One column of a Parquet file of documents; empty if the file was not written (no documents)."""
    try:
        with run.reader(path) as f:
            return pq.read_table(f, columns=[name]).column(name).to_pylist()
    except FileNotFoundError:
        return []
