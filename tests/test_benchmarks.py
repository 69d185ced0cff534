"""The benchmarks run from a clean checkout: every project name they import exists, each script answers
``--help`` without doing work, and the filter benchmark's own side runs on a sample WARC (its set-up: the
workflow copy, the run directory, one shard through every stage)."""

from __future__ import annotations

import ast
import importlib
import re
import subprocess
import sys

import pytest

from tests.helpers import ROOT, WARC_DIR

BENCHMARKS = ROOT / "benchmarks"
SCRIPTS = sorted(BENCHMARKS.glob("bench_*.py"))
PROJECT = ("pipeline", "filters", "tokenizer", "trainer")


def project_imports(path):
    """(module, name) for every ``from <project module> import name`` in a file, at any depth."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in PROJECT:
            for alias in node.names:
                yield node.module, alias.name
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in PROJECT:
                    yield alias.name, None


@pytest.mark.parametrize("path", sorted(BENCHMARKS.glob("*.py")), ids=lambda p: p.name)
def test_every_project_name_a_benchmark_imports_exists(path):
    for module, name in project_imports(path):
        loaded = importlib.import_module(module)
        assert name is None or hasattr(loaded, name) or importlib.util.find_spec(f"{module}.{name}"), (
            f"{path.name}: from {module} import {name}"
        )


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_every_benchmark_answers_help_without_working(path):
    out = subprocess.run([sys.executable, str(path), "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "usage:" in out.stdout, out.stderr[-2000:]


def test_the_filter_benchmark_runs_its_side_on_a_sample(tmp_path):
    warc = WARC_DIR / "dolma" / "sample-0000.warc.gz"
    out = subprocess.run(
        [sys.executable, str(BENCHMARKS / "bench_filter_throughput.py"), "--dry-run", str(warc)]
        + ["--work", str(tmp_path), "--cpu", "-1"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    counts = re.search(r"(\d+) read, (\d+) kept", out.stdout)
    assert counts, out.stdout
    read, kept = int(counts.group(1)), int(counts.group(2))
    assert read > 0 and 0 < kept <= read
