"""``refinery report RUN``: one self-contained HTML file (inline CSS and SVG, no network) with everything a
run's statistics say, for reading rather than parsing.

Sections: run metadata (workflow, versions, timings, unreadable input and failures), the funnel (documents
through every stage, filter and drop reason), filter score histograms with their thresholds, languages,
document lengths before and after filtering, dedup clusters, tokenizer and shards, training curves of the
models trained on this run's shards, and sampled rejected documents per reason with the evidence marked.
``--compare RUN_B`` adds the two funnels side by side. Every number comes from ``stats.json`` (or the
files named beside it), and the funnel cells carry ``data-stat`` keys so tests can check them.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from collections import Counter
from html import escape

from pipeline.report import charts
from pipeline.report.collect import load_stats
from pipeline.report.samples import samples_by_reason
from pipeline.rundir import RunDir

SAMPLES_PER_REASON = 3
SAMPLE_CHARS = 1500
LENGTH_HISTOGRAMS = ("text_chars_in", "text_chars_kept", "tokens_per_document")
SECTIONS = ("run", "funnel", "filters", "languages", "lengths", "dedup", "tokenizer", "training", "samples")

STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1100px;padding:0 18px 60px;color:#222}
h1{margin:18px 0 4px} h2{border-bottom:2px solid #3b6ea5;padding-bottom:3px;margin-top:34px}
nav a{margin-right:12px} table{border-collapse:collapse;margin:8px 0} .muted{color:#777}
td,th{padding:2px 10px;text-align:right;border-bottom:1px solid #eee} td:first-child,th:first-child{text-align:left}
table.meta td{text-align:left} tr.stage td{font-weight:600;background:#f3f6fa}
tr.reason td:first-child{padding-left:28px;color:#555}
.grid{display:flex;flex-wrap:wrap;gap:14px} figure{margin:0;border:1px solid #eee;padding:6px}
figcaption{font-size:12px;color:#444;max-width:420px} svg text{font-size:11px;fill:#333}
pre.doc{white-space:pre-wrap;background:#fafafa;border:1px solid #eee;padding:8px;max-height:320px;overflow:auto}
mark.pii{background:#ffd27f} mark.rep{background:#f4b6b6} mark.flag{background:#ff8c8c}
"""
SCRIPT = """
for (const s of document.querySelectorAll('section[data-section]')) {
  if (s.querySelector('svg, table, p, pre')) s.dataset.rendered = '1';
}
document.documentElement.dataset.ready = String(document.querySelectorAll('section[data-rendered]').length);
"""


def write_report(run_url: str, compare: str | None = None, training: list[str] = (), output: str = "") -> str:
    """Build the report of a run and write it to ``output`` (default ``<run>/report.html``); its path."""
    html = build_report(run_url, compare, training)
    run = RunDir(run_url)
    path = output or run.path("report.html")
    with run.fs.open(path, "w", encoding="utf-8") as f:
        f.write(html)
    return path


def build_report(run_url: str, compare: str | None = None, training: list[str] = ()) -> str:
    """The report's HTML."""
    run = RunDir(run_url)
    stats = load_stats(run)
    workflow = run.read_json(run.path("workflow.json"))
    other = load_stats(RunDir(compare)) if compare else None
    body = [
        _run_section(stats, workflow),
        _compare_section(stats, other) if other else "",
        _funnel_section(stats),
        _filters_section(stats),
        _languages_section(stats),
        _lengths_section(stats),
        _dedup_section(stats, run.url),
        _tokenizer_section(run, stats),
        _training_section(run, training),
        _samples_section(run, stats),
    ]
    sections = [*SECTIONS[:1], *(["compare"] if other else []), *SECTIONS[1:]]
    nav = " ".join(f'<a href="#{s}">{s}</a>' for s in sections)
    title = f"refinery report: {escape(stats['run']['name'])}"
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f"<style>{STYLE}</style></head><body><h1>{title}</h1><nav>{nav}</nav>{''.join(body)}"
        f"<script>{SCRIPT}</script></body></html>"
    )


def _section(name: str, title: str, content: str) -> str:
    return f'<section id="{name}" data-section="{name}"><h2>{escape(title)}</h2>{content}</section>'


def _cell(value, key: str | None = None) -> str:
    attr = f' data-stat="{escape(key)}"' if key else ""
    text = f"{value:,}" if isinstance(value, int) else escape(str(value))
    return f"<td{attr}>{text}</td>"


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def _run_section(stats: dict, workflow: dict) -> str:
    info = stats["run"]
    rows = [
        ("workflow file", workflow.get("file", "")),
        ("run directory", info.get("run_dir", "")),
        ("complete", "yes" if info.get("complete") else "NO: numbers cover the shards done so far"),
        ("input files / shards", f"{info.get('inputs', 0):,} / {info.get('shards', 0):,}"),
        ("wall time", f"{info['wall_s']:.1f} s" if "wall_s" in info else "-"),
        ("versions", ", ".join(f"{k} {v}" for k, v in sorted(info.get("versions", {}).items()))),
    ]
    table = "<table class='meta'>" + "".join(f"<tr><td>{escape(k)}</td><td>{escape(str(v))}</td></tr>" for k, v in rows)
    table += "</table>"
    timing = "<table><tr><th>stage</th><th>kind</th><th>shards</th><th>wall s</th><th>work s</th></tr>"
    for stage in stats["stages"]:
        wall = stage.get("timing", {}).get("wall_s")
        timing += (
            f"<tr><td>{escape(stage['stage'])}</td><td>{escape(stage['kind'])}</td>{_cell(stage.get('shards_done', 0))}"
            f"<td>{'-' if wall is None else f'{wall:.2f}'}</td><td>{stage.get('elapsed_s', 0):.2f}</td></tr>"
        )
    timing += "</table>"
    problems = []
    for stage in stats["stages"]:
        for reason, count in sorted(stage.get("read_issues", {}).items()):
            problems.append(f"<li>{escape(stage['stage'])}: unreadable input <b>{escape(reason)}</b>: {count:,}</li>")
        for sample in stage.get("issue_samples", [])[:5]:
            problems.append(
                f"<li class='muted'>{escape(sample['source'])} @ {sample['offset']}: {escape(sample['reason'])} "
                f"{escape(sample.get('detail', ''))}</li>"
            )
        for reason, count in sorted(stage.get("dropped", {}).items()):
            if reason.endswith(".error"):
                problems.append(
                    f"<li>{escape(stage['stage'])}: <b>{escape(reason)}</b> (a filter raised): {count:,}</li>"
                )
    issues = f"<ul>{''.join(problems)}</ul>" if problems else "<p>No unreadable input and no filter errors.</p>"
    return _section(
        "run", "Run", table + "<h3>Timings</h3>" + timing + "<h3>Failures and skipped records</h3>" + issues
    )


def _funnel_rows(stats: dict) -> list[tuple[str, str, int, int | None, str]]:
    """(css class, label, documents, documents in, data-stat key) per row of the funnel."""
    rows = []
    for stage in stats["stages"]:
        name = stage["stage"]
        rows.append(("stage", f"{name} ({stage['kind']})", stage.get("docs_in", 0), None, f"{name}.docs_in"))
        for reason, count in sorted(stage.get("dropped", {}).items(), key=lambda kv: (-kv[1], kv[0])):
            rows.append(("reason", f"dropped {reason}", count, stage.get("docs_in", 0), f"{name}.dropped.{reason}"))
        rows.append(("kept", "kept", stage.get("docs_kept", 0), stage.get("docs_in", 0), f"{name}.docs_kept"))
    return rows


def _funnel_section(stats: dict) -> str:
    table = "<table><tr><th></th><th>documents</th><th>share of stage input</th><th>bytes</th></tr>"
    for stage in stats["stages"]:
        name, n_in = stage["stage"], stage.get("docs_in", 0)
        table += (
            f'<tr class="stage"><td>{escape(name)} ({escape(stage["kind"])})</td>{_cell(n_in, f"{name}.docs_in")}'
            f"<td></td>{_cell(stage.get('bytes_in', 0), f'{name}.bytes_in')}</tr>"
        )
        for step in stage.get("steps") or []:
            dropped, step_name = sum(step["dropped"].values()), step["name"]
            table += (
                f'<tr class="reason"><td>filter {escape(step_name)}: in {step["docs_in"]:,}</td>'
                f"{_cell(dropped, f'{name}.steps.{step_name}.dropped')}"
                f"<td>{_pct(dropped, step['docs_in'])} of its input</td><td></td></tr>"
            )
        for reason, count in sorted(stage.get("dropped", {}).items(), key=lambda kv: (-kv[1], kv[0])):
            table += (
                f'<tr class="reason"><td>dropped {escape(reason)}</td>{_cell(count, f"{name}.dropped.{reason}")}'
                f"<td>{_pct(count, n_in)}</td><td></td></tr>"
            )
        kept = stage.get("docs_kept", 0)
        table += (
            f"<tr><td>kept</td>{_cell(kept, f'{name}.docs_kept')}<td>{_pct(kept, n_in)}</td>"
            f"{_cell(stage.get('bytes_kept', 0), f'{name}.bytes_kept')}</tr>"
        )
        if stage["kind"] == "tokenize" and stage.get("events", {}).get("tokens"):
            table += (
                f"<tr><td>tokens</td>{_cell(stage['events']['tokens'], f'{name}.events.tokens')}<td></td><td></td></tr>"
            )
    table += "</table>"
    flow = [("input", stats["stages"][0].get("docs_in", 0))] if stats["stages"] else []
    for stage in stats["stages"]:
        remaining = stage.get("docs_in", 0)
        for step in stage.get("steps") or []:
            remaining -= sum(step["dropped"].values())
            flow.append((f"{stage['stage']}: after {step['name']}", remaining))
        flow.append((f"after {stage['stage']}", stage.get("docs_kept", 0)))
    return _section("funnel", "Funnel", charts.bars(flow, unit=" docs") + table)


def _compare_section(a: dict, b: dict) -> str:
    keys: dict[str, tuple] = {}
    for side, stats in (("a", a), ("b", b)):
        for cls, label, count, _, key in _funnel_rows(stats):
            keys.setdefault(key, [cls, label, None, None])[2 if side == "a" else 3] = count
    table = (
        f"<table><tr><th></th><th>{escape(a['run']['name'])}</th><th>{escape(b['run']['name'])}</th>"
        "<th>difference</th></tr>"
    )
    for cls, label, x, y in keys.values():
        diff = "" if x is None or y is None else f"{y - x:+,}"
        table += (
            f'<tr class="{cls}"><td>{escape(label)}</td><td>{"-" if x is None else f"{x:,}"}</td>'
            f"<td>{'-' if y is None else f'{y:,}'}</td><td>{diff}</td></tr>"
        )
    table += "</table>"
    intro = f"<p>Funnels side by side: <b>{escape(a['run']['name'])}</b> and <b>{escape(b['run']['name'])}</b>.</p>"
    return _section("compare", "Comparison", intro + table)


def _figure(name: str, hist: dict, note: str = "") -> str:
    mean = hist["sum"] / hist["n"] if hist["n"] else 0.0
    keep = hist.get("keep")
    bounds = ""
    if keep:
        lo, hi = keep
        bounds = (
            " keep " + (f"≥ {lo:g}" if lo is not None else "") + (" and " if lo is not None and hi is not None else "")
        )
        bounds += f"≤ {hi:g}" if hi is not None else ""
    caption = (
        f"<b>{escape(name)}</b>: {hist['n']:,} documents, mean {mean:.3g}, min {hist['min']:.3g}, max {hist['max']:.3g}"
    )
    return f"<figure>{charts.histogram(hist)}<figcaption>{caption}{escape(bounds)} {note}</figcaption></figure>"


def _filters_section(stats: dict) -> str:
    parts = []
    for stage in stats["stages"]:
        metrics = {k: h for k, h in stage.get("histograms", {}).items() if h["n"] and k not in LENGTH_HISTOGRAMS}
        if not metrics or stage["kind"] in ("extract", "tokenize"):
            continue
        steps = "".join(
            f"<tr><td>{escape(s['name'])}</td>{_cell(s['docs_in'])}{_cell(sum(s['dropped'].values()))}"
            f"<td>{_pct(s['docs_in'] - sum(s['dropped'].values()), s['docs_in'])}</td></tr>"
            for s in stage.get("steps") or []
        )
        table = (
            f"<table><tr><th>filter</th><th>in</th><th>dropped</th><th>kept</th></tr>{steps}</table>" if steps else ""
        )
        figures = "".join(_figure(k, h) for k, h in sorted(metrics.items()))
        parts.append(
            f"<h3>{escape(stage['stage'])} ({escape(stage['kind'])})</h3>{table}<div class='grid'>{figures}</div>"
        )
    intro = (
        "<p>Scores of every document that reached the rule, with the kept range's bounds as red lines and the "
        "bins outside it in orange. A document stops at the first rule it fails, so later rules see fewer.</p>"
    )
    return _section("filters", "Filters and scores", intro + ("".join(parts) or "<p>No scored filter in this run.</p>"))


def _languages_section(stats: dict) -> str:
    counts: Counter = Counter()
    for stage in stats["stages"]:
        counts.update(stage.get("labels", {}).get("language", {}))
        if counts:
            break  # the first stage that labels languages saw them all
    if not counts:
        return _section("languages", "Languages", "<p>No language filter in this run.</p>")
    top = counts.most_common(25)
    rest = sum(counts.values()) - sum(c for _, c in top)
    items = [(lang or "(none)", c) for lang, c in top] + ([("other", rest)] if rest else [])
    return _section("languages", "Languages (lid.176 top label, documents)", charts.bars(items))


def _lengths_section(stats: dict) -> str:
    stages = [s for s in stats["stages"] if s["kind"] != "tokenize" and s.get("histograms", {}).get("text_chars_kept")]
    if not stages:
        return _section("lengths", "Document length", "<p>No documents.</p>")
    first, last = stages[0], stages[-1]
    figures = _figure(f"characters after {first['stage']} (before filtering)", first["histograms"]["text_chars_kept"])
    if last is not first:
        figures += _figure(f"characters after {last['stage']} (the result)", last["histograms"]["text_chars_kept"])
    return _section("lengths", "Document length", f"<div class='grid'>{figures}</div>")


def sample_command(run_url: str, *args: str) -> str:
    """The ``refinery sample`` command line for this run, quoted for a shell."""
    return shlex.join(["refinery", "sample", run_url, *args])


def _dedup_section(stats: dict, run_url: str) -> str:
    parts = []
    for stage in stats["stages"]:
        clusters = stage.get("clusters")
        removed = sum(stage.get("dropped", {}).values())
        if not clusters and stage["kind"] != "line_dedup":
            continue
        line = f"<p>{escape(stage['stage'])} ({escape(stage['kind'])}): {removed:,} documents removed"
        if clusters:
            pairs = ", ".join(
                f"{k.replace('_', ' ')} {clusters[k]:,}" for k in ("candidate_pairs", "verified_pairs") if k in clusters
            )
            line += f"; {clusters['clusters']:,} clusters holding {clusters['documents_in_clusters']:,} documents"
            line += f"; {pairs}" if pairs else ""
        events = stage.get("events", {})
        if events.get("lines_removed"):
            line += f"; {events['lines_removed']:,} lines removed"
        parts.append(line + "</p>")
        hist = stage.get("histograms", {}).get(f"{stage['kind']}_cluster_size")
        if hist and hist["n"]:
            parts.append(f"<div class='grid'>{_figure('cluster size (documents)', hist)}</div>")
        if clusters and clusters.get("largest"):
            rows = "".join(
                f"<tr><td><code>{escape(c['cluster'])}</code></td>{_cell(c['size'])}"
                f"<td><code>{escape(sample_command(run_url, '--cluster', c['cluster']))}</code></td></tr>"
                for c in clusters["largest"][:10]
            )
            parts.append(f"<table><tr><th>largest clusters</th><th>documents</th><th>see them</th></tr>{rows}</table>")
    return _section("dedup", "Deduplication", "".join(parts) or "<p>No dedup stage in this run.</p>")


def _tokenizer_section(run: RunDir, stats: dict) -> str:
    stage = next((s for s in stats["stages"] if s["kind"] == "tokenize"), None)
    if stage is None:
        return _section("tokenizer", "Tokenizer and shards", "<p>No tokenize stage in this run.</p>")
    tokens = stage.get("events", {}).get("tokens", 0)
    text = f"<p>{tokens:,} tokens from {stage.get('bytes_in', 0):,} bytes of text"
    text += f": <b>{stage['bytes_in'] / tokens:.2f} bytes per token</b> (EOS included)" if tokens else ""
    vocab_path = run.path(stage["stage"], "tokenizer", "vocab.json")
    if run.exists(vocab_path):
        text += f"; vocabulary of {len(run.read_json(vocab_path)):,} tokens"
    text += ".</p>"
    folder = run.path(stage["stage"], "shards")
    headers = []
    if run.fs.exists(folder):
        headers = [run.read_json(p) for p in sorted(run.fs.ls(folder, detail=False)) if p.endswith(".json")]
    rows = "".join(
        f"<tr><td>{i}</td>{_cell(h.get('documents', 0))}{_cell(h.get('tokens', 0))}"
        f"<td>{escape(h.get('dtype', ''))}</td></tr>"
        for i, h in enumerate(headers)
    )
    total = (
        f"<tr class='stage'><td>total</td>{_cell(sum(h.get('documents', 0) for h in headers))}"
        f"{_cell(sum(h.get('tokens', 0) for h in headers))}<td></td></tr>"
    )
    table = f"<table><tr><th>shard</th><th>documents</th><th>tokens</th><th>dtype</th></tr>{rows}{total}</table>"
    hist = stage.get("histograms", {}).get("tokens_per_document")
    figure = f"<div class='grid'>{_figure('tokens per document', hist)}</div>" if hist and hist.get("n") else ""
    return _section("tokenizer", "Tokenizer and shards", text + figure + table)


def linked_training_runs(run: RunDir) -> list[str]:
    """Training output folders inside the run (a workflow's ``[train]`` and ``[sft]``) or next to it (siblings
    of its directory) whose tokenizer is this run's."""
    if "://" in run.url:
        return []
    root = os.path.abspath(run.url)
    candidates = [os.path.join(root, n) for n in sorted(os.listdir(root))]
    candidates += [os.path.join(os.path.dirname(root), n) for n in sorted(os.listdir(os.path.dirname(root)))]
    found = []
    for folder in candidates:
        path = os.path.join(folder, "training.json")
        if os.path.exists(path):
            with open(path) as f:
                tokenizer = json.load(f).get("tokenizer_dir") or ""
            if os.path.abspath(tokenizer).startswith(root + os.sep):
                found.append(folder)
    return found


def _training_section(run: RunDir, extra: list[str]) -> str:
    folders = list(dict.fromkeys([*linked_training_runs(run), *extra]))
    parts = []
    for folder in folders:
        metrics_path = os.path.join(folder, "metrics.jsonl")
        if not os.path.exists(metrics_path):
            continue
        with open(metrics_path) as f:
            rows = [json.loads(line) for line in f if line.strip()]
        info = {}
        if os.path.exists(os.path.join(folder, "training.json")):
            with open(os.path.join(folder, "training.json")) as f:
                info = json.load(f)
        train = [(r["step"], r["loss"]) for r in rows if "loss" in r]
        valid = [(r["step"], r["val_loss"]) for r in rows if "val_loss" in r]
        plots = charts.lines({"training loss": train, "validation loss": valid})
        plots += charts.lines({"learning rate": [(r["step"], r.get("lr")) for r in rows if "lr" in r]}, height=140)
        speed = [(r["step"], r["tokens_per_s"]) for r in rows if "tokens_per_s" in r]
        plots += charts.lines({"tokens/s": speed}, height=140) if speed else ""
        scored = [(r["step"], r["val_exact_match"]) for r in rows if "val_exact_match" in r]
        plots += charts.lines({"held-out exact match": scored}, height=160) if scored else ""
        last = rows[-1] if rows else {}
        summary = ", ".join(f"{k} {v:.4g}" for k, v in last.items() if isinstance(v, float))
        kind = info.get("kind", "training")
        parts.append(
            f"<h3>{escape(kind)}: <code>{escape(folder)}</code></h3><p>last logged: step {last.get('step')}, "
            f"{escape(summary)}</p>{plots}"
        )
    if not parts:
        parts = [
            "<p>No model has been trained on this run's shards yet (refinery train; its out_dir is linked "
            "when it sits next to the run directory, or pass --training DIR).</p>"
        ]
    return _section("training", "Training", "".join(parts))


_PII = re.compile(r"\|\|\|[A-Z_]+\|\|\|")


def highlight(text: str, reason: str, detail: str) -> str:
    """Escaped ``text`` with the evidence for ``reason`` marked: PII masks, repeated lines, flagged words."""
    marks: list[tuple[int, int, str]] = [(m.start(), m.end(), "pii") for m in _PII.finditer(text)]
    if "repetition" in reason or "dup" in reason:
        lines = text.split("\n")
        repeated = {line for line, c in Counter(line.strip() for line in lines).items() if c > 1 and line}
        pos = 0
        for line in lines:
            if line.strip() in repeated:
                marks.append((pos, pos + len(line), "rep"))
            pos += len(line) + 1
    flagged = re.search(r"bad word: (.+)$", detail or "") or re.search(
        r"most toxic line \([^)]*\): (.+)$", detail or ""
    )
    if flagged:
        needle = flagged.group(1).strip()[:200]
        for m in re.finditer(re.escape(needle), text, flags=re.IGNORECASE):
            marks.append((m.start(), m.end(), "flag"))
    out, pos = [], 0
    for start, end, cls in sorted(marks):
        if start < pos:
            continue
        out.append(escape(text[pos:start]) + f'<mark class="{cls}">{escape(text[start:end])}</mark>')
        pos = end
    return "".join(out) + escape(text[pos:])


def _samples_section(run: RunDir, stats: dict) -> str:
    samples = samples_by_reason(run, SAMPLES_PER_REASON)
    parts = []
    for reason in sorted(samples):
        docs = samples[reason]
        items = []
        for doc in docs:
            text = (doc.get("text") or "")[:SAMPLE_CHARS]
            more = len(doc.get("text") or "") - len(text)
            detail = doc.get("detail") or ""
            items.append(
                f"<p class='muted'>{escape(doc.get('url') or '')} <code>{escape(doc.get('id') or '')}</code>"
                f"{(' &mdash; ' + escape(detail)) if detail else ''}</p>"
                f"<pre class='doc'>{highlight(text, reason, detail)}"
                f"{f' [... {more:,} more characters]' if more > 0 else ''}</pre>"
            )
        parts.append(
            f"<details><summary><b>{escape(reason)}</b> ({len(docs)} shown)</summary>{''.join(items)}</details>"
        )
    intro = (
        "<p>A few documents per drop reason (sampled uniformly; "
        f"<code>{escape(sample_command(run.url))} --reason R</code> "
        "shows more). "
        "Marked: <mark class='pii'>masked PII</mark>, <mark class='rep'>repeated lines</mark>, "
        "<mark class='flag'>flagged words or lines</mark>.</p>"
    )
    return _section("samples", "Rejected documents", intro + ("".join(parts) or "<p>Nothing was rejected.</p>"))
