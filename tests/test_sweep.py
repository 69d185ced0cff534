"""Hyperparameter sweeps: search-space expansion (grid, random, IsoFLOP steps from budgets), sweep-file errors,
`refinery validate` of a sweep file, the stop hook of the training loop, and real sweeps on Ray (results
arithmetic, divergence, failures, skipping finished trials, resuming)."""

from __future__ import annotations

import json
import math
import os
import shutil

import pytest
import torch

from pipeline.cli import main
from pipeline.models.sweep_file import load_sweep
from pipeline.models.sweeps import run_sweep
from pipeline.stages.tokenize import write_shard
from tests.helpers import FIXTURES
from tokenizer.bpe import Tokenizer
from tokenizer.errors import ConfigError
from tokenizer.train import train_bpe
from trainer.accounting import flops_per_token
from trainer.config import LoopConfig, TrainConfig
from trainer.data import DataConfig
from trainer.loop import Trainer
from trainer.model import Transformer
from trainer.model_config import ModelConfig
from trainer.sweep import (
    DivergenceStop,
    failed_row,
    flops_per_step,
    format_table,
    grid_trials,
    isoflop_points,
    isoflop_steps,
    random_trials,
    read_results,
    run_trial,
    trial_id,
    write_results,
)

BPE = FIXTURES / "cs336/bpe"
BASE = """
[model]
vocab_size = 512
context_length = 16
d_model = 16
n_layers = 1
n_heads = 2
[data]
train = ["{shards}/*"]
valid_fraction = 0.1
[optim]
lr = 3e-3
min_lr = 3e-4
[schedule]
warmup_steps = 2
[train]
steps = 12
batch_size = 4
eval_every = 4
eval_batches = 2
log_every = 4
checkpoint_every = 4
"""
SWEEP = """
[sweep]
base = "train.toml"
output = "out"
[sweep.grid]
"model.d_model" = [16, 32]
"train.steps" = [8, 12]
"""

RANDOM = """
[sweep]
base = "train.toml"
output = "out"
method = "random"
trials = 3
[sweep.random]
"optim.lr" = {log_uniform = [1e-4, 1e-2]}
"""

ISOFLOP = """
[sweep]
base = "train.toml"
output = "out"
method = "isoflop"
[sweep.fixed]
"train.eval_every" = 0
[sweep.isoflop]
budgets = [2e8, 1e9]
"model.d_model" = [16, 32, 64]
"model.n_layers" = [1, 1, 2]
min_steps = 10
max_steps = 150
"""


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """Two token shards of real English text (vocabulary of 512)."""
    root = tmp_path_factory.mktemp("sweep-shards")
    vocab, merges = train_bpe(BPE / "corpus.en", 512, ["<|endoftext|>"])
    tokenizer = Tokenizer(vocab, merges, ["<|endoftext|>"])
    corpus = (BPE / "corpus.en").read_text(encoding="utf-8").split("\n\n")
    stories = (BPE / "tinystories_sample.txt").read_text(encoding="utf-8").split("<|endoftext|>")
    write_shard(str(root / "a"), corpus, tokenizer, "<|endoftext|>")
    write_shard(str(root / "b"), stories * 4, tokenizer, "<|endoftext|>")
    return root


def write_sweep(directory, shards, sweep: str = SWEEP, base: str = BASE) -> str:
    """A base training file and a sweep file in ``directory``; the sweep file's path."""
    os.makedirs(directory, exist_ok=True)
    (directory / "train.toml").write_text(base.format(shards=shards))
    (directory / "sweep.toml").write_text(sweep)
    return str(directory / "sweep.toml")


def test_grid_is_every_combination_with_stable_ids():
    trials = grid_trials({"model.d_model": [16, 32, 64], "optim.lr": [1e-3, 3e-3]})
    assert len(trials) == 6
    assert trials[:2] == [{"model.d_model": 16, "optim.lr": 1e-3}, {"model.d_model": 16, "optim.lr": 3e-3}]
    ids = [trial_id(i, t) for i, t in enumerate(trials)]
    assert len(set(ids)) == 6 and ids[3].startswith("t003-")
    assert ids == [trial_id(i, dict(reversed(t.items()))) for i, t in enumerate(trials)]  # key order aside


def test_random_search_is_seeded_and_within_bounds():
    space = {"optim.lr": {"log_uniform": [1e-4, 1e-2]}, "model.d_model": [16, 32], "train.steps": {"uniform": [5, 9]}}
    trials = random_trials(space, 200, seed=3)
    assert trials == random_trials(space, 200, seed=3) != random_trials(space, 200, seed=4)
    lrs = [t["optim.lr"] for t in trials]
    assert all(1e-4 <= lr <= 1e-2 for lr in lrs)
    # log-uniform: about half the draws below the geometric middle (1e-3), not a tenth as uniform would give
    assert 0.35 < sum(lr < 1e-3 for lr in lrs) / len(lrs) < 0.65
    assert {t["model.d_model"] for t in trials} == {16, 32}
    assert {t["train.steps"] for t in trials} == {5, 6, 7, 8, 9}


@pytest.mark.parametrize(
    "sweep, key, message",
    [
        (SWEEP.replace("[16, 32]", "16"), "sweep.grid.model.d_model", "expected a non-empty list of values"),
        (SWEEP.replace('"model.d_model"', '"d_model"'), "sweep.grid.d_model", 'expected a quoted "section.key"'),
        (SWEEP.replace("[16, 32]", "[16, 30]"), "sweep.grid", "d_model / n_heads must be even"),
        (SWEEP.replace("[8, 12]", "[8, 'many']"), "sweep.grid.train.steps", "expected an integer, got 'many'"),
        (SWEEP + '"model.n_heads" = [2, 3]\n', "sweep.grid.model.n_heads", "must divide d_model (16)"),
        (SWEEP + "[sweep.fixed]\n'train.out_dir' = 'x'\n", "sweep.fixed.train.out_dir", "set by the sweep"),
        (SWEEP + "[sweep.fixed]\n'train.steps' = 3\n", "sweep.grid.train.steps", "also set in [sweep.fixed]"),
        (SWEEP.replace('output = "out"', 'output = "out"\ncolour = 1'), "sweep.colour", "unknown key"),
        (SWEEP.replace("train.toml", "nope.toml"), "sweep.base", "no training file"),
        (SWEEP + "[sweep.stop]\ndivergence_factor = 0.5\n", "sweep.stop.divergence_factor", "expected a number > 1"),
        (RANDOM.replace("trials = 3\n", ""), "sweep.trials", "a random search needs trials >= 1"),
        (RANDOM.replace("[1e-4, 1e-2]", "[0, 1]"), "sweep.random.optim.lr", "expected log_uniform bounds > 0"),
        (RANDOM.replace("[1e-4, 1e-2]", "[1e-2]"), "sweep.random.optim.lr", "two numbers with lo < hi"),
        (RANDOM + "[sweep.grid]\n'optim.lr' = [1]\n", "sweep.grid", "not used by method = 'random'"),
        (SWEEP + "[sweep.isoflop]\nbudgets = [1e9]\n", "sweep.isoflop", "not used by method = 'grid'"),
        (ISOFLOP.replace("[1, 1, 2]", "[1, 2]"), "sweep.isoflop.model.n_layers", "2 values, but model.d_model has 3"),
        (ISOFLOP.replace("budgets = [2e8, 1e9]\n", ""), "sweep.isoflop.budgets", "missing required key"),
        (ISOFLOP.replace("[2e8, 1e9]", "[2e8, -1.0]"), "sweep.isoflop.budgets", "expected positive finite FLOPs"),
        (ISOFLOP.replace("[2e8, 1e9]", "[2e8, 2e8]"), "sweep.isoflop.budgets", "a budget is listed twice"),
        (ISOFLOP.replace("max_steps = 150", "max_steps = 5"), "sweep.isoflop.max_steps", "or >= min_steps (10)"),
        (ISOFLOP.replace("min_steps", "least_steps"), "sweep.isoflop.least_steps", "unknown key"),
        (
            ISOFLOP.replace('"model.d_model" = [16, 32, 64]\n"model.n_layers" = [1, 1, 2]\n', ""),
            "sweep.isoflop",
            "expected the model sizes as dotted keys",
        ),
        (ISOFLOP + "'train.steps' = [1, 2, 3]\n", "sweep.isoflop.train.steps", "computed from each budget"),
        (
            ISOFLOP.replace("[sweep.isoflop]", "'train.steps' = 9\n[sweep.isoflop]"),
            "sweep.fixed.train.steps",
            "computed from each budget",
        ),
        (ISOFLOP + "[sweep.grid]\n'model.d_model' = [8]\n", "sweep.grid.model.d_model", "also a size key"),
        (ISOFLOP + "[sweep.grid]\n'optim.lr' = 0.1\n", "sweep.grid.optim.lr", "expected a non-empty list"),
        (ISOFLOP.replace("[16, 32, 64]", "[16, 30, 64]"), "sweep.isoflop", "d_model / n_heads must be even"),
        (ISOFLOP.replace('"isoflop"\n', '"isoflop"\ntrials = 3\n'), "sweep.trials", "only a random search"),
        (ISOFLOP.replace("[2e8, 1e9]", "[1e3]"), "sweep.isoflop.budgets", "no budget x size leaves a trial to run"),
        (ISOFLOP.split("[sweep.isoflop]")[0], "sweep.isoflop", "needs a [sweep.isoflop] table"),
    ],
)
def test_sweep_file_errors_name_the_file_and_key(shards, tmp_path, sweep, key, message):
    path = write_sweep(tmp_path, shards, sweep)
    with pytest.raises(ConfigError) as err:
        load_sweep(path)
    assert err.value.file == path and err.value.key == key and message in str(err.value), str(err.value)
    assert not (tmp_path / "out").exists()  # refused before anything ran


def test_isoflop_points_pair_the_sizes_and_cross_the_grid():
    points = isoflop_points([1e9, 2e9], {"model.d_model": [16, 32], "model.n_layers": [1, 2]}, {"optim.lr": [1, 2]})
    assert len(points) == 8 and [b for b, _ in points] == [1e9] * 4 + [2e9] * 4
    assert points[:3] == [
        (1e9, {"model.d_model": 16, "model.n_layers": 1, "optim.lr": 1}),
        (1e9, {"model.d_model": 16, "model.n_layers": 1, "optim.lr": 2}),
        (1e9, {"model.d_model": 32, "model.n_layers": 2, "optim.lr": 1}),
    ]
    assert isoflop_points([5.0], {"model.d_model": [8, 16, 24]}, {}) == [
        (5.0, {"model.d_model": d}) for d in (8, 16, 24)
    ]


def test_isoflop_steps_come_closest_to_the_budget():
    for budget, per_step in [(1e9, 3.3e7), (1e9, 2.5e7), (7.77e11, 1.39e9), (1e10, 4.9e8)]:
        steps, why = isoflop_steps(budget, per_step)
        assert why == "" and steps == round(budget / per_step)
        assert all(abs(steps * per_step - budget) <= abs(s * per_step - budget) for s in (steps - 1, steps + 1))
    assert isoflop_steps(1e9, 2e8, min_steps=10) == (5, "5 steps < min_steps 10 (one step is 2e+08 FLOPs)")
    assert isoflop_steps(1e9, 1e6, min_steps=10, max_steps=500) == (1000, "1000 steps > max_steps 500")
    assert isoflop_steps(1e9, 1e6, min_steps=10, max_steps=0) == (1000, "")  # 0: no maximum


def test_isoflop_sweep_computes_steps_from_the_budgets_and_reports_what_it_skips(shards, tmp_path):
    path = write_sweep(tmp_path, shards, ISOFLOP)
    sweep = load_sweep(path)
    expected = []
    for budget in (2e8, 1e9):
        for d, layers in ((16, 1), (32, 1), (64, 2)):
            model = ModelConfig(vocab_size=512, context_length=16, d_model=d, n_layers=layers, n_heads=2)
            per_step = Transformer(model).flops_per_token()["training"] * 4 * 1 * 16  # batch 4, grad_accum 1
            expected.append((budget, d, layers, round(budget / per_step), per_step))
    run = [e for e in expected if 10 <= e[3] <= 150]
    assert [(t.budget, t.overrides) for t in sweep.trials] == [
        (b, {"model.d_model": d, "model.n_layers": n, "train.steps": steps}) for b, d, n, steps, _ in run
    ]
    for trial, (budget, d, layers, steps, per_step) in zip(sweep.trials, run):
        c = trial.config
        assert (c.model.d_model, c.model.n_layers, c.train.steps) == (d, layers, steps)
        assert flops_per_step(c) == per_step == flops_per_token(c.model)["training"] * 4 * 16
        assert abs(steps * per_step - budget) <= per_step / 2  # the closest whole number of steps
        assert c.train.out_dir == str(tmp_path / "out" / "trials" / trial.id)
    assert sweep.trials[0].id == trial_id(0, {**sweep.trials[0].overrides, "budget": 2e8})
    assert [t.id for t in load_sweep(path).trials] == [t.id for t in sweep.trials]  # stable
    skipped = [e for e in expected if not 10 <= e[3] <= 150]
    assert len(skipped) >= 2, expected  # the design below has both kinds
    assert [(s.budget, s.overrides["model.d_model"], s.steps) for s in sweep.skipped] == [
        (b, d, steps) for b, d, _, steps, _ in skipped
    ]
    reasons = [s.reason for s in sweep.skipped]
    assert any("< min_steps 10" in r for r in reasons) and any("> max_steps 150" in r for r in reasons)
    recorded = sweep.definition()["trials"]
    assert [r["budget"] for r in recorded] == [t.budget for t in sweep.trials]
    assert "budget" not in load_sweep(write_sweep(tmp_path / "grid", shards)).definition()["trials"][0]


def test_validate_prints_a_sweep_files_trials_without_running_them(shards, tmp_path, capsys):
    path = write_sweep(tmp_path, shards, ISOFLOP)
    sweep = load_sweep(path)
    assert main(["validate", path]) == 0
    out = capsys.readouterr().out
    assert f"valid sweep; method isoflop, {len(sweep.trials)} trials" in out
    for t in sweep.trials:
        line = next(line for line in out.splitlines() if line.strip().startswith(t.id))
        assert f" {t.config.train.steps} " in line and f"{t.budget:.3g}" in line
    assert out.count("skipped: budget") == len(sweep.skipped) and "< min_steps 10" in out
    assert not (tmp_path / "out").exists()
    grid = write_sweep(tmp_path / "grid", shards)
    assert main(["validate", grid]) == 0
    out = capsys.readouterr().out
    assert "valid sweep; method grid, 4 trials" in out
    for t in load_sweep(grid).trials:  # one line per trial: its id, the values searched, its steps
        line = next(line for line in out.splitlines() if line.strip().startswith(t.id))
        assert all(str(v) in line for v in t.overrides.values()) and f" {t.config.train.steps} " in line
    bad = write_sweep(tmp_path / "bad", shards, ISOFLOP.replace("[1, 1, 2]", "[1, 2]"))
    assert main(["validate", bad]) == 2
    assert "sweep.isoflop.model.n_layers: 2 values" in capsys.readouterr().err


def test_a_trials_row_records_its_budget(shards, tmp_path):
    sweep = load_sweep(write_sweep(tmp_path, shards, ISOFLOP))
    trial = sweep.trials[0]
    row = run_trial(trial.config, trial.id, trial.overrides, 2.0, trial.budget)
    assert row["status"] == "done" and row["budget"] == trial.budget == 2e8
    assert row["steps"] == trial.overrides["train.steps"] and abs(row["flops"] - 2e8) <= flops_per_step(trial.config)
    failed = failed_row("t9", {"model.d_model": 8}, "boom", 1e9)
    write_results(str(tmp_path), [row, failed])
    assert [r["budget"] for r in read_results(str(tmp_path))] == [2e8, 1e9]
    header, first, _ = (tmp_path / "results.csv").read_text().splitlines()
    assert "budget" in header.split(",") and "200000000.0" in first.split(",")
    table = format_table([row, failed])
    assert table.splitlines()[0].split()[:2] == ["trial", "budget"] and "2e+08" in table


def test_set_cannot_override_a_searched_key(shards, tmp_path):
    path = write_sweep(tmp_path, shards)
    with pytest.raises(ConfigError, match="set by the sweep itself") as err:
        load_sweep(path, ["train.steps=3"])
    assert err.value.key == "train.steps"
    assert {t.config.optim.lr for t in load_sweep(path, ["optim.lr=1e-2"]).trials} == {1e-2}
    isoflop = write_sweep(tmp_path / "iso", shards, ISOFLOP)
    with pytest.raises(ConfigError, match="set by the sweep itself") as err:
        load_sweep(isoflop, ["train.steps=3"])
    assert err.value.key == "train.steps"
    bigger = load_sweep(isoflop, ["train.batch_size=8"])  # steps follow the FLOPs of a step
    assert {t.config.train.batch_size for t in bigger.trials} == {8}
    steps = [t.config.train.steps for t in bigger.trials]
    assert steps == [round(t.budget / flops_per_step(t.config)) for t in bigger.trials]
    assert steps != [t.config.train.steps for t in load_sweep(isoflop).trials]


def test_the_stop_hook_ends_a_run_with_its_reason(shards, tmp_path):
    config = TrainConfig(
        model=ModelConfig(vocab_size=512, context_length=16, d_model=16, n_layers=1, n_heads=2),
        data=DataConfig(train=[str(shards / "*")]),
        train=LoopConfig(steps=10, batch_size=2, eval_every=0, checkpoint_every=0, out_dir=str(tmp_path)),
    )
    last = Trainer(config, progress=False).run(should_stop=lambda m: "enough" if m["step"] == 3 else None)
    assert last["step"] == 3 and last["stopped"] == "enough"
    rows = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
    assert [r["step"] for r in rows] == [1, 2, 3] and rows[-1]["stopped"] == "enough"
    stop = DivergenceStop(2.0)
    assert stop({"step": 1, "loss": 5.0}) is None and stop({"step": 2, "loss": 9.9}) is None
    assert "step 3: loss 10.5 > 2 x the first logged loss 5" in stop({"step": 3, "loss": 10.5})
    assert "validation loss is nan" in DivergenceStop(2.0)({"step": 1, "loss": 1.0, "val_loss": math.nan})


def metrics_files(output) -> dict:
    return {p.parent.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in output.glob("trials/*/metrics.jsonl")}


@pytest.mark.slow
def test_a_sweep_on_ray_writes_results_skips_finished_trials_and_resumes(ray_session, shards, tmp_path):
    path = write_sweep(tmp_path, shards)
    sweep = load_sweep(path)
    rows = run_sweep(sweep, progress=False)
    output = tmp_path / "out"
    assert [r["trial"] for r in rows] == [t.id for t in sweep.trials] and len(rows) == 4
    for row, trial in zip(rows, sweep.trials):
        c = trial.config
        model = Transformer(c.model)
        assert row["status"] == "done" and row["steps"] == c.train.steps == row["overrides"]["train.steps"]
        assert row["params"] == model.num_parameters(embedding=False) and row["params_total"] == model.num_parameters()
        assert row["tokens"] == c.train.steps * 4 * 1 * 16
        assert row["flops"] == model.flops_per_token()["training"] * row["tokens"]
        assert all(math.isfinite(row[k]) for k in ("final_loss", "final_val_loss", "best_val_loss"))
        assert row["best_val_loss"] <= row["final_val_loss"] and row["resumed_from"] == 0
        assert (output / "trials" / trial.id / "checkpoint.pt").exists()
    assert read_results(str(output)) == rows
    assert len((output / "results.csv").read_text().splitlines()) == 5
    assert (output / "sweep.html").read_text().count("<svg") >= 2

    before = metrics_files(output)
    assert run_sweep(load_sweep(path), progress=False) == rows  # nothing to do
    assert metrics_files(output) == before

    # the driver died while the last trial ran: no results row, a checkpoint at step 4, metrics beyond it
    last = sweep.trials[-1]
    (output / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:-1]))
    shutil.rmtree(output / "trials" / last.id)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the trial's Ray task, so that the resumed losses are the same bits
    try:
        Trainer(last.config, progress=False).run(stop_after=6)
    finally:
        torch.set_num_threads(threads)
    resumed = run_sweep(load_sweep(path), progress=False)
    assert resumed[-1]["resumed_from"] == 4 and resumed[-1]["status"] == "done" and resumed[-1]["steps"] == 12
    assert resumed[-1]["final_val_loss"] == rows[-1]["final_val_loss"]  # exact resume
    assert resumed[:-1] == rows[:-1]
    after = metrics_files(output)
    assert {k: v for k, v in after.items() if k != last.id} == {k: v for k, v in before.items() if k != last.id}

    (tmp_path / "sweep.toml").write_text(SWEEP.replace("[16, 32]", "[16, 48]"))
    with pytest.raises(ConfigError, match="holds another sweep") as err:
        run_sweep(load_sweep(path), progress=False)
    assert err.value.key == "sweep.output"


@pytest.mark.slow
def test_a_diverging_trial_is_stopped_and_a_failing_one_recorded(ray_session, shards, tmp_path, capsys):
    sweep = """
[sweep]
base = "train.toml"
output = "out"
[sweep.fixed]
"train.steps" = 40
"optim.grad_clip" = 0.0
"optim.lr" = 0.9
"model.d_model" = 32
[sweep.grid]
"model.vocab_size" = [512, 256]
"""
    path = write_sweep(tmp_path, shards, sweep)
    assert main(["sweep", path, "--no-progress"]) == 1  # a trial failed
    diverged, failed = read_results(str(tmp_path / "out"))
    assert diverged["status"] == "diverged" and diverged["steps"] < 40, diverged
    assert "loss" in diverged["reason"]
    assert failed["status"] == "failed" and "the data uses 512 token ids" in failed["reason"]
    printed = capsys.readouterr().out
    assert f"{diverged['trial']} diverged: " in printed and f"{failed['trial']} failed: " in printed


@pytest.mark.slow
def test_an_isoflop_sweep_on_ray_records_each_trials_budget(ray_session, shards, tmp_path, capsys):
    path = write_sweep(tmp_path, shards, ISOFLOP.replace('"train.eval_every" = 0', '"train.eval_every" = 20'))
    sweep = load_sweep(path)
    assert main(["sweep", path, "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert captured.err.count("skipped: budget") == len(sweep.skipped) > 0
    rows = read_results(str(tmp_path / "out"))
    assert [(r["trial"], r["budget"]) for r in rows] == [(t.id, t.budget) for t in sweep.trials]
    for row, trial in zip(rows, sweep.trials):
        assert row["status"] == "done" and row["steps"] == trial.config.train.steps
        assert abs(row["flops"] - row["budget"]) <= flops_per_step(trial.config) / 2
    assert "budget" in captured.out.splitlines()[0]
    assert (tmp_path / "out" / "sweep.html").read_text().count("IsoFLOP profiles") == 1


def test_a_sweep_can_be_checked_before_its_shards_exist_but_not_run(tmp_path, capsys):
    path = write_sweep(tmp_path, str(tmp_path / "not-yet"))
    assert main(["validate", path]) == 0
    out = capsys.readouterr().out
    assert "valid sweep; method grid, 4 trials" in out
    assert f"no token shards match '{tmp_path}/not-yet/*' yet: tokenize before running it" in out
    sweep = load_sweep(path)
    with pytest.raises(ConfigError, match=r"train\.toml: data\.train: no token shards match .*not-yet"):
        run_sweep(sweep)
    assert not (tmp_path / "out").exists()


def test_a_trial_larger_than_the_cluster_is_refused_naming_the_key(ray_session, shards, tmp_path):
    """Such a trial would wait forever for a node that does not exist."""
    path = write_sweep(tmp_path, shards, SWEEP.replace("[sweep.grid]", "cpus_per_trial = 64\n[sweep.grid]"))
    with pytest.raises(ConfigError) as err:
        run_sweep(load_sweep(path), progress=False)
    assert err.value.key == "sweep.cpus_per_trial" and "64 per trial; the Ray cluster has 2" in str(err.value)
    assert not list((tmp_path / "out").glob("trials/*/metrics.jsonl"))  # no trial started
