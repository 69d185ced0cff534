"""The HTML report of a demo run: its numbers equal stats.json, every section renders in headless Chromium
with no console errors, training runs on the shards are linked, two runs compare side by side."""

from __future__ import annotations

import html as html_lib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from html.parser import HTMLParser

import pytest

from pipeline.cli import main
from pipeline.report.compare import compare_section, merged_order
from pipeline.report.html import SECTIONS, build_report, highlight, write_report
from pipeline.report.page import duration
from pipeline.report.training import in_training_order, training_section
from pipeline.rundir import RunDir
from pipeline.runner import run_workflow
from pipeline.workflow import load_workflow
from tests.helpers import ROOT, WARC_DIR, document_stages
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


@pytest.fixture(scope="module")
def strict_run(tmp_path_factory):
    """The demo's document stages with a stricter language threshold (0.9 instead of 0.65)."""
    root = tmp_path_factory.mktemp("strict")
    strict = root / "strict.toml"
    text = document_stages(DEMO.read_text()).replace('name = "demo"', 'name = "strict"')
    text = text.replace("threshold = 0.65", "threshold = 0.9")
    strict.write_text(text.replace('"../data/', f'"{ROOT}/data/').replace('output = "../runs"', f'output = "{root}"'))
    return run_workflow(load_workflow(str(strict)), output=str(root), progress=False)["run"]["run_dir"]


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


def test_compare_shows_two_funnels_and_the_configuration_difference(demo_run, strict_run, capsys):
    own = os.path.join(demo_run, "report.html")
    write_report(demo_run)
    before = open(own, encoding="utf-8").read()
    assert main(["report", demo_run, "--compare", strict_run]) == 0
    path = os.path.join(demo_run, "compare-strict.html")
    assert f"report: {path}" in capsys.readouterr().out
    assert open(own, encoding="utf-8").read() == before  # the run's own report is left alone
    html = open(path, encoding="utf-8").read()
    compare = html[html.index('id="compare"') : html.index('id="funnel"')]
    assert "demo</th>" in compare and "strict</th>" in compare
    assert "dropped language.score_below_threshold" in compare and "+" in compare
    diff = compare[compare.index("config-diff") : compare.index("</table>", compare.index("config-diff"))]
    assert re.search(r"<td>quality</td><td>language\.threshold</td><td[^>]*>0\.65</td><td[^>]*>0\.9</td>", diff)
    assert diff.count("<tr>") == 2  # the header and the one setting that differs


def test_compare_lists_stages_in_the_order_the_runs_share():
    """A run that starts from another's documents has an ``input`` stage: it goes where those documents were,
    before the stages both runs share, not last."""
    assert merged_order(["extract", "quality", "exact_dedup", "tokenize"], ["input", "exact_dedup", "tokenize"]) == [
        "extract",
        "quality",
        "input",
        "exact_dedup",
        "tokenize",
    ]

    def stats(name, stages):
        return {
            "run": {"name": name},
            "stages": [{"stage": s, "kind": s, "docs_in": 10, "docs_kept": 8, "dropped": {}} for s in stages],
        }

    a, b = stats("demo", ["extract", "quality", "exact_dedup"]), stats("rededup", ["input", "exact_dedup"])
    workflow = {"normalized": {"input": {"files": []}, "stages": [], "on_error": "skip"}}
    section = compare_section(a, b, workflow, workflow)
    rows = re.findall(r"<td>(\w+) \(\w+\): documents in</td>", section)
    assert rows == ["extract", "quality", "input", "exact_dedup"]
    assert "same configuration" in section


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


def dump_dom(browser: str, path, tmp_path, width: int = 1400) -> subprocess.CompletedProcess:
    """The page's DOM after its scripts ran, in a headless window ``width`` px wide; stderr has its console."""
    run = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--enable-logging=stderr",
            "--v=0",
            f"--window-size={width},1000",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--dump-dom",
            f"file://{path}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    return run


def test_the_report_renders_in_headless_chromium_without_console_errors(demo_run, tmp_path):
    browser = chromium()
    path = write_report(demo_run, output=str(tmp_path / "report.html"))
    run = dump_dom(browser, path, tmp_path)
    dom = run.stdout
    assert f'data-ready="{len(SECTIONS)}"' in dom  # the page's script ran and counted every section rendered
    for name in SECTIONS:
        assert f'data-section="{name}" data-rendered="1"' in dom, name
    console = [line for line in run.stderr.splitlines() if ":CONSOLE" in line]
    assert console == []


# Run in the page after layout: every text of every SVG inside its SVG's box and clear of the other texts,
# and how much of the window the sections use.
LAYOUT_CHECK = """
(() => {
  const problems = [];
  const box = e => e.getBoundingClientRect();
  const inside = (r, b) => r.left >= b.left - 0.5 && r.right <= b.right + 0.5 && r.top >= b.top - 0.5
    && r.bottom <= b.bottom + 0.5;
  const overlap = (a, b) => Math.min(a.right, b.right) - Math.max(a.left, b.left) > 0.5
    && Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top) > 0.5;
  const svgs = [...document.querySelectorAll('svg')];
  for (const svg of svgs) {
    const texts = [...svg.querySelectorAll('text')].filter(t => box(t).width > 0);
    for (const t of texts) {
      if (!inside(box(t), box(svg))) problems.push(`cut off: "${t.firstChild.textContent}"`);
    }
    for (let i = 0; i < texts.length; i++) for (let j = i + 1; j < texts.length; j++) {
      if (overlap(box(texts[i]), box(texts[j])))
        problems.push(`overlapping: "${texts[i].firstChild.textContent}", "${texts[j].firstChild.textContent}"`);
    }
  }
  const parts = [...document.querySelectorAll('section > *')].map(box);
  document.documentElement.dataset.layout = JSON.stringify({
    problems, charts: svgs.length, window: window.innerWidth, page: document.documentElement.scrollWidth,
    used: Math.max(...parts.map(b => b.right)) - Math.min(...parts.map(b => b.left)),
  });
})();
"""


def test_no_text_is_cut_off_and_the_page_uses_the_window(demo_run, strict_run, tmp_path):
    """The report of a real run (with a comparison) as a user sees it in a 1400 px window."""
    browser = chromium()
    path = write_report(demo_run, compare=strict_run, output=str(tmp_path / "report.html"))
    checked = tmp_path / "checked.html"
    page = open(path, encoding="utf-8").read()
    checked.write_text(page.replace("</body>", f"<script>{LAYOUT_CHECK}</script></body>"), encoding="utf-8")
    dom = dump_dom(browser, checked, tmp_path, width=1400).stdout
    layout = json.loads(html_lib.unescape(re.search(r'data-layout="([^"]*)"', dom).group(1)))
    assert layout["window"] == 1400 and layout["charts"] > 30
    assert layout["problems"] == []
    assert layout["used"] >= 0.9 * layout["window"]  # not a column in the left half
    assert layout["page"] <= layout["window"]  # nothing wider than the window


def test_drops_show_the_metric_and_the_threshold_that_dropped_them(demo_run, capsys):
    html = build_report(demo_run)
    samples = html[html.index('id="samples"') :]
    assert re.search(r"why: gopher_alpha_words_ratio = 0\.\d+ &lt; 0\.8 \(min_alpha_words_ratio\)", samples)
    # the language filter declares no rule map: its one bounded metric and its threshold parameter are found
    assert re.search(r"why: language_score = 0\.\d+ (&lt;|≤) 0\.65 \(threshold\)", samples)
    assert main(["sample", demo_run, "--reason", "gopher_quality.alpha_words_below_min", "-n", "2"]) == 0
    out = capsys.readouterr().out
    assert len(re.findall(r"why: gopher_alpha_words_ratio = 0\.\d+ < 0\.8 \(min_alpha_words_ratio\)", out)) == 2


def test_shards_are_listed_by_their_ids(demo_run):
    html = build_report(demo_run)
    section = html[html.index('id="tokenizer"') : html.index('id="training"')]
    ids = sorted(name[: -len(".json")] for name in os.listdir(f"{demo_run}/tokenize/shards") if name.endswith(".json"))
    assert re.findall(r"<td><code>([\w-]+)</code></td>", section) == ids
    shards = {s["id"]: s for s in json.load(open(os.path.join(demo_run, "workflow.json")))["shards"]}
    sources = re.findall(r"<td><code>[\w-]+</code></td><td class='text'>([^<]*)</td>", section)
    assert ids and all(os.path.basename(shards[i]["path"]) in where for i, where in zip(ids, sources))
    assert any(re.fullmatch(r"debian-docs-420p\.warc\.gz bytes [\d,]+-[\d,]+", where) for where in sources)


def test_the_run_wall_time_adds_up_its_invocations(demo_run):
    info = json.load(open(os.path.join(demo_run, "stats.json")))["run"]
    runs = info["invocations"]
    expected = f"{duration(info['wall_s'])} in total over {runs} invocation{'' if runs == 1 else 's'} of the run"
    assert expected in build_report(demo_run)
    assert duration(9.06) == "9.1 s" and duration(192) == "3 min 12 s" and duration(7500) == "2 h 05 min"


def test_pretraining_comes_before_fine_tuning_then_by_start(tmp_path):
    started = time.time() - 100
    folders = {}
    for name, kind, offset in (("a-sft", "SFTTrainer", 0), ("b-train", "Trainer", 20), ("c-train", "Trainer", 10)):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "training.json").write_text(json.dumps({"kind": kind, "config": {}}))
        (folder / "metrics.jsonl").write_text('{"step": 1, "loss": 7.5, "lr": 0.001}\n{"step": 2, "loss": 7.0}\n')
        os.utime(folder / "training.json", (started + offset, started + offset))
        folders[name] = str(folder)
    assert in_training_order(list(folders.values())) == [folders["c-train"], folders["b-train"], folders["a-sft"]]
    (tmp_path / "run").mkdir()
    section = training_section(RunDir(str(tmp_path / "run")), list(folders.values()))
    headings = re.findall(r"<h3>([^:]+): <code>[^<]*/([\w-]+)</code>", section)
    assert headings == [("pretraining", "c-train"), ("pretraining", "b-train"), ("fine-tuning (SFT)", "a-sft")]


KEEPS_NOTHING = """
[run]
name = "{name}"
[input]
paths = ["{path}"]
[[stages]]
kind = "extract"
[[stages]]
kind = "filter"
name = "quality"
  [[stages.filters]]
  kind = "language"
  threshold = 1.0
[[stages]]
kind = "exact_dedup"
[[stages]]
kind = "minhash_dedup"
[[stages]]
kind = "line_dedup"
"""


@pytest.mark.parametrize(
    "name, source",
    [
        ("wat-only", WARC_DIR / "commoncrawl-whirlwind" / "whirlwind.warc.wat.gz"),  # metadata, no document
        ("empty-file", None),
        ("drops-everything", WARC_DIR / "commoncrawl-whirlwind" / "whirlwind.warc.gz"),  # no score is above 1.0
    ],
)
def test_a_run_that_keeps_nothing_reports_every_section(name, source, tmp_path, capsys):
    if source is None:
        source = tmp_path / "empty.warc.gz"
        source.write_bytes(b"")
    workflow = tmp_path / "wf.toml"
    workflow.write_text(KEEPS_NOTHING.format(name=name, path=source))
    stats = run_workflow(load_workflow(str(workflow)), output=str(tmp_path / "runs"), progress=False)
    assert stats["stages"][-1]["docs_kept"] == 0
    run_dir = stats["run"]["run_dir"]
    path = write_report(run_dir)  # what `refinery run` does last
    html = open(path, encoding="utf-8").read()
    parser = Cells()
    parser.feed(html)
    assert parser.sections == list(SECTIONS)
    assert parser.cells["line_dedup.docs_kept"] == "0"
    assert main(["stats", run_dir]) == 0 and "line_dedup (line_dedup" in capsys.readouterr().out
    reasons = sorted({r for s in stats["stages"] for r in s["dropped"]})
    if name == "drops-everything":
        assert reasons == ["language.not_allowed"]  # an Aragonese page: not English, and below 1.0
        assert main(["sample", run_dir, "--reason", reasons[0]]) == 0
        assert re.search(r"why: language_score = 0\.\d+ < 1 \(threshold\)", capsys.readouterr().out)
    else:
        assert reasons == [] and "<p>Nothing was rejected.</p>" in html
        assert "No document was read. Records in the input: " in html
        assert main(["sample", run_dir, "--reason", "language.not_allowed"]) == 2
        assert "reasons in this run: none" in capsys.readouterr().err
