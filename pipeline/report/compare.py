"""``refinery report RUN --compare RUN_B``: two runs' funnels side by side, stage by stage in the order the
runs share, and what differs between their configurations (inputs, each stage's settings, ``on_error``),
read from the normalized workflow each run records in ``workflow.json``."""

from __future__ import annotations

import ast
import json
import os
from html import escape

from pipeline.report.page import section

MAX_FILES_LISTED = 5


def merged_order(a: list[str], b: list[str]) -> list[str]:
    """Stage names of both runs in one order: ``a``'s, with each stage only ``b`` has placed before the next
    stage of ``b`` that ``a`` also has (a run that starts from another's documents puts its ``input`` stage
    where that run's documents were)."""
    order = list(a)
    for i, name in enumerate(b):
        if name in order:
            continue
        following = next((n for n in b[i + 1 :] if n in order), None)
        order.insert(order.index(following) if following else len(order), name)
    return order


def funnel_rows(stats: dict) -> dict[str, list[tuple[str, str, str, int]]]:
    """Per stage name: (css class, key, label, documents) of its funnel rows: in, dropped per reason, kept."""
    rows = {}
    for stage in stats["stages"]:
        name, n_in = stage["stage"], stage.get("docs_in", 0)
        out = [("stage", f"{name}.docs_in", f"{name} ({stage['kind']}): documents in", n_in)]
        for reason, count in sorted(stage.get("dropped", {}).items(), key=lambda kv: (-kv[1], kv[0])):
            out.append(("reason", f"{name}.dropped.{reason}", f"dropped {reason}", count))
        out.append(("kept", f"{name}.docs_kept", "kept", stage.get("docs_kept", 0)))
        rows[name] = out
    return rows


def compare_section(a: dict, b: dict, workflow_a: dict, workflow_b: dict) -> str:
    """The comparison: configuration differences, then both funnels side by side with the difference."""
    name_a, name_b = escape(a["run"]["name"]), escape(b["run"]["name"])
    rows_a, rows_b = funnel_rows(a), funnel_rows(b)
    table = f"<table><tr><th></th><th>{name_a}</th><th>{name_b}</th><th>difference</th></tr>"
    for stage in merged_order(list(rows_a), list(rows_b)):
        merged: dict[str, list] = {}
        for side, rows in ((0, rows_a), (1, rows_b)):
            for cls, key, label, count in rows.get(stage, []):
                merged.setdefault(key, [cls, label, None, None])[2 + side] = count
        kept = [k for k, v in merged.items() if v[0] == "kept"]
        for key in [k for k in merged if k not in kept] + kept:
            cls, label, x, y = merged[key]
            diff = "" if x is None or y is None else f"{y - x:+,}"
            table += (
                f'<tr class="{cls}"><td>{escape(label)}</td><td>{"-" if x is None else f"{x:,}"}</td>'
                f"<td>{'-' if y is None else f'{y:,}'}</td><td>{diff}</td></tr>"
            )
    table += "</table>"
    intro = f"<p>Run <b>{name_a}</b> (this report) against <b>{name_b}</b>.</p>"
    return section(
        "compare",
        "Comparison",
        intro
        + "<h3>Configuration differences</h3>"
        + config_diff(workflow_a, workflow_b, name_a, name_b)
        + "<h3>Funnels</h3>"
        + table,
    )


def config_diff(workflow_a: dict, workflow_b: dict, name_a: str = "A", name_b: str = "B") -> str:
    """A table of the settings that differ between two runs' workflows, part by part (inputs, then stage by
    stage), or a sentence saying there is none."""
    diffs = differences(workflow_a, workflow_b)
    if not diffs:
        return "<p>The two runs have the same configuration (inputs, stages and their settings).</p>"
    rows = "".join(
        f"<tr><td>{escape(part)}</td><td>{escape(key)}</td><td class='changed'>{escape(x)}</td>"
        f"<td class='changed'>{escape(y)}</td></tr>"
        for part, key, x, y in diffs
    )
    header = f"<tr><th>part</th><th>setting</th><th>{name_a}</th><th>{name_b}</th></tr>"
    return f"<table class='meta config-diff'>{header}{rows}</table>"


def differences(workflow_a: dict, workflow_b: dict) -> list[tuple[str, str, str, str]]:
    """(part, setting, value in a, value in b) for every setting that differs ("-": the run has none)."""
    parts_a, parts_b = settings(workflow_a), settings(workflow_b)
    stage_names = merged_order(list(parts_a), list(parts_b))
    out = []
    for part in stage_names:
        x, y = parts_a.get(part), parts_b.get(part)
        if x is None or y is None:
            out.append((part, "stage", x["kind"] if x else "-", y["kind"] if y else "-"))
            continue
        changed = [key for key in dict.fromkeys([*x, *y]) if x.get(key) != y.get(key)]
        files = [key for key in changed if key.startswith("file ")]
        for group, keys in _grouped([k for k in changed if k not in files], x, y):
            if group:  # a filter only one run has: one row
                out.append((part, group, _summary(x, keys), _summary(y, keys)))
            else:
                out += [(part, key, x.get(key, "-"), y.get(key, "-")) for key in keys]
        out += [(part, key, x.get(key, "-"), y.get(key, "-")) for key in files[:MAX_FILES_LISTED]]
        if len(files) > MAX_FILES_LISTED:
            out.append((part, "files", f"... and {len(files) - MAX_FILES_LISTED:,} more files differ", ""))
    return out


def _grouped(keys: list[str], x: dict, y: dict) -> list[tuple[str, list[str]]]:
    """Changed keys in order; the settings of a filter (``name.setting``) that only one side has are gathered
    under the filter's name, the others come one by one under ""."""
    heads_x, heads_y = _heads(x), _heads(y)
    out: list[tuple[str, list[str]]] = []
    for key in keys:
        head = key.split(".", 1)[0] if "." in key else ""
        group = head if head and (head in heads_x) != (head in heads_y) else ""
        if group and out and out[-1][0] == group:
            out[-1][1].append(key)
        else:
            out.append((group, [key]))
    return out


def _heads(part: dict) -> set[str]:
    """The filters of a stage's settings: the first parts of its dotted keys."""
    return {key.split(".", 1)[0] for key in part if "." in key}


def _summary(part: dict, keys: list[str]) -> str:
    present = [f"{k.split('.', 1)[1]}={part[k]}" for k in keys if k in part]
    text = ", ".join(present)
    return "-" if not present else text if len(text) <= 160 else text[:159] + "…"


def settings(workflow: dict) -> dict[str, dict[str, str]]:
    """Every setting of a run's normalized workflow, as {part: {setting: value}}: ``[input]`` first (every
    file a setting), then each stage by name (settings from its ``repr``, filters keyed by their names), then
    ``[run]`` (``on_error``)."""
    normalized = workflow.get("normalized") or {}
    kinds = {s["name"]: s["kind"] for s in workflow.get("stages", [])}
    parts: dict[str, dict[str, str]] = {"[input]": _input_settings(normalized.get("input") or {})}
    for text in normalized.get("stages", []):
        flat: dict[str, str] = {}
        try:
            node = ast.parse(text, mode="eval").body
        except SyntaxError:
            node = None
        name = _keyword(node, "name") if node is not None else None
        if node is None or name is None:
            parts[text] = {"kind": "?", "settings": text}
            continue
        _flatten(node, "", flat, named=True)
        parts[name] = {"kind": kinds.get(name, _callee(node)), **flat}
    rest = {
        k: json.dumps(v) if not isinstance(v, str) else v for k, v in normalized.items() if k not in ("input", "stages")
    }
    if rest:
        parts["[run]"] = {"kind": "run", **rest}
    return parts


def _input_settings(inputs: dict) -> dict[str, str]:
    files = inputs.get("files") or []
    count = f"{len(files):,} file{'' if len(files) == 1 else 's'}"
    out = {"kind": "input", "files": f"{count}, {sum(size for _, size in files):,} bytes"}
    for name, value in inputs.items():
        if name != "files":
            out[name] = json.dumps(value)
    for path, size in files:
        out[f"file {path}"] = f"{size:,} bytes"
    return out


def _callee(node: ast.AST) -> str:
    return ast.unparse(node.func) if isinstance(node, ast.Call) else "?"


def _keyword(node: ast.AST, name: str) -> str | None:
    if isinstance(node, ast.Call):
        for kw in node.keywords:
            if kw.arg == name and isinstance(kw.value, ast.Constant):
                return str(kw.value.value)
    return None


def _is_record(node: ast.AST) -> bool:
    """A dataclass repr: ``Name(key=value, ...)`` without positional arguments."""
    return isinstance(node, ast.Call) and not node.args and bool(node.keywords)


def _flatten(node: ast.AST, prefix: str, out: dict[str, str], named: bool = False) -> None:
    """Settings of a dataclass repr as dotted keys: a nested record's settings join its parent's, a list of
    named records is keyed by their names (``language.threshold``), any other value is its source text
    (absolute paths normalized)."""
    if _is_record(node):
        for kw in node.keywords:
            if named and kw.arg == "name":
                continue
            key = prefix if _is_record(kw.value) else ".".join(p for p in (prefix, kw.arg) if p)
            _flatten(kw.value, key, out)
        return
    if isinstance(node, (ast.List, ast.Tuple)) and node.elts and all(_keyword(e, "name") for e in node.elts):
        base = prefix.rsplit(".", 1)[0] if "." in prefix else ""
        for element in node.elts:
            _flatten(element, ".".join(p for p in (base, _keyword(element, "name")) if p), out, named=True)
        return
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and os.path.isabs(node.value):
        node = ast.Constant(os.path.normpath(node.value))  # the same file however the workflow spelled it
    out[prefix] = ast.unparse(node)
