#!/usr/bin/env python3
"""How long the demo ablation takes, what it finds, and how many seeds its ranking needs.

Runs ``workflows/ablate-corpus.toml`` (the document stages; skipped when its run is complete) and then
``workflows/ablate-demo.toml`` with ``--seeds`` seeds (default 5) into ``benchmarks/.work/ablate-<N>seeds``
through ``refinery ablate`` (Ray, one CPU per trial), and prints: minutes for each, the seconds of training and
evaluation per trial, per dataset and metric the mean with its 95% interval and the seed noise, each pair's
difference with its interval, and the number of seeds after which the ranking stops changing.

    .venv/bin/python benchmarks/bench_ablation.py              # 5 seeds
    .venv/bin/python benchmarks/bench_ablation.py --seeds 3    # the demo as shipped

A rerun reuses finished trials (it resumes); delete the output folder to time it again.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "benchmarks" / ".work"


def ablation_file(seeds: int, output: Path) -> Path:
    """A copy of the demo's ablation file with ``seeds`` seeds, writing to ``output`` (paths made absolute)."""
    text = (ROOT / "workflows" / "ablate-demo.toml").read_text()
    text = re.sub(r"(?m)^seeds = \d+", f"seeds = {seeds}", text)
    text = re.sub(r'(?m)^output = ".*"', f'output = "{output}"', text)
    text = text.replace('"ablate-', f'"{ROOT}/workflows/ablate-').replace('"../data/', f'"{ROOT}/data/')
    path = WORK / f"ablate-{seeds}seeds.toml"
    path.write_text(text)
    return path


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=5)
    args = ap.parse_args(argv)
    WORK.mkdir(parents=True, exist_ok=True)
    output = WORK / f"ablate-{args.seeds}seeds"
    refinery = [sys.executable, "-m", "pipeline"]
    corpus = timed([*refinery, "run", "workflows/ablate-corpus.toml", "--no-models", "--no-progress"])
    ablate = timed([*refinery, "ablate", str(ablation_file(args.seeds, output)), "--no-progress"])
    record = json.loads((output / "ablation.json").read_text())
    trials = record["trials"]
    train = [t["seconds"] - t["eval_seconds"] for t in trials]
    evals = [t["eval_seconds"] for t in trials]
    print(f"cores: {os.cpu_count()}, load average at the end: {os.getloadavg()[0]:.1f}")
    print(
        f"corpus run (document stages): {corpus / 60:.1f} min; ablation: {ablate / 60:.1f} min "
        f"(preparing the data {record['seconds']['prepare']:.0f} s), {len(trials)} trials"
    )
    print(f"per trial: training {sum(train) / len(train):.0f} s, evaluation {sum(evals) / len(evals):.0f} s (mean)")
    for d in record["datasets"]:
        print(
            f"  {d['name']}: {d['documents']} documents, {d['tokens']:,} tokens, {d['epochs']:.2f} epochs at the budget"
        )
    for metric, v in record["shapes"][0]["verdict"].items():
        print(f"{metric}:")
        for name in v["ranking"]:
            d = v["datasets"][name]
            print(f"  {name}: {d['mean']:.4f} [{d['low']:.4f}, {d['high']:.4f}], seed sd {d['seed_sd']:.4f}")
        for p in v["pairs"]:
            flag = "significant" if p["significant"] else "not significant"
            print(
                f"  {p['better']} - {p['worse']}: {p['difference']:+.4f} [{p['low']:+.4f}, {p['high']:+.4f}] "
                f"{flag}; seed sd {p['seed_sd']:.4f}"
            )
        print(
            f"  ranking stops changing after {v['seeds_until_stable']} of {args.seeds} seeds; "
            f"per seed: {' | '.join(' > '.join(r) for r in v['per_seed_rankings'])}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
