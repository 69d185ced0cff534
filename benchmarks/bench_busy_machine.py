#!/usr/bin/env python3
"""Training tokens/s of the demo model on a CPU that other processes share: torch's old thread settings
against refinery's defaults (``trainer/threads.py``), alone and beside one and two busy processes, in the
same run.

    .venv/bin/python benchmarks/bench_busy_machine.py                        # 5 rounds, ~10 min on 2 cores
    .venv/bin/python benchmarks/bench_busy_machine.py --rounds 1 --seconds 3
    .venv/bin/python benchmarks/bench_busy_machine.py --setting spin=3000 --setting threads=1   # more settings

Every measurement is a fresh process (OpenMP reads its settings when torch loads) that trains the real
``Trainer`` on random-token shards at the demo's shape (workflows/train.toml: 2,000-token vocabulary, width
128, 4 layers, context 128, batch 16) and times the steps after two warm-up steps until ``--seconds`` have
passed (at least three). A busy process is ``python -c "while True: pass"``, unpinned, or with ``--pin`` the
i-th one held to the i-th CPU (the worst case for the old settings: one of torch's threads shares a core
with it all the time). Within a round the
settings take turns in an order that alternates from round to round; the table shows medians over rounds.
"Alone" means without our busy processes only: the CPU time that other work used during each measurement
(from ``/proc/stat``, minus this benchmark's processes) is printed with it, in cores.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# the OpenMP settings a user may give; every setting starts from an environment without them
OPENMP_VARIABLES = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
SETTINGS = {
    # before issue 21: libgomp's own spin, and torch's default threads (every core this process may use)
    "old": {"GOMP_SPINCOUNT": "300000", "OMP_NUM_THREADS": str(len(os.sched_getaffinity(0)))},
    "new": {},  # refinery's defaults: bounded spin, threads from the cores free when training starts
}
DEMO = {"vocab_size": 2000, "context_length": 128, "d_model": 128, "n_layers": 4, "n_heads": 4}
BATCH = 16


def setting_environment(name: str) -> dict:
    """The environment of a measured process: ``old``, ``new``, ``spin=N`` (GOMP_SPINCOUNT), ``passive``
    (OMP_WAIT_POLICY) or ``threads=N`` (OMP_NUM_THREADS, which also stops refinery choosing threads from the
    free cores); refinery's defaults for whatever it does not set."""
    env = {k: v for k, v in os.environ.items() if k not in OPENMP_VARIABLES}
    if name in SETTINGS:
        return {**env, **SETTINGS[name]}
    key, _, value = name.partition("=")
    if key == "spin" and value.isdigit():
        return {**env, "GOMP_SPINCOUNT": value}
    if key == "threads" and value.isdigit():
        return {**env, "OMP_NUM_THREADS": value}
    if name == "passive":
        return {**env, "OMP_WAIT_POLICY": "PASSIVE"}
    raise SystemExit(f"unknown setting {name!r}: expected old, new, spin=N, threads=N or passive")


def write_random_shards(directory: Path) -> str:
    import numpy as np

    from tokenizer.shards import ShardWriter

    rng = np.random.default_rng(0)
    vocab = DEMO["vocab_size"]
    with ShardWriter(str(directory / "random"), vocab_size=vocab, eos_id=vocab - 1, tokenizer_hash="random") as w:
        for _ in range(50):
            w.write(rng.integers(0, vocab - 1, 4095).tolist())
    return str(directory / "random")


def train_for(shards: str, out_dir: str, seconds: float) -> dict:
    """Train the demo shape (in this process) until ``seconds`` have passed after two warm-up steps, at
    least three timed steps; tokens/s of the timed steps and the threads torch used."""
    # trainer before torch, as in refinery's commands: OpenMP reads how to wait when torch loads
    from trainer.config import LoopConfig, TrainConfig
    from trainer.data import DataConfig
    from trainer.loop import Trainer
    from trainer.model_config import ModelConfig

    config = TrainConfig(
        model=ModelConfig(**DEMO, tie_embeddings=True),
        data=DataConfig(train=[shards], valid_fraction=0.0),
        train=LoopConfig(steps=10**6, batch_size=BATCH, eval_every=0, checkpoint_every=0, out_dir=out_dir),
    )
    trainer = Trainer(config, resume=False, progress=False)
    ends: list[float] = []

    def timer(_row: dict) -> str | None:
        ends.append(time.perf_counter())
        timed = len(ends) - 3  # ends[2] closes the warm-up: steps after it are timed
        return "time" if timed >= 3 and ends[-1] - ends[2] >= seconds else None

    trainer.run(should_stop=timer)
    import torch

    tokens = (len(ends) - 3) * BATCH * DEMO["context_length"]
    return {"tokens_per_s": tokens / (ends[-1] - ends[2]), "threads": torch.get_num_threads(), "spin": _spin()}


def generate_for(seconds: float) -> dict:
    """Decode with the demo shape (random weights, in this process): 8 prompts of 16 tokens, 100 new tokens
    each, batched, after one warm-up batch, until ``seconds`` of decoding have passed; decode tokens/s."""
    from trainer.generate import generate_batch
    from trainer.model import Transformer
    from trainer.model_config import ModelConfig

    model = Transformer(ModelConfig(**DEMO, tie_embeddings=True))
    prompts = [[(7 * row + 13 * i) % DEMO["vocab_size"] for i in range(16)] for row in range(8)]
    generate_batch(model, prompts, 100)
    produced, decoding = 0, 0.0
    while decoding < seconds:
        out = generate_batch(model, prompts, 100)
        produced += sum(len(t) - 1 for t in out.tokens)
        decoding += out.decode_s
    import torch

    return {"tokens_per_s": produced / decoding, "threads": torch.get_num_threads(), "spin": _spin()}


def _spin() -> str:
    return os.environ.get("GOMP_SPINCOUNT") or os.environ.get("OMP_WAIT_POLICY", "").lower()


def busy_ticks() -> int:
    """CPU time the whole machine has spent busy, in clock ticks (``/proc/stat``)."""
    fields = [int(v) for v in open("/proc/stat").readline().split()[1:]]
    return sum(fields) - fields[3] - fields[4]  # all but idle and iowait


def process_ticks(pid: int) -> int:
    """CPU time (user + system) of a running process, in clock ticks."""
    fields = open(f"/proc/{pid}/stat").read().rpartition(")")[2].split()
    return int(fields[11]) + int(fields[12])


def measure(setting: str, task: list[str], busy: list[subprocess.Popen]) -> dict:
    """One measurement in a fresh process (``task``: its arguments); with the cores that other work used
    meanwhile."""
    tick = os.sysconf("SC_CLK_TCK")
    before = (busy_ticks(), [process_ticks(p.pid) for p in busy], os.times())
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        done = subprocess.run(
            [sys.executable, __file__, *task, "--out", out],
            env=setting_environment(setting),
            capture_output=True,
            text=True,
        )
    wall = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"{setting}: the measured process failed:\n{done.stderr[-3000:]}")
    after = (busy_ticks(), [process_ticks(p.pid) for p in busy], os.times())
    ours = (after[2].children_user + after[2].children_system) - (before[2].children_user + before[2].children_system)
    loops = sum(after[1]) - sum(before[1])
    others = ((after[0] - before[0] - loops) / tick - ours) / wall
    return {**json.loads(done.stdout.splitlines()[-1]), "others": max(0.0, others)}


def busy_process(index: int, pin: bool) -> subprocess.Popen:
    """A process that keeps one core busy; with ``pin``, always the same core (the index-th this process may
    use)."""
    cpu = sorted(os.sched_getaffinity(0))[index % len(os.sched_getaffinity(0))]
    code = f"import os\nos.sched_setaffinity(0, {{{cpu}}})\n" if pin else ""
    return subprocess.Popen([sys.executable, "-c", code + "while True: pass"])


def run_rounds(settings: list[str], rounds: int, task: list[str], pin: bool) -> dict:
    results: dict = {}
    for r in range(rounds):
        order = settings if r % 2 == 0 else settings[::-1]
        for loops in (0, 1, 2):
            busy = [busy_process(i, pin) for i in range(loops)]
            try:
                time.sleep(0.5)
                for setting in order:
                    m = measure(setting, task, busy)
                    results.setdefault((setting, loops), []).append(m)
                    print(
                        f"round {r + 1}, {loops} busy, {setting}: {m['tokens_per_s']:,.0f} tok/s on {m['threads']} "
                        f"threads (spin {m['spin']}); others used {m['others']:.2f} cores",
                        flush=True,
                    )
            finally:
                for p in busy:
                    p.kill()
                    p.wait()
    return results


def print_table(settings: list[str], results: dict) -> None:
    def median(setting, loops, key="tokens_per_s"):
        return statistics.median(m[key] for m in results[(setting, loops)])

    print(f"\n{'tokens/s (median)':<22}{'alone':>12}{'1 busy':>12}{'2 busy':>12}")
    for setting in settings:
        print(f"{setting:<22}" + "".join(f"{median(setting, n):>12,.0f}" for n in (0, 1, 2)))
    if "old" in settings:
        for setting in (s for s in settings if s != "old"):
            ratios = "".join(f"{median(setting, n) / median('old', n):>11.2f}x" for n in (0, 1, 2))
            print(f"{setting + ' / old':<22}{ratios}")
    spread = [
        f"{n} busy {min(m['tokens_per_s'] for m in ms):,.0f}-{max(m['tokens_per_s'] for m in ms):,.0f}"
        for (s, n), ms in sorted(results.items())
        if s == settings[-1]
    ]
    others = statistics.median(m["others"] for ms in results.values() for m in ms)
    print(f"range over rounds ({settings[-1]}): {', '.join(spread)}")
    print(f"other work on the machine during the measurements: median {others:.2f} cores (of {os.cpu_count()})")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=8.0, help="timed training per measurement")
    ap.add_argument("--pin", action="store_true", help="hold each busy process to one CPU")
    ap.add_argument("--generate", action="store_true", help="measure decoding instead of training")
    ap.add_argument(
        "--setting", action="append", default=[], help="also measure spin=N, threads=N or passive (repeatable)"
    )
    ap.add_argument("--worker", metavar="SHARDS", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        done = generate_for(args.seconds) if args.generate else train_for(args.worker, args.out, args.seconds)
        print(json.dumps(done))
        return 0
    settings = ["old", "new", *args.setting]
    for name in settings:
        setting_environment(name)  # an unknown setting stops here, before any work
    pinned = "pinned to one CPU each" if args.pin else "unpinned"
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at the start; busy processes {pinned}")
    with tempfile.TemporaryDirectory() as tmp:
        task = ["--worker", write_random_shards(Path(tmp)), "--seconds", str(args.seconds)]
        results = run_rounds(settings, args.rounds, task + ["--generate"] * args.generate, args.pin)
    print_table(settings, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
