"""The HTML report of a demo run: its numbers equal stats.json, every section renders in headless Chromium
with no console errors, training runs on the shards are linked, two runs compare side by side."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from html.parser import HTMLParser

import pytest

from pipeline.cli import main
from pipeline.report.html import SECTIONS, build_report, highlight, write_report
from pipeline.runner import run_workflow
from pipeline.workflow import load_workflow
from tests.helpers import ROOT, document_stages
from trainer.config import LoopConfig, TrainConfig
from trainer.data import DataConfig
from trainer.loop import Trainer
from trainer.model_config import ModelConfig

pytestmark = pytest.mark.usefixtures("ray_session")
DEMO = ROOT / "workflows" / "demo.toml"


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """The demo workflow's run, and a small model trained on its shards in a folder next to it."""
    root = tmp_path_factory.mktemp("report")
    stats = run_workflow(load_workflow(str(DEMO)), output=str(root), progress=False)
    run_dir = stats["run"]["run_dir"]
    config = TrainConfig(
        model=ModelConfig(vocab_size=2000, context_length=32, d_model=32, n_layers=1, n_heads=2),
        data=DataConfig(train=[f"{run_dir}/tokenize/shards/*"], valid_fraction=0.1),
        train=LoopConfig(
            steps=20, batch_size=4, eval_every=10, eval_batches=2, log_every=5, out_dir=str(root / "tiny")
        ),
    )
    Trainer(config, progress=False).run()
    return run_dir


class Cells(HTMLParser):
    """The text of every element with a ``data-stat`` key, and the ids of the sections."""

    def __init__(self):
        super().__init__()
        self.cells: dict[str, str] = {}
        self.sections: list[str] = []
        self._key = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "data-stat" in attrs:
            self._key = attrs["data-stat"]
        if tag == "section":
            self.sections.append(attrs.get("data-section"))

    def handle_data(self, data):
        if self._key:
            self.cells[self._key] = data
            self._key = None


def stat(stats: dict, key: str) -> int:
    stage_name, _, rest = key.partition(".")
    stage = next(s for s in stats["stages"] if s["stage"] == stage_name)
    if rest.startswith("dropped."):
        return stage["dropped"][rest[len("dropped.") :]]
    if rest.startswith("steps."):
        step_name = rest[len("steps.") : -len(".dropped")]
        return sum(next(s for s in stage["steps"] if s["name"] == step_name)["dropped"].values())
    if rest.startswith("events."):
        return stage["events"][rest[len("events.") :]]
    return stage[rest]


def test_every_number_in_the_funnel_equals_stats_json(demo_run):
    html = build_report(demo_run)
    parser = Cells()
    parser.feed(html)
    stats = json.load(open(os.path.join(demo_run, "stats.json")))
    assert len(parser.cells) > 40
    for key, text in parser.cells.items():
        assert int(text.replace(",", "")) == stat(stats, key), key
    assert parser.sections == list(SECTIONS)
    reasons = {r for s in stats["stages"] for r in s["dropped"]}
    assert all(f"{r}</b>" in html for r in reasons)  # a sample per drop reason
    assert f"refinery sample {demo_run} --reason R" in html and "refinery sample RUN" not in html


def test_thresholds_are_marked_and_training_runs_are_linked(demo_run):
    html = build_report(demo_run)
    assert html.count('class="threshold"') >= 10  # the red lines of the filters' keep ranges
    assert "language_score</b>" in html and "keep ≥ 0.65" in html
    training = html[html.index('id="training"') : html.index('id="samples"')]
    assert "tiny" in training and "<path" in training  # the loss curve of the model trained on these shards
    assert "bytes per token" in html


def test_evidence_is_marked_in_rejected_samples():
    text = "Mail |||EMAIL_ADDRESS||| now\nBuy now\nBuy now\nthe end"
    marked = highlight(text, "quality.gopher_repetition.dup_line_frac", "")
    assert '<mark class="pii">|||EMAIL_ADDRESS|||</mark>' in marked
    assert marked.count('<mark class="rep">Buy now</mark>') == 2
    flagged = highlight("A damn shame <b>", "quality.c4_badwords.bad_word", "bad word: damn")
    assert '<mark class="flag">damn</mark>' in flagged and "&lt;b&gt;" in flagged


def test_compare_shows_two_funnels_side_by_side(demo_run, tmp_path, capsys):
    strict = tmp_path / "strict.toml"
    text = document_stages(DEMO.read_text()).replace('name = "demo"', 'name = "strict"')
    text = text.replace("threshold = 0.65", "threshold = 0.9")
    strict.write_text(
        text.replace('"../data/', f'"{ROOT}/data/').replace('output = "../runs"', f'output = "{tmp_path}"')
    )
    other = run_workflow(load_workflow(str(strict)), output=str(tmp_path), progress=False)["run"]["run_dir"]
    assert main(["report", demo_run, "--compare", other]) == 0
    html = open(os.path.join(demo_run, "report.html"), encoding="utf-8").read()
    compare = html[html.index('id="compare"') : html.index('id="funnel"')]
    assert "demo</th>" in compare and "strict</th>" in compare
    assert "dropped language.score_below_threshold" in compare and "+" in compare
    assert f"report: {demo_run}/report.html" in capsys.readouterr().out


def test_reading_a_run_imports_neither_ray_nor_the_filters(demo_run, tmp_path):
    """stats, report and sample read plain files: a machine without Ray's workers, or a notebook, opens a run."""
    script = f"""
import contextlib, io, sys
from pipeline.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    assert main(["stats", {demo_run!r}]) == 0
    assert main(["report", {demo_run!r}, "--output", {str(tmp_path / "r.html")!r}]) == 0
    assert main(["sample", {demo_run!r}, "--reason", "exact_dedup.duplicate", "-n", "1"]) == 0
loaded = [m for m in sys.modules if m.split(".")[0] in ("ray", "filters", "fasttext", "resiliparse")]
print(loaded)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def chromium() -> str:
    """Headless Chromium, installed with apt-get where missing (as root); a skip saying why where it cannot."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip(
            "Chromium is not installed and cannot be installed here (needs root and apt-get): apt install chromium"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "chromium"]
    if subprocess.run(install, env=env, capture_output=True, timeout=900).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=600)
        subprocess.run(install, env=env, capture_output=True, timeout=900)
    if not shutil.which("chromium"):
        pytest.skip("apt-get could not install chromium (no package source reachable)")
    return shutil.which("chromium")


def test_the_report_renders_in_headless_chromium_without_console_errors(demo_run, tmp_path):
    browser = chromium()
    path = write_report(demo_run, output=str(tmp_path / "report.html"))
    run = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--enable-logging=stderr",
            "--v=0",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--dump-dom",
            f"file://{path}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    dom = run.stdout
    assert f'data-ready="{len(SECTIONS)}"' in dom  # the page's script ran and counted every section rendered
    for name in SECTIONS:
        assert f'data-section="{name}" data-rendered="1"' in dom, name
    console = [line for line in run.stderr.splitlines() if ":CONSOLE" in line]
    assert console == []
