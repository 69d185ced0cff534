"""The house rules of the code, checked on every file: small modules and functions, Ray only in the engine,
the packages' layering, no import cycles, one configuration error, every CLI command registered next to
its code."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

from tests.helpers import ROOT

PACKAGES = ("pipeline", "filters", "tokenizer", "trainer")
MAX_FILE_LINES = 600
MAX_FUNCTION_LINES = 80
# what each package may import of the others (data flows one way: pipeline calls down, nothing calls up)
MAY_IMPORT = {
    "tokenizer": {"tokenizer"},
    "filters": {"filters", "tokenizer"},
    "trainer": {"trainer", "tokenizer"},
    "pipeline": {"pipeline", "filters", "tokenizer", "trainer"},
}


def sources() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[str]:
    """Every module ``path`` imports, at any depth (inside functions and ``TYPE_CHECKING`` blocks too)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append(node.module)
            found += [f"{node.module}.{alias.name}" for alias in node.names]
    return found


def test_no_file_or_function_is_too_long():
    long = []
    for path in sources():
        text = path.read_text(encoding="utf-8")
        if text.count("\n") > MAX_FILE_LINES:
            long.append(f"{path.relative_to(ROOT)}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}: {node.name} has {lines} lines")
    assert not long, long


def test_ray_is_imported_only_by_the_engine():
    outside = [
        str(path.relative_to(ROOT))
        for path in sources()
        if any(m == "ray" or m.startswith("ray.") for m in imports(path))
        and not path.relative_to(ROOT).as_posix().startswith("pipeline/engine/")
    ]
    assert not outside, outside


def test_packages_import_only_downwards():
    wrong = []
    for path in sources():
        package = path.relative_to(ROOT).parts[0]
        for module in imports(path):
            top = module.split(".")[0]
            if top in PACKAGES and top not in MAY_IMPORT[package]:
                wrong.append(f"{path.relative_to(ROOT)} imports {module}")
    assert not wrong, wrong


def test_no_import_cycle():
    modules = {module_name(p): p for p in sources()}
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in modules.items():
        for target in imports(path):
            while target and target not in modules:  # "pkg.mod.name" -> "pkg.mod"
                target = target.rpartition(".")[0]
            if target and target != name and not name.startswith(target + "."):
                graph[name].add(target)
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(modules):
        if node not in state and (cycle := visit(node)):
            pytest.fail(" -> ".join(cycle))


def test_one_configuration_error_class():
    defined = [
        f"{path.relative_to(ROOT)}: {node.name}"
        for path in sources()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.ClassDef) and "Config" in node.name and "Error" in node.name
    ]
    assert defined == ["tokenizer/errors.py: ConfigError"], defined


def test_every_command_is_registered_by_the_module_of_its_area():
    from pipeline.cli import COMMAND_MODULES, build_parser

    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # noqa: SLF001 - argparse keeps them there
    owners = {}
    for name, sub in commands.items():
        func = sub.get_default("func") or next(iter(sub._subparsers._group_actions[0].choices.values())).get_default(
            "func"
        )
        owners[name] = func.__module__
    assert set(owners.values()) == set(COMMAND_MODULES)
    assert owners["run"] == "pipeline.commands" and owners["stats"] == "pipeline.report.commands"
    assert owners["train"] == "pipeline.models.commands" and owners["tokenize"] == "pipeline.tools.commands"
