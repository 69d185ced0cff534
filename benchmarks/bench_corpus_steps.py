#!/usr/bin/env python3
"""Decontamination, URL filtering and Bloom-filter dedup: documents per second on one core and memory per
worker, refinery against the same steps in datatrove.

    .venv/bin/python benchmarks/bench_corpus_steps.py            # the 60 MB benchmark WARC's pages, 3 repeats
    .venv/bin/python benchmarks/bench_corpus_steps.py --quick    # its 300-page WARC, 1 repeat

The corpus is the text our extractor gets from the benchmark WARC (``build_corpus.py``: Debian documentation
pages), written once as JSONL (id, url, text) that both sides read. Each step runs in a fresh process pinned
to one CPU, the two sides interleaved repeat by repeat, and is timed alone (set-up, reading and, for
datatrove, nothing else apart; ours counts its shuffle files and Parquet outputs too):

* decont -- the evaluation set is a paragraph of 30 words or more from every tenth page (planted
  contamination) and real text the corpus does not hold (the test fixtures' encyclopedia article, CCNet pages
  and Tatoeba sentences); 13-grams. Ours: the ``decontaminate`` stage; datatrove: ``NGramsDecontFilter``.
* url -- the UT1 block lists that datatrove's wheel ships (about 4.6M domains and 20k URLs) plus one site of
  the corpus, so that some pages go; the pages' URLs 20 times over (with 100 characters of text each), since
  1,682 URLs take milliseconds. Ours: the ``url`` filter; datatrove: ``URLFilter`` with those lists only.
* bloom -- ours: ``paragraph_dedup`` with its defaults (13-grams of paragraphs, 0.001 false positives), all
  its phases on one worker; datatrove: ``SingleBloomFilter`` (13-grams of whole documents, threshold 0.8),
  sized for the corpus' word count at 0.001.

A side runs as ``JSONL reader -> step``; ours as a workflow (documents input, then the step) through the
in-process executor, the step's time read from its statistics. Memory is each process' resident set after
set-up (lists, index, models loaded) and at its peak.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tarfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

STEPS = ("decont", "url", "bloom")
PLANT_EVERY = 10
BLOCKED_SITE = "debian-handbook.info"
URL_COPIES = 20


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        line = next(line for line in f if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


# -- inputs -------------------------------------------------------------------------------------------------


def corpus_jsonl(warc: Path, work: Path) -> Path:
    """The pages of ``warc`` as our extractor gets them, as JSONL (made once)."""
    out = work / (warc.name.split(".")[0] + ".jsonl")
    if not out.exists():
        from pipeline.reader import read_documents

        tmp = out.with_suffix(".tmp")
        with open(tmp, "w") as f:
            for doc in read_documents(str(warc)):
                f.write(json.dumps({"id": doc["id"], "url": doc["url"], "text": doc["text"]}) + "\n")
        tmp.rename(out)
    return out


def url_corpus(corpus: Path, work: Path) -> Path:
    """The pages' URLs, each ``URL_COPIES`` times, with the first 100 characters of their text: the URL filter
    reads only the URL, and the pages alone are too few to time it."""
    out = work / f"{corpus.stem}-urls-x{URL_COPIES}.jsonl"
    if not out.exists():
        with open(corpus) as f:
            pages = [json.loads(line) for line in f]
        with open(out, "w") as f:
            for copy in range(URL_COPIES):
                for page in pages:
                    row = {"id": f"{page['id']}#{copy}", "url": page["url"], "text": page["text"][:100]}
                    f.write(json.dumps(row) + "\n")
    return out


def eval_set(corpus: Path, work: Path) -> tuple[Path, int]:
    """Evaluation items: a long paragraph of every tenth page (seeded), then real text from elsewhere."""
    import csv
    import gzip

    rng = random.Random(0)
    items = []
    with open(corpus) as f:
        for i, line in enumerate(f):
            if i % PLANT_EVERY == 0:
                paragraphs = [p for p in json.loads(line)["text"].split("\n") if len(p.split()) >= 30]
                if paragraphs:
                    items.append(rng.choice(paragraphs))
    planted = len(items)
    fixtures = ROOT / "tests" / "fixtures"
    items += [p for p in (fixtures / "cs336/high_quality_wiki_reference.txt").read_text().split("\n") if p.strip()]
    for name in ("cc_en_head-0091.jsonl.gz", "cc_en_head-0174.jsonl.gz"):
        with gzip.open(fixtures / "text/dolma-ccnet" / name, "rt") as f:
            items += [json.loads(line)["text"] for line in f]
    with open(fixtures / "text/tatoeba/tatoeba_long.tsv", newline="") as f:
        items += [row["text"] for row in csv.DictReader(f, delimiter="\t")]
    out = work / "evals.jsonl"
    out.write_text("".join(json.dumps({"id": f"item-{i}", "text": t}) + "\n" for i, t in enumerate(items)))
    return out, planted


def block_lists(dt_python: Path, work: Path) -> tuple[Path, Path, Path]:
    """datatrove's bundled UT1 lists (domains, urls) with one corpus site added, and our one list of both."""
    domains, urls, ours = work / "domains", work / "urls", work / "blocklist.txt"
    if not ours.exists():
        site = subprocess.run(
            [str(dt_python), "-c", "import datatrove.utils._import_utils as u; print(u.ASSETS_PATH)"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        with tarfile.open(Path(site) / "url_filterblacklistsv0_3_0.tar.gz") as tar:
            tar.extractall(work, filter="data")
        listed = domains.read_text().rstrip("\n")
        domains.write_text(f"{listed}\n{BLOCKED_SITE}\n")
        ours.write_bytes(domains.read_bytes() + urls.read_bytes())
    return domains, urls, ours


# -- our side (a subprocess of this script) ------------------------------------------------------------------

WORKFLOW = """
[run]
name = "{step}"
output = "{work}"
[input]
paths = ["{corpus}"]
{stage}
"""
STAGES = {
    "decont": '[[stages]]\nkind = "decontaminate"\n[stages.eval_sets]\nplanted = ["{evals}"]',
    "url": '[[stages]]\nkind = "filter"\n[[stages.filters]]\nkind = "url"\nblock = "{blocklist}"',
    "bloom": '[[stages]]\nkind = "paragraph_dedup"',
}


def run_ours(step: str, corpus: Path, work: Path, evals: Path, blocklist: Path) -> dict:
    started = time.perf_counter()
    from filters.url import load_rules
    from pipeline.engine.executor import LocalExecutor
    from pipeline.runner import run_workflow
    from pipeline.workflow import load_workflow

    work.mkdir(parents=True, exist_ok=True)
    stage = STAGES[step].format(evals=evals, blocklist=blocklist)
    path = work / f"{step}.toml"
    path.write_text(WORKFLOW.format(step=step, work=work, corpus=corpus, stage=stage))
    workflow = load_workflow(str(path))
    if step == "decont":
        workflow.stages[1].index()  # built once per worker, before its first shard
    elif step == "url":
        load_rules(str(blocklist))
    setup_s, setup_rss = time.perf_counter() - started, rss_mb()
    t0 = time.perf_counter()
    stats = run_workflow(workflow, executor=LocalExecutor(progress=False), restart=True)
    wall_s = time.perf_counter() - t0
    mine = stats["stages"][1]
    return {
        "side": "refinery",
        "step": step,
        "docs": mine["docs_in"],
        "kept": mine["docs_kept"],
        "step_s": mine["timing"]["wall_s"] if "timing" in mine else mine["elapsed_s"],
        "wall_s": wall_s,
        "setup_s": setup_s,
        "rss_setup_mb": setup_rss,
        "rss_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "counts": {"dropped": mine["dropped"], "events": mine["events"]},
    }


# -- driver --------------------------------------------------------------------------------------------------


def side(cmd: list[str], label: str, work: Path) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    (work / f"{label}.log").write_text(res.stderr)
    if res.returncode != 0:
        sys.exit(f"{label} failed ({res.returncode}); see {work / f'{label}.log'}:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def step_commands(step: str, pages: Path, inputs: dict) -> tuple[list[str], list[str]]:
    """The command lines of our side and datatrove's for ``step`` on ``pages``."""
    work = inputs["work"]
    ours = [sys.executable, __file__, "--ours", step, "--corpus", str(pages), "--work", str(work / "ours")]
    ours += ["--evals", str(inputs["evals"]), "--blocklist", str(inputs["blocklist"])]
    theirs = [str(inputs["dt_python"]), str(HERE / "datatrove_corpus_steps.py"), "--step", step]
    theirs += ["--corpus", str(pages), "--work", str(work / "datatrove"), "--evals", str(inputs["evals"])]
    theirs += ["--domains", str(inputs["domains"]), "--urls", str(inputs["urls"])]
    theirs += ["--bloom-bytes", str(inputs["bloom_bytes"]), "--expected", str(inputs["words"])]
    return ours, theirs


def print_table(rows: dict[tuple[str, str], list[dict]], steps: list[str]) -> None:
    head = (
        f"{'step':<8}{'side':<11}{'docs':>7}{'kept':>7}{'step s':>9}{'best s':>9}{'docs/s':>10}"
        f"{'ours/dt':>9}{'setup MB':>10}{'peak MB':>9}"
    )
    print(head + "\n" + "-" * len(head))
    for step in steps:
        medians = {}
        for name in ("refinery", "datatrove"):
            runs = rows[(step, name)]
            medians[name] = statistics.median(r["step_s"] for r in runs)
        for name in ("refinery", "datatrove"):
            runs = rows[(step, name)]
            last = runs[-1]
            ratio = medians["datatrove"] / medians["refinery"] if name == "refinery" else 1.0
            print(
                f"{step:<8}{name:<11}{last['docs']:>7}{last['kept']:>7}{medians[name]:>9.2f}"
                f"{min(r['step_s'] for r in runs):>9.2f}{last['docs'] / medians[name]:>10.0f}{ratio:>8.2f}x"
                f"{last['rss_setup_mb']:>10.0f}{last['rss_peak_mb']:>9.0f}"
            )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="the 300-page WARC, 1 repeat")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", nargs="+", choices=STEPS, default=list(STEPS))
    ap.add_argument("--cpu", type=int, default=0, help="pin both sides to this CPU (-1: no pinning)")
    ap.add_argument("--work", type=Path, default=HERE / ".work" / "corpus-steps")
    ap.add_argument("--json", type=Path, help="also write every measurement to this file")
    ap.add_argument("--ours", choices=STEPS, help=argparse.SUPPRESS)  # one step of our side, in this process
    ap.add_argument("--corpus", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--evals", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--blocklist", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.ours:
        print(json.dumps(run_ours(args.ours, args.corpus, args.work, args.evals, args.blocklist)))
        return 0
    if args.quick:
        args.repeats = 1
    if args.cpu >= 0:
        os.sched_setaffinity(0, {args.cpu})

    import build_corpus
    from bench_filter_throughput import ensure_datatrove_venv

    args.work.mkdir(parents=True, exist_ok=True)
    max_pages = 300 if args.quick else 0
    warc = HERE / ".work" / build_corpus.default_name(build_corpus.DEFAULT_MAX_MB, max_pages)
    build_corpus.build(warc, max_mb=build_corpus.DEFAULT_MAX_MB, max_pages=max_pages)
    dt_python = ensure_datatrove_venv()
    corpus = corpus_jsonl(warc, args.work)
    evals, planted = eval_set(corpus, args.work)
    domains, urls, blocklist = block_lists(dt_python, args.work)
    docs = sum(1 for _ in open(corpus))
    words = sum(len(json.loads(line)["text"].split()) for line in open(corpus))
    from filters.bloom import bits_for

    bloom_bytes = bits_for(words, 0.001) // 8
    log(f"{docs} pages, {words:,} words; {planted} planted evaluation items; Bloom {bloom_bytes:,} bytes (datatrove)")

    inputs = {"evals": evals, "blocklist": blocklist, "domains": domains, "urls": urls}
    inputs |= {"bloom_bytes": bloom_bytes, "words": words, "dt_python": dt_python, "work": args.work}
    pages = {step: url_corpus(corpus, args.work) if step == "url" else corpus for step in args.steps}
    rows: dict[tuple[str, str], list[dict]] = {(s, n): [] for s in args.steps for n in ("refinery", "datatrove")}
    for repeat in range(args.repeats):
        for step in args.steps:
            for name, cmd in zip(("refinery", "datatrove"), step_commands(step, pages[step], inputs)):
                result = side(cmd, f"{name}-{step}", args.work)
                rows[(step, name)].append(result)
                log(f"repeat {repeat + 1}/{args.repeats} {step} {name}: {result['step_s']:.2f}s, kept {result['kept']}")
    cpu = f"CPU {args.cpu}" if args.cpu >= 0 else "no pinning"
    print(f"\n{docs} pages ({warc.name}), {words:,} words; median of {args.repeats} repeat(s); {cpu}")
    print("docs/s = documents / step seconds (one core); ours/dt = datatrove's step time / ours\n")
    print_table(rows, args.steps)
    for step in args.steps:
        for name in ("refinery", "datatrove"):
            print(f"  {step} {name}: {json.dumps(rows[(step, name)][-1]['counts'], sort_keys=True)[:300]}")
    if args.json:
        measured = {f"{step}/{name}": runs for (step, name), runs in rows.items()}
        args.json.write_text(json.dumps({"docs": docs, "words": words, "rows": measured}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
