"""The pieces every HTML report page shares: its style sheet (full width, figures in a grid), sections,
table cells, figures with captions, and the page around them."""

from __future__ import annotations

from html import escape

STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:0 auto;max-width:2000px;padding:0 24px 60px;color:#222}
h1{margin:18px 0 4px} h2{border-bottom:2px solid #3b6ea5;padding-bottom:3px;margin-top:34px}
nav a{margin-right:12px} table{border-collapse:collapse;margin:8px 0} .muted{color:#777}
td,th{padding:2px 10px;text-align:right;border-bottom:1px solid #eee} td:first-child,th:first-child{text-align:left}
table.meta td,table.meta th,td.text,th.text{text-align:left} tr.stage td{font-weight:600;background:#f3f6fa}
tr.reason td:first-child{padding-left:28px;color:#555} td.changed{background:#fff4d6}
.grid,.wide{display:grid;grid-template-columns:repeat(auto-fill,minmax(400px,1fr));gap:14px;margin:10px 0;
align-items:start} .wide{grid-template-columns:repeat(auto-fill,minmax(560px,1fr))}
figure{margin:0;border:1px solid #e4e4e4;border-radius:3px;padding:8px;min-width:0}
figcaption{font-size:12.5px;color:#444;margin-top:4px} figure.full{margin:10px 0}
svg.chart{display:block;width:100%;height:auto} svg.chart text{font-size:11px;fill:#333}
svg.chart text.title{font-size:11.5px;fill:#555}
code{overflow-wrap:anywhere} .evidence{font-family:ui-monospace,monospace;font-size:12.5px;color:#8a1f11}
pre.doc{white-space:pre-wrap;overflow-wrap:anywhere;background:#fafafa;border:1px solid #eee;padding:8px;
max-height:320px;overflow:auto}
mark.pii{background:#ffd27f} mark.rep{background:#f4b6b6} mark.flag{background:#ff8c8c}
"""


def page(title: str, body: str, *, nav: list[str] = (), script: str = "", style: str = "") -> str:
    """A whole HTML document: ``title`` as its title and heading, links to the ``nav`` sections, ``body``."""
    anchors = " ".join(f'<a href="#{name}">{name}</a>' for name in nav)
    links = f"<nav>{anchors}</nav>" if nav else ""
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{escape(title)}</title>'
        f"<style>{STYLE}{style}</style></head><body><h1>{escape(title)}</h1>{links}{body}"
        + (f"<script>{script}</script>" if script else "")
        + "</body></html>"
    )


def section(name: str, title: str, content: str) -> str:
    """A report section, found by its ``data-section`` name."""
    return f'<section id="{name}" data-section="{name}"><h2>{escape(title)}</h2>{content}</section>'


def cell(value, key: str | None = None) -> str:
    """A table cell; integers with thousands separators, ``key`` as its ``data-stat`` (for tests)."""
    attr = f' data-stat="{escape(key)}"' if key else ""
    text = f"{value:,}" if isinstance(value, int) else escape(str(value))
    return f"<td{attr}>{text}</td>"


def pct(part: int, whole: int) -> str:
    """``part`` as a percentage of ``whole`` ("-" for nothing of nothing)."""
    return f"{100 * part / whole:.1f}%" if whole else "-"


def figure(chart: str, caption: str, cls: str = "") -> str:
    """A chart with its caption (``caption`` is HTML); "" without a chart."""
    if not chart:
        return ""
    return f"<figure{f' class={cls!r}' if cls else ''}>{chart}<figcaption>{caption}</figcaption></figure>"


def duration(seconds: float) -> str:
    """``seconds`` as a person reads it: ``9.1 s``, ``3 min 12 s``, ``2 h 05 min``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"
