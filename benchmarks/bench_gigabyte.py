#!/usr/bin/env python3
"""A gigabyte-scale run: the document stages of workflows/demo.toml (extraction, filters, exact / MinHash /
line dedup, tokenizer and shards; no [train]) on 0.25, 0.5, 1 and 2 GB of real HTML, through `refinery run`
on a local Ray of 2 CPUs, as a user runs it; per stage: documents/s, MB/s, the share of the stage's time
that was not work in Ray tasks (scheduling, waiting, I/O outside the tasks, idle cores), peak memory per
worker and of the driver, and how each stage's time grows with the input. Then the dedup stages and the
tokenizer once more, on every document the largest size's extraction kept: few of these manuals' pages pass
the filters, and dedup deserves more than a few thousand documents (`--dedup-extracted RUN_DIR` runs only this).

    .venv/bin/python benchmarks/bench_gigabyte.py                  # builds the WARCs first (~5 min); 15-30 min
    .venv/bin/python benchmarks/bench_gigabyte.py --sizes 0.25     # one point of the curve
    .venv/bin/python benchmarks/bench_gigabyte.py --build-only     # only the corpus

The corpus: build_corpus.py's Debian documentation packages plus larger ones (Rust, Scala, Java, Haskell,
Erlang, Racket, SageMath, pandas, SciPy, statsmodels, ... manuals: about 3 GB of HTML), fetched with
`apt-get download` into benchmarks/.work/debs/, one WARC per size (the first N MB of one seeded order, so
each is a prefix of the next, with English and other-language pages mixed evenly through it), written by
build_corpus.build. Nothing is committed; everything lives in
benchmarks/.work/ (git-ignored).

Measured per stage (a stage's window: the per-shard segment runs from the run's start, Ray's start-up
included, to its last statistics file; a global stage's window is its timing.json): wall seconds;
documents in per wall second and MB of input per wall second (HTML for extraction, text after it); the CPU
seconds the run's Ray workers spent in the window, and documents per such second (what one core does);
`not work` = 1 - worker CPU / (2 x wall), the share of the two cores' time not spent in Ray tasks (Ray's
scheduling and start-up, the driver, I/O waits, idle cores, and CPU that other processes on the machine
took, which `others` shows apart, from /proc/stat); peak resident memory of any one worker and of the
driver in the window (sampled every 0.5 s over the driver's process tree).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / ".work"
sys.path.insert(0, str(HERE))

import build_corpus  # noqa: E402

# package -> (directory of its HTML inside the package, the URL its pages are served under)
LARGE_PACKAGES: dict[str, tuple[str, str]] = {
    "rust-doc": ("usr/share/doc/rust-doc/html", "https://doc.rust-lang.org/1.63.0/"),
    "rust-web-doc": ("usr/share/doc/rust-web-doc/html", "https://doc.rust-lang.org/1.85.0/"),
    "scala-doc": ("usr/share/doc/scala-2.11/api", "https://www.scala-lang.org/api/2.11.12/"),
    "openjdk-17-doc": (
        "usr/share/doc/openjdk-17-jre-headless/api",
        "https://docs.oracle.com/en/java/javase/17/docs/api/",
    ),
    "ghc-doc": ("usr/share/doc/ghc-doc/html", "https://downloads.haskell.org/ghc/9.0.2/docs/html/"),
    "python-pandas-doc": ("usr/share/doc/python-pandas-doc/html", "https://pandas.pydata.org/pandas-docs/version/1.5/"),
    "sagemath-doc": ("usr/share/doc/sagemath/html", "https://doc.sagemath.org/html/"),
    "erlang-doc": ("usr/share/doc/erlang-doc", "https://www.erlang.org/doc/"),
    "racket-doc": ("usr/share/doc/racket", "https://docs.racket-lang.org/"),
    "libstdc++-12-doc": ("usr/share/doc/gcc-12-base/libstdc++", "https://gcc.gnu.org/onlinedocs/libstdc++/"),
    "python-scipy-doc": ("usr/share/doc/python-scipy-doc/html", "https://docs.scipy.org/doc/scipy-1.10.1/"),
    "python-statsmodels-doc": ("usr/share/doc/python-statsmodels-doc/html", "https://www.statsmodels.org/v0.13.5/"),
    "python-astropy-doc": ("usr/share/doc/python-astropy-doc/html", "https://docs.astropy.org/en/5.2/"),
    "python-sympy-doc": ("usr/share/doc/python-sympy-doc/html", "https://docs.sympy.org/1.11/"),
    "python-django-doc": ("usr/share/doc/python-django-doc/html", "https://docs.djangoproject.com/en/3.2/"),
    "postgresql-doc-15": ("usr/share/doc/postgresql-doc-15/html", "https://www.postgresql.org/docs/15/"),
}
ENGLISH_ONLY = frozenset(LARGE_PACKAGES) - {"sagemath-doc"}  # SageMath's manual has a folder per language
SIZES_GB = (0.25, 0.5, 1.0, 2.0)
SPLIT = "16MiB"  # WARC byte range per task: 3 to 23 tasks on 2 cores (the Common Crawl recipe: 256MiB)
SAMPLE_S = 0.5
RAY_TMPDIR = "/tmp/refinery-gigabyte-ray"  # short: Ray's socket paths must fit in 107 bytes
# one Common Crawl dump (README "Scale"): responses, the share that survives the filters, kept text
CC_RESPONSES = 2.7e9
CC_KEPT_SHARE = 0.2
CC_KEPT_TEXT_MB = 1.2e6


def log(msg: str) -> None:
    print(f"[gigabyte] {msg}", file=sys.stderr, flush=True)


def build_warcs(sizes: list[float]) -> dict[float, Path]:
    """One WARC per size (GB of HTML), built by build_corpus with the larger packages added to its list."""
    build_corpus.PACKAGES.update(LARGE_PACKAGES)
    build_corpus.ENGLISH_ONLY = build_corpus.ENGLISH_ONLY | ENGLISH_ONLY
    packages = list(build_corpus.PACKAGES)
    share = english_share(packages)
    warcs = {}
    for size in sizes:
        warc = WORK / f"gigabyte-{size:g}gb.warc.gz"
        manifest = build_corpus.build(warc, packages=packages, max_mb=size * 1000, english_share=share)
        log(f"{warc.name}: {manifest['responses']} pages, {manifest['html_bytes'] / 1e9:.2f} GB of HTML")
        if manifest["html_bytes"] < size * 1e9 * 0.99:
            sys.exit(f"{warc.name}: the packages hold only {manifest['html_bytes'] / 1e9:.2f} GB of HTML")
        warcs[size] = warc
    return warcs


def english_share(packages: list[str]) -> float:
    """The English share of all candidate pages. build_corpus draws from an English and an other-languages
    pool at the given rate; at this rate both run out together, so every size is a sample of the same mix
    (at its default 0.4 the few other-language pages would all come first, in the smallest WARCs)."""
    debs = build_corpus.download(packages, WORK / "debs")
    pages = [
        page
        for pkg in packages
        for page in build_corpus.find_pages(pkg, build_corpus.unpack(debs[pkg], WORK / "debroot" / pkg))
    ]
    return round(sum(build_corpus.is_english(pkg, rel) for pkg, rel, _ in pages) / len(pages), 4)


def workflow_file(warc: Path, name: str, folder: Path) -> Path:
    """workflows/demo.toml without its model steps, on ``warc``, paths made absolute."""
    text = (ROOT / "workflows" / "demo.toml").read_text().split("\n[train]")[0]
    text = text.replace('paths = ["../data/warc/*/*.warc.gz", "../data/warc/*/*.warc.wet.gz"]', f'paths = ["{warc}"]')
    text = text.replace('split_bytes = "128KiB"', f'split_bytes = "{SPLIT}"').replace(
        'name = "demo"', f'name = "{name}"'
    )
    path = folder / f"{name}.toml"
    path.write_text(text.replace('"../', f'"{ROOT}/'))
    return path


class TreeSampler(threading.Thread):
    """Samples, every SAMPLE_S seconds, resident memory and CPU time of a process and all its descendants
    (the driver, the Ray processes it started, Ray's workers): rows (time, pid, kind, rss bytes, cpu s); and
    the CPU seconds the whole machine has used, as rows of kind "machine"."""

    def __init__(self, root: int):
        super().__init__(daemon=True)
        self.root, self.rows, self.stop = root, [], threading.Event()
        self.tick, self.page = os.sysconf("SC_CLK_TCK"), os.sysconf("SC_PAGE_SIZE")

    def run(self):
        while not self.stop.is_set():
            now = time.time()
            for pid, kind, rss, cpu in self._tree():
                self.rows.append((now, pid, kind, rss, cpu))
            self.rows.append((now, 0, "machine", 0, self._machine_busy()))
            time.sleep(SAMPLE_S)

    def _machine_busy(self) -> float:
        """CPU seconds every process of the machine has used (all cores, idle and I/O wait excluded)."""
        with open("/proc/stat") as f:
            user, nice, system, _, _, irq, softirq, steal = (int(x) for x in f.readline().split()[1:9])
        return (user + nice + system + irq + softirq + steal) / self.tick

    def _tree(self):
        parents, info = {}, {}
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmd = f.read()
            except OSError:
                continue
            parents[int(pid)] = int(fields[1])
            info[int(pid)] = (cmd, int(fields[21]) * self.page, (int(fields[11]) + int(fields[12])) / self.tick)
        for pid, (cmd, rss, cpu) in info.items():
            p = pid
            while p in parents and p != self.root:
                p = parents[p]
            if p == self.root:
                kind = "driver" if pid == self.root else ("worker" if cmd.startswith(b"ray::") else "ray")
                yield pid, kind, rss, cpu


def dedup_workflow_file(run_dir: Path, name: str, folder: Path) -> Path:
    """The demo's stages from exact_dedup on, reading every document that ``run_dir``'s extraction kept (no
    filters): the dedup stages and the tokenizer on tens of thousands of documents, not the few percent of
    these manuals' pages that pass the quality filters."""
    text = (ROOT / "workflows" / "demo.toml").read_text().split("\n[train]")[0]
    stages = text[text.index('[[stages]]\nkind = "exact_dedup"') :]
    path = folder / f"{name}.toml"
    path.write_text(
        f'[run]\nname = "{name}"\n\n[input]\npaths = ["{run_dir.resolve()}/extract/kept/*.parquet"]\n\n{stages}'
    )
    return path


def run_refinery(size: float, path: Path, name: str, out: Path) -> dict:
    """`refinery run` of workflow ``path`` with 2 CPUs; the run's statistics and the process samples."""
    # a Ray of its own: with another local Ray running (a test session), ray.init() would join that one
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_TMPDIR": RAY_TMPDIR}
    cmd = [sys.executable, "-m", "pipeline", "run", str(path), "--output", str(out), "--num-cpus", "2"]
    started = time.time()
    with open(out / f"{name}.log", "w") as logfile:
        proc = subprocess.Popen(cmd + ["--no-progress"], env=env, stdout=logfile, stderr=subprocess.STDOUT, cwd=ROOT)
        sampler = TreeSampler(proc.pid)
        sampler.start()
        code = proc.wait()
        sampler.stop.set()
        sampler.join()
    wall = time.time() - started
    run_dir = out / name
    if code != 0 and not (run_dir / "report.html").exists():
        sys.exit(f"refinery run failed ({code}); see {out / f'{name}.log'}")
    if code != 0:  # seen: Ray's terminate handler aborting at interpreter exit, after the report was written
        log(f"refinery run exited with {code} after finishing the run; see {out / f'{name}.log'}")
    stats = json.loads((run_dir / "stats.json").read_text())
    return {
        "size": size,
        "wall_s": wall,
        "started": started,
        "stats": stats,
        "run_dir": str(run_dir),
        "samples": sampler.rows,
        "peak_total_mb": _peak_total(sampler.rows) / 2**20,
        "windows": stage_windows(run_dir, stats, started),
    }


def stage_windows(run_dir: Path, stats: dict, started: float) -> dict[str, tuple[float, float]]:
    """(start, end) epoch seconds of every stage. The per-shard stages of one segment run together in one
    task per shard, so they share a window: from the end of what came before (the run's start for the first)
    to their last statistics file. A global stage's window is its timing.json (written at its end)."""
    windows, begin, segment = {}, started, []
    for stage in [s["stage"] for s in stats["stages"]] + [None]:
        timing = run_dir / stage / "timing.json" if stage else None
        if stage and not timing.exists():
            segment.append(stage)
            continue
        ends = [f.stat().st_mtime for name in segment for f in (run_dir / name / "stats").glob("*.json")]
        if ends:
            windows.update({name: (begin, max(ends)) for name in segment})
            begin = max(ends)
        segment = []
        if stage:
            end = timing.stat().st_mtime
            windows[stage] = (end - json.loads(timing.read_text())["wall_s"], end)
            begin = end
    return windows


def stage_rows(result: dict) -> list[dict]:
    """Per stage: wall, documents and MB in, worker CPU share, peak RSS of a worker and of the driver."""
    rows = []
    segment_start = None
    for stage in result["stats"]["stages"]:
        name = stage["stage"]
        if name not in result["windows"]:
            continue
        start, end = result["windows"][name]
        shared_window = segment_start == start  # stages of one per-shard segment share their window
        segment_start = start
        inside = [r for r in result["samples"] if start <= r[0] <= end]
        cpu = _cpu_in(inside, "worker")
        ours = sum(_cpu_in(inside, kind) for kind in ("worker", "driver", "ray"))
        wall = max(end - start, 1e-9)
        rows.append(
            {
                "stage": name,
                "wall_s": wall,
                "docs_in": stage.get("docs_in", 0),
                "mb_in": stage.get("bytes_in", 0) / 1e6,
                "docs_kept": stage.get("docs_kept", 0),
                "work_s": stage.get("elapsed_s") or 0.0,
                "worker_cpu_s": cpu,
                "work_share": cpu / (2 * wall),
                "others_share": (_cpu_in(inside, "machine") - ours) / (2 * wall),
                "worker_peak_mb": max([r[3] for r in inside if r[2] == "worker"], default=0) / 2**20,
                "driver_peak_mb": max([r[3] for r in inside if r[2] == "driver"], default=0) / 2**20,
                "shares_window": shared_window,
            }
        )
    return rows


def _cpu_in(samples: list, kind: str) -> float:
    """CPU seconds the processes of ``kind`` used between their first and last sample in the window."""
    first, last = {}, {}
    for _, pid, k, _, cpu in samples:
        if k == kind:
            first.setdefault(pid, cpu)
            last[pid] = cpu
    return sum(last[p] - first[p] for p in last)


def print_size(result: dict, rows: list[dict], title: str = "") -> None:
    stats = result["stats"]
    print(
        f"\n{title + ' ' if title else ''}{result['size']:g} GB of HTML: {stats['stages'][0].get('docs_in', 0):,} "
        "documents, "
        f"wall {result['wall_s']:.0f} s (Ray start-up included), peak RSS of all processes "
        f"{result.get('peak_total_mb', float('nan')) / 1024:.2f} GB"
    )
    print(
        f"{'stage':<14}{'wall s':>8}{'docs in':>10}{'docs/s':>9}{'MB in':>8}{'MB/s':>7}{'kept':>9}{'task s':>9}"
        f"{'worker cpu s':>13}{'docs/cpu-s':>11}{'not work':>9}{'others':>8}{'worker MB':>10}{'driver MB':>10}"
    )
    for r in rows:
        note = "  (window shared with the stage above)" if r["shares_window"] else ""
        others = f"{r['others_share']:.0%}" if "others_share" in r else "-"
        print(
            f"{r['stage']:<14}{r['wall_s']:>8.1f}{r['docs_in']:>10,}{r['docs_in'] / r['wall_s']:>9.1f}"
            f"{r['mb_in']:>8.0f}{r['mb_in'] / r['wall_s']:>7.2f}{r['docs_kept']:>9,}{r['work_s']:>9.1f}"
            f"{r['worker_cpu_s']:>13.1f}{_per_cpu_second(r):>11}"
            f"{1 - r['work_share']:>9.0%}{others:>8}{r['worker_peak_mb']:>10.0f}{r['driver_peak_mb']:>10.0f}{note}"
        )


def _per_cpu_second(row: dict) -> str:
    """Documents per worker CPU-second; '-' when the window held too few 0.5 s samples to measure CPU."""
    return f"{row['docs_in'] / row['worker_cpu_s']:.1f}" if row["worker_cpu_s"] >= 0.05 else "-"


def _peak_total(samples: list) -> int:
    by_time: dict[float, int] = {}
    for t, _, _, rss, _ in samples:
        by_time[t] = by_time.get(t, 0) + rss
    return max(by_time.values(), default=0)


def print_curve(results: list[tuple[dict, list[dict]]]) -> None:
    """Each stage's wall time and worker CPU against the smallest size's, next to its input's growth."""
    base = {r["stage"]: r for r in results[0][1]}
    print(
        "\nGrowth against the smallest size: wall time / worker CPU / the stage's documents in (a stage's time "
        "should grow no faster than its input; ! marks CPU, or wall time where the window is too short to sample CPU, "
        "growing more than 15% faster)"
    )
    print(f"{'stage':<14}" + "".join(f"{str(res['size']) + ' GB':>24}" for res, _ in results))
    for stage in base:
        cells = []
        for _, rows in results:
            row = next((r for r in rows if r["stage"] == stage), None)
            if row is None:
                cells.append(f"{'-':>24}")
                continue
            time_x = row["wall_s"] / base[stage]["wall_s"]
            measured = base[stage]["worker_cpu_s"] >= 0.05  # else too few samples in the window: use wall time
            cpu_x = row["worker_cpu_s"] / base[stage]["worker_cpu_s"] if measured else None
            input_x = row["docs_in"] / max(base[stage]["docs_in"], 1)
            flag = "!" if (cpu_x if measured else time_x) > 1.15 * input_x and input_x > 1 else " "
            cpu = f"{cpu_x:.2f}" if measured else "-"
            cells.append(f"{f'{time_x:.2f} / {cpu} / {input_x:.2f}x{flag}':>24}")
        print(f"{stage:<14}" + "".join(cells))


def print_estimate(result: dict, rows: list[dict], dedup_rows: list[dict] | None = None) -> None:
    """Core-hours for one Common Crawl dump from the largest run's worker CPU per document and per MB; the
    dedup and tokenizer costs from the run on every extracted document when there is one (their windows in
    the filtered run last a second or two, too short to sample)."""
    per_response = rows[0]["worker_cpu_s"] / rows[0]["docs_in"]  # the first segment's window: all its stages
    later = {r["stage"]: r for r in (dedup_rows or rows)}
    dedup = [later[s] for s in ("exact_dedup", "minhash_dedup", "line_dedup") if s in later]
    per_kept = sum(r["worker_cpu_s"] for r in dedup) / max(dedup[0]["docs_in"], 1) if dedup else 0.0
    tokenize = later.get("tokenize")
    per_mb = tokenize["worker_cpu_s"] / max(tokenize["mb_in"], 1e-9) if tokenize else 0.0
    hours = {
        "extraction + filters": CC_RESPONSES * per_response / 3600,
        "dedup (exact, MinHash, lines)": CC_RESPONSES * CC_KEPT_SHARE * per_kept / 3600,
        "tokenizer and shards": CC_KEPT_TEXT_MB * per_mb / 3600,
    }
    source = "the run on every extracted document" if dedup_rows else f"the {result['size']:g} GB run"
    print(
        f"\nOne Common Crawl dump ({CC_RESPONSES:.1e} responses, {CC_KEPT_SHARE:.0%} kept, "
        f"{CC_KEPT_TEXT_MB / 1e6:.1f} TB of kept text) at the {result['size']:g} GB run's worker CPU per response "
        f"and {source}'s per document entering dedup and per MB tokenized:"
    )
    print(
        f"  {per_response * 1e3:.2f} ms per response (extraction + filters), {per_kept * 1e3:.2f} ms per "
        f"document entering dedup, {per_mb:.2f} s per MB tokenized"
    )
    for part, value in hours.items():
        print(f"  {part:<32}{value:>10,.0f} core-hours")
    print(f"  {'total':<32}{sum(hours.values()):>10,.0f} core-hours (plus I/O and scheduling)")


def report(results: list[tuple[dict, list[dict]]], sizes_printed: bool = False, dedup_rows=None) -> None:
    if not sizes_printed:
        for result, rows in results:
            print_size(result, rows)
    print_curve(results)
    print_estimate(*results[-1], dedup_rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default=",".join(map(str, SIZES_GB)), help="GB of HTML per run (default all)")
    ap.add_argument("--build-only", action="store_true", help="build the WARCs, run nothing")
    ap.add_argument("--output", type=Path, default=WORK / "gigabyte-runs", help="run directories (replaced)")
    ap.add_argument("--json", type=Path, default=WORK / "gigabyte-last.json")
    ap.add_argument("--from-json", type=Path, nargs="+", help="print the tables of saved runs (--json) and stop")
    ap.add_argument("--dedup-extracted", type=Path, metavar="RUN_DIR", help="only the dedup run on RUN_DIR's extract")
    args = ap.parse_args(argv)
    if args.from_json:
        results = [(res, res["rows"]) for path in args.from_json for res in json.loads(path.read_text())]
        dedup = [(res, rows) for res, rows in results if res.get("dedup_of_extracted")]
        for res, rows in dedup:
            print_size(res, rows, title="dedup and tokenizer on every extracted document of")
        report([r for r in results if not r[0].get("dedup_of_extracted")], dedup_rows=dedup[-1][1] if dedup else None)
        return 0
    if args.dedup_extracted:
        result = run_dedup_of_extracted(args.dedup_extracted, args.output)
        args.json.write_text(json.dumps([result]))
        return 0
    sizes = [float(s) for s in args.sizes.split(",")]
    warcs = build_warcs(sizes)
    if args.build_only:
        return 0
    import shutil

    shutil.rmtree(args.output, ignore_errors=True)
    args.output.mkdir(parents=True)
    results = []
    for size in sizes:
        log(f"running {size:g} GB")
        name = f"gb{size:g}"
        result = run_refinery(size, workflow_file(warcs[size], name, args.output), name, args.output)
        rows = stage_rows(result)
        results.append((result, rows))
        print_size(result, rows)
        sys.stdout.flush()
    saved = [{**{k: v for k, v in res.items() if k != "samples"}, "rows": rows} for res, rows in results]
    saved.append(run_dedup_of_extracted(Path(results[-1][0]["run_dir"]), args.output))
    report(results, sizes_printed=True, dedup_rows=saved[-1]["rows"])
    args.json.write_text(json.dumps(saved))
    return 0


def run_dedup_of_extracted(run_dir: Path, out: Path) -> dict:
    """The dedup stages and the tokenizer on everything ``run_dir``'s extraction kept; printed, and returned
    as a saved result."""
    name = f"{run_dir.name}-dedup"
    log(f"running dedup and the tokenizer on every document {run_dir.name} extracted")
    result = run_refinery(float(run_dir.name.removeprefix("gb")), dedup_workflow_file(run_dir, name, out), name, out)
    rows = stage_rows(result)
    print_size(result, rows, title="dedup and tokenizer on every extracted document of")
    return {**{k: v for k, v in result.items() if k != "samples"}, "rows": rows, "dedup_of_extracted": True}


if __name__ == "__main__":
    sys.exit(main())
