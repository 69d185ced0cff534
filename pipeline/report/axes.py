"""Axes for the report's SVG charts: nice ticks (1-2-5 steps; decades on a log axis), number labels with
thousands separators and SI suffixes, text widths for layout, the bin scale of a stats histogram, and a
plot frame whose margins fit its labels."""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape

FONT = 11  # px, the charts' font size (the report's CSS sets it)
_NARROW, _WIDE = set("iljtfr.,:;'!|()[] -/"), set("mwMW@%=+<>≤≥~…")
_SI = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))
SI_FROM = 1e4  # numbers from here on get an SI suffix (10k, 2.5M); below, thousands separators (5,000)


def text_width(text: str) -> float:
    """A generous estimate of ``text``'s width in px at :data:`FONT` (DejaVu Sans, the widest common
    sans-serif: digits are 7 px, ``=`` 9.2 px), for sizing margins and columns."""
    return sum(4.4 if c in _NARROW else 10.8 if c in _WIDE else 7.8 if c.isupper() else 7.0 for c in text)


def truncate(text: str, width: float) -> str:
    """``text`` cut with an ellipsis to fit ``width`` px."""
    if text_width(text) <= width:
        return text
    while text and text_width(text + "…") > width:
        text = text[:-1]
    return text + "…"


def _decimals(step: float) -> int:
    return max(0, -math.floor(math.log10(step) + 1e-9))


def _strip(text: str) -> str:
    return text.rstrip("0").rstrip(".") if "." in text else text


def format_number(v: float, si_from: float = SI_FROM) -> str:
    """A value label to 3 significant digits: ``0.65``, ``1,250``, ``25k``, ``1.5M``, ``3e-5``, ``1e18``;
    SI suffixes from ``si_from`` on."""
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1e15 or a < 1e-3:
        mantissa, exponent = f"{v:.2e}".split("e")
        return f"{_strip(mantissa)}e{int(exponent)}"
    if a >= si_from:
        div, suffix = next((d, s) for d, s in _SI if a >= d)
        return _strip(f"{v / div:.{max(0, 2 - math.floor(math.log10(a / div)))}f}") + suffix
    return _strip(f"{v:,.{max(0, 2 - math.floor(math.log10(a)))}f}")


def plural(n: float, noun: str) -> str:
    """``n`` and ``noun`` (a plural ending in s), singular for one: ``1 document``, ``2,000 documents``."""
    return f"{format_value(n)} {noun[:-1] if n == 1 and noun.endswith('s') else noun}"


def format_value(v: float) -> str:
    """A count exactly, with thousands separators (``12,345``); other numbers as :func:`format_number`."""
    if isinstance(v, int) or float(v).is_integer() and abs(v) < 1e15:
        return f"{int(v):,}"
    return format_number(v)


def tick_labels(ticks: list[float], step: float) -> list[str]:
    """Labels of evenly spaced ticks, all with the decimals ``step`` needs and one SI suffix chosen by the
    largest tick (``0, 0.5M, 1.0M``), or thousands separators below :data:`SI_FROM`."""
    largest = max((abs(t) for t in ticks), default=0)
    if largest >= 1e15 or 0 < largest < 1e-3:
        return [format_number(t) for t in ticks]
    div, suffix = next(((d, s) for d, s in _SI if largest >= max(d, SI_FROM)), (1.0, ""))
    decimals = _decimals(step / div)
    return ["0" if t == 0 else f"{t / div:,.{decimals}f}{suffix}" for t in ticks]


def nice_step(span: float, count: int) -> float:
    """The step of 1, 2 or 5 times a power of ten that cuts ``span`` into at most about ``count`` parts."""
    raw = span / max(count, 1)
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw * (1 - 1e-9))


def linear_ticks(
    lo: float, hi: float, count: int = 5, extend: bool = False, min_step: float = 0
) -> tuple[list[float], float]:
    """Ticks at multiples of a 1-2-5 step (at least ``min_step``: 1 for counts) inside ``[lo, hi]`` (or
    covering it, ``extend``), and the step."""
    if hi <= lo:
        hi = lo + (abs(lo) or 1)
    step = max(nice_step(hi - lo, count), min_step)
    first = math.floor(lo / step + 1e-9) if extend else math.ceil(lo / step - 1e-9)
    last = math.ceil(hi / step - 1e-9) if extend else math.floor(hi / step + 1e-9)
    return [float(f"{i * step:.12g}") for i in range(first, last + 1)], step


def log_ticks(lo: float, hi: float, count: int = 6) -> list[float]:
    """Ticks of a log axis over ``[lo, hi]`` (both > 0): every decade (or every k-th when there are many),
    1-2-5 within decades when few decades show, or linear ticks inside a single decade."""
    a, b = math.floor(math.log10(lo) + 1e-9), math.ceil(math.log10(hi) - 1e-9)

    def inside(mults) -> list[float]:
        values = (float(f"{m * 10.0**e:.12g}") for e in range(a, b + 1) for m in mults)
        return [v for v in values if lo * (1 - 1e-9) <= v <= hi * (1 + 1e-9)]

    decades = inside((1,))
    if len(decades) > count:
        every = math.ceil(len(decades) / count)
        return [v for v in decades if round(math.log10(v)) % every == 0]
    if len(decades) >= 3:
        return decades
    finer = inside((1, 2, 5))
    if 2 <= len(finer) <= count + 1:
        return finer
    if len(decades) >= 2:
        return decades
    ticks = linear_ticks(lo, hi, min(count, 4))[0]
    return ticks if len(ticks) >= 2 else linear_ticks(lo, hi, 8)[0]


def fit_ticks(make, width: float, most: int = 8) -> list[tuple[float, str]]:
    """``make(count)``'s ticks for the largest count up to ``most`` whose labels fit side by side in ``width``."""
    for count in range(most, 1, -1):
        ticks = make(count)
        if sum(text_width(label) + 14 for _, label in ticks) <= width:
            return ticks
    return make(2)


@dataclass
class Axis:
    """A data axis: its domain (log10 of it on a log axis) and its ticks as (fraction along, label)."""

    lo: float
    hi: float
    log: bool
    ticks: list[tuple[float, str]]

    def frac(self, v: float) -> float:
        t = math.log10(v) if self.log else v
        return (t - self.lo) / (self.hi - self.lo)


def axis_ticks(values: list[float], log: bool, length: float, vertical: bool = False) -> Axis:
    """An axis over ``values``: a linear one extended to whole ticks, a log one over the data, with as many
    1-2-5 ticks as fit in ``length`` px (labels side by side, or stacked when ``vertical``)."""
    lo, hi = min(values), max(values)
    if log:
        lo, hi = (lo / 2, hi * 2) if hi <= lo else (lo, hi)
        span = math.log10(hi) - math.log10(lo)
        pad = span * 0.03

        def make(count: int) -> list[tuple[float, str]]:
            return [(v, format_number(v, 1e3)) for v in log_ticks(lo, hi, count)]

        ticks = make(max(2, int(length // 28))) if vertical else fit_ticks(make, length)
        axis = Axis(math.log10(lo) - pad, math.log10(hi) + pad, True, [])
    else:
        count = max(2, min(8, int(length // 28))) if vertical else 6
        values_, step = linear_ticks(lo, hi, count, extend=True)
        if not vertical:
            while count > 2 and sum(text_width(t) + 14 for t in tick_labels(values_, step)) > length:
                count -= 1
                values_, step = linear_ticks(lo, hi, count, extend=True)
        ticks = list(zip(values_, tick_labels(values_, step)))
        axis = Axis(values_[0], values_[-1], False, [])
    axis.ticks = [(axis.frac(v), label) for v, label in ticks]
    return axis


class BinScale:
    """The x axis of a stats histogram in bin positions: bin ``i`` spans ``[i, i + 1)``, the underflow bin is
    bin 0, edge ``j`` sits at position ``j + 1``; inside a bin, values are placed linearly, or geometrically
    when the edges are (log bins)."""

    def __init__(self, edges: list[float]):
        self.edges = list(edges)
        ratios = [b / a for a, b in zip(self.edges, self.edges[1:])] if self.edges[0] > 0 else []
        self.log = len(ratios) > 1 and max(ratios) / min(ratios) < 1.01 and ratios[0] > 1.01

    def bin_range(self, i: int) -> tuple[float | None, float | None]:
        """The bounds of bin ``i`` (None: open)."""
        return (self.edges[i - 1] if i > 0 else None), (self.edges[i] if i < len(self.edges) else None)

    def position(self, value: float) -> float:
        """Where ``value`` falls, clamped to the edges' span."""
        edges = self.edges
        if value <= edges[0]:
            return 1.0
        for i in range(1, len(edges)):
            if value < edges[i]:
                lo, hi = edges[i - 1], edges[i]
                if self.log:
                    return i + math.log(value / lo) / math.log(hi / lo)
                return i + (value - lo) / (hi - lo)
        return float(len(edges))

    def value(self, position: float) -> float:
        """The value at ``position`` (between 1 and ``len(edges)``), the inverse of :meth:`position`."""
        i = min(max(int(position), 1), len(self.edges) - 1)
        lo, hi = self.edges[i - 1], self.edges[i]
        t = position - i
        return lo * (hi / lo) ** t if self.log else lo + (hi - lo) * t


class Plot:
    """The plot area of a chart ``width`` x ``height`` px, with margins that fit its tick labels and axis
    titles; ticks are (fraction along the axis, label). ``x``/``y`` map fractions to px."""

    def __init__(self, width, height, x_ticks, y_ticks, x_label: str, y_label: str, top: float = 8):
        self.width, self.height = width, height
        self.x_ticks, self.y_ticks, self.x_label, self.y_label = x_ticks, y_ticks, x_label, y_label
        y_tick_w = max((text_width(label) for _, label in y_ticks), default=0)
        first_x = text_width(x_ticks[0][1]) / 2 if x_ticks and x_ticks[0][0] < 0.05 else 0
        self.left = max(6 + (FONT + 8 if y_label else 0) + y_tick_w + 6, first_x + 4)
        last_x = text_width(x_ticks[-1][1]) / 2 if x_ticks and x_ticks[-1][0] > 0.8 else 0
        self.right = width - max(12, last_x + 4)
        self.top = top
        self.bottom = height - (FONT + 12) - (FONT + 8 if x_label else 0)

    def x(self, frac: float) -> float:
        return self.left + frac * (self.right - self.left)

    def y(self, frac: float) -> float:
        return self.bottom - frac * (self.bottom - self.top)

    def grid(self) -> str:
        """Light horizontal gridlines at the y ticks (drawn under the data)."""
        return "".join(
            f'<line x1="{self.left:.1f}" y1="{self.y(f):.1f}" x2="{self.right:.1f}" y2="{self.y(f):.1f}" '
            'stroke="#e6e6e6"/>'
            for f, _ in self.y_ticks
        )

    def axes(self) -> str:
        """Axis lines, tick marks and labels, and the axis titles."""
        out = [
            f'<path d="M{self.left:.1f},{self.top:.1f}V{self.bottom:.1f}H{self.right:.1f}" fill="none" stroke="#888"/>',
            '<g class="axis x">',
        ]
        for f, label in self.x_ticks:
            x = self.x(f)
            out.append(
                f'<line x1="{x:.1f}" y1="{self.bottom:.1f}" x2="{x:.1f}" y2="{self.bottom + 4:.1f}" stroke="#888"/>'
                f'<text x="{x:.1f}" y="{self.bottom + FONT + 7:.1f}" text-anchor="middle">{escape(label)}</text>'
            )
        out.append('</g><g class="axis y">')
        for f, label in self.y_ticks:
            y = self.y(f)
            out.append(f'<text x="{self.left - 6:.1f}" y="{y + 4:.1f}" text-anchor="end">{escape(label)}</text>')
        out.append("</g>")
        if self.x_label:
            x = (self.left + self.right) / 2
            out.append(
                f'<text class="title" x="{x:.1f}" y="{self.height - 5}" text-anchor="middle">'
                f"{escape(truncate(self.x_label, self.width - 10))}</text>"
            )
        if self.y_label:
            mid = (self.top + self.bottom) / 2
            label = truncate(self.y_label, self.bottom - self.top)
            out.append(
                f'<text class="title" x="{FONT + 2}" y="{mid:.1f}" text-anchor="middle" '
                f'transform="rotate(-90 {FONT + 2} {mid:.1f})">{escape(label)}</text>'
            )
        return "".join(out)


def legend_positions(names: list[str], left: float, right: float) -> list[tuple[float, float]]:
    """(x, baseline y) of each name's legend entry: left to right, wrapped before ``right``."""
    legend, x, y = [], left, 14.0
    for name in names:
        step = 24 + text_width(name)
        if x > left and x + step > right:
            x, y = left, y + 16
        legend.append((x, y))
        x += step
    return legend
