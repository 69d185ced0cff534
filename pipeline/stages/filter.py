"""``filter``: the document filters of :mod:`filters` applied in order (each a ``[[stages.filters]]`` table,
its ``kind`` a key of :data:`filters.registry.FILTERS`); the first that drops a document gives its reason
``<filter name>.<rule>`` and, as its ``detail``, the filter's evidence (the metric against the threshold it
failed). The stage, not the filter, counts verdicts and records every metric's histogram.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import ClassVar

import pyarrow as pa

from filters.base import Filter
from filters.registry import FILTERS
from pipeline.schema import build, kind_and_name, resolve_paths
from pipeline.stages.base import Stage
from pipeline.stats import StageStats
from tokenizer.errors import ConfigError

log = logging.getLogger("refinery")


def annotation_fields(filters: list[Filter]) -> list[pa.Field]:
    """Columns the given filters add: their metrics (int64 or float64) and labels (strings)."""
    fields: dict[str, pa.Field] = {}
    for f in filters:
        for metric in f.metrics():
            fields[metric.name] = pa.field(metric.name, pa.int64() if metric.integer else pa.float64())
        for label in f.labels:
            fields[label] = pa.field(label, pa.string())
    return list(fields.values())


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
            table_ = resolve_paths(FILTERS[kind], entry, file)
            steps.append(Step(name, build(FILTERS[kind], table_, file=file, key=entry_key, skip=("kind", "name"))))
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
                    if doc.get(label) is not None:  # a label the filter left unset is not a value
                        stats.count_label(label, doc[label])
                if rule is not None:
                    if not doc.get("detail"):
                        doc["detail"] = step.filter.evidence(rule, doc)
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
        doc.pop("detail", None)  # nor evidence a filter left on a document it kept
        try:
            return step.filter.apply(doc, events)
        except Exception as exc:
            if ctx.on_error == "raise":
                raise
            log.exception("%s: filter %s failed on %s", ctx.shard.describe(), step.name, doc.get("id"))
            doc["detail"] = f"{type(exc).__name__}: {exc}"
            return "error"
