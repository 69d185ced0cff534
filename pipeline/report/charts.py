"""Inline SVG charts for the HTML reports: horizontal bars, histograms with a keep range, line charts and
scatter plots. Plain strings, no plotting library: a report is one self-contained file that opens offline.

Every chart is a responsive SVG (a ``viewBox``, drawn at the width of its container) with labelled axes:
ticks at 1-2-5 steps (decades, or 1-2-5 within them, on a log axis), numbers with thousands separators
and SI suffixes, ranges taken from the data, margins sized to the labels so that no text is cut off.
Tick and layout helpers live in :mod:`pipeline.report.axes`.
"""

from __future__ import annotations

import math
from html import escape

from pipeline.report.axes import (
    FONT,
    BinScale,
    Plot,
    axis_ticks,
    fit_ticks,
    format_number,
    format_value,
    legend_positions,
    linear_ticks,
    log_ticks,
    plural,
    text_width,
    tick_labels,
    truncate,
)

PALETTE = ("#3b6ea5", "#d1793b", "#4f9a5a", "#a04c8c", "#8a7a3a")
MIN_BINS = 10  # a histogram shows at least this many bins around its data (where the bins exist)


def _svg(kind: str, width: float, height: float, body: str) -> str:
    return (
        f'<svg class="chart {kind}" viewBox="0 0 {width:g} {height:g}" width="100%" '
        f'preserveAspectRatio="xMinYMin meet" role="img">{body}</svg>'
    )


def bars(items: list[tuple[str, float]], *, width: int = 1200, unit: str = "", share_of: float = 0) -> str:
    """Horizontal bars, one per (label, value) in the given order, each with its value in ``unit`` (a plural
    noun) and its share of ``share_of`` (when given) at its end."""
    if not items:
        return ""
    row = 22
    label_w = min(max(text_width(label) for label, _ in items) + 14, width * 0.4)
    values = [
        (plural(v, unit) if unit else format_value(v)) + (f" ({100 * v / share_of:.1f}%)" if share_of else "")
        for _, v in items
    ]
    value_w = max(text_width(v) for v in values) + 12
    top = max(v for _, v in items) or 1
    plot_w = width - label_w - value_w
    height = row * len(items) + 6
    out = []
    for i, ((label, value), shown) in enumerate(zip(items, values)):
        y = 3 + i * row
        w = plot_w * value / top
        out.append(
            f'<text x="{label_w - 8:.1f}" y="{y + 15}" text-anchor="end">{escape(truncate(label, label_w - 10))}'
            f"<title>{escape(label)}</title></text>"
            f'<rect x="{label_w:.1f}" y="{y + 3}" width="{w:.1f}" height="{row - 6}" fill="{PALETTE[0]}">'
            f"<title>{escape(label)}: {escape(shown)}</title></rect>"
            f'<text x="{label_w + w + 5:.1f}" y="{y + 15}">{escape(shown)}</text>'
        )
    return _svg("bars", width, height, "".join(out))


def histogram(hist: dict, *, x_label: str = "", y_label: str = "documents", width: int = 440, height: int = 250) -> str:
    """The bins of a stats histogram (``counts[0]`` below the first edge, ``counts[-1]`` at or above the
    last) over the bins its data occupies (at least :data:`MIN_BINS`, and wide enough to show the ``keep``
    range's bounds, drawn as red lines with the bins outside shaded); "" when it holds no value."""
    counts = hist["counts"]
    if not hist.get("n") or not any(counts):
        return ""
    scale = BinScale(hist["edges"])
    keep = hist.get("keep") or [None, None]
    first, last = _shown_bins(counts, scale, [b for b in keep if b is not None])
    span = last - first

    def frac(position: float) -> float:
        return (position - first) / span

    y_ticks, y_step = linear_ticks(0, max(counts[first:last]), 5, extend=True, min_step=1)
    y_top = y_ticks[-1]
    y_axis = [(t / y_top, label) for t, label in zip(y_ticks, tick_labels(y_ticks, y_step))]
    x_axis = _bin_ticks(hist, scale, first, last, width - 80)
    plot = Plot(width, height, [(frac(p), label) for p, label in x_axis], y_axis, x_label, y_label, top=FONT + 8)
    out = [plot.grid()]
    for i in range(first, last):
        if not counts[i]:
            continue
        lo, hi = scale.bin_range(i)
        outside = (keep[0] is not None and hi is not None and hi <= keep[0]) or (
            keep[1] is not None and lo is not None and lo >= keep[1]
        )
        x0, x1 = plot.x(frac(i)), plot.x(frac(i + 1))
        y = plot.y(counts[i] / y_top)
        span_text = f"[{'-∞' if lo is None else format_number(lo)}, {'∞' if hi is None else format_number(hi)})"
        out.append(
            f'<rect x="{x0 + 0.3:.1f}" y="{y:.1f}" width="{max(x1 - x0 - 0.6, 0.6):.1f}" '
            f'height="{plot.bottom - y:.1f}" '
            f'fill="{PALETTE[1] if outside else PALETTE[0]}"><title>{span_text}: {counts[i]:,}</title></rect>'
        )
    out.append(plot.axes())
    out += _thresholds(plot, [(frac(scale.position(b)), b) for b in keep if b is not None])
    return _svg("histogram", width, height, "".join(out))


def _shown_bins(counts: list[int], scale: BinScale, bounds: list[float]) -> tuple[int, int]:
    """The bins to draw, ``[first, last)``: those the data occupies, widened to hold the bounds and to
    :data:`MIN_BINS` where bins exist (the underflow and overflow bins only when they hold data)."""
    occupied = [i for i, c in enumerate(counts) if c]
    first, last = occupied[0], occupied[-1] + 1
    low_end, high_end = (0 if counts[0] else 1), (len(counts) if counts[-1] else len(counts) - 1)
    for bound in bounds:
        position = scale.position(bound)
        first, last = min(first, math.floor(position - 0.5)), max(last, math.ceil(position + 0.5))
    first, last = max(first, low_end), min(last, high_end)
    while last - first < MIN_BINS and (first > low_end or last < high_end):
        if first > low_end:
            first -= 1
        if last < high_end and last - first < MIN_BINS:
            last += 1
    return first, last


def _bin_ticks(hist: dict, scale: BinScale, first: int, last: int, plot_w: float) -> list[tuple[float, str]]:
    """(bin position, label) of the x ticks: nice values inside the edges, and the underflow and overflow
    bins labelled by their bound when shown."""
    edges = scale.edges
    lo, hi = scale.value(max(first, 1)), scale.value(min(last, len(edges)))

    def make(count: int) -> list[tuple[float, str]]:
        if scale.log:
            ticks = [(v, format_number(v, 1e3)) for v in log_ticks(lo, hi, count)]
        else:
            values, step = linear_ticks(lo, hi, count)
            ticks = list(zip(values, tick_labels(values, step)))
        return [(scale.position(v), label) for v, label in ticks]

    ticks = fit_ticks(make, plot_w * (min(last, len(edges)) - max(first, 1)) / (last - first))
    if first == 0:
        zeros_only = hist.get("zeros") == hist["counts"][0] and edges[0] > 0
        ticks.insert(0, (0.5, "0" if zeros_only else f"<{format_number(edges[0])}"))
    if last == len(edges) + 1:
        ticks.append((last - 0.5, f"≥{format_number(edges[-1])}"))
    return _spaced(ticks, plot_w / (last - first))


def _spaced(ticks: list[tuple[float, str]], px_per_bin: float) -> list[tuple[float, str]]:
    """Ticks whose labels do not overlap the label before them (the underflow label wins over its neighbour)."""
    out: list[tuple[float, str]] = []
    for position, label in sorted(ticks):
        if out:
            gap = (position - out[-1][0]) * px_per_bin
            if gap < (text_width(label) + text_width(out[-1][1])) / 2 + 8:
                continue
        out.append((position, label))
    return out


def _thresholds(plot: Plot, lines: list[tuple[float, float]]) -> list[str]:
    """Red lines at the keep range's bounds, each labelled with its value above the plot."""
    out = []
    for frac_x, value in lines:
        x = plot.x(frac_x)
        label = format_number(value)
        if x + text_width(label) + 3 <= plot.width - 2:
            anchor, tx = "start", x + 3
        else:
            anchor, tx = "end", x - 3
        out.append(
            f'<line class="threshold" x1="{x:.1f}" y1="{plot.top - 4}" x2="{x:.1f}" y2="{plot.bottom}" '
            f'stroke="#c0392b" stroke-width="1.5" stroke-dasharray="4 2"/>'
            f'<text class="threshold-label" x="{tx:.1f}" y="{plot.top - 6}" text-anchor="{anchor}" '
            f'fill="#c0392b">{escape(label)}</text>'
        )
    return out


def lines(
    series: dict[str, list[tuple[float, float]]],
    *,
    width: int = 640,
    height: int = 260,
    log_x: bool = False,
    log_y: bool = False,
    x_label: str = "",
    y_label: str = "",
) -> str:
    """Line chart of named (x, y) series on shared axes, with a legend; points with a None y are skipped."""
    return scatter({}, series, width=width, height=height, log_x=log_x, log_y=log_y, x_label=x_label, y_label=y_label)


def scatter(
    points: dict[str, list[tuple]],
    curves: dict[str, list[tuple[float, float]]] | None = None,
    *,
    width: int = 640,
    height: int = 280,
    log_x: bool = False,
    log_y: bool = False,
    x_label: str = "",
    y_label: str = "",
) -> str:
    """Points of named series, each (x, y) or (x, y, label) with the label as its tooltip, and optional
    named curves of (x, y) on the same axes; a curve named like a point series takes its colour. Either
    axis can be logarithmic (points with a value <= 0 there are left out)."""

    def shown(p) -> bool:
        return all(
            v is not None and math.isfinite(v) and (not log or v > 0) for v, log in ((p[0], log_x), (p[1], log_y))
        )

    dots = {name: [p for p in pts if shown(p)] for name, pts in points.items()}
    paths = {name: [p for p in pts if shown(p)] for name, pts in (curves or {}).items()}
    everything = [p for pts in [*dots.values(), *paths.values()] for p in pts]
    if not everything:
        return ""
    names = list(dict.fromkeys([*dots, *paths]))
    show_legend = len(names) > 1 or bool(dots) or not y_label
    legend = legend_positions(names, 10, width - 10)
    top = legend[-1][1] + 12 if show_legend else 10
    x_axis = axis_ticks([p[0] for p in everything], log_x, width - 90)
    y_axis = axis_ticks([p[1] for p in everything], log_y, height - top - 50, vertical=True)
    plot = Plot(width, height, x_axis.ticks, y_axis.ticks, x_label, y_label, top=top)

    def xy(p) -> tuple[float, float]:
        return plot.x(x_axis.frac(p[0])), plot.y(y_axis.frac(p[1]))

    out = [plot.grid()]
    for i, name in enumerate(names):
        color = PALETTE[i % len(PALETTE)]
        if paths.get(name):
            d = " ".join(f"{'M' if j == 0 else 'L'}{x:.1f},{y:.1f}" for j, (x, y) in enumerate(map(xy, paths[name])))
            out.append(f'<path d="{d}" fill="none" stroke="{color}" stroke-width="1.6"/>')
        for p in dots.get(name, []):
            tip = escape(str(p[2])) if len(p) > 2 else f"{format_number(p[0])}, {format_number(p[1])}"
            x, y = xy(p)
            out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.2" fill="{color}"><title>{tip}</title></circle>')
        if show_legend:
            lx, ly = legend[i]
            out.append(
                f'<rect x="{lx}" y="{ly - 9}" width="10" height="10" fill="{color}"/>'
                f'<text x="{lx + 14}" y="{ly}">{escape(name)}</text>'
            )
    out.append(plot.axes())
    return _svg("xy", width, height, "".join(out))
