#!/usr/bin/env python3
"""The English text corpus of the tokenizer benchmark: Debian documentation packages, real text only.

Steps, each skipped when its output already exists:

1. ``apt-get download PKG`` into ``benchmarks/.work/debs/`` and ``dpkg-deb -x`` into
   ``benchmarks/.work/debroot/PKG/`` (the helpers of ``build_corpus.py``, so its packages are shared);
2. per package, the English pages: HTML through the project's charset decoding
   (``filters.charset.decode_html``) and resiliparse's ``extract_plain_text`` with the options of
   ``filters.extract.HtmlExtractor`` except ``main_content=False`` (documentation pages: keep all visible
   text), Perl's ``.pod`` files as they are. Index, search and single-page duplicates of multi-page manuals
   are skipped, and so are byte-identical texts;
3. ``filters.language.LanguageFilter(languages=["en"])`` (the shipped ``lid.176.ftz``, threshold 0.65)
   keeps English documents;
4. the documents are put in a seeded random order (packages mixed, so any prefix is a sample of the
   whole); a document whose id (``package/path``) hashes below 5% goes to ``heldout.txt``, the others to
   ``corpus.txt``, until ``corpus.txt`` reaches ``max_mb``. Documents are joined with ``<|endoftext|>``.

``manifest.json`` records the options, the packages (.deb name and version) and per package the documents
and MB kept; when it matches, nothing is rebuilt.

    python benchmarks/tokenizer_corpus.py          # benchmarks/.work/tokenizer/corpus-50mb/
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from build_corpus import WORK, download, unpack  # noqa: E402

TOK_WORK = WORK / "tokenizer"
EOT = "<|endoftext|>"
DEFAULT_MAX_MB = 50.0
DEFAULT_SEED = 20240517
HELDOUT_PERCENT = 5
MIN_CHARS = 200  # shorter pages (redirect stubs, empty indexes) are skipped
HTML_SUFFIXES = (".html", ".htm", ".xhtml")

# package -> (directory inside the package holding its English documentation, kind of files taken)
PACKAGES: dict[str, tuple[str, str]] = {
    "python3.11-doc": ("usr/share/doc/python3.11/html", "html"),
    "postgresql-doc-15": ("usr/share/doc/postgresql-doc-15/html", "html"),
    "sqlite3-doc": ("usr/share/doc/sqlite3", "html"),
    "perl-doc": ("usr/share/perl", "pod"),
    "apache2-doc": ("usr/share/doc/apache2-doc/manual/en", "html"),
    "debian-handbook": ("usr/share/doc/debian-handbook/html/en-US", "html"),
    "installation-guide-amd64": ("usr/share/doc/installation-guide-amd64/en", "html"),
    "cmake-doc": ("usr/share/doc/cmake-data/html", "html"),
    "git-doc": ("usr/share/doc/git-doc", "html"),
    "octave-doc": ("usr/share/doc/octave", "html"),
    "sphinx-doc": ("usr/share/doc/sphinx-doc/html", "html"),
    "debian-policy": ("usr/share/doc/debian-policy", "html"),
    "debian-reference-en": ("usr/share/debian-reference", "html"),
    "developers-reference": ("usr/share/developers-reference", "html"),
    "maint-guide": ("usr/share/doc/maint-guide/html", "html"),
    "autoconf-doc": ("usr/share/doc/autoconf", "html"),
    "bash-doc": ("usr/share/doc/bash", "html"),
    "gnu-standards": ("usr/share/doc/gnu-standards", "html"),
}
# generated indexes, search pages, rendered source code, and single-page copies of multi-page manuals
SKIP = re.compile(
    r"(^|/)(_sources|_modules|_static|_images)/|(^|/)(genindex[^/]*|search|py-modindex|modindex)\.html$"
    r"|^developers-reference\.html$|-policy-1\.html$"
)


def log(msg: str) -> None:
    print(f"[tokenizer_corpus] {msg}", file=sys.stderr, flush=True)


def deb_version(deb: Path) -> str:
    res = subprocess.run(["dpkg-deb", "-f", str(deb), "Version"], capture_output=True, text=True, check=True)
    return res.stdout.strip()


def english_files(pkg: str, root: Path) -> list[tuple[str, Path]]:
    """(relative path, file) of the package's English documents, sorted; symlinks are skipped."""
    subdir, kind = PACKAGES[pkg]
    base = root / subdir
    out = []
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            rel = path.relative_to(base).as_posix()
            plain = name.removesuffix(".gz")
            if path.is_symlink() or SKIP.search(rel):
                continue
            if kind == "html" and plain.lower().endswith(HTML_SUFFIXES):
                if pkg == "debian-reference-en" and not plain.endswith(".en.html"):
                    continue
                out.append((rel, path))
            elif kind == "pod" and plain.endswith(".pod"):
                out.append((rel, path))
    return out


def extract(path: Path, kind: str) -> str:
    from resiliparse.extract.html2text import extract_plain_text

    from filters.charset import decode_html
    from filters.extract import HtmlExtractor

    raw = path.read_bytes()
    if path.name.endswith(".gz"):
        raw = gzip.decompress(raw)
    if kind == "pod":
        return raw.decode("utf-8", "replace").strip()
    opts = HtmlExtractor(main_content=False)
    html, _, _ = decode_html(raw, None)
    return extract_plain_text(
        html, main_content=False, alt_texts=opts.alt_texts, list_bullets=opts.list_bullets
    ).strip()


def is_heldout(doc_id: str) -> bool:
    return int.from_bytes(hashlib.sha1(doc_id.encode()).digest()[:8], "little") % 100 < HELDOUT_PERCENT


def build(out_dir: Path | None = None, *, max_mb: float = DEFAULT_MAX_MB, seed: int = DEFAULT_SEED) -> dict:
    """Build ``corpus.txt`` and ``heldout.txt`` under ``out_dir`` unless the manifest matches; the manifest."""
    out_dir = out_dir or TOK_WORK / f"corpus-{max_mb:g}mb"
    manifest_path = out_dir / "manifest.json"
    corpus, heldout = out_dir / "corpus.txt", out_dir / "heldout.txt"
    wanted = {
        "packages": {p: list(v) for p, v in PACKAGES.items()},
        "max_mb": max_mb,
        "seed": seed,
        "heldout_percent": HELDOUT_PERCENT,
        "min_chars": MIN_CHARS,
        "skip": SKIP.pattern,
        "extractor": "resiliparse extract_plain_text(main_content=False, alt_texts, list_bullets)",
        "language": "filters.language.LanguageFilter(languages=['en']) (lid.176.ftz, 0.65)",
    }
    if manifest_path.exists() and corpus.exists() and heldout.exists():
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("options") == wanted and manifest.get("corpus_bytes") == corpus.stat().st_size:
            return manifest
    from filters.language import LanguageFilter

    debs = download(list(PACKAGES), WORK / "debs")
    lang = LanguageFilter(languages=["en"])
    docs, seen = [], set()
    dropped = {"short": 0, "duplicate": 0, "not_english": 0}
    for pkg in PACKAGES:
        root = unpack(debs[pkg], WORK / "debroot" / pkg)
        files = english_files(pkg, root)
        n0 = len(docs)
        for rel, path in files:
            text = extract(path, PACKAGES[pkg][1]).replace(EOT, "")
            if len(text) < MIN_CHARS:
                dropped["short"] += 1
                continue
            digest = hashlib.sha1(text.encode("utf-8", "surrogatepass")).digest()
            if digest in seen:
                dropped["duplicate"] += 1
                continue
            seen.add(digest)
            if lang.apply({"text": text}, None) is not None:
                dropped["not_english"] += 1
                continue
            text = text.encode("utf-8", "replace").decode("utf-8")  # no lone surrogates
            docs.append((f"{pkg}/{rel}", text))
        log(f"{pkg}: {len(files)} files, {len(docs) - n0} English documents")
    rng = random.Random(seed)
    rng.shuffle(docs)
    train, held, total = [], [], 0
    for doc_id, text in docs:
        if total >= max_mb * 1e6:
            break
        if is_heldout(doc_id):
            held.append((doc_id, text))
        else:
            train.append((doc_id, text))
            total += len(text.encode("utf-8")) + len(EOT)
    out_dir.mkdir(parents=True, exist_ok=True)
    for path, part in ((corpus, train), (heldout, held)):
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(EOT.join(t for _, t in part), encoding="utf-8")
        os.replace(tmp, path)
    per_package: dict[str, dict] = {}
    for doc_id, text in train:
        entry = per_package.setdefault(doc_id.split("/", 1)[0], {"documents": 0, "mb": 0.0})
        entry["documents"] += 1
        entry["mb"] += len(text.encode("utf-8")) / 1e6
    for entry in per_package.values():
        entry["mb"] = round(entry["mb"], 2)
    manifest = {
        "options": wanted,
        "debs": {p: {"file": debs[p].name, "version": deb_version(debs[p])} for p in PACKAGES},
        "documents": len(train),
        "corpus_bytes": corpus.stat().st_size,
        "corpus_mb": round(corpus.stat().st_size / 1e6, 2),
        "heldout_documents": len(held),
        "heldout_mb": round(heldout.stat().st_size / 1e6, 2),
        "english_documents_available": len(docs),
        "dropped": dropped,
        "per_package": dict(sorted(per_package.items(), key=lambda kv: -kv[1]["mb"])),
        "corpus_sha256": hashlib.sha256(corpus.read_bytes()).hexdigest(),
    }
    manifest_path.write_text(json.dumps(manifest, indent=1) + "\n")
    log(f"wrote {corpus} ({manifest['corpus_mb']} MB, {len(train)} documents) and {heldout} ({len(held)} documents)")
    return manifest


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--max-mb", type=float, default=DEFAULT_MAX_MB)
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("-o", "--output", type=Path)
    args = ap.parse_args(argv)
    manifest = build(args.output, max_mb=args.max_mb, seed=args.seed)
    print(json.dumps({k: v for k, v in manifest.items() if k != "options"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
