"""What every document filter shares: parameters as dataclass fields checked on construction, a verdict
per document, and declared annotations (numeric metrics with histogram bins, categorical labels).

A filter never counts, writes or samples anything itself: the pipeline stage that runs it does, from the
verdicts and annotations, so every filter is recorded the same way.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
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
    the rule that drops it. ``events`` counts things finer than documents (lines removed, masks applied).
    """

    kind: ClassVar[str]
    labels: ClassVar[tuple[str, ...]] = ()
    path_params: ClassVar[tuple[str, ...]] = ()  # parameters naming files: relative to the workflow file

    def metrics(self) -> tuple[Metric, ...]:
        """Numeric annotations this filter writes (columns of the output, histograms in the stats)."""
        return ()

    def apply(self, doc: Document, events: Counter) -> str | None:  # pragma: no cover - interface
        raise NotImplementedError
