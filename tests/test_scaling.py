"""Scaling-law fits: the parametric law recovers the constants of losses drawn from a known law, the
compute-optimal allocation minimises it under C = 6ND, IsoFLOP profiles recover the exponent, too little data
is a clear error, a small noisy sweep still gives finite constants, and `refinery scaling fit` / `predict`
work end to end."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

from pipeline.cli import main
from pipeline.report.scaling import count
from trainer.scaling import (
    BOUNDS,
    NAMES,
    Law,
    Runs,
    ScalingError,
    bootstrap,
    check_runs,
    fit_law,
    fit_results,
    holdout_largest,
    isoflop,
    load_fit,
    load_runs,
    uncertainty,
)

CHINCHILLA = Law(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28)  # Hoffmann et al. 2022, approach 3


def grid_runs(noise: float = 0.0, seed: int = 0):
    """N in 1e6..1e9 by D in 1e8..1e11 (8 x 8), losses from CHINCHILLA times exp(normal(0, noise))."""
    n, d = (x.ravel() for x in np.meshgrid(np.logspace(6, 9, 8), np.logspace(8, 11, 8)))
    loss = CHINCHILLA.loss(n, d) * np.exp(np.random.default_rng(seed).normal(0, noise, n.size))
    return n, d, loss


def isoflop_runs(noise: float = 0.0, seed: int = 0, budgets=(1e17, 1e18, 1e19, 1e20)) -> Runs:
    """7 model sizes per budget, spread over 1.5 decades around the law's optimum, D = C / 6N."""
    rows = []
    for c in budgets:
        for n in CHINCHILLA.optimal(c).params * np.logspace(-0.75, 0.75, 7):
            rows.append((n, c / (6 * n), c))
    n, d, c = (np.array(x) for x in zip(*rows))
    loss = CHINCHILLA.loss(n, d) * np.exp(np.random.default_rng(seed).normal(0, noise, n.size))
    return Runs([f"t{i}" for i in range(len(n))], n, d, c, loss)


def write_results(path, runs: Runs, extra: list[dict] = ()) -> None:
    """A sweep's results.jsonl as trainer/sweep.py writes it."""
    with open(path, "w") as f:
        for i in range(len(runs)):
            n, d, loss = float(runs.params[i]), float(runs.tokens[i]), float(runs.loss[i])
            row = {"trial": runs.trials[i], "status": "done", "params": n, "params_total": n + 5e5, "tokens": d}
            row.update(flops=float(runs.flops[i]), final_val_loss=loss, best_val_loss=loss - 0.01, overrides={})
            f.write(json.dumps(row) + "\n")
        for row in extra:
            f.write(json.dumps(row) + "\n")


def test_fit_recovers_the_constants_of_noiseless_losses():
    law = fit_law(*grid_runs())
    for name in NAMES:
        assert getattr(law, name) == pytest.approx(getattr(CHINCHILLA, name), rel=1e-4), name


def test_fit_with_noise_is_close_and_the_bootstrap_interval_covers_the_truth():
    n, d, loss = grid_runs(noise=0.01, seed=1)  # 1% multiplicative noise
    law = fit_law(n, d, loss)
    tolerance = {"E": 0.05, "A": 0.25, "B": 0.25, "alpha": 0.05, "beta": 0.05}  # relative
    for name, rel in tolerance.items():
        assert getattr(law, name) == pytest.approx(getattr(CHINCHILLA, name), rel=rel), name
    samples = bootstrap(n, d, loss, law, resamples=100, seed=3)
    spread = uncertainty(samples)
    for name in NAMES:
        assert spread[name]["low"] <= getattr(CHINCHILLA, name) <= spread[name]["high"], (name, spread[name])
        assert spread[name]["se"] > 0
    assert np.array_equal(bootstrap(n, d, loss, law, resamples=5, seed=3), samples[:5])  # seeded: repeatable


@pytest.mark.parametrize("flops", [1e15, 1e18, 1e21, 1e24])
def test_compute_optimal_allocation_minimises_the_law_under_the_budget(flops):
    fitted = fit_law(*grid_runs(noise=0.01, seed=1))
    for law in (CHINCHILLA, fitted):
        best = law.optimal(flops)
        assert 6 * best.params * best.tokens == pytest.approx(flops, rel=1e-12)
        assert best.tokens_per_param == pytest.approx(best.tokens / best.params)
        n = best.params * np.logspace(-2, 2, 200_001)  # dense 1-D search along 6ND = C
        along = law.loss(n, flops / (6 * n))
        assert best.loss <= along.min() + 1e-12
        assert n[np.argmin(along)] == pytest.approx(best.params, rel=1e-4)
        rule = law.at_ratio(flops, 20)
        assert rule.tokens == pytest.approx(20 * rule.params) and 6 * rule.params * rule.tokens == pytest.approx(flops)
        assert rule.loss >= best.loss


def test_isoflop_profiles_recover_the_exponent():
    truth = CHINCHILLA.beta / (CHINCHILLA.alpha + CHINCHILLA.beta)
    exact = isoflop(isoflop_runs())
    assert exact["a"] == pytest.approx(truth, abs=1e-3)
    assert exact["b"] == pytest.approx(1 - truth, abs=1e-3)
    assert all(b["params_opt"] for b in exact["budgets"]) and len(exact["budgets"]) == 4
    noisy = isoflop(isoflop_runs(noise=0.002, seed=2))
    assert noisy["a"] == pytest.approx(truth, abs=0.03)


def test_isoflop_says_why_when_points_are_too_few():
    runs = isoflop_runs(budgets=(1e17, 1e18))
    keep = [i for i in range(len(runs)) if runs.flops[i] == 1e17 or i % 7 < 2]  # the second budget: 2 sizes
    small = Runs([runs.trials[i] for i in keep], *(x[keep] for x in (runs.params, runs.tokens, runs.flops, runs.loss)))
    result = isoflop(small)
    assert result["a"] is None and "exponent needs 2" in result["note"]
    assert result["budgets"][1]["note"] == "2 model size(s); a parabola needs 3"
    assert result["budgets"][0]["params_opt"] > 0


def test_holdout_predicts_the_largest_run():
    runs = isoflop_runs()
    held = holdout_largest(runs)
    assert held["flops"] == 1e20 and held["params"] == runs.params[runs.flops == 1e20].max()
    assert held["abs_error"] < 1e-6 and held["rel_error"] < 1e-6 and held["runs"] == len(runs) - 1
    five = Runs(runs.trials[:5], runs.params[:5], runs.tokens[:5], runs.flops[:5], runs.loss[:5])
    assert "without the largest run: a scaling fit needs at least 5" in holdout_largest(five)["note"]


def test_too_few_runs_is_an_error_naming_what_is_missing(tmp_path, capsys):
    runs = isoflop_runs()
    few = Runs(runs.trials[:3], runs.params[:3], runs.tokens[:3], runs.flops[:3], runs.loss[:3])
    bad = [
        {"trial": "x", "status": "diverged", "params": 1e6, "tokens": 1e8, "flops": 6e14, "final_val_loss": None},
        {"trial": "y", "status": "done", "params": 1e6, "tokens": 1e8, "flops": 6e14, "final_val_loss": "NaN"},
    ]
    write_results(tmp_path / "results.jsonl", few, bad)
    with pytest.raises(ScalingError, match=r"at least 5 finished runs .* found 3 \(1 skipped: .*not finite; 1 skip"):
        fit_results(str(tmp_path))
    assert main(["scaling", "fit", str(tmp_path)]) == 2
    assert "at least 5 finished runs" in capsys.readouterr().err
    with pytest.raises(ScalingError, match="found 0 .*28 skipped: nonexistent missing or not positive"):
        write_results(tmp_path / "results.jsonl", runs)
        fit_results(str(tmp_path), params="nonexistent")
    one_size = Runs([f"s{i}" for i in range(6)], np.full(6, 1e7), np.logspace(8, 10, 6), np.ones(6), np.ones(6) * 3)
    with pytest.raises(ScalingError, match="at least 2 model sizes .* found 1 size"):
        check_runs(one_size)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="results.jsonl or results.csv"):
        load_runs(str(tmp_path / "empty"))


def test_small_noisy_sweep_gives_finite_constants_with_wide_intervals(tmp_path):
    """What a demo-corpus sweep looks like: 2 sizes, 3 token counts, losses far from the power-law regime."""
    rows = []
    for i, (n, d, loss) in enumerate(
        [(1e5, 2e6, 6.1), (1e5, 4e6, 5.8), (1e5, 8e6, 5.9), (4e5, 2e6, 5.95), (4e5, 4e6, 5.5), (4e5, 8e6, 5.3)]
    ):
        rows.append(
            {"trial": str(i), "status": "done", "params": n, "tokens": d, "flops": 6 * n * d, "final_val_loss": loss}
        )
    with open(tmp_path / "results.jsonl", "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    fit = fit_results(str(tmp_path), resamples=30)
    values = [getattr(fit.law, name) for name in NAMES]
    assert all(math.isfinite(v) and v > 0 for v in values)
    assert BOUNDS[3][0] <= fit.law.alpha <= BOUNDS[3][1] and BOUNDS[4][0] <= fit.law.beta <= BOUNDS[4][1]
    assert np.isfinite(fit.samples).all()
    best = fit.law.optimal(1e15)
    assert math.isfinite(best.params) and math.isfinite(best.loss)
    spread = fit.uncertainty()
    assert (
        spread["alpha"]["high"] - spread["alpha"]["low"] > 0.5 and spread["beta"]["high"] - spread["beta"]["low"] > 0.5
    )
    assert fit.isoflop["a"] is None and fit.isoflop["note"]
    assert math.isfinite(fit.holdout["predicted"])


def test_csv_results_read_like_jsonl(tmp_path):
    runs = isoflop_runs(budgets=(1e17, 1e18))
    write_results(tmp_path / "results.jsonl", runs)
    rows = [json.loads(line) for line in open(tmp_path / "results.jsonl")]
    with open(tmp_path / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[k for k in rows[0] if k != "overrides"], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    from_csv = load_runs(str(tmp_path / "results.csv"), loss="best_val_loss", params="params_total")
    from_jsonl = load_runs(str(tmp_path), loss="best_val_loss", params="params_total")
    assert from_jsonl.source.endswith("results.jsonl")
    for key in ("params", "tokens", "flops", "loss"):
        assert np.allclose(getattr(from_csv, key), getattr(from_jsonl, key))
    assert np.allclose(from_csv.params, runs.params + 5e5) and np.allclose(from_csv.loss, runs.loss - 0.01)


def test_cli_fit_then_predict(tmp_path, capsys):
    runs = isoflop_runs(noise=0.003, seed=4)
    diverged = {"trial": "boom", "status": "diverged", "params": 1e7, "tokens": 1e9, "flops": 6e16}
    write_results(tmp_path / "results.jsonl", runs, [diverged])
    with open(tmp_path / "results.jsonl", "a") as f:
        f.write('{"trial": "still writ')  # a sweep in progress
    assert main(["scaling", "fit", str(tmp_path / "results.jsonl"), "--bootstrap", "20"]) == 0
    out = capsys.readouterr().out
    assert f"{len(runs)} runs; loss = final_val_loss, N = params (non-embedding)" in out
    assert "skipped 2 rows: 1 status diverged, 1 unreadable line" in out
    assert "IsoFLOP profiles" in out and "N_opt ∝ C^0.4" in out and "holdout: the law fitted on the other 27" in out
    html = (tmp_path / "scaling.html").read_text()
    assert html.count("<svg") == 4 and "<circle" in html
    saved = json.loads((tmp_path / "scaling_fit.json").read_text())
    assert saved["num_runs"] == len(runs) and saved["columns"]["loss"] == "final_val_loss"
    assert set(saved["uncertainty"]) == set(NAMES) and len(saved["bootstrap"]["samples"]) == 20

    assert main(["scaling", "predict", str(tmp_path), "--flops", "1e21", "1e23"]) == 0
    out = capsys.readouterr().out
    law = load_fit(str(tmp_path / "scaling_fit.json")).law
    best, rule = law.optimal(1e21), law.at_ratio(1e21, 20)
    assert f"compute-optimal: N = {count(best.params)} [95%: " in out
    assert f"D = {count(best.tokens)} [95%: " in out
    assert f"{best.tokens_per_param:.3g} tokens per parameter" in out and f"predicted loss {best.loss:.4g}" in out
    assert f"D = 20 N: N = {count(rule.params)}, D = {count(rule.tokens)}, predicted loss {rule.loss:.4g}" in out
    assert "budget C = 1e+23 FLOPs" in out and "1e+03x the largest run's C = 6ND" in out

    assert main(["scaling", "predict", str(tmp_path / "nowhere"), "--flops", "1e21"]) == 2
    assert "no scaling fit here" in capsys.readouterr().err
    assert main(["scaling", "predict", str(tmp_path / "results.jsonl"), "--flops", "1e21"]) == 2
    assert "not a fit written by `refinery scaling fit`" in capsys.readouterr().err


def test_best_keeps_the_lowest_loss_of_runs_with_equal_size_and_tokens(tmp_path):
    runs = isoflop_runs(budgets=(1e17, 1e18))
    worse = {"status": "done", "params": float(runs.params[0]), "tokens": float(runs.tokens[0]), "flops": 1e17}
    write_results(tmp_path / "results.jsonl", runs, [{**worse, "trial": "lr-high", "final_val_loss": 9.0}])
    assert len(load_runs(str(tmp_path))) == len(runs) + 1
    best = load_runs(str(tmp_path), best=True)
    assert best.trials == runs.trials and best.skipped == {"not the lowest loss of its N and D": 1}


def test_isoflop_groups_by_the_budget_column_when_present(tmp_path):
    """An IsoFLOP sweep's runs miss their budget by up to a step's FLOPs; its ``budget`` column groups them
    exactly, where bucketing by FLOPs would split a budget (and must keep doing so without the column)."""
    runs = isoflop_runs(budgets=(1e17, 1e18, 1e19))
    budgets = runs.flops.copy()
    spread = np.tile([0.88, 0.95, 1.0, 1.04, 1.12, 0.9, 1.1], 3)  # whole steps: the FLOPs miss the budget
    flops = runs.flops * spread
    write_results(tmp_path / "results.jsonl", Runs(runs.trials, runs.params, runs.tokens, flops, runs.loss))
    rows = [json.loads(line) for line in open(tmp_path / "results.jsonl")]
    with open(tmp_path / "results.jsonl", "w") as f:
        f.writelines(json.dumps({**row, "budget": float(b)}) + "\n" for row, b in zip(rows, budgets))
    loaded = load_runs(str(tmp_path))
    assert np.array_equal(loaded.budgets, budgets) and loaded.columns["budget"] == "budget"
    grouped = isoflop(loaded)
    assert grouped["grouping"] == "budget" and [b["flops"] for b in grouped["budgets"]] == [1e17, 1e18, 1e19]
    assert all(len(b["params"]) == 7 and b["grouped_by"] == "budget" for b in grouped["budgets"])
    truth = CHINCHILLA.beta / (CHINCHILLA.alpha + CHINCHILLA.beta)
    assert grouped["a"] == pytest.approx(truth, abs=1e-3)  # the losses sit exactly on the budgets' curves
    for b in grouped["budgets"]:  # D_opt read off the runs (here D = C / 6N exactly)
        assert b["tokens_opt"] == pytest.approx(b["flops"] / (6 * b["params_opt"]), rel=1e-3)
    bucketed = isoflop(Runs(loaded.trials, loaded.params, loaded.tokens, loaded.flops, loaded.loss))
    assert bucketed["grouping"] == "flops" and len(bucketed["budgets"]) > 3  # 12% apart: split at 10%

    mixed = loaded.budgets.copy()
    mixed[:7] = np.nan  # the first budget's rows have none: bucketed by FLOPs, the others by budget
    result = isoflop(Runs(loaded.trials, loaded.params, loaded.tokens, loaded.flops, loaded.loss, budgets=mixed))
    assert result["grouping"] == "budget+flops"
    assert [b["grouped_by"] for b in result["budgets"]].count("budget") == 2
    assert sum(len(b["params"]) for b in result["budgets"]) == 21

    fit = fit_results(str(tmp_path), resamples=5)
    assert fit.isoflop["grouping"] == "budget" and len(fit.isoflop["budgets"]) == 3
    saved = json.loads(json.dumps(fit.to_dict()))
    assert [r["budget"] for r in saved["runs"]] == budgets.tolist()
    assert np.array_equal(type(fit).from_dict(saved).runs.budgets, budgets)
    assert np.array_equal(fit.runs.without(0).budgets, budgets[1:])


def test_cli_fit_names_the_budget_grouping(tmp_path, capsys):
    runs = isoflop_runs(noise=0.002, seed=5, budgets=(1e17, 1e18))
    write_results(tmp_path / "results.jsonl", runs)
    rows = [json.loads(line) for line in open(tmp_path / "results.jsonl")]
    with open(tmp_path / "results.jsonl", "w") as f:
        f.writelines(json.dumps({**row, "budget": row["flops"], "flops": row["flops"] * 1.2}) + "\n" for row in rows)
    assert main(["scaling", "fit", str(tmp_path), "--bootstrap", "5"]) == 0
    out = capsys.readouterr().out
    assert "IsoFLOP profiles (runs grouped by the sweep's budget column): N_opt ∝ C^" in out
    assert "budget 1e+17: 7 runs, N_opt" in out and "budget 1e+18: 7 runs, N_opt" in out
