"""Documents per second on one core for each model-based filter, next to fastText language ID (the
classifier every pipeline already runs) as the anchor, on the same real pages in the same run.

    .venv/bin/python benchmarks/bench_classifiers.py [--docs 2000] [--repeats 3]

Pages: the English-and-more Debian documentation WARC that bench_filter_throughput.py builds
(benchmarks/.work/corpus-60mb.warc.gz; built on first use), extracted once, before timing. The quality
classifier is trained here with ``refinery quality train`` defaults (dim 64, bucket 1M, word bigrams) on the
demo model's data (Wikipedia articles against Common Crawl pages, data/models/PROVENANCE.md), as a user
would; the fastText toxicity model is that same model scored for its other label (Dolma's Jigsaw models have
the same architecture, bigrams; their size changes memory, not the per-document work much). The bad-words
list is as long as LDNOOBW's English list (see offensive_words).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from filters.classifiers import QualityClassifier  # noqa: E402
from filters.extract import HtmlExtractor  # noqa: E402
from filters.language import LanguageFilter  # noqa: E402
from filters.toxicity import C4BadWords, Toxicity  # noqa: E402
from filters.warc import iter_records  # noqa: E402
from pipeline.tools.quality import train_quality_classifier  # noqa: E402

WORK = ROOT / "benchmarks" / ".work"


def pages(limit: int) -> list[dict]:
    corpus = WORK / "corpus-60mb.warc.gz"
    if not corpus.exists():
        import subprocess

        subprocess.run([sys.executable, str(ROOT / "benchmarks" / "build_corpus.py")], check=True)
    extractor = HtmlExtractor()
    docs = []
    with open(corpus, "rb") as f:
        for record in iter_records(f):
            out = extractor.extract(record, str(corpus))
            if out and out[1] is None:
                docs.append(out[0])
                if len(docs) == limit:
                    break
    return docs


def offensive_words(n: int) -> list[str]:
    """A word list the size of LDNOOBW's English one (403 entries), which cannot be downloaded here: the
    ``n`` terms the offline profanity model weighs most towards "profane"."""
    from profanity_check import profanity_check as shipped

    weights = sum(p.estimator.coef_[0] for p in shipped.model.calibrated_classifiers_)
    terms = shipped.vectorizer.get_feature_names_out()
    return [terms[i] for i in weights.argsort()[::-1][:n]]


def rate(filt, docs: list[dict], repeats: int) -> float:
    """Best documents/s over ``repeats`` passes (fresh copies of the documents each time)."""
    best = 0.0
    for _ in range(repeats):
        batch = [dict(d) for d in docs]
        started = time.perf_counter()
        for doc in batch:
            filt.apply(doc, Counter())
        best = max(best, len(batch) / (time.perf_counter() - started))
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--docs", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})
    os.environ["OMP_NUM_THREADS"] = "1"
    docs = pages(args.docs)
    english = [dict(d, language="en") for d in docs]  # the English-only models score every page
    chars = statistics.mean(len(d["text"]) for d in docs)
    with tempfile.TemporaryDirectory() as tmp:
        model = os.path.join(tmp, "quality.bin")
        train_quality_classifier(
            [str(ROOT / "data" / "models" / "enwiki-sample.jsonl.gz")],
            [str(ROOT / "tests" / "fixtures" / "text" / "dolma-ccnet")],
            model,
            threads=1,
        )
        words = os.path.join(tmp, "words.txt")
        Path(words).write_text("\n".join(offensive_words(400)) + "\n")
        cases = [
            ("language ID (lid.176.ftz), anchor", LanguageFilter(languages=[]), docs),
            ("quality_classifier (fastText, bigrams)", QualityClassifier(model=model), docs),
            ("toxicity, fastText model by path", Toxicity(category="t", model=model, label="lq"), english),
            ("toxicity, offline profanity, document", Toxicity(), english),
            ("toxicity, offline profanity, line", Toxicity(granularity="line"), english),
            ("toxicity, no language annotation (lid first)", Toxicity(), docs),
            ("c4_badwords (400-word list)", C4BadWords(words=words), docs),
        ]
        print(f"{len(docs)} pages, mean {chars:,.0f} characters; one core; best of {args.repeats}\n")
        print(f"{'filter':<42}{'docs/s':>10}{'vs anchor':>11}")
        anchor = None
        for name, filt, batch in cases:
            filt.apply(dict(batch[0]), Counter())  # load models before timing
            docs_per_s = rate(filt, batch, args.repeats)
            anchor = anchor or docs_per_s
            print(f"{name:<42}{docs_per_s:>10,.0f}{docs_per_s / anchor:>10.2f}x")


if __name__ == "__main__":
    main()
