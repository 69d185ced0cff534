"""Statistics of one stage on one shard, as plain JSON, and their exact merge across shards.

Histograms have fixed bin edges (declared by each filter), so merging shard histograms is a sum: the
merged numbers are the same whatever the number of shards or workers.
"""

from __future__ import annotations

import bisect
from collections import Counter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # only the type: reading a run's statistics loads no filter code
    from filters.base import Metric

LENGTH_BINS = tuple(round(10 ** (7 * i / 35), 6) for i in range(36))  # characters: 1 to 1e7, 35 log bins
MAX_ISSUE_SAMPLES = 20


class Histogram:
    """Counts over fixed ``edges``: ``counts[0]`` is below the first edge, ``counts[-1]`` at or above the last."""

    def __init__(self, edges: tuple[float, ...] | list[float], keep: tuple | None = None):
        self.edges = list(edges)
        self.keep = list(keep) if keep and any(v is not None for v in keep) else None
        self.counts = [0] * (len(self.edges) + 1)
        self.n = 0
        self.zeros = 0  # exact zeros are common (no hashes, no e-mails): counted apart, for honest quantiles
        self.sum = 0.0
        self.min: float | None = None
        self.max: float | None = None

    def add(self, value: float) -> None:
        self.counts[bisect.bisect_right(self.edges, value)] += 1
        self.n += 1
        self.zeros += value == 0
        self.sum += value
        self.min = value if self.min is None or value < self.min else self.min
        self.max = value if self.max is None or value > self.max else self.max

    def to_json(self) -> dict:
        return {
            "edges": self.edges,
            "counts": self.counts,
            "n": self.n,
            "zeros": self.zeros,
            "sum": self.sum,
            "min": self.min,
            "max": self.max,
            **({"keep": self.keep} if self.keep else {}),
        }


class StageStats:
    """Counters of one stage on one shard: the funnel, per-step drops and events, histograms, labels."""

    def __init__(self, stage: str, kind: str, shard: str, steps: list[str] = ()):
        self.stage, self.kind, self.shard = stage, kind, shard
        self.docs_in = self.bytes_in = self.docs_kept = self.bytes_kept = 0
        self.dropped: Counter = Counter()
        self.steps = {name: {"docs_in": 0, "dropped": Counter(), "events": Counter()} for name in steps}
        self.histograms: dict[str, Histogram] = {
            "text_chars_in": Histogram(LENGTH_BINS),
            "text_chars_kept": Histogram(LENGTH_BINS),
        }
        self.labels: dict[str, Counter] = {}
        self.records: Counter = Counter()
        self.events: Counter = Counter()  # stage-level counts finer than documents (lines removed...)
        self.read_issues: Counter = Counter()
        self.issue_samples: list[dict] = []
        self.elapsed_s = 0.0

    def document_in(self, size_bytes: int, chars: int | None) -> None:
        self.docs_in += 1
        self.bytes_in += size_bytes
        if chars is not None:
            self.histograms["text_chars_in"].add(chars)

    def document_kept(self, text: str) -> None:
        self.docs_kept += 1
        self.bytes_kept += len(text.encode("utf-8"))
        self.histograms["text_chars_kept"].add(len(text))

    def document_dropped(self, reason: str, step: str | None = None) -> None:
        self.dropped[reason] += 1
        if step is not None:
            self.steps[step]["dropped"][reason] += 1

    def route(self, doc: dict, stage: str, reason: str | None, kept: list, rejected: list) -> None:
        """Count ``doc`` and put it in ``kept`` (``reason`` None) or, its reason ``<stage>.<reason>``, in
        ``rejected``."""
        if reason is None:
            self.document_kept(doc["text"])
            kept.append(doc)
        else:
            doc["reason"] = f"{stage}.{reason}"
            self.document_dropped(doc["reason"])
            rejected.append(doc)

    def observe(self, metric: Metric, value: float) -> None:
        hist = self.histograms.get(metric.name)
        if hist is None:
            hist = self.histograms[metric.name] = Histogram(metric.edges, metric.keep)
        hist.add(value)

    def count_label(self, name: str, value: str) -> None:
        self.labels.setdefault(name, Counter())[value] += 1

    def issue(self, reason: str, source: str, offset: int, detail: str) -> None:
        self.read_issues[reason] += 1
        if len(self.issue_samples) < MAX_ISSUE_SAMPLES:
            self.issue_samples.append({"reason": reason, "source": source, "offset": offset, "detail": detail})

    def to_json(self) -> dict:
        return {
            "stage": self.stage,
            "kind": self.kind,
            "shards": [self.shard],
            "docs_in": self.docs_in,
            "bytes_in": self.bytes_in,
            "docs_kept": self.docs_kept,
            "bytes_kept": self.bytes_kept,
            "dropped": dict(self.dropped),
            "steps": [
                {"name": k, "docs_in": v["docs_in"], "dropped": dict(v["dropped"]), "events": dict(v["events"])}
                for k, v in self.steps.items()
            ],
            "histograms": {k: h.to_json() for k, h in self.histograms.items()},
            "labels": {k: dict(c) for k, c in self.labels.items()},
            "records": dict(self.records),
            "events": dict(self.events),
            "read_issues": dict(self.read_issues),
            "issue_samples": self.issue_samples,
            "elapsed_s": self.elapsed_s,
        }


def merge(parts: list[dict]) -> dict:
    """Merge the shard statistics of one stage; shards are listed, counters and histograms summed."""
    if not parts:
        raise ValueError("nothing to merge")
    parts = sorted(parts, key=lambda p: p["shards"])
    out: dict[str, Any] = {"stage": parts[0]["stage"], "kind": parts[0]["kind"], "shards": []}
    for key in ("docs_in", "bytes_in", "docs_kept", "bytes_kept", "elapsed_s"):
        out[key] = sum(p[key] for p in parts)
    for key in ("dropped", "records", "events", "read_issues"):
        out[key] = _sum_counters(p.get(key, {}) for p in parts)
    out["shards"] = [s for p in parts for s in p["shards"]]
    steps: dict[str, dict] = {}  # in pipeline order
    for p in parts:
        for step in p["steps"]:
            acc = steps.setdefault(step["name"], {"name": step["name"], "docs_in": 0, "dropped": {}, "events": {}})
            acc["docs_in"] += step["docs_in"]
            acc["dropped"] = _sum_counters([acc["dropped"], step["dropped"]])
            acc["events"] = _sum_counters([acc["events"], step["events"]])
    out["steps"] = list(steps.values())
    out["histograms"] = {}
    for p in parts:
        for name, h in p["histograms"].items():
            acc = out["histograms"].get(name)
            out["histograms"][name] = dict(h) if acc is None else _merge_histograms(acc, h)
    out["labels"] = {}
    for p in parts:
        for name, counts in p["labels"].items():
            out["labels"][name] = _sum_counters([out["labels"].get(name, {}), counts])
    out["issue_samples"] = [s for p in parts for s in p["issue_samples"]][:MAX_ISSUE_SAMPLES]
    return out


def _sum_counters(counters) -> dict:
    total: Counter = Counter()
    for c in counters:
        total.update(c)
    return dict(sorted(total.items()))


def _merge_histograms(a: dict, b: dict) -> dict:
    if a["edges"] != b["edges"]:
        raise ValueError("cannot merge histograms with different bin edges")
    mins = [v for v in (a["min"], b["min"]) if v is not None]
    maxs = [v for v in (a["max"], b["max"]) if v is not None]
    return {
        "edges": a["edges"],
        "counts": [x + y for x, y in zip(a["counts"], b["counts"])],
        "n": a["n"] + b["n"],
        "zeros": a["zeros"] + b["zeros"],
        "sum": a["sum"] + b["sum"],
        "min": min(mins) if mins else None,
        "max": max(maxs) if maxs else None,
        **({"keep": a["keep"]} if "keep" in a else {}),
    }
