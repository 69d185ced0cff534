"""``refinery report RUN``: one self-contained HTML file (inline CSS and SVG, no network) with everything a
run's statistics say, for reading rather than parsing.

Sections: run metadata (workflow, versions, timings, unreadable input and failures), the funnel (documents
through every stage, filter and drop reason), filter score histograms with their thresholds, languages,
document lengths before and after filtering, dedup clusters, tokenizer and shards, training curves of the
models trained on this run's shards, and sampled rejected documents per reason with the evidence marked.
``--compare RUN_B`` adds the two funnels side by side and the configuration differences. Every number
comes from ``stats.json`` (or the files named beside it), and the funnel cells carry ``data-stat`` keys so
tests can check them. A run that kept nothing renders every section too.
"""

from __future__ import annotations

import os
import re
import shlex
from collections import Counter
from html import escape

import fsspec

from pipeline.report import charts
from pipeline.report.axes import format_number, plural
from pipeline.report.collect import load_stats
from pipeline.report.compare import compare_section
from pipeline.report.page import cell, duration, figure, page, pct, section
from pipeline.report.samples import samples_by_reason
from pipeline.report.training import training_section
from pipeline.rundir import RunDir

SAMPLES_PER_REASON = 3
SAMPLE_CHARS = 1500
LENGTH_HISTOGRAMS = ("text_chars_in", "text_chars_kept", "tokens_per_document")
SECTIONS = ("run", "funnel", "filters", "languages", "lengths", "dedup", "tokenizer", "training", "samples")
SCRIPT = """
for (const s of document.querySelectorAll('section[data-section]')) {
  if (s.querySelector('svg, table, p, pre')) s.dataset.rendered = '1';
}
document.documentElement.dataset.ready = String(document.querySelectorAll('section[data-rendered]').length);
"""
UNITS = (  # a metric's unit, by the end of its name, for the x axis of its histogram
    (("_ratio", "_frac"), "fraction"),
    (("_score",), "score"),
    (("_words",), "words"),
    (("_sentences",), "sentences"),
    (("_length",), "characters"),
)


def write_report(run_url: str, compare: str | None = None, training: list[str] = (), output: str = "") -> str:
    """Build the report of a run and write it to ``output``; its path. By default that is
    ``<run>/report.html``, or ``<run>/compare-<other run's name>.html`` for a comparison, so that a
    comparison never replaces the run's own report."""
    run = RunDir(run_url)
    html = build_report(run_url, compare, training)
    if output:  # a path or URL of its own, on its own filesystem (a local path stays local)
        with fsspec.open(output, "w", encoding="utf-8") as f:
            f.write(html)
        return output
    name = "report.html"
    if compare:
        other = RunDir(compare).read_json(RunDir(compare).path("workflow.json"))["name"]
        name = f"compare-{re.sub(r'[^A-Za-z0-9._-]+', '_', other)}.html"
    run.write_bytes(run.path(name), html.encode("utf-8"))
    return run.full(name)


def build_report(run_url: str, compare: str | None = None, training: list[str] = ()) -> str:
    """The report's HTML."""
    run = RunDir(run_url)
    stats = load_stats(run)
    workflow = run.read_json(run.path("workflow.json"))
    other = None
    if compare:
        other_run = RunDir(compare)
        other = (load_stats(other_run), other_run.read_json(other_run.path("workflow.json")))
    body = [
        _run_section(stats, workflow),
        compare_section(stats, other[0], workflow, other[1]) if other else "",
        _funnel_section(stats),
        _filters_section(stats),
        _languages_section(stats),
        _lengths_section(stats),
        _dedup_section(stats, run.url),
        _tokenizer_section(run, stats, workflow),
        training_section(run, training),
        _samples_section(run, stats),
    ]
    sections = [*SECTIONS[:1], *(["compare"] if other else []), *SECTIONS[1:]]
    return page(f"refinery report: {stats['run']['name']}", "".join(body), nav=sections, script=SCRIPT)


def _wall_time(info: dict) -> str:
    if "wall_s" not in info:
        return "-"
    runs = info.get("invocations")
    if runs is None:
        return duration(info["wall_s"])
    return f"{duration(info['wall_s'])} in total over {runs:,} invocation{'' if runs == 1 else 's'} of the run"


def _run_section(stats: dict, workflow: dict) -> str:
    info = stats["run"]
    rows = [
        ("workflow file", workflow.get("file", "")),
        ("run directory", info.get("run_dir", "")),
        ("complete", "yes" if info.get("complete") else "NO: numbers cover the shards done so far"),
        ("input files / shards", f"{info.get('inputs', 0):,} / {info.get('shards', 0):,}"),
        ("wall time", _wall_time(info)),
        ("versions", ", ".join(f"{k} {v}" for k, v in sorted(info.get("versions", {}).items()))),
    ]
    table = "<table class='meta'>" + "".join(f"<tr><td>{escape(k)}</td><td>{escape(str(v))}</td></tr>" for k, v in rows)
    table += "</table>"
    timing = "<table><tr><th>stage</th><th>kind</th><th>shards</th><th>wall s</th><th>work s</th></tr>"
    for stage in stats["stages"]:
        wall = stage.get("timing", {}).get("wall_s")
        timing += (
            f"<tr><td>{escape(stage['stage'])}</td><td>{escape(stage['kind'])}</td>{cell(stage.get('shards_done', 0))}"
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
    return section("run", "Run", table + "<h3>Timings</h3>" + timing + "<h3>Failures and skipped records</h3>" + issues)


def _flow(stats: dict) -> list[tuple[str, int]]:
    """(label, documents) after every stage and filter, starting with the documents read."""
    flow = [("documents read", stats["stages"][0].get("docs_in", 0))] if stats["stages"] else []
    for stage in stats["stages"]:
        remaining = stage.get("docs_in", 0)
        for step in stage.get("steps") or []:
            remaining -= sum(step["dropped"].values())
            flow.append((f"{stage['stage']}: after {step['name']}", remaining))
        flow.append((f"after {stage['stage']}", stage.get("docs_kept", 0)))
    return flow


def _funnel_section(stats: dict) -> str:
    table = "<table><tr><th></th><th>documents</th><th>share of stage input</th><th>bytes</th></tr>"
    for stage in stats["stages"]:
        name, n_in = stage["stage"], stage.get("docs_in", 0)
        table += (
            f'<tr class="stage"><td>{escape(name)} ({escape(stage["kind"])})</td>{cell(n_in, f"{name}.docs_in")}'
            f"<td></td>{cell(stage.get('bytes_in', 0), f'{name}.bytes_in')}</tr>"
        )
        for step in stage.get("steps") or []:
            dropped, step_name = sum(step["dropped"].values()), step["name"]
            table += (
                f'<tr class="reason"><td>filter {escape(step_name)}: in {step["docs_in"]:,}</td>'
                f"{cell(dropped, f'{name}.steps.{step_name}.dropped')}"
                f"<td>{pct(dropped, step['docs_in'])} of its input</td><td></td></tr>"
            )
        for reason, count in sorted(stage.get("dropped", {}).items(), key=lambda kv: (-kv[1], kv[0])):
            table += (
                f'<tr class="reason"><td>dropped {escape(reason)}</td>{cell(count, f"{name}.dropped.{reason}")}'
                f"<td>{pct(count, n_in)}</td><td></td></tr>"
            )
        kept = stage.get("docs_kept", 0)
        table += (
            f"<tr><td>kept</td>{cell(kept, f'{name}.docs_kept')}<td>{pct(kept, n_in)}</td>"
            f"{cell(stage.get('bytes_kept', 0), f'{name}.bytes_kept')}</tr>"
        )
        if stage["kind"] == "tokenize" and stage.get("events", {}).get("tokens"):
            table += (
                f"<tr><td>tokens</td>{cell(stage['events']['tokens'], f'{name}.events.tokens')}<td></td><td></td></tr>"
            )
    table += "</table>"
    flow = _flow(stats)
    read = flow[0][1] if flow else 0
    items = [(label, n) for label, n in flow]
    chart = charts.bars(items, unit="docs", share_of=read)
    caption = "Documents remaining after each stage and filter (share of the documents read)."
    if not read:
        records = stats["stages"][0].get("records", {}) if stats["stages"] else {}
        found = ", ".join(f"{kind} {count:,}" for kind, count in sorted(records.items())) or "none"
        caption = f"No document was read. Records in the input: {found}; none that extraction turns into a document."
    return section("funnel", "Funnel", figure(chart, escape(caption), "full") + table)


def metric_unit(name: str) -> str:
    """The unit of a filter metric, guessed from its name ("" when unknown)."""
    return next((unit for ends, unit in UNITS if name.endswith(ends)), "")


def _figure(name: str, hist: dict, x_label: str = "", y_label: str = "documents") -> str:
    """A histogram with a caption: its documents, mean, range and keep range; a note when it is empty."""
    if not hist.get("n"):
        return f"<figure><figcaption><b>{escape(name)}</b>: no documents.</figcaption></figure>"
    mean = hist["sum"] / hist["n"]
    lo, hi = hist.get("keep") or (None, None)
    bounds = [f"≥ {format_number(lo)}"] if lo is not None else []
    bounds += [f"≤ {format_number(hi)}"] if hi is not None else []
    unit = metric_unit(name)
    chart = charts.histogram(hist, x_label=x_label or (f"{name} ({unit})" if unit else name), y_label=y_label)
    caption = (
        f"<b>{escape(name)}</b>: {escape(plural(hist['n'], y_label))}, mean {format_number(mean)}, "
        f"min {format_number(hist['min'])}, max {format_number(hist['max'])}"
        + (f"; keep {escape(' and '.join(bounds))}" if bounds else "")
    )
    return figure(chart, caption)


def _filters_section(stats: dict) -> str:
    parts = []
    for stage in stats["stages"]:
        if stage["kind"] in ("extract", "tokenize") or not (stage.get("steps") or stage["kind"] == "filter"):
            continue
        metrics = {k: h for k, h in stage.get("histograms", {}).items() if h["n"] and k not in LENGTH_HISTOGRAMS}
        steps = "".join(
            f"<tr><td>{escape(s['name'])}</td>{cell(s['docs_in'])}{cell(sum(s['dropped'].values()))}"
            f"<td>{pct(s['docs_in'] - sum(s['dropped'].values()), s['docs_in'])}</td></tr>"
            for s in stage.get("steps") or []
        )
        table = (
            f"<table><tr><th>filter</th><th>in</th><th>dropped</th><th>kept</th></tr>{steps}</table>" if steps else ""
        )
        figures = "".join(_figure(k, h) for k, h in sorted(metrics.items()))
        shown = f"<div class='grid'>{figures}</div>" if figures else "<p>No document reached these filters.</p>"
        parts.append(f"<h3>{escape(stage['stage'])} ({escape(stage['kind'])})</h3>{table}{shown}")
    intro = (
        "<p>Scores of every document that reached the rule, with the kept range's bounds as red dashed lines and "
        "the bins outside it in orange; each axis spans the bins that hold documents (and the bounds). A document "
        "stops at the first rule it fails, so later rules see fewer.</p>"
    )
    return section("filters", "Filters and scores", intro + ("".join(parts) or "<p>No filter stage in this run.</p>"))


def _languages_section(stats: dict) -> str:
    counts: Counter = Counter()
    for stage in stats["stages"]:
        counts.update(stage.get("labels", {}).get("language", {}))
        if counts:
            break  # the first stage that labels languages saw them all
    if not counts:
        return section("languages", "Languages", "<p>No document was labelled with a language in this run.</p>")
    top = counts.most_common(25)
    rest = sum(counts.values()) - sum(c for _, c in top)
    items = [(lang or "(none)", c) for lang, c in top] + ([("other", rest)] if rest else [])
    chart = charts.bars(items, unit="docs", share_of=sum(counts.values()))
    caption = "Documents per language (lid.176's top label), with their share of the documents labelled."
    return section("languages", "Languages", figure(chart, escape(caption), "full"))


def _lengths_section(stats: dict) -> str:
    stages = [s for s in stats["stages"] if s["kind"] != "tokenize" and s.get("histograms", {}).get("text_chars_kept")]
    if not stages or not any(s["histograms"]["text_chars_kept"]["n"] for s in stages):
        return section("lengths", "Document length", "<p>No document was kept by any stage.</p>")
    first, last = stages[0], stages[-1]
    figures = _figure(
        f"after {first['stage']} (before filtering)", first["histograms"]["text_chars_kept"], "characters per document"
    )
    if last is not first:
        figures += _figure(
            f"after {last['stage']} (the result)", last["histograms"]["text_chars_kept"], "characters per document"
        )
    return section("lengths", "Document length", f"<div class='grid'>{figures}</div>")


def sample_command(run_url: str, *args: str) -> str:
    """The ``refinery sample`` command line for this run, quoted for a shell."""
    return shlex.join(["refinery", "sample", run_url, *args])


SPAN_DEDUP_KINDS = ("line_dedup", "paragraph_dedup", "sentence_dedup")  # remove parts of documents


def _dedup_section(stats: dict, run_url: str) -> str:
    parts = []
    for stage in stats["stages"]:
        clusters = stage.get("clusters")
        removed = sum(stage.get("dropped", {}).values())
        if not clusters and stage["kind"] not in SPAN_DEDUP_KINDS:
            continue
        line = f"<p>{escape(stage['stage'])} ({escape(stage['kind'])}): {removed:,} documents removed"
        if clusters:
            pairs = ", ".join(
                f"{k.replace('_', ' ')} {clusters[k]:,}" for k in ("candidate_pairs", "verified_pairs") if k in clusters
            )
            line += f"; {clusters['clusters']:,} clusters holding {clusters['documents_in_clusters']:,} documents"
            line += f"; {pairs}" if pairs else ""
        events = stage.get("events", {})
        for unit in ("lines", "paragraphs", "sentences"):
            if events.get(f"{unit}_removed"):
                line += f"; {events[f'{unit}_removed']:,} {unit} removed"
        parts.append(line + "</p>")
        hist = stage.get("histograms", {}).get(f"{stage['kind']}_cluster_size")
        if hist and hist["n"]:
            parts.append(
                f"<div class='grid'>{_figure('cluster size', hist, 'documents per cluster', 'clusters')}</div>"
            )
        if clusters and clusters.get("largest"):
            rows = "".join(
                f"<tr><td><code>{escape(c['cluster'])}</code></td>{cell(c['size'])}"
                f"<td><code>{escape(sample_command(run_url, '--cluster', c['cluster']))}</code></td></tr>"
                for c in clusters["largest"][:10]
            )
            parts.append(f"<table><tr><th>largest clusters</th><th>documents</th><th>see them</th></tr>{rows}</table>")
    return section("dedup", "Deduplication", "".join(parts) or "<p>No dedup stage in this run.</p>")


def _tokenizer_section(run: RunDir, stats: dict, workflow: dict) -> str:
    stage = next((s for s in stats["stages"] if s["kind"] == "tokenize"), None)
    if stage is None:
        return section("tokenizer", "Tokenizer and shards", "<p>No tokenize stage in this run.</p>")
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
        paths = sorted(p for p in run.fs.ls(folder, detail=False) if p.endswith(".json"))
        headers = [(os.path.basename(p)[: -len(".json")], run.read_json(p)) for p in paths]
    sources = {s["id"]: s for s in workflow.get("shards", [])}
    rows = "".join(
        f"<tr><td><code>{escape(shard)}</code></td><td class='text'>{escape(_source(sources.get(shard)))}</td>"
        f"{cell(h.get('documents', 0))}{cell(h.get('tokens', 0))}<td>{escape(h.get('dtype', ''))}</td></tr>"
        for shard, h in headers
    )
    total = (
        f"<tr class='stage'><td>total</td><td>{len(headers):,} shards</td>"
        f"{cell(sum(h.get('documents', 0) for _, h in headers))}{cell(sum(h.get('tokens', 0) for _, h in headers))}"
        "<td></td></tr>"
    )
    table = (
        "<table><tr><th>shard</th><th class='text'>input</th><th>documents</th><th>tokens</th><th>dtype</th></tr>"
        f"{rows}{total}</table>"
    )
    hist = stage.get("histograms", {}).get("tokens_per_document")
    plot = f"<div class='grid'>{_figure('tokens per document', hist, 'tokens per document')}</div>" if hist else ""
    return section("tokenizer", "Tokenizer and shards", text + plot + table)


def _source(shard: dict | None) -> str:
    """The input file and byte range a shard was read from (and how many small files it read with it)."""
    if not shard:
        return ""
    where = os.path.basename(shard["path"])
    if shard.get("start") or shard.get("end") is not None:
        end = "end" if shard.get("end") is None else f"{shard['end']:,}"
        where += f" bytes {shard.get('start') or 0:,}-{end}"
    if shard.get("also"):
        where += f" and {len(shard['also'])} more file{'s' if len(shard['also']) > 1 else ''}"
    return where


_PII = re.compile(r"\|\|\|[A-Z_]+\|\|\|")


def highlight(text: str, reason: str, detail: str) -> str:
    """Escaped ``text`` with the evidence for ``reason`` marked: PII masks, repeated lines, the flagged word
    or line named in ``detail``."""
    marks: list[tuple[int, int, str]] = [(m.start(), m.end(), "pii") for m in _PII.finditer(text)]
    if "repetition" in reason or "dup" in reason:
        lines = text.split("\n")
        repeated = {line for line, c in Counter(line.strip() for line in lines).items() if c > 1 and line}
        pos = 0
        for line in lines:
            if line.strip() in repeated:
                marks.append((pos, pos + len(line), "rep"))
            pos += len(line) + 1
    flagged = re.search(r"(?:bad word|most toxic line \([^)]*\)|in line): (.+)$", detail or "")
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
    dropped = Counter()
    for stage in stats["stages"]:
        dropped.update(stage.get("dropped", {}))
    parts = []
    for reason in sorted(samples):
        docs = samples[reason]
        items = []
        for doc in docs:
            text = (doc.get("text") or "")[:SAMPLE_CHARS]
            more = len(doc.get("text") or "") - len(text)
            detail = doc.get("detail") or ""
            items.append(
                f"<p class='muted'>{escape(doc.get('url') or '')} <code>{escape(doc.get('id') or '')}</code></p>"
                + (f"<p class='evidence'>why: {escape(detail)}</p>" if detail else "")
                + f"<pre class='doc'>{highlight(text, reason, detail)}"
                f"{f' [... {more:,} more characters]' if more > 0 else ''}</pre>"
            )
        parts.append(
            f"<details><summary><b>{escape(reason)}</b> ({plural(dropped[reason], 'documents')} dropped, "
            f"{len(docs)} shown)</summary>{''.join(items)}</details>"
        )
    intro = (
        "<p>A few documents per drop reason (sampled uniformly; "
        f"<code>{escape(sample_command(run.url))} --reason R</code> "
        "shows more), each with what dropped it: the rule's metric against its threshold, or the evidence. "
        "Marked: <mark class='pii'>masked PII</mark>, <mark class='rep'>repeated lines</mark>, "
        "<mark class='flag'>flagged words or lines</mark>.</p>"
    )
    return section("samples", "Rejected documents", intro + ("".join(parts) or "<p>Nothing was rejected.</p>"))
