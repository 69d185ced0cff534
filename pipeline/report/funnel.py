"""The funnel table of ``refinery stats``: documents and bytes through every stage, filter and drop reason,
with metric quantiles and labels, from a run's merged statistics."""

from __future__ import annotations

import bisect
import os


def render_funnel(stats: dict) -> str:
    """A plain-text table: per stage and filter, documents and bytes in, kept, dropped per reason."""
    info = stats["run"]
    run = _shown_path(info.get("run_dir", "RUN"))
    lines = [
        f"run {info['name']}: {info['inputs']} input files, {info['shards']} shards"
        + ("" if info.get("complete") else "  (INCOMPLETE: numbers cover the shards done so far)")
    ]
    header = f"{'':44}{'docs':>12}{'%':>9}{'bytes':>12}".rstrip()
    for stage in stats["stages"]:
        n_in = stage.get("docs_in", 0)
        timing = (
            f"{stage['timing']['wall_s']:.1f} s wall"
            if "timing" in stage
            else f"{stage.get('elapsed_s', 0):.1f} s of work"
        )
        lines += [
            "",
            f"{stage['stage']} ({stage['kind']}, {stage['shards_done']}/{info['shards']} shards, {timing})",
            header,
        ]
        lines.append(_row("documents in", n_in, None, stage.get("bytes_in", 0)))
        steps = stage.get("steps") or []
        if steps:
            for step in steps:
                dropped = sum(step["dropped"].values())
                label = f"{step['name']}: in {step['docs_in']:,}, dropped"
                lines.append(_row(label, dropped, _pct(dropped, step["docs_in"])))
                for reason, count in sorted(step["dropped"].items(), key=lambda kv: -kv[1]):
                    lines.append(_row(f"    {reason}", count, _pct(count, n_in)))
                for event, count in sorted(step["events"].items()):
                    lines.append(f"      event {event}: {count:,}")
        else:
            for reason, count in sorted(stage.get("dropped", {}).items(), key=lambda kv: -kv[1]):
                lines.append(_row(f"  dropped {reason}", count, _pct(count, n_in)))
        lines.append(
            _row("kept", stage.get("docs_kept", 0), _pct(stage.get("docs_kept", 0), n_in), stage.get("bytes_kept", 0))
        )
        if stage.get("kind") == "tokenize" and stage.get("events", {}).get("tokens"):
            tokens = stage["events"]["tokens"]
            lines.append(f"  tokens: {tokens:,} ({stage['bytes_in'] / tokens:.2f} bytes per token, EOS included)")
        if stage.get("events"):
            lines.append("  events: " + ", ".join(f"{k} {v:,}" for k, v in sorted(stage["events"].items())))
        if stage.get("clusters"):
            c = stage["clusters"]
            keys = [k for k in ("candidate_pairs", "verified_pairs") if k in c]
            pairs = "".join(f", {k.replace('_', ' ')} {c[k]:,}" for k in keys)
            lines.append(f"  clusters: {c['clusters']:,} holding {c['documents_in_clusters']:,} documents{pairs}")
            for big in c["largest"][:5]:
                lines.append(f"    {big['size']:>6,} documents  refinery sample {run} --cluster '{big['cluster']}'")
        if stage.get("records"):
            lines.append("  WARC records: " + ", ".join(f"{k} {v:,}" for k, v in sorted(stage["records"].items())))
        if stage.get("read_issues"):
            lines.append("  unreadable: " + ", ".join(f"{k} {v:,}" for k, v in sorted(stage["read_issues"].items())))
        metrics = [(name, h) for name, h in stage.get("histograms", {}).items() if h["n"]]
        if metrics:
            lines.append(f"  {'metric':<40}{'docs':>8}{'mean':>10}{'p10':>10}{'p50':>10}{'p90':>10}")
            for name, h in metrics:
                p10, p50, p90 = (histogram_quantile(h, q) for q in (0.1, 0.5, 0.9))
                lines.append(f"  {name:<40}{h['n']:>8,}{h['sum'] / h['n']:>10.4g}{p10:>10.4g}{p50:>10.4g}{p90:>10.4g}")
        for label, counts in sorted(stage.get("labels", {}).items()):
            top = sorted(counts.items(), key=lambda kv: -kv[1])[:8]
            lines.append(
                f"  {label}: "
                + ", ".join(f"{k} {v:,}" for k, v in top)
                + (f", ... ({len(counts)} values)" if len(counts) > 8 else "")
            )
    return "\n".join(lines)


def histogram_quantile(h: dict, q: float) -> float:
    """The ``q`` quantile of a histogram: exact for zeros, else interpolated linearly inside its bin (clamped to
    the observed range)."""
    target = q * h["n"]
    if target <= h["zeros"]:
        return 0.0
    edges, counts = h["edges"], list(h["counts"])
    counts[bisect.bisect_right(edges, 0)] -= h["zeros"]
    seen = h["zeros"]
    for i, count in enumerate(counts):
        if count and seen + count >= target:
            lo = edges[i - 1] if i > 0 else h["min"]
            hi = edges[i] if i < len(edges) else h["max"]
            value = lo + (hi - lo) * (target - seen) / count
            return min(max(value, h["min"]), h["max"])
        seen += count
    return h["max"]


def _shown_path(path: str) -> str:
    """``path`` relative to the working directory when it lies below it (as a user would type it)."""
    if "://" in path or not os.path.isabs(path):
        return path
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


def _row(label: str, count: int, pct: float | None, size: int | None = None) -> str:
    pct_text = "" if pct is None else f"{pct:.1f}%"
    size_text = "" if size is None else _bytes(size)
    return f"  {label:<42}{count:>12,}{pct_text:>9}{size_text:>12}".rstrip()


def _pct(part: int, whole: int) -> float:
    return 100.0 * part / whole if whole else 0.0


def _bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"  # pragma: no cover
