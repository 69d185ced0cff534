"""``extract``: the records of a WARC / WET shard (a byte range of a file) to documents, through the reader
(:mod:`pipeline.reader`) and resiliparse; every record that does not become a document is counted with
its reason, and unreadable bytes as read issues."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import ClassVar

from filters.extract import HtmlExtractor
from filters.warc import ReadIssue
from pipeline.reader import read_items
from pipeline.schema import build
from pipeline.stages.base import Stage
from pipeline.stats import StageStats

log = logging.getLogger("refinery")

# skips that point at damaged or unusual input: logged as warnings (the routine ones only counted)
NOTABLE_SKIPS = frozenset(
    {
        "document_too_large",
        "binary_payload",
        "payload_too_large",
        "html_error",
        "unparseable_http",
        "nesting_too_deep",
        "extract_timeout",
        "error",
    }
)


@dataclass
class ExtractStage(Stage):
    """WARC / WET records of the shard's byte range (and of the small files read with it) to documents."""

    kind: ClassVar[str] = "extract"
    name: str
    extractor: HtmlExtractor

    @classmethod
    def from_table(cls, table: dict, *, file: str, key: str) -> "ExtractStage":
        extractor = build(HtmlExtractor, table, file=file, key=key, skip=("kind", "name"))
        return cls(name=table.get("name", cls.kind), extractor=extractor)

    def run(self, ctx, docs):
        stats = StageStats(self.name, self.kind, ctx.shard.id)
        kept, rejected = [], []
        for path, start, end in ctx.shard.parts():
            self._read(ctx, path, start, end, stats, kept, rejected)
        return kept, rejected, stats

    def _read(self, ctx, path, start, end, stats, kept, rejected) -> None:
        items = read_items(
            path,
            start,
            end,
            extractor=self.extractor,
            max_record_bytes=ctx.max_record_bytes,
            max_document_bytes=ctx.max_document_bytes,
            on_error=ctx.on_error,
        )
        for item in items:
            if isinstance(item, ReadIssue):
                stats.issue(item.reason, path, item.offset, item.detail)
                log.warning("%s @%d: %s (%s)", path, item.offset, item.reason, item.detail)
                continue
            stats.records[item.record_type] += 1
            if item.doc is None:
                continue
            doc = item.doc
            stats.document_in(item.size, None)
            stats.route(doc, self.name, item.reason, kept, rejected)
            if item.reason is None:
                continue
            level = logging.WARNING if item.reason in NOTABLE_SKIPS else logging.DEBUG
            log.log(level, "%s @%d: skipped %s (%s)", path, doc["offset"], doc["url"], doc["reason"])
