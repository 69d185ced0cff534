"""How time and peak memory grow with the input: the document stages of workflows/demo.toml (extraction,
filters, exact / MinHash / line dedup, tokenizer training and shards) on 1x, 4x and 16x a demo-sized input,
through `refinery run` on a local Ray of 2 CPUs, as a user runs it.

    .venv/bin/python benchmarks/bench_scaling.py            # about 5 minutes on 2 cores

Inputs: the first 105, 420 and 1,682 pages of the Debian documentation WARC that build_corpus.py makes
(distinct real pages, so dedup and the tokenizer see 4x and 16x more text too; 105 pages is about the
demo's 158 extracted documents). Peak memory is the largest sum, sampled every 0.2 s, of the resident memory
of the driver and every Ray process. Per-stage figures come from the run's stats.json: `work s` is the
summed time of the stage's tasks, so documents per work-second is the throughput of one core.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "benchmarks" / ".work"
SCALES = {1: 105, 4: 420, 16: 1682}


def corpus(pages: int) -> Path:
    """The WARC of the first ``pages`` pages (built by build_corpus.py when missing)."""
    name = "corpus-60mb.warc.gz" if pages == 1682 else f"corpus-{pages}p.warc.gz"
    if not (WORK / name).exists():
        extra = [] if pages == 1682 else ["--max-pages", str(pages)]
        subprocess.run([sys.executable, str(ROOT / "benchmarks" / "build_corpus.py"), *extra], check=True)
    return WORK / name


def rss_of_run() -> int:
    """Resident bytes of every refinery and Ray process on the machine."""
    total = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read()
            if b"ray" not in cmd and b"refinery" not in cmd:
                continue
            with open(f"/proc/{pid}/statm") as f:
                total += int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:
            continue
    return total


def run(scale: int, tmp: Path) -> dict:
    warc = corpus(SCALES[scale])
    workflow = (ROOT / "workflows" / "demo.toml").read_text().split("\n[train]")[0]
    workflow = workflow.replace('"../data/warc/*/*.warc.gz", "../data/warc/*/*.warc.wet.gz"', f'"{warc}"')
    workflow = workflow.replace('split_bytes = "128KiB"', 'split_bytes = "1MiB"').replace(
        'name = "demo"', f'name = "x{scale}"'
    )
    path = tmp / f"x{scale}.toml"
    path.write_text(workflow.replace('"../', f'"{ROOT}/'))
    peak, stop = [0], threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], rss_of_run())
            time.sleep(0.2)

    sampler = threading.Thread(target=sample)
    sampler.start()
    started = time.perf_counter()
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    subprocess.run(
        [sys.executable, "-m", "pipeline", "run", str(path), "--output", str(tmp), "--num-cpus", "2", "--no-progress"],
        check=True,
        env=env,
        capture_output=True,
    )
    wall = time.perf_counter() - started
    stop.set()
    sampler.join()
    stats = json.loads((tmp / f"x{scale}" / "stats.json").read_text())
    return {"scale": scale, "pages": SCALES[scale], "wall_s": wall, "peak_rss": peak[0], "stages": stats["stages"]}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scales", default=",".join(map(str, SCALES)), help="which of 1, 4, 16 to run (default all)")
    args = ap.parse_args(argv)
    scales = [int(x) for x in args.scales.split(",")]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for scale in scales:
            results.append(run(scale, Path(tmp)))
    base = results[0]
    print(f"{'input':<8}{'pages':>7}{'docs kept':>11}{'wall s':>9}{'x time':>8}{'peak RSS':>11}{'x mem':>7}")
    for r in results:
        kept = r["stages"][-2]["docs_kept"]
        print(
            f"{r['scale']:>2}x{'':<5}{r['pages']:>7,}{kept:>11,}{r['wall_s']:>9.1f}"
            f"{r['wall_s'] / base['wall_s']:>7.2f}x"
            f"{r['peak_rss'] / 2**30:>9.2f} GB{r['peak_rss'] / base['peak_rss']:>6.2f}x"
        )
    print("\nper stage at 16x: documents in, work seconds (summed over tasks), documents per work-second (one core)")
    for stage in results[-1]["stages"]:
        work = stage.get("elapsed_s") or 0.0
        wall = stage.get("timing", {}).get("wall_s")
        rate = stage["docs_in"] / work if work else float("nan")
        print(
            f"  {stage['stage']:<14}{stage['docs_in']:>7,} docs  work {work:7.2f} s"
            + (f"  wall {wall:6.2f} s" if wall else "")
            + f"  {rate:9,.0f} docs/s/core"
        )


if __name__ == "__main__":
    main()
