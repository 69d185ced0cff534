"""``<sweep output>/sweep.html``: a sweep's results table, validation curves, and loss by training FLOPs per
model size (IsoFLOP profiles for an IsoFLOP search)."""

from __future__ import annotations

import math
import os
from html import escape

from pipeline.models.sweep_file import Sweep, skipped_lines
from pipeline.report import charts
from pipeline.report.page import page
from trainer.sweep import by_best_val_loss, read_metrics


def write_html(sweep: Sweep, rows: list[dict]) -> str:
    """Write ``<output>/sweep.html``: the results table, validation loss against step per trial, and the
    final validation loss against training FLOPs per model size; its path."""
    curves = {
        t.id: [(r["step"], r["val_loss"]) for r in read_metrics(t.config.train.out_dir) if "val_loss" in r]
        for t in sweep.trials
    }
    curve_charts = [
        charts.lines(dict(list(curves.items())[i : i + 5]), x_label="step", y_label="validation loss")
        for i in range(0, len(curves), 5)
    ]
    best: dict[tuple, float] = {}  # (params, FLOPs) -> the lowest final validation loss over the other settings
    for r in rows:
        if r["status"] == "done" and r.get("final_val_loss") is not None and r.get("flops"):
            point = (r["params"], r["flops"])
            best[point] = min(best.get(point, math.inf), r["final_val_loss"])
    by_size: dict[str, list] = {}
    for (params, flops), loss in sorted(best.items()):
        by_size.setdefault(f"{params:,} params", []).append((flops, loss))
    by_budget: dict[str, list] = {}  # IsoFLOP: the best final validation loss of each size, per budget
    for r in sorted(rows, key=lambda r: r.get("params") or 0):
        if r.get("budget") and r["status"] == "done" and r.get("final_val_loss") is not None:
            curve = by_budget.setdefault(f"C = {r['budget']:.3g}", [])
            if curve and curve[-1][0] == r["params"]:
                curve[-1] = (curve[-1][0], min(curve[-1][1], r["final_val_loss"]))
            else:
                curve.append((r["params"], r["final_val_loss"]))
    isoflop = ""
    if by_budget:
        isoflop = (
            "<h2>IsoFLOP profiles: final validation loss by model size, per budget</h2>"
            '<p class="muted">the best trial of each size at each budget</p>'
            + "<div class='wide'>"
            + _figure(
                charts.lines(
                    by_budget, log_x=True, x_label="parameters (non-embedding)", y_label="final validation loss"
                )
            )
            + "</div>"
        )
    if sweep.skipped:
        items = "".join(f"<li>{escape(line)}</li>" for line in skipped_lines(sweep))
        isoflop += f"<h2>Budget x size not run</h2><ul>{items}</ul>"
    keys = list(dict.fromkeys(k for r in rows for k in r["overrides"]))
    budgets = ["budget"] if any(r.get("budget") for r in rows) else []
    header = ["trial", *budgets, *keys, "status", "params", "tokens", "FLOPs"]
    header += ["best val loss", "final val loss", "seconds"]
    lines = [
        [r["trial"], *([r.get("budget")] if budgets else [])]
        + [*(r["overrides"].get(k) for k in keys), r["status"], r.get("params"), r.get("tokens")]
        + [f"{r['flops']:.3g}" if r.get("flops") else None, r.get("best_val_loss"), r.get("final_val_loss")]
        + [r.get("seconds"), r.get("reason")]
        for r in by_best_val_loss(rows)
    ]
    table = "<tr>" + "".join(f"<th>{escape(h)}</th>" for h in [*header, "reason"]) + "</tr>"
    table += "".join("<tr>" + "".join(f"<td>{escape(_cell(v))}</td>" for v in line) + "</tr>" for line in lines)
    by_flops = charts.lines(by_size, log_x=True, x_label="training FLOPs", y_label="final validation loss")
    body = (
        f'<p class="muted">{escape(sweep.path)}: {len(sweep.trials)} trials, {len(rows)} finished</p>'
        f"<h2>Results (best validation loss first)</h2><table>{table}</table>"
        f"<h2>Validation loss by step</h2><div class='wide'>{''.join(map(_figure, curve_charts))}</div>"
        "<h2>Final validation loss by training FLOPs, per model size</h2>"
        '<p class="muted">the best trial at each size and FLOPs (finished trials only)</p>'
        f"<div class='wide'>{_figure(by_flops)}</div>{isoflop}"
    )
    html = page(f"refinery sweep: {os.path.basename(sweep.output)}", body, style="td{white-space:nowrap}")
    path = os.path.join(sweep.output, "sweep.html")
    with open(path, "w", encoding="utf-8") as f:
        f.write(html)
    return path


def _figure(chart: str) -> str:
    return f"<figure>{chart}</figure>" if chart else ""


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)
