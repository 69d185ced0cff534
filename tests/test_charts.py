"""The report's SVG charts: 1-2-5 ticks with readable labels, and histogram axes that span the bins holding
data (and the thresholds), not the whole range of the bins."""

from __future__ import annotations

import re

from filters.base import RATIO_BINS, log_bins
from pipeline.report import charts
from pipeline.report.axes import format_number, linear_ticks, log_ticks, tick_labels
from pipeline.stats import Histogram


def test_ticks_are_1_2_5_steps_with_separators_and_si_suffixes():
    assert linear_ticks(0, 913, 5, extend=True) == ([0, 200, 400, 600, 800, 1000], 200)
    assert linear_ticks(0.46, 0.74, 5) == ([0.5, 0.6, 0.7], 0.1)
    assert linear_ticks(0, 3, 5, extend=True, min_step=1) == ([0, 1, 2, 3], 1)  # counts: no 0.5 documents
    assert log_ticks(2, 1e6) == [10, 100, 1e3, 1e4, 1e5, 1e6]
    assert log_ticks(50, 2000) == [50, 100, 200, 500, 1000, 2000]
    assert log_ticks(1.95e8, 9.99e8) == [2e8, 5e8]  # inside one decade: its 1-2-5 values
    assert tick_labels([0, 200_000, 400_000, 1_000_000], 200_000) == ["0", "0.2M", "0.4M", "1.0M"]
    assert tick_labels([0, 2000, 4000], 2000) == ["0", "2,000", "4,000"]
    assert tick_labels([0.46, 0.48, 0.5], 0.02) == ["0.46", "0.48", "0.50"]
    shown = [format_number(v) for v in (0.65, 1250, 25_000, 1.5e6, 3e-5, 1e18, 0)]
    assert shown == ["0.65", "1,250", "25k", "1.5M", "3e-5", "1e18", "0"]


def histogram(edges, values, keep=None) -> dict:
    hist = Histogram(edges, keep)
    for v in values:
        hist.add(v)
    return hist.to_json()


def x_labels(svg: str) -> list[str]:
    axis = re.search(r'<g class="axis x">(.*?)</g>', svg).group(1)
    return re.findall(r">([^<]+)</text>", axis)


def value(label: str) -> float:
    scale = {"k": 1e3, "M": 1e6, "G": 1e9}.get(label[-1], 1)
    return float(label.rstrip("kMG").replace(",", "")) * scale


def test_a_histogram_axis_spans_the_bins_that_hold_data():
    clusters = histogram(log_bins(2, 1e6, 30), [2] * 7 + [3])  # duplicate clusters of 2 and 3 documents
    labels = x_labels(charts.histogram(clusters, x_label="documents per cluster", y_label="clusters"))
    assert labels[0] == "2" and max(map(value, labels)) <= 100  # not an axis to a million
    ratios = histogram(RATIO_BINS, [0.001 * i for i in range(20)])  # all below 0.02 of a 0-1 range
    svg = charts.histogram(ratios, x_label="fraction")
    assert max(map(value, x_labels(svg))) <= 0.2
    assert "documents</text>" in svg and "fraction</text>" in svg  # both axes are titled
    y_axis = re.search(r'<g class="axis y">(.*?)</g>', svg).group(1)
    assert re.findall(r">([^<]+)</text>", y_axis)[-1] == "20"  # the count axis ends at a tick above the top bin


def test_a_threshold_far_from_the_data_stays_in_view():
    hist = histogram(RATIO_BINS, [0.8 + 0.005 * i for i in range(20)], keep=(None, 0.1))
    svg = charts.histogram(hist)
    x = float(re.search(r'<line class="threshold" x1="([\d.]+)"', svg).group(1))
    ticks = re.findall(r'<text x="([\d.]+)"[^>]*>([^<]+)</text>', re.search(r'class="axis x">(.*?)</g>', svg).group(1))
    first_x, first = float(ticks[0][0]), value(ticks[0][1])
    assert 0 < x < first_x and first <= 0.2 and value(ticks[-1][1]) >= 0.8  # the axis runs from the line to the data
    assert '<text class="threshold-label"' in svg and ">0.1</text>" in svg
    assert svg.count('fill="#d1793b"') == 5 and 'fill="#3b6ea5"' not in svg  # 0.80-0.90: all above the bound


def test_empty_data_draws_no_chart_and_zero_bars_draw_no_bar():
    assert charts.histogram(histogram(RATIO_BINS, [])) == ""
    assert charts.lines({"loss": []}) == ""
    svg = charts.bars([("documents read", 0), ("after extract", 0)], unit="docs")
    assert "0 docs</text>" in svg and 'width="0.0"' in svg
