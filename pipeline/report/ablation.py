"""An ablation's verdict for people: ``<output>/ablation.html`` (inline SVG, no network) and the summary
``refinery ablate`` prints, both from ``ablation.json``: per dataset the mean and interval of every metric with
the seed noise beside it, the ranking and whether it holds seed by seed, the differences between datasets,
curves over training tokens, the data (tokens, epochs, documents left out for overlapping the reference
texts) and the trials."""

from __future__ import annotations

import json
import os
from html import escape

from pipeline.report import charts
from pipeline.report.axes import FONT, Plot, axis_ticks, format_number, format_value, text_width
from pipeline.report.page import figure, page, section

NAMES = {"bpb": "bits per byte on the reference texts"}
COLORS = charts.PALETTE


def metric_name(metric: str) -> str:
    """``cloze_correct_prob`` -> ``cloze: probability of the true choice``."""
    if metric in NAMES:
        return NAMES[metric]
    if metric.startswith("bpb:"):
        return f"bits per byte on {metric[4:]}"
    for suffix, what in (("_correct_prob", "probability of the true choice"), ("_accuracy", "accuracy")):
        if metric.endswith(suffix):
            return f"{metric[: -len(suffix)].replace('_', ' ')}: {what}"
    return metric


def _number(value: float, metric: str) -> str:
    return f"{value:.4f}" if metric.startswith("bpb") else f"{value:.3f}"


def verdict_lines(record: dict) -> list[str]:
    """The verdict in words, per shape and metric: the ranking with intervals, each adjacent difference with
    its interval and the seed noise, and whether the ranking holds seed by seed."""
    lines = []
    for shape in record["shapes"]:
        if not shape["verdict"]:
            lines.append(f"shape {shape['shape'] or 'of the base file'}: not every trial finished; rerun to resume")
            continue
        if len(record["shapes"]) > 1:
            lines.append(f"shape {shape['shape']}:")
        for metric, v in shape["verdict"].items():
            order = " < " if v["lower_is_better"] else " > "
            ranked = order.join(
                f"{n} {_number(v['datasets'][n]['mean'], metric)} [{_number(v['datasets'][n]['low'], metric)}, "
                f"{_number(v['datasets'][n]['high'], metric)}]"
                for n in v["ranking"]
            )
            lines.append(f"  {metric_name(metric)}: {ranked}")
            for a, b in zip(v["ranking"], v["ranking"][1:]):
                p = next(p for p in v["pairs"] if p["better"] == a and p["worse"] == b)
                verdict = "significant" if p["significant"] else "no significant difference"
                lines.append(
                    f"    {a} vs {b}: {p['difference']:+.4f} [{p['low']:+.4f}, {p['high']:+.4f}], {verdict}; "
                    f"seed noise (sd) {p['seed_sd']:.4f}"
                )
            alone = (
                "every seed alone ranks them so" if v["stable_across_seeds"] else "single seeds rank them differently"
            )
            lines.append(
                f"    {alone}; the ranking of the means stops changing after {v['seeds_until_stable']} seed(s)"
            )
    return lines


def write_html(output: str) -> str:
    """Write ``<output>/ablation.html`` from ``<output>/ablation.json``; its path."""
    with open(os.path.join(output, "ablation.json")) as f:
        record = json.load(f)
    html = build_html(record)
    path = os.path.join(output, "ablation.html")
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.write(html)
    os.replace(path + ".tmp", path)
    return path


def build_html(record: dict) -> str:
    """The ablation page."""
    parts = [_summary(record)]
    for i, shape in enumerate(record["shapes"]):
        label = f" (shape {i}: {', '.join(f'{k}={v}' for k, v in shape['shape'].items())})" if shape["shape"] else ""
        parts.append(section(f"verdict-{i}", f"Verdict{label}", _verdict(shape)))
        parts.append(section(f"curves-{i}", f"Curves over training tokens{label}", _curves(shape)))
    parts.append(section("data", "Data", _data(record)))
    parts.append(section("trials", "Trials", _trials(record)))
    title = f"refinery ablation: {os.path.basename(record['ablation'])}"
    return page(title, "".join(parts), nav=["verdict-0", "curves-0", "data", "trials"])


def _summary(record: dict) -> str:
    ref = record["reference"]
    items = " and " + ", ".join(f"{format_value(n)} {t.replace('_', ' ')} items" for t, n in ref["items"].items())
    text = (
        f"{len(record['datasets'])} datasets, {record['seeds']} seeds each, {format_value(record['budget_tokens'])} "
        f"training tokens per model, one tokenizer ({escape(record['tokenizer_hash'][:12])}); scored on "
        f"{ref['documents']} reference documents ({format_value(ref['bytes'])} bytes){items if ref['items'] else ''}. "
        "Intervals are 95% bootstrap intervals over seeds and evaluation units."
    )
    lines = "".join(f"{escape(line)}\n" for line in verdict_lines(record))
    return f"<p>{text}</p><pre class='doc'>{lines}</pre>"


def _verdict(shape: dict) -> str:
    if not shape["verdict"]:
        return "<p>Not every trial of this shape has finished: rerun <code>refinery ablate</code> to resume.</p>"
    figures = []
    for metric, v in shape["verdict"].items():
        chart = interval_chart(v, metric_name(metric))
        better = "lower is better" if v["lower_is_better"] else "higher is better"
        stable = "Every seed alone ranks them so" if v["stable_across_seeds"] else "Single seeds rank them differently"
        caption = (
            f"{escape(metric_name(metric))} ({better}): mean over seeds and 95% interval; dots are single seeds. "
            f"{escape(stable)}; the ranking of the means is stable from {v['seeds_until_stable']} seed(s) on."
        )
        figures.append(figure(chart, caption))
    head = ["metric", "better", "worse", "difference", "95% interval", "verdict", "seed noise (sd)"]
    rows = []
    for metric, v in shape["verdict"].items():
        for p in v["pairs"]:
            verdict = "significant" if p["significant"] else "no significant difference"
            rows.append(
                [
                    metric,
                    p["better"],
                    p["worse"],
                    f"{p['difference']:+.4f}",
                    f"[{p['low']:+.4f}, {p['high']:+.4f}]",
                    verdict,
                    f"{p['seed_sd']:.4f}",
                ]
            )
    note = (
        "<p class='muted'>A dataset's interval spans how hard the documents are, which every model shares; a "
        "difference is resampled over the same documents for both datasets (paired), so it can be clear while "
        "the two intervals overlap.</p>"
    )
    return f"<div class='wide'>{''.join(figures)}</div><h3>Differences</h3>{note}{_table(head, rows)}"


def interval_chart(v: dict, x_label: str, width: int = 560) -> str:
    """One row per dataset (best first): its mean over seeds as a bar end, the interval as a whisker, and
    each seed's value as a dot."""
    names = v["ranking"]
    values = [
        x for n in names for x in (v["datasets"][n]["low"], v["datasets"][n]["high"], *v["datasets"][n]["trials"])
    ]
    row = 30
    height = row * len(names) + 2 * FONT + 30
    label_w = max(text_width(n) for n in names) + 12
    x_axis = axis_ticks(values, False, width - label_w - 30)
    y_ticks = [(1 - (i + 0.5) / len(names), n) for i, n in enumerate(names)]
    plot = Plot(width, height, x_axis.ticks, y_ticks, x_label, "", top=8)
    out = [plot.axes()]
    for i, name in enumerate(names):
        d = v["datasets"][name]
        y = plot.y(1 - (i + 0.5) / len(names))
        lo, hi, mean = (plot.x(x_axis.frac(d[k])) for k in ("low", "high", "mean"))
        color = COLORS[list(v["datasets"]).index(name) % len(COLORS)]  # a dataset's colour in every chart
        tip = f"{name}: {format_number(d['mean'])} [{format_number(d['low'])}, {format_number(d['high'])}]"
        out.append(
            f'<line x1="{lo:.1f}" y1="{y:.1f}" x2="{hi:.1f}" y2="{y:.1f}" stroke="{color}" stroke-width="2"/>'
            f'<line x1="{lo:.1f}" y1="{y - 6:.1f}" x2="{lo:.1f}" y2="{y + 6:.1f}" stroke="{color}" stroke-width="2"/>'
            f'<line x1="{hi:.1f}" y1="{y - 6:.1f}" x2="{hi:.1f}" y2="{y + 6:.1f}" stroke="{color}" stroke-width="2"/>'
            f'<rect x="{mean - 2:.1f}" y="{y - 9:.1f}" width="4" height="18" fill="{color}">'
            f"<title>{escape(tip)}</title></rect>"
        )
        for seed, value in enumerate(d["trials"]):
            out.append(
                f'<circle cx="{plot.x(x_axis.frac(value)):.1f}" cy="{y + 11:.1f}" r="2.6" fill="#555">'
                f"<title>{escape(name)}, seed {seed}: {format_number(value)}</title></circle>"
            )
    return (
        f'<svg class="chart intervals" viewBox="0 0 {width} {height}" width="100%" preserveAspectRatio="xMinYMin meet" '
        f'role="img">{"".join(out)}</svg>'
    )


def _curves(shape: dict) -> str:
    mean = {}
    for name, seeds in shape["curves"].items():
        longest = max(seeds, key=len, default=[])
        points = []
        for i, (tokens, _) in enumerate(longest):
            values = [s[i][1] for s in seeds if len(s) > i]
            points.append((tokens, sum(values) / len(values)))
        mean[name] = points
    chart = charts.lines(mean, x_label="training tokens", y_label="reference bits per byte")
    caption = (
        "Mean over seeds of the loss on the first reference tokens at each evaluation of training, in bits per byte "
        "(the reference's tokens per byte times the loss per token; the verdict's numbers score every document whole)"
    )
    shown = figure(chart, escape(caption))
    return f"<div class='wide'>{shown}</div>" if shown else "<p>No curve yet.</p>"


def _data(record: dict) -> str:
    head = ["dataset", "documents", "left out (overlap)", "bytes", "tokens", "epochs at the budget", "shards"]
    rows = [
        [
            d["name"],
            format_value(d["documents"]),
            format_value(d["dropped"]),
            format_value(d["bytes"]),
            format_value(d["tokens"]),
            f"{d['epochs']:.2f}",
            format_value(d["shards"]),
        ]
        for d in record["datasets"]
    ]
    tok = record["tokenizer"]
    sample = ""
    if "sample_bytes" in tok:
        sample = (
            f"<p>Tokenizer: {format_value(tok['vocab_size'])} tokens, trained on {format_value(tok['sample_bytes'])} "
            "bytes of every dataset: "
            + ", ".join(f"{escape(n)} {format_value(s['documents'])} documents" for n, s in tok["datasets"].items())
            + ".</p>"
        )
    files = "".join(f"<li><code>{escape(f)}</code></li>" for f in record["reference"]["files"])
    return f"{_table(head, rows)}{sample}<p>Reference texts:</p><ul>{files}</ul>"


def _trials(record: dict) -> str:
    head = ["trial", "dataset", "seed", "status", "steps", "tokens", "bpb", "seconds", "resumed from", "reason"]
    rows = [
        [
            r["trial"],
            r["dataset"],
            r["seed"],
            r["status"],
            r.get("steps", "-"),
            r.get("tokens", "-"),
            f"{r['bpb']:.4f}" if r.get("bpb") is not None else "-",
            r.get("seconds", "-"),
            r.get("resumed_from", "-"),
            r.get("reason", ""),
        ]
        for r in record["trials"]
    ]
    return _table(head, rows)


def _table(head: list[str], rows: list[list]) -> str:
    top = "<tr>" + "".join(f"<th>{escape(h)}</th>" for h in head) + "</tr>"
    body = "".join("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table>{top}{body}</table>"
