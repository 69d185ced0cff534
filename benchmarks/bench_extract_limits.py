"""What the bounds on extraction cost normal pages: the nesting guard and the time limit (a child process).

Extracts every response of ``data/warc/debian-docs/*.warc.gz`` (420 real pages, 36 KB of HTML on average)
with ``HtmlExtractor`` as configured by default (``timeout_s = 5``: extraction in a child process) and with
``timeout_s = 0`` (in this process), and times the nesting guard alone: CPU seconds of this process and of
the extraction child together (what a busy node pays per page), and wall-clock seconds; the best of
``--repeat`` rounds.

    .venv/bin/python benchmarks/bench_extract_limits.py --repeat 7
"""

from __future__ import annotations

import argparse
import glob
import os
import time
from pathlib import Path

from filters import extract_worker
from filters.charset import decode_html
from filters.extract import HtmlExtractor, nesting_exceeds
from filters.http import parse_http_response
from filters.warc import WarcRecord, iter_records

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    records = []
    for path in sorted(glob.glob(str(ROOT / "data/warc/debian-docs/*.warc.gz"))):
        with open(path, "rb") as f:
            records += [r for r in iter_records(f) if isinstance(r, WarcRecord) and r.type == "response"]
    pages = []
    for record in records:
        response = parse_http_response(record.block)
        if response is not None and response.status == 200:
            pages.append(decode_html(response.body, response.charset)[0])
    limited, unlimited = HtmlExtractor(), HtmlExtractor(timeout_s=0)
    limited.extract(records[0], "warm-up")  # starts the child process
    timings = {"guard only": [], "extract, timeout_s=0": [], "extract, timeout_s=5": []}
    for _ in range(args.repeat):
        timings["guard only"].append(_seconds(lambda: [nesting_exceeds(h, 2000, 10_000_000) for h in pages]))
        timings["extract, timeout_s=0"].append(_seconds(lambda: [unlimited.extract(r, "b") for r in records]))
        timings["extract, timeout_s=5"].append(_seconds(lambda: [limited.extract(r, "b") for r in records]))
    print(f"{len(records)} responses, {len(pages)} pages; best of {args.repeat} rounds")
    for name, values in timings.items():
        cpu, wall = min(v[0] for v in values), min(v[1] for v in values)
        print(f"{name:22s} CPU {cpu / len(records) * 1e3:6.3f} ms, wall {wall / len(records) * 1e3:6.3f} ms per record")


def _seconds(fn) -> tuple[float, float]:
    """CPU seconds (this process and the extraction child) and wall-clock seconds of ``fn()``."""
    cpu, wall = _cpu(), time.perf_counter()
    fn()
    return _cpu() - cpu, time.perf_counter() - wall


def _cpu() -> float:
    child = extract_worker._current
    seconds = time.process_time()
    if child is not None and child.proc.poll() is None:
        with open(f"/proc/{child.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        seconds += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
    return seconds


if __name__ == "__main__":
    main()
