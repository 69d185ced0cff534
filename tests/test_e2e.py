"""The whole chain as `refinery run workflows/demo.toml` runs it, with fewer training steps: WARC to documents,
filters, dedup, tokenizer and shards, pretraining, SFT, generation, the summary and the report."""

from __future__ import annotations

import json
import re

import pytest

from pipeline.cli import main
from tests.helpers import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("ray_session")]
WORKFLOWS = ROOT / "workflows"


def shortened(tmp_path) -> str:
    """workflows/demo.toml with its train and SFT files copied and cut to a few dozen steps."""
    train = (WORKFLOWS / "train.toml").read_text()
    train = re.sub(r"(?m)^steps = \d+", "steps = 40", train).replace("eval_every = 50", "eval_every = 20")
    sft = (WORKFLOWS / "sft.toml").read_text()
    sft = re.sub(r"(?m)^steps = \d+", "steps = 40", sft).replace("eval_every = 250", "eval_every = 20")
    sft = sft.replace("examples = 200", "examples = 20").replace('"../data/', f'"{ROOT}/data/')
    (tmp_path / "train.toml").write_text(train)
    (tmp_path / "sft.toml").write_text(sft)
    demo = (WORKFLOWS / "demo.toml").read_text().replace('"../data/', f'"{ROOT}/data/')
    (tmp_path / "demo.toml").write_text(demo.replace('output = "../runs"', f'output = "{tmp_path}/runs"'))
    return str(tmp_path / "demo.toml")


def test_the_demo_workflow_runs_every_stage_and_prints_a_summary(tmp_path, capsys):
    assert main(["run", shortened(tmp_path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    run = tmp_path / "runs" / "demo"
    stats = json.loads((run / "stats.json").read_text())
    kinds = [s["kind"] for s in stats["stages"]]
    assert kinds == ["extract", "filter", "exact_dedup", "minhash_dedup", "line_dedup", "tokenize"]
    assert all(s["shards_done"] == stats["run"]["shards"] for s in stats["stages"])
    quality = stats["stages"][1]
    assert [s["name"] for s in quality["steps"]][-3:] == ["quality_classifier", "toxicity", "pii"]
    assert stats["stages"][-1]["events"]["tokens"] > 40_000 and list((run / "tokenize" / "shards").glob("*.bin"))
    train = [json.loads(line) for line in (run / "train" / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in train if "loss" in r]
    assert losses[-1] < losses[0] - 1.0  # the loss visibly falls
    sft = [json.loads(line) for line in (run / "sft" / "metrics.jsonl").read_text().splitlines()]
    assert sft[0]["step"] == 0 and sft[-1]["step"] == 40 and sft[-1]["val_loss"] < sft[0]["val_loss"]
    assert "summary of run demo" in out and "pretraining: 40 steps" in out and "fine-tuning: 40 steps" in out
    assert out.count("> Which language is this?") == 3
    report = (run / "report.html").read_text()
    assert "runs/demo/train" in report and "runs/demo/sft" in report  # both models' curves in the report
    assert f"report: {run}/report.html" in out
