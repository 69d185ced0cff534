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
