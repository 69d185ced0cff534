"""Build ``enwiki-sample.jsonl.gz``, the positive class of the demo's quality classifier: the English Wikipedia
articles of the shortened dump that gensim ships as test data, as plain text (Wikipedia, CC BY-SA 3.0).

    python data/models/make_enwiki_sample.py [GENSIM_WHEEL]

Without an argument the wheel is fetched from PyPI (``pip download gensim==4.3.3``, the manylinux x86-64
CPython 3.11 build, checked against its SHA-256). The dump inside it
(``gensim/test/test_data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2``, MediaWiki
1.27, 2016) holds 211 pages; redirects, articles under 500 characters of text and the articles about
anarchism (the topic of the CS336 reference page that the tests score as held-out high quality) are left
out, 104 articles remain. Wikitext becomes plain text with a few regular expressions (templates, tables,
references, files and categories removed; links, bold and italics reduced to their text; headings kept as
lines). Output is deterministic: one JSON line per article (``id``, ``url``, ``text``), gzip without a time.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import html
import io
import json
import re
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUTPUT = HERE / "enwiki-sample.jsonl.gz"
WHEEL = "gensim-4.3.3-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
WHEEL_SHA256 = "d662bf96e3d741b6ab61a54be842a7cbf5e45193008b2f4225c758cafd7f9cdc"
DUMP = "gensim/test/test_data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
DUMP_SHA256 = "a53f4648dec40467ebdcbc7a1307eddb51fe6e28e9309f6ebde81ba0d04bea2d"
EXCLUDED_TOPIC = re.compile(r"anarch", re.IGNORECASE)
MIN_CHARS = 500

TEMPLATE = re.compile(r"\{\{[^{}]*\}\}")
TABLE = re.compile(r"\{\|.*?\|\}", re.DOTALL)
COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
REFERENCE = re.compile(r"<ref[^>/]*/>|<ref[^>]*>.*?</ref>", re.DOTALL | re.IGNORECASE)
FILE_OR_CATEGORY = re.compile(r"\[\[(?:File|Image|Category|[a-z]{2,3}(?:-[a-z]+)?):(?:[^\[\]]|\[\[[^\]]*\]\])*\]\]")
LINK = re.compile(r"\[\[(?:[^|\]]*\|)?([^\]]*)\]\]")
EXTERNAL_LINK = re.compile(r"\[https?://\S+\s*([^\]]*)\]")
TAG = re.compile(r"<[^>]+>")
HEADING = re.compile(r"^=+\s*(.*?)\s*=+\s*$", re.MULTILINE)
EMPHASIS = re.compile(r"'{2,}")
LIST_MARK = re.compile(r"^[*#:;]+\s*", re.MULTILINE)
EMPTY_BRACKETS = re.compile(r"\(\s*[,;]?\s*\)")


def wikitext_to_text(raw: str) -> str:
    """The readable text of an article's wikitext."""
    text = COMMENT.sub("", html.unescape(raw))
    text = REFERENCE.sub("", text)
    while True:  # innermost templates first, until none is left
        text, n = TEMPLATE.subn("", text)
        if not n:
            break
    text = TABLE.sub("", text)
    text = FILE_OR_CATEGORY.sub("", text)
    text = LINK.sub(r"\1", text)
    text = EXTERNAL_LINK.sub(r"\1", text)
    text = TAG.sub("", text)
    text = HEADING.sub(r"\1", text)
    text = EMPHASIS.sub("", text)
    text = LIST_MARK.sub("", text)
    text = EMPTY_BRACKETS.sub("", text)
    text = re.sub(r"[ \t]+", " ", text)
    text = re.sub(r" +([,.;:])", r"\1", text)
    return re.sub(r"\n\s*\n\s*(\n\s*)+", "\n\n", text).strip()


def articles(dump: bytes):
    """(title, text) of every article of a MediaWiki XML dump (bzip2), redirects left out."""
    for _, elem in ET.iterparse(io.BytesIO(bz2.decompress(dump))):
        if elem.tag.endswith("}page"):
            ns = elem.tag[: -len("page")]
            title = elem.findtext(f"{ns}title") or ""
            raw = elem.findtext(f"{ns}revision/{ns}text") or ""
            elem.clear()
            if not raw.lstrip().upper().startswith("#REDIRECT"):
                yield title, wikitext_to_text(raw)


def fetch_wheel(directory: str) -> Path:
    """gensim's wheel from PyPI, the build for which the checksum is known whatever this machine is."""
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "gensim==4.3.3", "--no-deps", "--only-binary", ":all:",
         "--python-version", "3.11", "--platform", "manylinux_2_17_x86_64", "-d", directory],
        check=True,
    )  # fmt: skip
    return Path(directory) / WHEEL


def checked(data: bytes, sha256: str, what: str) -> bytes:
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise SystemExit(f"{what}: SHA-256 {digest}, expected {sha256}")
    return data


def main(wheel: Path | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        wheel = wheel or fetch_wheel(tmp)
        with zipfile.ZipFile(io.BytesIO(checked(wheel.read_bytes(), WHEEL_SHA256, str(wheel)))) as zf:
            dump = checked(zf.read(DUMP), DUMP_SHA256, DUMP)
    rows = [
        {"id": title, "url": "https://en.wikipedia.org/wiki/" + title.replace(" ", "_"), "text": text}
        for title, text in articles(dump)
        if len(text) >= MIN_CHARS and not EXCLUDED_TOPIC.search(title)
    ]
    with open(OUTPUT, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as out:
        for row in rows:
            out.write((json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8"))
    print(f"{OUTPUT}: {len(rows)} articles, {sum(len(r['text']) for r in rows):,} characters")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else None)
