"""The first stage of a workflow whose inputs are documents rather than WARC files: Parquet (another run's
``<run>/<stage>/kept`` output, or any Parquet with ``id`` and ``text``), JSONL lines with a ``text`` field,
or plain text files, one shard per file, read by :mod:`pipeline.reader`. A later stage (dedup, tokenize,
other filters) can so be rerun on a finished run's documents without redoing extraction; Parquet
annotation columns are kept."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import ClassVar

import pyarrow as pa
import pyarrow.parquet as pq

from filters.warc import ReadIssue
from pipeline.documents import DOCUMENT_FIELDS, REJECTED_FIELDS
from pipeline.reader import file_format, open_input, read_items
from pipeline.stages.base import Stage
from pipeline.stats import StageStats

log = logging.getLogger("refinery")


@dataclass
class DocumentsStage(Stage):
    """Documents from Parquet, JSONL or text files, one shard per file; named ``input`` in a workflow."""

    kind: ClassVar[str] = "documents"
    name: str
    extra: list[pa.Field]

    @classmethod
    def for_inputs(cls, paths: list[str]) -> "DocumentsStage":
        """The stage for these input files: the columns of the first Parquet file beyond the standard ones
        are kept (JSONL and text documents have none)."""
        extra: list[pa.Field] = []
        first = next((p for p in paths if file_format(p) == "parquet"), None)
        if first is not None:
            with open_input(first) as f:
                schema = pq.read_schema(f)
            missing = {"id", "text"} - set(schema.names)
            if missing:
                raise ValueError(f"{first}: a Parquet input needs the columns id and text; missing {sorted(missing)}")
            standard = {f.name for f in DOCUMENT_FIELDS + REJECTED_FIELDS}
            extra = [f for f in schema if f.name not in standard]
        return cls(name="input", extra=extra)

    def columns(self):
        return self.extra

    def run(self, ctx, docs):
        stats = StageStats(self.name, self.kind, ctx.shard.id)
        kept, rejected = [], []
        for path, _, _ in ctx.shard.parts():
            self._read(ctx, path, stats, kept, rejected)
        return kept, rejected, stats

    def _read(self, ctx, path, stats, kept, rejected) -> None:
        for item in read_items(path, max_document_bytes=ctx.max_document_bytes):
            if isinstance(item, ReadIssue):
                stats.issue(item.reason, path, item.offset, item.detail)
                log.warning("%s @%d: %s (%s)", path, item.offset, item.reason, item.detail)
                continue
            doc = item.doc
            doc.pop("reason", None)
            if item.reason is None:
                doc.pop("detail", None)
            stats.document_in(item.size, len(doc["text"]))
            stats.route(doc, self.name, item.reason, kept, rejected)
            if item.reason is not None:
                log.warning("%s: skipped %s (%s)", path, doc.get("id"), doc.get("detail"))
