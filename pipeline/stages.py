"""Stages that run on one shard: extraction (WARC to documents) and filtering (documents to documents).

Each stage turns a shard's input into kept documents, rejected documents (with their reason) and a
:class:`~pipeline.stats.StageStats`. :func:`process_shard` runs a chain of such stages on one shard,
skipping the stages already done, and writes every output; it knows nothing of Ray, so a benchmark or a
test can call it directly.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import ClassVar

import pyarrow as pa
import pyarrow.parquet as pq

from filters import FILTERS
from filters.base import Filter
from filters.extract import HtmlExtractor
from filters.warc import ReadIssue, iter_records
from pipeline.docio import (
    DOCUMENT_FIELDS,
    REJECTED_FIELDS,
    annotation_fields,
    document_schema,
    read_documents,
    write_documents,
)
from pipeline.inputs import Shard
from pipeline.rundir import RunDir, open_input
from pipeline.schema import ConfigError, build, kind_and_name, resolve_paths
from pipeline.stats import StageStats

log = logging.getLogger("refinery")

# skips that point at damaged or unusual input: logged as warnings (the routine ones only counted)
NOTABLE_SKIPS = frozenset({"binary_payload", "payload_too_large", "html_error", "unparseable_http"})


@dataclass
class ShardContext:
    """What a stage needs besides its documents: where to write, which shard, how to treat errors."""

    run: RunDir
    shard: Shard
    on_error: str = "skip"
    max_record_bytes: int = 1 << 26


class Stage:
    """A step of a workflow applied shard by shard."""

    kind: ClassVar[str]
    name: str

    def columns(self) -> list[pa.Field]:
        """The annotation columns this stage adds to documents."""
        return []

    def run(self, ctx: ShardContext, docs: list[dict] | None) -> tuple[list[dict], list[dict], StageStats]:
        raise NotImplementedError  # pragma: no cover - interface


@dataclass
class ExtractStage(Stage):
    """WARC / WET records of the shard's byte range to documents."""

    kind: ClassVar[str] = "extract"
    name: str
    extractor: HtmlExtractor

    @classmethod
    def from_table(cls, table: dict, *, file: str, key: str) -> "ExtractStage":
        extractor = build(HtmlExtractor, table, file=file, key=key, skip=("kind", "name"))
        return cls(name=table.get("name", cls.kind), extractor=extractor)

    def run(self, ctx, docs):
        shard = ctx.shard
        stats = StageStats(self.name, self.kind, shard.id)
        kept, rejected = [], []
        with open_input(shard.path) as f:
            for item in iter_records(f, shard.start, shard.end, max_record_bytes=ctx.max_record_bytes):
                if isinstance(item, ReadIssue):
                    stats.issue(item.reason, shard.path, item.offset, item.detail)
                    log.warning("%s @%d: %s (%s)", shard.path, item.offset, item.reason, item.detail)
                    continue
                stats.records[item.type] += 1
                out = self._extract(item, shard.path, ctx)
                if out is None:
                    continue
                doc, reason = out
                stats.document_in(item.content_length, None)
                if reason is None:
                    stats.document_kept(doc["text"])
                    kept.append(doc)
                    continue
                reason = f"{self.name}.{reason}"
                doc["reason"] = reason
                stats.document_dropped(reason)
                rejected.append(doc)
                level = logging.WARNING if reason.split(".", 1)[1] in NOTABLE_SKIPS else logging.DEBUG
                log.log(level, "%s @%d: skipped %s (%s)", shard.path, item.offset, doc["url"], reason)
        return kept, rejected, stats

    def _extract(self, record, source, ctx):
        try:
            return self.extractor.extract(record, source)
        except Exception as exc:
            if ctx.on_error == "raise":
                raise
            log.exception("%s @%d: extraction failed", source, record.offset)
            stub = {
                "id": record.headers.get("warc-record-id", f"{source}@{record.offset}").strip("<>"),
                "url": record.headers.get("warc-target-uri", ""),
                "text": "",
                "source": source,
                "offset": record.offset,
                "detail": f"{type(exc).__name__}: {exc}",
            }
            return stub, "error"


@dataclass
class DocumentsStage(Stage):
    """Documents from Parquet files, one shard per file: another run's stage output (``<run>/<stage>/kept``)
    or any Parquet with ``id`` and ``text`` columns. A workflow whose inputs are Parquet starts with this
    stage (named ``input``), so a later stage (dedup, tokenize, other filters) can be rerun on a finished
    run's documents without redoing extraction. Their annotation columns are kept."""

    kind: ClassVar[str] = "documents"
    name: str
    extra: list[pa.Field]

    @classmethod
    def for_inputs(cls, first_file: str) -> "DocumentsStage":
        """The stage for inputs shaped like ``first_file`` (its columns beyond the standard ones are kept)."""
        with open_input(first_file) as f:
            schema = pq.read_schema(f)
        missing = {"id", "text"} - set(schema.names)
        if missing:
            raise ValueError(f"{first_file}: a Parquet input needs the columns id and text; missing {sorted(missing)}")
        standard = {f.name for f in DOCUMENT_FIELDS + REJECTED_FIELDS}
        return cls(name="input", extra=[f for f in schema if f.name not in standard])

    def columns(self):
        return self.extra

    def run(self, ctx, docs):
        stats = StageStats(self.name, self.kind, ctx.shard.id)
        with open_input(ctx.shard.path) as f:
            docs = pq.read_table(f).to_pylist()
        for doc in docs:
            doc.pop("reason", None)
            doc.pop("detail", None)
            stats.document_in(len(doc["text"].encode("utf-8")), len(doc["text"]))
            stats.document_kept(doc["text"])
        return docs, [], stats


@dataclass
class Step:
    """One filter inside a filter stage; ``name`` prefixes its drop reasons."""

    name: str
    filter: Filter


@dataclass
class FilterStage(Stage):
    """Filters applied in order; the first one that drops a document gives its reason."""

    kind: ClassVar[str] = "filter"
    name: str
    steps: list[Step]

    @classmethod
    def from_table(cls, table: dict, *, file: str, key: str) -> "FilterStage":
        for name in table:
            if name not in ("kind", "name", "filters"):
                raise ConfigError(file, f"{key}.{name}", "unknown key; expected one of: filters, kind, name")
        entries = table.get("filters")
        if not isinstance(entries, list) or not entries:
            raise ConfigError(file, f"{key}.filters", "expected a non-empty list of filter tables")
        steps = []
        for i, entry in enumerate(entries):
            entry_key = f"{key}.filters[{i}]"
            kind, name = kind_and_name(entry, FILTERS, file=file, key=entry_key, what="filter")
            filt = build(
                FILTERS[kind],
                resolve_paths(FILTERS[kind], entry, file),
                file=file,
                key=entry_key,
                skip=("kind", "name"),
            )
            steps.append(Step(name, filt))
        names = [s.name for s in steps]
        for i, name in enumerate(names):
            if names.index(name) != i:
                raise ConfigError(
                    file, f"{key}.filters[{i}].name", f"two filters named {name!r}; give one a different 'name'"
                )
        return cls(name=table.get("name", cls.kind), steps=steps)

    def columns(self):
        return annotation_fields([s.filter for s in self.steps])

    def run(self, ctx, docs):
        stats = StageStats(self.name, self.kind, ctx.shard.id, [s.name for s in self.steps])
        plan = [(s, stats.steps[s.name], s.filter.metrics(), s.filter.labels) for s in self.steps]
        kept, rejected = [], []
        for doc in docs:
            stats.document_in(len(doc["text"].encode("utf-8")), len(doc["text"]))
            reason = None
            for step, step_stats, metrics, labels in plan:
                step_stats["docs_in"] += 1
                rule = self._apply(step, doc, step_stats["events"], metrics, ctx)
                for metric in metrics:
                    value = doc.get(metric.name)
                    if value is not None:
                        stats.observe(metric, value)
                for label in labels:
                    stats.count_label(label, doc.get(label) or "")
                if rule is not None:
                    reason = f"{step.name}.{rule}"
                    stats.document_dropped(reason, step.name)
                    break
            if reason is None:
                stats.document_kept(doc["text"])
                kept.append(doc)
            else:
                doc["reason"] = reason
                rejected.append(doc)
        return kept, rejected, stats

    @staticmethod
    def _apply(step: Step, doc: dict, events, metrics, ctx) -> str | None:
        for metric in metrics:  # values from an earlier run of the same filter must not linger
            doc[metric.name] = None
        try:
            return step.filter.apply(doc, events)
        except Exception as exc:
            if ctx.on_error == "raise":
                raise
            log.exception("%s: filter %s failed on %s", ctx.shard.path, step.name, doc.get("id"))
            doc["detail"] = f"{type(exc).__name__}: {exc}"
            return "error"


def output_fields(stages: list[Stage]) -> list[list[pa.Field]]:
    """For each stage, the annotation columns of its outputs: those of every stage up to and including it."""
    out: list[list[pa.Field]] = []
    columns: dict[str, pa.Field] = {}
    for stage in stages:
        columns.update((f.name, f) for f in stage.columns())
        out.append(list(columns.values()))
    return out


def process_shard(
    ctx: ShardContext,
    stages: list[Stage],
    done: list[bool],
    upstream: str | None = None,
    fields: list[list[pa.Field]] | None = None,
) -> dict:
    """Run ``stages`` on one shard, skipping those marked ``done``; write kept, rejected, then stats.
    The first stage reads the kept documents of ``upstream`` (None: the first stage reads WARC input);
    ``fields`` are the output columns per stage (default: from these stages alone).

    Returns a small summary (documents in and kept per stage) for progress display.
    """
    run, shard = ctx.run, ctx.shard
    fields = fields or output_fields(stages)
    done = list(done)
    for i in range(len(stages) - 1, 0, -1):  # a stage to run needs its input: redo the stage before if it is gone
        if not done[i] and done[i - 1] and not run.exists(run.kept(stages[i - 1].name, shard.id)):
            done[i - 1] = False
    docs: list[dict] | None = None
    summary = {}
    for i, stage in enumerate(stages):
        if done[i]:
            docs = None
            continue
        source = stages[i - 1].name if i > 0 else upstream
        if docs is None and source is not None:
            docs = read_documents(run, run.kept(source, shard.id))
        started = time.perf_counter()
        kept, rejected, stats = stage.run(ctx, docs)
        stats.elapsed_s = time.perf_counter() - started
        write_documents(run, run.kept(stage.name, shard.id), kept, document_schema(fields[i]))
        write_documents(run, run.rejected(stage.name, shard.id), rejected, document_schema(fields[i], rejected=True))
        run.write_json(run.shard_stats(stage.name, shard.id), stats.to_json())
        summary[stage.name] = (stats.docs_in, stats.docs_kept)
        docs = kept
    return summary
