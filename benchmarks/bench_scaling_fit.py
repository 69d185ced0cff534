#!/usr/bin/env python3
"""How well a fitted scaling law predicts the largest run of a sweep from the others, and how long fitting takes.

    .venv/bin/python benchmarks/bench_scaling_fit.py                       # synthetic sweeps, ~1 min on 2 cores
    .venv/bin/python benchmarks/bench_scaling_fit.py --noise 0.02 --seeds 5
    .venv/bin/python benchmarks/bench_scaling_fit.py --results runs/sweep  # a real sweep's results.jsonl

Synthetic sweep: losses from Hoffmann et al.'s law (E 1.69, A 406.4, B 410.7, alpha 0.34, beta 0.28) times
exp(normal(0, noise)); IsoFLOP budgets 1e16 to 1e19 FLOPs with 7 model sizes each (1.5 decades around the
law's optimum, D = C / 6N), and one larger run, the held-out target: 1e20 FLOPs at 20 tokens per parameter.
The law is fitted on every run but the target (``trainer.scaling.holdout_largest``) and predicts its loss;
the error is reported against the observed (noisy) loss and against the true law. Fit time is one
``fit_law`` call, and one ``fit_results`` call (the law, 200 bootstrap refits, IsoFLOP profiles, holdout).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trainer.scaling import NAMES, Law, Runs, fit_law, fit_results, holdout_largest, load_runs  # noqa: E402

TRUE = Law(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28)
BUDGETS = (1e16, 1e17, 1e18, 1e19)
TARGET = 1e20


def synthetic_sweep(noise: float, seed: int) -> Runs:
    """The IsoFLOP runs and the target run, with multiplicative log-normal noise."""
    rows = [(n, c / (6 * n), c) for c in BUDGETS for n in TRUE.optimal(c).params * np.logspace(-0.75, 0.75, 7)]
    target = TRUE.at_ratio(TARGET, 20)
    rows.append((target.params, target.tokens, TARGET))
    n, d, c = (np.array(x) for x in zip(*rows))
    loss = TRUE.loss(n, d) * np.exp(np.random.default_rng(seed).normal(0, noise, len(n)))
    return Runs([f"t{i}" for i in range(len(n))], n, d, c, loss)


def write_jsonl(runs: Runs, path: Path) -> None:
    with open(path, "w") as f:
        for row in runs.to_rows():
            f.write(json.dumps({**row, "status": "done", "final_val_loss": row.pop("loss")}) + "\n")


def synthetic(noise: float, seeds: int) -> None:
    print(
        f"synthetic sweeps: {len(BUDGETS)} IsoFLOP budgets x 7 sizes + 1 target run at {TARGET:.0e} FLOPs, "
        f"noise {noise}"
    )
    print(
        f"{'seed':>4}  {'predicted':>9}  {'observed':>8}  {'true':>7}  {'error':>8}  {'rel':>7}  {'vs true':>8}  fit s"
    )
    rel, rel_true, times = [], [], []
    for seed in range(seeds):
        runs = synthetic_sweep(noise, seed)
        start = time.perf_counter()
        held = holdout_largest(runs)
        times.append(time.perf_counter() - start)
        truth = float(TRUE.loss(held["params"], held["tokens"]))
        rel.append(held["rel_error"])
        rel_true.append(abs(held["predicted"] - truth) / truth)
        print(
            f"{seed:>4}  {held['predicted']:>9.4f}  {held['observed']:>8.4f}  {truth:>7.4f}  "
            f"{held['abs_error']:>8.4f}  {held['rel_error']:>7.2%}  {rel_true[-1]:>8.2%}  {times[-1]:.2f}"
        )
    print(
        f"relative error of the predicted target loss: median {statistics.median(rel):.2%}, max {max(rel):.2%} "
        f"(against the true law: median {statistics.median(rel_true):.2%}, max {max(rel_true):.2%}); "
        f"fit_law on {len(runs) - 1} runs: median {statistics.median(times):.2f} s"
    )
    runs = synthetic_sweep(noise, 0)
    law = fit_law(runs.params, runs.tokens, runs.loss)
    print(
        "constants fitted on all runs of seed 0 (true): "
        + ", ".join(f"{k} {getattr(law, k):.4g} ({getattr(TRUE, k):.4g})" for k in NAMES)
    )
    with tempfile.TemporaryDirectory() as folder:
        write_jsonl(runs, Path(folder) / "results.jsonl")
        start = time.perf_counter()
        fit = fit_results(folder)
        print(
            f"fit_results (law, {len(fit.samples)} bootstrap refits, IsoFLOP, holdout) on {len(runs)} runs: "
            f"{time.perf_counter() - start:.2f} s; IsoFLOP a = {fit.isoflop['a']:.3f} "
            f"(true {TRUE.beta / (TRUE.alpha + TRUE.beta):.3f})"
        )


def real(path: str, loss: str, params: str) -> None:
    runs = load_runs(path, loss, params)
    start = time.perf_counter()
    held = holdout_largest(runs)
    elapsed = time.perf_counter() - start
    print(f"{runs.source}: {len(runs)} usable runs (skipped: {runs.skipped or 'none'})")
    if "note" in held:
        print(f"no holdout: {held['note']}")
        return
    print(
        f"held out trial {held['trial']} (FLOPs {held['flops']:.3g}, N {held['params']:.3g}, D {held['tokens']:.3g}): "
        f"predicted {held['predicted']:.4f}, observed {held['observed']:.4f}, error {held['abs_error']:.4f} "
        f"({held['rel_error']:.2%}); fit on {held['runs']} runs in {elapsed:.2f} s"
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", help="a real sweep's results.jsonl / CSV or its directory instead of synthetic ones")
    ap.add_argument("--loss", default="final_val_loss", help="loss column of --results")
    ap.add_argument("--params", default="params", help="N column of --results")
    ap.add_argument("--noise", type=float, default=0.01, help="synthetic: s.d. of the log-normal loss noise (0.01)")
    ap.add_argument("--seeds", type=int, default=10, help="synthetic: sweeps drawn (default 10)")
    args = ap.parse_args(argv)
    if args.results:
        real(args.results, args.loss, args.params)
    else:
        synthetic(args.noise, args.seeds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
