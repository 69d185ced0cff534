"""The datatrove side of ``bench_filter_throughput.py``: run with the datatrove virtualenv's Python.

One task, one worker (``LocalPipelineExecutor(tasks=1, workers=1)`` runs the task in this process; datatrove's
extractors add their own sandbox child process, which works while this one waits)::

    WarcReader -> extractor -> LanguageFilter(en, 0.65) -> GopherRepetitionFilter -> GopherQualityFilter
    -> C4QualityFilter(filter_no_terminal_punct=False) -> FineWebQualityFilter -> PIIFormatter -> ParquetWriter

Offline set-up, done before the clock starts: fastText ``lid.176`` is loaded from the ``.ftz`` that ships with
refinery (datatrove would download ``lid.176.bin``), and the English word tokenizer (``spacy.blank("en")``,
which needs no model download) is built. Prints one JSON line on stdout: timings and document counts.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import time


def cpu_seconds() -> float:
    """CPU time of this process and of its reaped children (the extractor sandbox is reaped at the end)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--warc", required=True)
    ap.add_argument("--out", required=True, help="scratch folder (emptied first)")
    ap.add_argument("--lid-model", required=True, help="fastText lid.176 model file (.ftz or .bin)")
    ap.add_argument("--extractor", choices=["resiliparse", "trafilatura"], default="resiliparse")
    ap.add_argument(
        "--extract-timeout",
        type=float,
        default=None,
        help="per-document extraction timeout in s (default: datatrove's, 0.1 resiliparse / 1 trafilatura)",
    )
    args = ap.parse_args()

    started = time.perf_counter()
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.extractors.base import BaseExtractor
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
        LanguageFilter,
    )
    from datatrove.pipeline.formatters import PIIFormatter
    from datatrove.pipeline.readers import WarcReader
    from datatrove.pipeline.writers import ParquetWriter
    from datatrove.utils import lid
    from datatrove.utils.word_tokenizers import load_word_tokenizer

    # -- offline language ID: the same lid.176 weights, from a local file (never the download URL) -------------
    from fasttext.FastText import _FastText

    lid_model = _FastText(args.lid_model)
    lid.FT176LID.model = property(lambda self: lid_model)  # the executor deep-copies steps: keep one shared model

    class Resiliparse(BaseExtractor):
        """datatrove's ``Resiliparse`` extractor (in its repository, not in the 0.10.1 wheel), with the options of
        refinery's extract stage: main content, alt texts and list bullets on, the rest at resiliparse defaults."""

        name = "⛏ Resiliparse"
        _requires_dependencies = ["resiliparse"]

        def __init__(self, timeout: float = 0.1):
            super().__init__(timeout)

        def extract(self, text: str) -> str:
            from resiliparse.extract.html2text import extract_plain_text

            return extract_plain_text(
                text,
                preserve_formatting=True,
                main_content=True,
                list_bullets=True,
                alt_texts=True,
                links=False,
                form_fields=False,
                noscript=False,
                comments=True,
            )

    if args.extractor == "resiliparse":
        from resiliparse.extract.html2text import extract_plain_text  # noqa: F401  (import outside the clock)

        extractor = Resiliparse(**({"timeout": args.extract_timeout} if args.extract_timeout else {}))
    else:
        import trafilatura  # noqa: F401
        from datatrove.pipeline.extractors import Trafilatura

        extractor = Trafilatura(
            favour_precision=True, **({"timeout": args.extract_timeout} if args.extract_timeout else {})
        )

    tokenizer = load_word_tokenizer("en")  # spacy.blank("en") + sentencizer, cached for every filter
    tokenizer.word_tokenize("Warm up the tokenizer. Twice.")
    tokenizer.span_tokenize("Warm up the tokenizer. Twice.")

    shutil.rmtree(args.out, ignore_errors=True)
    warc_dir, warc_name = os.path.split(os.path.abspath(args.warc))
    pipeline = [
        WarcReader(warc_dir, glob_pattern=warc_name, compression="gzip"),
        extractor,
        LanguageFilter(languages=["en"], language_threshold=0.65),
        GopherRepetitionFilter(),
        GopherQualityFilter(),
        C4QualityFilter(filter_no_terminal_punct=False),
        FineWebQualityFilter(),
        PIIFormatter(),
        ParquetWriter(os.path.join(args.out, "output"), compression="zstd"),
    ]
    executor = LocalPipelineExecutor(
        pipeline=pipeline, tasks=1, workers=1, logging_dir=os.path.join(args.out, "logs"), skip_completed=False
    )
    setup_s = time.perf_counter() - started

    cpu0, t0 = cpu_seconds(), time.perf_counter()
    executor.run()
    wall_s, cpu_s = time.perf_counter() - t0, cpu_seconds() - cpu0

    with open(os.path.join(args.out, "logs", "stats", "00000.json")) as f:
        steps = json.load(f)
    by_name = {}
    for step in steps:
        by_name[step["name"]] = {k: (v["total"] if isinstance(v, dict) else v) for k, v in step["stats"].items()}
        by_name[step["name"]]["time_s"] = round(step.get("time_stats", {}).get("total", 0.0), 3)
    reader = next(v for k, v in by_name.items() if "Warc" in k)
    writer = next(v for k, v in by_name.items() if "Parquet" in k)
    print(
        json.dumps(
            {
                "side": f"datatrove+{args.extractor}",
                "read": reader.get("documents", 0),
                "kept": writer.get("total", 0),
                "wall_s": wall_s,
                "cpu_s": cpu_s,
                "setup_s": setup_s,
                "steps": by_name,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
