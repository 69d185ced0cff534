"""Small inline SVG charts for the HTML report: horizontal bars, histograms with a keep range, line charts.

Plain strings, no plotting library: the report is one self-contained file that any browser opens offline.
"""

from __future__ import annotations

import math
from html import escape

PALETTE = ("#3b6ea5", "#d1793b", "#4f9a5a", "#a04c8c", "#8a7a3a")


def _fmt(v: float) -> str:
    if v is None:
        return ""
    if isinstance(v, int) or float(v).is_integer() and abs(v) >= 1 or abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.3g}"


def bars(items: list[tuple[str, float]], *, width: int = 640, unit: str = "") -> str:
    """Horizontal bars, one per (label, value), longest first as given."""
    if not items:
        return ""
    row, label_w = 22, min(260, 8 + 7 * max(len(label) for label, _ in items))
    top = max(v for _, v in items) or 1
    height = row * len(items) + 6
    out = [f'<svg class="chart bars" width="{width}" height="{height}" role="img">']
    for i, (label, value) in enumerate(items):
        y = 3 + i * row
        w = (width - label_w - 90) * value / top
        out.append(
            f'<text x="{label_w - 6}" y="{y + 15}" text-anchor="end">{escape(label)}</text>'
            f'<rect x="{label_w}" y="{y + 3}" width="{max(w, 1):.1f}" height="{row - 6}" fill="{PALETTE[0]}">'
            f"<title>{escape(label)}: {_fmt(value)}{unit}</title></rect>"
            f'<text x="{label_w + w + 5:.1f}" y="{y + 15}">{_fmt(value)}{unit}</text>'
        )
    out.append("</svg>")
    return "".join(out)


def histogram(hist: dict, *, width: int = 420, height: int = 150) -> str:
    """The bins of a stats histogram (``counts[0]`` below the first edge, ``counts[-1]`` at or above the
    last), with what lies outside the ``keep`` range shaded and its bounds drawn as red lines."""
    edges, counts = hist["edges"], hist["counts"]
    n_bins = len(counts)
    pad_l, pad_b = 34, 26
    plot_w, plot_h = width - pad_l - 6, height - pad_b - 6
    bin_w = plot_w / n_bins
    top = max(counts) or 1
    keep = hist.get("keep") or [None, None]
    out = [f'<svg class="chart histogram" width="{width}" height="{height}" role="img">']
    for i, count in enumerate(counts):
        lo = edges[i - 1] if i > 0 else None  # bin i covers [edges[i-1], edges[i])
        hi = edges[i] if i < len(edges) else None
        outside = (keep[0] is not None and hi is not None and hi <= keep[0]) or (
            keep[1] is not None and lo is not None and lo >= keep[1]
        )
        h = plot_h * count / top
        x = pad_l + i * bin_w
        span = f"[{_fmt(lo) if lo is not None else '-inf'}, {_fmt(hi) if hi is not None else 'inf'})"
        out.append(
            f'<rect x="{x:.1f}" y="{6 + plot_h - h:.1f}" width="{max(bin_w - 0.5, 0.5):.1f}" height="{h:.1f}" '
            f'fill="{PALETTE[1] if outside else PALETTE[0]}"><title>{span}: {count:,}</title></rect>'
        )
    for bound in keep:
        if bound is None:
            continue
        x = pad_l + _position(edges, bound) * bin_w
        out.append(f'<line class="threshold" x1="{x:.1f}" y1="4" x2="{x:.1f}" y2="{6 + plot_h}" stroke="#c0392b"/>')
    for i in (1, len(edges) // 2, len(edges)):
        x = pad_l + i * bin_w
        out.append(f'<text x="{x:.1f}" y="{height - 8}" text-anchor="middle">{_fmt(edges[i - 1])}</text>')
    out.append(f'<text x="2" y="14">{_fmt(top)}</text></svg>')
    return "".join(out)


def _position(edges: list[float], value: float) -> float:
    """Where ``value`` falls on the bin axis (bin i spans positions i to i + 1; bin 0 is the underflow)."""
    if value <= edges[0]:
        return 1.0
    for i in range(1, len(edges)):
        if value < edges[i]:
            lo, hi = edges[i - 1], edges[i]
            return i + (value - lo) / (hi - lo)
    return float(len(edges))


def lines(series: dict[str, list[tuple[float, float]]], *, width: int = 640, height: int = 220, log_y=False) -> str:
    """Line chart of named (x, y) series on shared axes, with a legend."""
    points = [p for s in series.values() for p in s if p[1] is not None and (not log_y or p[1] > 0)]
    if not points:
        return ""
    tx = (lambda v: math.log10(v)) if log_y else (lambda v: v)
    x0, x1 = min(p[0] for p in points), max(p[0] for p in points)
    y0, y1 = min(tx(p[1]) for p in points), max(tx(p[1]) for p in points)
    x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 1)
    pad_l, pad_b = 52, 26
    plot_w, plot_h = width - pad_l - 10, height - pad_b - 24

    def xy(x, y):
        return pad_l + (x - x0) / (x1 - x0) * plot_w, 20 + plot_h - (tx(y) - y0) / (y1 - y0) * plot_h

    out = [f'<svg class="chart lines" width="{width}" height="{height}" role="img">']
    for i, (name, pts) in enumerate(series.items()):
        pts = [p for p in pts if p[1] is not None and (not log_y or p[1] > 0)]
        color = PALETTE[i % len(PALETTE)]
        if pts:
            path = " ".join(f"{'M' if j == 0 else 'L'}{x:.1f},{y:.1f}" for j, (x, y) in enumerate(xy(*p) for p in pts))
            out.append(f'<path d="{path}" fill="none" stroke="{color}" stroke-width="1.6"/>')
        out.append(f'<text x="{pad_l + 120 * i}" y="12" fill="{color}">{escape(name)}</text>')
    fy = (lambda v: 10**v) if log_y else (lambda v: v)
    out.append(f'<text x="{pad_l - 4}" y="24" text-anchor="end">{_fmt(fy(y1))}</text>')
    out.append(f'<text x="{pad_l - 4}" y="{20 + plot_h}" text-anchor="end">{_fmt(fy(y0))}</text>')
    out.append(f'<text x="{pad_l}" y="{height - 6}">{_fmt(x0)}</text>')
    out.append(f'<text x="{pad_l + plot_w}" y="{height - 6}" text-anchor="end">{_fmt(x1)}</text></svg>')
    return "".join(out)


def _ticks(lo: float, hi: float, log: bool) -> list[tuple[float, str]]:
    """(position, label) of an axis in its drawn coordinate: whole decades on a log axis when it spans two
    or more (else its two ends), five even steps on a linear axis."""
    decades = list(range(math.ceil(lo), math.floor(hi) + 1)) if log else []
    if len(decades) >= 2:
        return [(float(d), f"1e{d}") for d in decades]
    if log:
        return [(v, f"{10**v:.3g}") for v in (lo, hi)]
    return [(lo + (hi - lo) * i / 4, f"{lo + (hi - lo) * i / 4:.3g}") for i in range(5)]


def _legend_positions(names: list[str], left: int, width: int) -> list[tuple[int, int]]:
    """(x, y) of each name's legend entry: left to right, wrapped at the chart's width."""
    legend, x, y = [], left, 12
    for name in names:
        step = 30 + 6 * len(name)
        if x > left and x + step > width:
            x, y = left, y + 16
        legend.append((x, y))
        x += step
    return legend


def scatter(
    points: dict[str, list[tuple]],
    curves: dict[str, list[tuple[float, float]]] | None = None,
    *,
    width: int = 640,
    height: int = 260,
    log_x: bool = False,
    log_y: bool = False,
    x_label: str = "",
    y_label: str = "",
) -> str:
    """Points of named series, each (x, y) or (x, y, label) with the label as its tooltip, and optional
    named curves of (x, y) on the same axes; a curve named like a point series takes its colour. Either
    axis can be logarithmic (points with a value <= 0 there are left out); a log axis is labelled at decades."""

    def shown(p) -> bool:
        return all(v is not None and (not log or v > 0) for v, log in ((p[0], log_x), (p[1], log_y)))

    dots = {name: [p for p in pts if shown(p)] for name, pts in points.items()}
    paths = {name: [p for p in pts if shown(p)] for name, pts in (curves or {}).items()}
    everything = [p for pts in [*dots.values(), *paths.values()] for p in pts]
    if not everything:
        return ""
    tx = math.log10 if log_x else float
    ty = math.log10 if log_y else float
    x0, x1 = min(tx(p[0]) for p in everything), max(tx(p[0]) for p in everything)
    y0, y1 = min(ty(p[1]) for p in everything), max(ty(p[1]) for p in everything)
    x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 1)
    names = list(dict.fromkeys([*dots, *paths]))
    pad_l, pad_b = 58, 34 if x_label else 22
    legend = _legend_positions(names, pad_l, width)
    top = legend[-1][1] + 16
    plot_w, plot_h = width - pad_l - 12, height - pad_b - top - 4

    def px(v: float) -> float:
        return pad_l + (v - x0) / (x1 - x0) * plot_w

    def py(v: float) -> float:
        return top + plot_h - (v - y0) / (y1 - y0) * plot_h

    out = [
        f'<svg class="chart scatter" width="{width}" height="{height}" role="img">'
        f'<rect x="{pad_l}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#ccc"/>'
    ]
    for i, name in enumerate(names):
        color = PALETTE[i % len(PALETTE)]
        if paths.get(name):
            d = " ".join(
                f"{'M' if j == 0 else 'L'}{px(tx(x)):.1f},{py(ty(y)):.1f}" for j, (x, y) in enumerate(paths[name])
            )
            out.append(f'<path d="{d}" fill="none" stroke="{color}" stroke-width="1.4"/>')
        for p in dots.get(name, []):
            tip = escape(str(p[2])) if len(p) > 2 else f"{_fmt(p[0])}, {_fmt(p[1])}"
            out.append(
                f'<circle cx="{px(tx(p[0])):.1f}" cy="{py(ty(p[1])):.1f}" r="3.2" fill="{color}"><title>{tip}</title>'
                "</circle>"
            )
        lx, ly = legend[i]
        out.append(
            f'<rect x="{lx}" y="{ly - 8}" width="10" height="10" fill="{color}"/>'
            f'<text x="{lx + 14}" y="{ly + 1}">{escape(name)}</text>'
        )
    for v, label in _ticks(x0, x1, log_x):
        anchor = "start" if v == x0 else "end" if v == x1 else "middle"
        out.append(f'<text x="{px(v):.1f}" y="{top + plot_h + 14}" text-anchor="{anchor}">{label}</text>')
    for v, label in _ticks(y0, y1, log_y):
        out.append(f'<text x="{pad_l - 4}" y="{py(v) + 4:.1f}" text-anchor="end">{label}</text>')
    if x_label:
        out.append(f'<text x="{pad_l + plot_w / 2:.1f}" y="{height - 4}" text-anchor="middle">{escape(x_label)}</text>')
    if y_label:
        mid = top + plot_h / 2
        out.append(
            f'<text x="12" y="{mid:.1f}" text-anchor="middle" transform="rotate(-90 12 {mid:.1f})">'
            f"{escape(y_label)}</text>"
        )
    out.append("</svg>")
    return "".join(out)
