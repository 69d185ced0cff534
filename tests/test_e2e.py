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


def test_an_isoflop_sweep_on_the_demo_corpus_fits_a_scaling_law(tmp_path, capsys):
    """workflows/sweep.toml, scaled down: an IsoFLOP sweep on the demo run's shards through `refinery sweep`
    (each trial a Ray task), then `refinery scaling fit` and `predict` on its results."""
    assert main(["run", shortened(tmp_path), "--no-models", "--no-progress"]) == 0
    shards = tmp_path / "runs" / "demo" / "tokenize" / "shards"
    sweep = (WORKFLOWS / "sweep.toml").read_text()
    sweep = sweep.replace('output = "../runs/sweep-demo"', f'output = "{tmp_path}/sweep"')
    sweep = re.sub(r"budgets = \[[^\]]*\]", "budgets = [1.5e10, 3e10]", sweep)
    sweep = re.sub(r'"model.d_model" = \[[^\]]*\]', '"model.d_model" = [8, 16, 24, 32]', sweep)
    sweep = re.sub(r'"optim.lr" = \[[^\]]*\]', '"optim.lr" = [3e-2, 3e-2, 1e-2, 1e-2]', sweep)
    sweep = re.sub(r"min_steps = \d+", "min_steps = 10", sweep).replace(
        "[sweep.fixed]\n", f'[sweep.fixed]\n"data.train" = ["{shards}/*"]\n"train.eval_batches" = 2\n'
    )
    (tmp_path / "sweep.toml").write_text(sweep)
    (tmp_path / "train.toml").write_text((WORKFLOWS / "train.toml").read_text())
    assert main(["sweep", str(tmp_path / "sweep.toml"), "--no-progress"]) == 0
    rows = [json.loads(line) for line in (tmp_path / "sweep" / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 8 and all(r["status"] == "done" for r in rows)
    assert {r["budget"] for r in rows} == {1.5e10, 3e10}
    assert all(abs(r["flops"] / r["budget"] - 1) < 0.05 for r in rows)
    capsys.readouterr()
    assert main(["scaling", "fit", str(tmp_path / "sweep"), "--bootstrap", "10"]) == 0
    fitted = capsys.readouterr().out
    assert ": 8 runs;" in fitted and "IsoFLOP profiles" in fitted and "holdout:" in fitted
    fit = json.loads((tmp_path / "sweep" / "scaling_fit.json").read_text())
    assert all(v == v and abs(v) < float("inf") for v in fit["law"].values())  # finite constants
    assert (tmp_path / "sweep" / "scaling.html").read_text().count("<svg") >= 2
    assert main(["scaling", "predict", str(tmp_path / "sweep"), "--flops", "1e12"]) == 0
    predicted = capsys.readouterr().out
    assert "compute-optimal: N =" in predicted and "D = 20 N:" in predicted
