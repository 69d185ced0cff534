"""Shard statistics: histograms, quantiles, and a merge that equals computing on everything at once."""

from __future__ import annotations

import random

from filters.base import RATIO_BINS, Metric
from pipeline.report.funnel import histogram_quantile, render_funnel
from pipeline.stats import Histogram, StageStats, merge


def test_histogram_quantiles():
    h = Histogram([0.0, 0.25, 0.5, 0.75, 1.0])
    for v in [0, 0, 0, 0, 0.1, 0.2, 0.3, 0.6, 0.9, 1.0]:
        h.add(v)
    data = h.to_json()
    assert data["zeros"] == 4 and data["counts"] == [0, 6, 1, 1, 1, 1]
    assert histogram_quantile(data, 0.3) == 0.0
    assert 0 < histogram_quantile(data, 0.5) <= 0.25
    assert 0.5 <= histogram_quantile(data, 0.8) <= 0.75
    assert histogram_quantile(data, 1.0) == 1.0


def test_merging_shards_equals_one_shard_with_everything():
    rng = random.Random(1)
    metric = Metric("score", RATIO_BINS)
    events = [(rng.random(), rng.choice(["a.x", "a.y", None]), rng.choice(["en", "de"])) for _ in range(1000)]

    def stats_of(shard, items):
        s = StageStats("st", "filter", shard, ["a"])
        for value, reason, lang in items:
            s.document_in(10, 5)
            s.steps["a"]["docs_in"] += 1
            s.observe(metric, value)
            s.count_label("language", lang)
            if reason:
                s.document_dropped(reason, "a")
            else:
                s.document_kept("hello")
        return s.to_json()

    whole = merge([stats_of("0", events)])
    parts = merge([stats_of(str(i), events[i::7]) for i in range(7)])
    for key in ("docs_in", "bytes_in", "docs_kept", "bytes_kept", "dropped", "steps", "labels"):
        assert parts[key] == whole[key], key
    for name in whole["histograms"]:
        a, b = parts["histograms"][name], whole["histograms"][name]
        assert (a["counts"], a["n"], a["zeros"], a["min"], a["max"]) == (
            b["counts"],
            b["n"],
            b["zeros"],
            b["min"],
            b["max"],
        )
        assert abs(a["sum"] - b["sum"]) < 1e-9


def test_the_funnel_of_stages_that_saw_no_document():
    """A filter stage that received nothing (empty histograms) and a stage no shard has finished yet."""
    empty = merge([StageStats("quality", "filter", "000000-0000", ["language"]).to_json()])
    empty["shards_done"] = len(empty.pop("shards"))
    assert all(h["n"] == 0 and h["min"] is None for h in empty["histograms"].values())
    waiting = {"stage": "exact_dedup", "kind": "exact_dedup", "shards_done": 0}
    stats = {"run": {"name": "r", "inputs": 1, "shards": 1, "complete": False}, "stages": [empty, waiting]}
    text = render_funnel(stats)
    assert "language: in 0, dropped" in text and "exact_dedup (exact_dedup, 0/1 shards" in text
    assert "metric" not in text  # no quantiles of empty histograms
