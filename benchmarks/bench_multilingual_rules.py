"""Cost of the multilingual rules: Gopher + FineWeb documents/s on English pages, and word segmentation's
cost per MB of Chinese, Japanese and Thai text.

    .venv/bin/python benchmarks/bench_multilingual_rules.py [--repeats 5]
    .venv/bin/python benchmarks/bench_multilingual_rules.py --roots . /path/to/an/older/checkout

English: the pages of the committed Debian and Dolma sample WARCs that lid.176 labels ``en`` (extracted and
labelled once, cached in benchmarks/.work/), through GopherRepetition -> GopherQuality -> FineWebQuality with
their default thresholds, stopping at the first drop as the filter stage does; once without a ``language``
annotation and once with ``en``. With several ``--roots`` (project checkouts), each repeat runs every root in
its own process, interleaved, so that before/after comparisons share the machine's load.

Segmentation: each language's real text (the Debian pages lid.176 labels ``zh`` / ``ja``; Thai: the Tatoeba
sentences of tests/fixtures, the only real Thai text here) repeated to 1 MB of UTF-8 as fresh strings, split by
``filters.text.words`` without a language (the regex alone) and with it (regex + segmenter); the difference is
the segmentation's cost. The rules' documents/s on those pages are shown too. Times are CPU seconds of one
process (``time.process_time``), median of the repeats.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "benchmarks" / ".work"
PAGES = WORK / "multilingual-pages.json"
WARCS = ["debian-docs/debian-docs-420p.warc.gz", "debian-installation-guide/installation-guide-19lang.warc.gz"]
WARCS += ["dolma/sample-0000.warc.gz", "dolma/sample-0001.warc.gz"]
SEGMENTED = ("zh", "ja", "th")
MB = 1_000_000


def labelled_pages() -> dict[str, list[str]]:
    """Texts of the sample WARCs' pages by lid.176 label (English, Chinese, Japanese), plus Tatoeba's Thai."""
    if PAGES.exists():
        return json.loads(PAGES.read_text())
    sys.path.insert(0, str(ROOT))
    from filters.extract import HtmlExtractor
    from filters.language import LanguageFilter
    from filters.warc import iter_records

    extractor, lid = HtmlExtractor(), LanguageFilter(languages=[])
    pages: dict[str, list[str]] = {"en": [], "zh": [], "ja": [], "th": []}
    for name in WARCS:
        for record in iter_records(io.BytesIO((ROOT / "data" / "warc" / name).read_bytes())):
            out = extractor.extract(record, name)
            if out and out[1] is None:
                lid.apply(out[0], Counter())
                pages.get(out[0]["language"], []).append(out[0]["text"])
    with open(ROOT / "tests" / "fixtures" / "text" / "tatoeba" / "tatoeba_long.tsv", encoding="utf-8") as f:
        pages["th"] = [row["text"] for row in csv.DictReader(f, delimiter="\t") if row["CLD2-code"] == "th"]
    WORK.mkdir(parents=True, exist_ok=True)
    PAGES.write_text(json.dumps(pages, ensure_ascii=False))
    return pages


def fresh_copies(texts: list[str], size: int) -> list[str]:
    """``texts`` repeated to ``size`` bytes of UTF-8, each a new string object (no tokenization is reused)."""
    out, total = [], 0
    while total < size:
        for text in texts:
            out.append((text + " ")[:-1])
            total += len(text.encode("utf-8"))
    return out


def rules_docs_per_s(texts: list[str], language: str | None) -> float:
    from filters.fineweb import FineWebQuality
    from filters.gopher import GopherQuality, GopherRepetition

    chain = [GopherRepetition(), GopherQuality(), FineWebQuality()]
    docs = [{"text": (text + " ")[:-1], "language": language} for text in texts]
    started = time.process_time()
    for doc in docs:
        for rule in chain:
            if rule.apply(doc, Counter()) is not None:
                break
    return len(docs) / (time.process_time() - started)


def segmentation_cost(language: str, texts: list[str]) -> dict:
    from filters.segmentation import segmenter
    from filters.text import words

    started = time.perf_counter()
    segmenter(language)("一")  # load the library and its dictionary
    load_s = time.perf_counter() - started
    copies = fresh_copies(texts, MB)
    mb = sum(len(t.encode("utf-8")) for t in copies) / MB
    seconds = {}
    for mode in (None, language):
        started = time.process_time()
        n_words = sum(len(words(text, mode)) for text in copies)
        seconds[mode or "regex"] = (time.process_time() - started) / mb
        seconds[f"{mode or 'regex'}_words"] = n_words
    return {"load_s": load_s, **seconds, "rules_docs_per_s": rules_docs_per_s(texts, language)}


def child(root: str, english_only: bool) -> None:
    """One repeat of every measurement, with the project at ``root``; prints one JSON line."""
    sys.path.insert(0, root)
    pages = labelled_pages()
    english = pages["en"]
    result = {"root": root, "docs": len(english), "mb": sum(len(t.encode()) for t in english) / MB}
    result["en_unlabelled"] = rules_docs_per_s(english, None)
    result["en_labelled"] = rules_docs_per_s(english, "en")
    if not english_only:
        result |= {lang: segmentation_cost(lang, pages[lang]) for lang in SEGMENTED}
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--roots", nargs="+", default=[str(ROOT)], help="project checkouts to compare")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--english-only", action="store_true", help="skip the segmentation measurements")
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.english_only)
    labelled_pages()  # extracted once, before any timing
    runs: dict[str, list[dict]] = {root: [] for root in args.roots}
    for repeat in range(args.repeats):
        for i, root in enumerate(args.roots):
            only = args.english_only or i > 0  # older checkouts have no segmentation to measure
            command = [sys.executable, __file__, "--child", str(Path(root).resolve())]
            out = subprocess.run(command + ["--english-only"] * only, capture_output=True, text=True, check=True)
            runs[root].append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(f"[bench] repeat {repeat + 1}/{args.repeats} {root}: done", file=sys.stderr, flush=True)
    report(runs)


def report(runs: dict[str, list[dict]]) -> None:
    def values(rows: list[dict], *keys: str) -> list[float]:
        out = []
        for row in rows:
            for key in keys:
                row = row[key]
            out.append(row)
        return out

    def spread(rows: list[dict], key: str) -> str:
        found = values(rows, key)
        return f"{statistics.median(found):.1f} ({min(found):.1f}-{max(found):.1f})"

    first = next(iter(runs.values()))
    print(f"English pages: {first[0]['docs']} docs, {first[0]['mb']:.2f} MB; Gopher repetition + quality + FineWeb")
    print(f"{'checkout':<40} {'docs/s, no language':>24} {'docs/s, language en':>24}")
    for root, rows in runs.items():
        print(f"{root:<40} {spread(rows, 'en_unlabelled'):>24} {spread(rows, 'en_labelled'):>24}")
    print("(median of the repeats, and their range)")
    if SEGMENTED[0] not in first[0]:
        return
    print("\nSegmentation: CPU s per MB of UTF-8 text, medians; words in 1 MB without -> with the language")
    print(f"{'lang':<5} {'load s':>7} {'regex':>7} {'segmented':>10} {'cost':>7} {'words':>16} {'rules docs/s':>13}")
    for lang in SEGMENTED:
        regex_s, seg_s = statistics.median(values(first, lang, "regex")), statistics.median(values(first, lang, lang))
        counts = f"{first[0][lang]['regex_words']}->{first[0][lang][lang + '_words']}"
        load_s, docs_s = statistics.median(values(first, lang, "load_s")), values(first, lang, "rules_docs_per_s")
        print(
            f"{lang:<5} {load_s:>7.2f} {regex_s:>7.3f} {seg_s:>10.3f} {seg_s - regex_s:>7.3f} {counts:>16}"
            f" {statistics.median(docs_s):>13.1f}"
        )


if __name__ == "__main__":
    main()
