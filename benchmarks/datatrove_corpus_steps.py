"""The datatrove side of ``bench_corpus_steps.py``: one step on a JSONL corpus, run with the datatrove
virtualenv's Python (``bench_filter_throughput.ensure_datatrove_venv``)::

    decont  NGramsDecontFilter(n_grams=13) against an index of the evaluation items, built before the clock
            starts with the filter's own tokenizer, normalisation and hash (NGramsDecontIndexer needs lighteval
            to load its tasks; the index it writes is these hashes)
    url     URLFilter(extra_domains, extra_urls, use_integrated_lists=False): the same block list as ours, no
            banned words; tldextract with its bundled public-suffix list (no download)
    bloom   SingleBloomFilter(13-grams, duplicate_threshold 0.8) sized for the corpus' words at a 0.001 rate

``JsonlReader -> step`` in ``LocalPipelineExecutor(tasks=1, workers=1)``; the step's own time is datatrove's
``time_stats`` (reading excluded). Prints one JSON line: documents in and kept, the step's and the whole run's
seconds, and the process' resident memory after set-up and at its peak.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import time


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        line = next(line for line in f if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def build_index(evals: str, folder: str, n: int) -> int:
    """Write the evaluation items' n-gram hashes as NGramsDecontIndexer writes them."""
    import numpy as np
    from datatrove.utils.hashing import HashConfig, create_hash_func
    from datatrove.utils.text import TextNormConfig, ngrams, simplify_text
    from datatrove.utils.word_tokenizers import load_word_tokenizer

    tokenizer, hash_func, norm = load_word_tokenizer("en"), create_hash_func(HashConfig()), TextNormConfig()
    hashes = set()
    with open(evals) as f:
        for line in f:
            tokens = tokenizer.word_tokenize(simplify_text(json.loads(line)["text"], norm))
            hashes.update(map(hash_func, map(" ".join, ngrams(tokens, n))))
    os.makedirs(folder, exist_ok=True)
    np.array(sorted(hashes), dtype=np.uint64).tofile(os.path.join(folder, "planted.index.hashes"))
    return len(hashes)


def make_step(args):
    if args.step == "decont":
        from datatrove.pipeline.decont.n_grams import NGramsDecontConfig, NGramsDecontFilter

        index = os.path.join(args.work, "index")
        build_index(args.evals, index, 13)
        step = NGramsDecontFilter(index, config=NGramsDecontConfig(n_grams=13))
        step.load_index_hashes()
        return step
    if args.step == "url":
        from datatrove.pipeline.filters import URLFilter
        from tldextract import TLDExtract

        with open(args.domains) as f:
            domains = [line.strip() for line in f if line.strip()]
        with open(args.urls) as f:
            urls = [line.strip() for line in f if line.strip()]
        step = URLFilter(extra_domains=domains, extra_urls=urls, use_integrated_lists=False)
        step.tldextractor = TLDExtract(suffix_list_urls=())  # the bundled snapshot: no network
        step.tldextractor("https://warm.up.example.co.uk/")
        return step
    from datatrove.pipeline.dedup.bloom_filter import BloomFilterConfig, SingleBloomFilter

    config = BloomFilterConfig(m_bytes=args.bloom_bytes, expected_elements=args.expected, n_grams=13)
    return SingleBloomFilter(os.path.join(args.work, "bloom"), config=config)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--step", choices=["decont", "url", "bloom"], required=True)
    ap.add_argument("--corpus", required=True, help="JSONL with id, url, text")
    ap.add_argument("--work", required=True, help="scratch folder (emptied first)")
    ap.add_argument("--evals", help="decont: JSONL of evaluation items")
    ap.add_argument("--domains", help="url: blocked domains, one a line")
    ap.add_argument("--urls", help="url: blocked URLs, one a line")
    ap.add_argument("--bloom-bytes", type=int, default=0)
    ap.add_argument("--expected", type=int, default=0)
    args = ap.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    os.makedirs(args.work)

    started = time.perf_counter()
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.utils.word_tokenizers import load_word_tokenizer

    load_word_tokenizer("en").word_tokenize("Warm up the tokenizer.")
    step = make_step(args)
    folder, name = os.path.split(os.path.abspath(args.corpus))
    pipeline = [JsonlReader(folder, glob_pattern=name, compression=None), step]
    executor = LocalPipelineExecutor(
        pipeline=pipeline, tasks=1, workers=1, logging_dir=os.path.join(args.work, "logs"), skip_completed=False
    )
    setup_s, setup_rss = time.perf_counter() - started, rss_mb()

    t0 = time.perf_counter()
    executor.run()
    wall_s = time.perf_counter() - t0
    with open(os.path.join(args.work, "logs", "stats", "00000.json")) as f:
        stats = {s["name"]: s for s in json.load(f)}
    mine = next(s for k, s in stats.items() if "Reader" not in k and "Jsonl" not in k)
    counts = {k: (v["total"] if isinstance(v, dict) else v) for k, v in mine["stats"].items()}
    print(
        json.dumps(
            {
                "side": "datatrove",
                "step": args.step,
                "docs": counts.get("total", 0),
                "kept": counts.get("forwarded", 0),
                "step_s": mine.get("time_stats", {}).get("total", 0.0),
                "wall_s": wall_s,
                "setup_s": setup_s,
                "rss_setup_mb": setup_rss,
                "rss_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "counts": counts,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
