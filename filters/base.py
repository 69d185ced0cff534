"""What every document filter shares: parameters as dataclass fields checked on construction, a verdict
per document, and declared annotations (numeric metrics with histogram bins, categorical labels).

A filter never counts, writes or samples anything itself: the pipeline stage that runs it does, from the
verdicts and annotations, so every filter is recorded the same way.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, fields, is_dataclass
from typing import ClassVar

Document = dict


@dataclass(frozen=True)
class Metric:
    """A numeric annotation written on documents, with the histogram bin edges its statistics use and the
    range a document must be in to pass the rule on it (``keep``: low and high bound, None for open; for
    reports, which mark the thresholds on the histograms)."""

    name: str
    edges: tuple[float, ...]
    integer: bool = False
    keep: tuple[float | None, float | None] = (None, None)


def linear_bins(lo: float, hi: float, n: int) -> tuple[float, ...]:
    """``n`` equal bins from ``lo`` to ``hi`` (``n + 1`` edges)."""
    return tuple(round(lo + (hi - lo) * i / n, 10) for i in range(n + 1))


def log_bins(lo: float, hi: float, n: int) -> tuple[float, ...]:
    """``n`` logarithmically spaced bins from ``lo`` to ``hi``."""
    a, b = math.log10(lo), math.log10(hi)
    return tuple(round(10 ** (a + (b - a) * i / n), 6) for i in range(n + 1))


RATIO_BINS = linear_bins(0.0, 1.0, 50)


class Filter:
    """Base class of document filters.

    Subclasses are ``@dataclass(kw_only=True)``; their fields are the parameters a workflow file may set.
    ``apply`` annotates the document (and may rewrite its text) and returns None to keep it or the name of
    the rule that drops it; it may put its own evidence in ``doc["detail"]`` (the most toxic line), else the
    stage records :meth:`evidence`. ``events`` counts things finer than documents (lines removed, masks).
    """

    kind: ClassVar[str]
    labels: ClassVar[tuple[str, ...]] = ()
    path_params: ClassVar[tuple[str, ...]] = ()  # parameters naming files: relative to the workflow file

    def metrics(self) -> tuple[Metric, ...]:
        """Numeric annotations this filter writes (columns of the output, histograms in the stats)."""
        return ()

    def rule_metrics(self) -> dict[str, tuple[str, str]]:
        """For each rule that drops a document whose metric is outside its ``keep`` range: (metric name,
        parameter holding the bound). Not needed by a filter whose one bounded metric all its rules check."""
        return {}

    def apply(self, doc: Document, events: Counter) -> str | None:  # pragma: no cover - interface
        raise NotImplementedError

    def evidence(self, rule: str, doc: Document) -> str | None:
        """Why ``rule`` dropped ``doc``: its metric's value against the bound of the ``keep`` range it
        failed, e.g. ``gopher_alpha_words_ratio = 0.42 < 0.8 (min_alpha_words_ratio)``; with no bound
        failed, the filter's labels and that value (``language = fr, language_score = 0.93``); None for a
        rule that checks no metric."""
        metrics = {m.name: m for m in self.metrics()}
        name, param = self.rule_metrics().get(rule, ("", ""))
        if not name:
            bounded = [m.name for m in metrics.values() if m.keep != (None, None)]
            name = bounded[0] if len(bounded) == 1 else ""
        value = doc.get(name) if name in metrics else None
        if value is None:
            return None
        shown = f"{name} = {_number(value)}"
        lo, hi = metrics[name].keep
        if lo is not None and value <= lo:
            bound, comparison = lo, "<" if value < lo else "≤"
        elif hi is not None and value >= hi:
            bound, comparison = hi, ">" if value > hi else "≥"
        else:
            return ", ".join([*(f"{label} = {doc.get(label)}" for label in self.labels), shown])
        param = param or self._parameter_holding(bound)
        return f"{shown} {comparison} {_number(bound)}" + (f" ({param})" if param else "")

    def _parameter_holding(self, bound: float) -> str:
        """The one numeric parameter whose value is ``bound`` ("" when none or several)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)} if is_dataclass(self) else {}
        names = [name for name, value in values.items() if type(value) in (int, float) and value == bound]
        return names[0] if len(names) == 1 else ""


def _number(value: float) -> str:
    return f"{value:,}" if isinstance(value, int) else f"{value:.4g}"
