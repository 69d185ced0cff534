#!/usr/bin/env python3
"""Build the held-out reference texts of ``refinery ablate`` from Debian documentation packages that no WARC
in ``data/warc`` was built from (so the ablation's training data cannot hold them; the ablation checks that
anyway), one JSONL file per package: ``{"id", "url", "text"}`` per page.

Pages are English prose chapters, picked in a seeded order; the text is resiliparse's main content (what the
``extract`` stage keeps), cut at a paragraph boundary after ``--max-chars``, and a page with less than
``--min-chars`` is skipped. The output depends only on the packages and the options.

    .venv/bin/python data/eval/make_reference.py            # writes data/eval/<name>.jsonl

Needs ``apt-get download`` and ``dpkg-deb`` (Debian); packages are fetched into ``benchmarks/.work/debs``.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from pathlib import Path

from resiliparse.extract.html2text import extract_plain_text
from resiliparse.parse.encoding import bytes_to_str, detect_encoding

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "benchmarks"))
from build_corpus import WORK, download, unpack  # noqa: E402

# name -> (package, folder inside it, pages to take: a regular expression on the path below that folder, URL)
SOURCES = {
    "postgresql-tutorial": (
        "postgresql-doc-15",
        "usr/share/doc/postgresql-doc-15/html",
        r"(tutorial|ddl|dml|queries|mvcc|indexes)[-a-z0-9]*\.html",
        "https://www.postgresql.org/docs/15/",
    ),
    "rust-book": (
        "rust-doc",
        "usr/share/doc/rust-doc/html/book",
        r"ch\d\d-\d\d-[-a-z0-9]+\.html",
        "https://doc.rust-lang.org/1.63.0/book/",
    ),
    "django-topics": (
        "python-django-doc",
        "usr/share/doc/python-django-doc/html",
        r"(topics|intro)/[-a-z0-9/]+\.html",
        "https://docs.djangoproject.com/en/3.2/",
    ),
}


def page_text(path: Path, max_chars: int) -> str:
    """The main content of an HTML page, cut at the last paragraph end before ``max_chars``."""
    raw = path.read_bytes()
    text = extract_plain_text(bytes_to_str(raw, detect_encoding(raw)), main_content=True)
    text = re.sub(r"\n{3,}", "\n\n", text).strip()
    if len(text) > max_chars:
        cut = text.rfind("\n", 0, max_chars)
        text = text[: cut if cut > max_chars // 2 else max_chars].rstrip()
    return text


def build(name: str, pages: int, min_chars: int, max_chars: int, seed: int) -> list[dict]:
    package, folder, pattern, url = SOURCES[name]
    deb = download([package], WORK / "debs")[package]
    base = unpack(deb, WORK / "debroot" / package) / folder
    found = sorted(p for p in base.rglob("*.html") if re.fullmatch(pattern, p.relative_to(base).as_posix()))
    random.Random(seed).shuffle(found)
    docs = []
    for path in found:
        text = page_text(path, max_chars)
        if len(text) >= min_chars:
            rel = path.relative_to(base).as_posix()
            docs.append({"id": f"{name}/{rel}", "url": url + rel, "text": text, "package": deb.name})
        if len(docs) == pages:
            break
    return docs


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pages", type=int, default=16, help="pages per package")
    ap.add_argument("--min-chars", type=int, default=2500)
    ap.add_argument("--max-chars", type=int, default=6000)
    ap.add_argument("--seed", type=int, default=20240601)
    args = ap.parse_args(argv)
    for name in SOURCES:
        docs = build(name, args.pages, args.min_chars, args.max_chars, args.seed)
        out = HERE / f"{name}.jsonl"
        out.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs), encoding="utf-8")
        chars = sum(len(d["text"]) for d in docs)
        print(f"{out.relative_to(HERE.parents[1])}: {len(docs)} pages, {chars:,} characters ({docs[0]['package']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
