#!/usr/bin/env python3
"""Build the benchmark WARC from real HTML: Debian documentation packages, fetched with ``apt-get download``.

Steps, each skipped when its output already exists (so a second run is instant):

1. ``apt-get download PKG`` into ``benchmarks/.work/debs/`` (Debian's archive is the only source used);
2. ``dpkg-deb -x`` each package into ``benchmarks/.work/debroot/PKG/``;
3. pick HTML pages (regular files only: symlinks and byte-identical copies are skipped) in a seeded random
   order that mixes sites and languages as a crawl does, about 40% of them from the English manuals
   (``--english-share``; Common Crawl is ~45% English), stop at ``--max-mb`` of HTML or
   ``--max-pages`` pages, and write one ``.warc.gz`` (one gzip member per record) with a ``warcinfo`` record
   and, per page, a ``request`` and a ``response`` record (``HTTP/1.1 200 OK``, ``Content-Type: text/html;
   charset=...``, realistic server headers).

The output depends only on the packages' contents and the options: record ids, dates and header values are
derived from the page path and a seed, never from the clock. A JSON manifest is written next to the WARC;
when it matches the requested options and the WARC is present, nothing is rebuilt.

    .venv/bin/python benchmarks/build_corpus.py                # benchmarks/.work/corpus-60mb.warc.gz
    .venv/bin/python benchmarks/build_corpus.py --max-pages 300  # benchmarks/.work/corpus-300p.warc.gz

Needs ``apt-get`` and ``dpkg-deb`` (Debian) and ``warcio``. If ``apt-get download`` cannot find a package, run
``apt-get update`` once.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import io
import json
import os
import random
import re
import subprocess
import sys
import uuid
from email.utils import format_datetime
from pathlib import Path
from urllib.parse import quote

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work"

# package -> (directory inside the package to walk, URL prefix its pages are served under)
PACKAGES: dict[str, tuple[str, str]] = {
    "python3.11-doc": ("usr/share/doc/python3.11/html", "https://docs.python.org/3.11/"),
    "debian-handbook": ("usr/share/doc/debian-handbook/html", "https://debian-handbook.info/browse/"),
    "apache2-doc": ("usr/share/doc/apache2-doc/manual", "https://httpd.apache.org/docs/2.4/"),
    "installation-guide-amd64": (
        "usr/share/doc/installation-guide-amd64",
        "https://www.debian.org/releases/bookworm/amd64/",
    ),
    "debian-reference-en": ("usr/share/debian-reference", "https://www.debian.org/doc/manuals/debian-reference/"),
    "developers-reference": (
        "usr/share/developers-reference",
        "https://www.debian.org/doc/manuals/developers-reference/",
    ),
    "maint-guide": ("usr/share/doc/maint-guide/html", "https://www.debian.org/doc/manuals/maint-guide/"),
}
ENGLISH_ONLY = frozenset({"python3.11-doc", "debian-reference-en", "developers-reference", "maint-guide"})
ENGLISH_DIRS = frozenset({"en", "en-US"})  # the multilingual manuals keep one directory per language
HTML_SUFFIXES = (".html", ".htm", ".xhtml")
DEFAULT_MAX_MB = 60.0
DEFAULT_ENGLISH_SHARE = 0.4
DEFAULT_SEED = 20240517
MAX_PAGE_BYTES = 4 << 20  # the project's extractor skips larger payloads; none of these packages has one
SERVERS = ["nginx", "Apache", "Apache/2.4.62 (Debian)", "nginx/1.22.1", "cloudflare", "Varnish"]
USER_AGENT = "Mozilla/5.0 (compatible; refinery-bench/1.0)"
CRAWL_START = dt.datetime(2024, 5, 17, tzinfo=dt.timezone.utc)
_META_CHARSET = re.compile(rb"<meta[^>]+charset\s*=\s*[\"']?([A-Za-z0-9_\-:.]+)", re.I)
_XML_ENCODING = re.compile(rb"<\?xml[^>]+encoding\s*=\s*[\"']([A-Za-z0-9_\-.]+)", re.I)


def log(msg: str) -> None:
    print(f"[build_corpus] {msg}", file=sys.stderr, flush=True)


def download(packages: list[str], debs: Path) -> dict[str, Path]:
    """The .deb of each package, downloaded with ``apt-get download`` unless already there."""
    debs.mkdir(parents=True, exist_ok=True)

    def found(pkg):
        hits = sorted(debs.glob(f"{pkg}_*.deb"))
        return hits[-1] if hits else None

    missing = [p for p in packages if found(p) is None]
    if missing:
        log(f"apt-get download {' '.join(missing)}")
        res = subprocess.run(["apt-get", "download", *missing], cwd=debs, capture_output=True, text=True)
        if res.returncode != 0:
            sys.exit(
                f"apt-get download failed ({res.returncode}):\n{res.stderr.strip()}\n"
                "(run 'apt-get update' once if the package lists are missing)"
            )
    out = {}
    for p in packages:
        deb = found(p)
        if deb is None:
            sys.exit(f"no .deb for {p} in {debs}")
        out[p] = deb
    return out


def unpack(deb: Path, root: Path) -> Path:
    marker = root / ".unpacked"
    if marker.exists() and marker.read_text() == deb.name:
        return root
    log(f"dpkg-deb -x {deb.name}")
    root.mkdir(parents=True, exist_ok=True)
    subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    marker.write_text(deb.name)
    return root


def find_pages(pkg: str, root: Path) -> list[tuple[str, str, Path]]:
    """(package, path relative to the package's doc dir, file) for each regular HTML file, sorted."""
    subdir, _ = PACKAGES[pkg]
    base = root / subdir
    pages = []
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if not name.lower().endswith(HTML_SUFFIXES) or path.is_symlink():
                continue
            pages.append((pkg, path.relative_to(base).as_posix(), path))
    return pages


def is_english(pkg: str, rel: str) -> bool:
    return pkg in ENGLISH_ONLY or rel.split("/", 1)[0] in ENGLISH_DIRS


def page_url(pkg: str, rel: str) -> str:
    prefix = PACKAGES[pkg][1]
    if rel.endswith("/index.html") or rel == "index.html":
        rel = rel[: -len("index.html")]
    return prefix + quote(rel, safe="/-_.~")


def charset_of(payload: bytes) -> str:
    head = payload[:4096]
    m = _META_CHARSET.search(head) or _XML_ENCODING.search(head)
    return m.group(1).decode("ascii", "replace").lower() if m else "utf-8"


def stable_uuid(*parts: str) -> str:
    digest = hashlib.sha1("\x00".join(parts).encode()).digest()[:16]
    return f"<urn:uuid:{uuid.UUID(bytes=digest, version=4)}>"


def write_warc(pages: list[tuple[str, str, bytes]], output: Path, seed: int) -> dict:
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    rng = random.Random(seed)
    tmp = output.with_name(output.name + ".tmp")
    n_bytes = 0
    per_package: dict[str, int] = {}
    with open(tmp, "wb") as out:
        writer = WARCWriter(out, gzip=True)
        info = writer.create_warcinfo_record(
            output.name,
            {
                "software": "refinery benchmarks/build_corpus.py (warcio)",
                "isPartOf": "REFINERY-BENCH",
                "description": "Debian documentation packages served as a crawl, for throughput benchmarks",
                "format": "WARC File Format 1.0",
            },
        )
        info.rec_headers.replace_header("WARC-Date", CRAWL_START.strftime("%Y-%m-%dT%H:%M:%SZ"))
        info.rec_headers.replace_header("WARC-Record-ID", stable_uuid("warcinfo", output.name, str(seed)))
        writer.write_record(info)
        info_id = info.rec_headers.get_header("WARC-Record-ID")
        when = CRAWL_START
        for pkg, url, payload in pages:
            when += dt.timedelta(milliseconds=rng.randint(20, 3000))
            wdate = when.strftime("%Y-%m-%dT%H:%M:%SZ")
            host = url.split("/")[2]
            ip = f"192.0.2.{1 + int(hashlib.md5(host.encode()).hexdigest(), 16) % 254}"  # RFC 5737
            req_id, resp_id = stable_uuid("request", url), stable_uuid("response", url)
            req_http = StatusAndHeaders(
                f"GET /{url.split('/', 3)[3]} HTTP/1.1",
                [
                    ("Host", host),
                    ("User-Agent", USER_AGENT),
                    ("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
                    ("Accept-Language", "en-US,en;q=0.5"),
                    ("Accept-Encoding", "gzip, deflate, br"),
                    ("Connection", "keep-alive"),
                ],
                is_http_request=True,
            )
            writer.write_record(
                writer.create_warc_record(
                    url,
                    "request",
                    payload=io.BytesIO(b""),
                    http_headers=req_http,
                    warc_headers_dict={
                        "WARC-Date": wdate,
                        "WARC-Record-ID": req_id,
                        "WARC-Warcinfo-ID": info_id,
                        "WARC-IP-Address": ip,
                    },
                )
            )
            modified = CRAWL_START - dt.timedelta(days=rng.randint(1, 900), seconds=rng.randint(0, 86399))
            resp_http = StatusAndHeaders(
                "200 OK",
                [
                    ("Date", format_datetime(when, usegmt=True)),
                    ("Server", rng.choice(SERVERS)),
                    ("Content-Type", f"text/html; charset={charset_of(payload)}"),
                    ("Content-Length", str(len(payload))),
                    ("Last-Modified", format_datetime(modified, usegmt=True)),
                    ("ETag", f'"{hashlib.md5(payload).hexdigest()[:16]}"'),
                    ("Accept-Ranges", "bytes"),
                    ("Cache-Control", rng.choice(["max-age=3600", "public, max-age=86400", "no-cache"])),
                    ("Vary", "Accept-Encoding"),
                    ("Connection", "keep-alive"),
                ],
                protocol="HTTP/1.1",
            )
            writer.write_record(
                writer.create_warc_record(
                    url,
                    "response",
                    payload=io.BytesIO(payload),
                    length=len(payload),
                    http_headers=resp_http,
                    warc_headers_dict={
                        "WARC-Date": wdate,
                        "WARC-Record-ID": resp_id,
                        "WARC-Warcinfo-ID": info_id,
                        "WARC-IP-Address": ip,
                        "WARC-Concurrent-To": req_id,
                        "WARC-Identified-Payload-Type": "text/html",
                    },
                )
            )
            n_bytes += len(payload)
            per_package[pkg] = per_package.get(pkg, 0) + 1
    os.replace(tmp, output)
    return {"responses": len(pages), "html_bytes": n_bytes, "per_package": per_package}


def default_name(max_mb: float = DEFAULT_MAX_MB, max_pages: int = 0) -> str:
    return f"corpus-{max_pages}p.warc.gz" if max_pages else f"corpus-{max_mb:g}mb.warc.gz"


def build(
    output: Path,
    *,
    packages: list[str] = tuple(PACKAGES),
    max_mb: float = DEFAULT_MAX_MB,
    max_pages: int = 0,
    seed: int = DEFAULT_SEED,
    english_share: float = DEFAULT_ENGLISH_SHARE,
) -> dict:
    """Build ``output`` unless its manifest says it was built with the same options; return the manifest."""
    manifest_path = output.with_name(output.name + ".json")
    packages = list(packages)
    wanted = {
        "packages": packages,
        "max_mb": max_mb,
        "max_pages": max_pages,
        "seed": seed,
        "english_share": english_share,
    }
    if output.exists() and manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("options") == wanted and manifest.get("warc_bytes") == output.stat().st_size:
            return manifest
    debs = download(packages, WORK / "debs")
    candidates = []
    for pkg in packages:
        root = unpack(debs[pkg], WORK / "debroot" / pkg)
        candidates += find_pages(pkg, root)
    # two shuffled pools, English and other languages, drawn from with a fixed probability: about
    # ``english_share`` of the pages are English whatever the packages' mix (Common Crawl is ~45% English)
    rng = random.Random(seed)
    rng.shuffle(candidates)
    pools = ([c for c in candidates if is_english(c[0], c[1])], [c for c in candidates if not is_english(c[0], c[1])])
    chosen, seen, total, n_english = [], set(), 0, 0
    while pools[0] or pools[1]:
        pool = pools[0] if pools[0] and (not pools[1] or rng.random() < english_share) else pools[1]
        pkg, rel, path = pool.pop()
        payload = path.read_bytes()
        digest = hashlib.sha1(payload).digest()
        if len(payload) > MAX_PAGE_BYTES or digest in seen:
            continue
        seen.add(digest)
        chosen.append((pkg, page_url(pkg, rel), payload))
        n_english += is_english(pkg, rel)
        total += len(payload)
        if (max_pages and len(chosen) >= max_pages) or (max_mb and total >= max_mb * 1e6):
            break
    log(
        f"writing {output} ({len(chosen)} pages, {total / 1e6:.1f} MB of HTML, "
        f"{n_english} of them English, from {len(candidates)} candidate files)"
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    summary = write_warc(chosen, output, seed)
    sha = hashlib.sha256(output.read_bytes()).hexdigest()
    manifest = {
        "options": wanted,
        **summary,
        "english_pages": n_english,
        "warc_bytes": output.stat().st_size,
        "sha256": sha,
        "debs": {p: d.name for p, d in debs.items()},
    }
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    log(f"done: {output.stat().st_size / 1e6:.1f} MB on disk, sha256 {sha[:16]}")
    return manifest


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "-o",
        "--output",
        type=Path,
        help="default: benchmarks/.work/corpus-60mb.warc.gz (corpus-<N>p.warc.gz with --max-pages N)",
    )
    ap.add_argument("--packages", nargs="+", default=list(PACKAGES), choices=list(PACKAGES))
    ap.add_argument(
        "--max-mb", type=float, default=DEFAULT_MAX_MB, help="stop after this many MB of HTML (0: no limit)"
    )
    ap.add_argument("--max-pages", type=int, default=0, help="stop after this many pages (0: no limit)")
    ap.add_argument(
        "--english-share",
        type=float,
        default=DEFAULT_ENGLISH_SHARE,
        help="probability that the next page is drawn from the English pages",
    )
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = ap.parse_args(argv)
    output = args.output or WORK / default_name(args.max_mb, args.max_pages)
    manifest = build(
        output.resolve(),
        packages=args.packages,
        max_mb=args.max_mb,
        max_pages=args.max_pages,
        seed=args.seed,
        english_share=args.english_share,
    )
    print(
        json.dumps({k: manifest[k] for k in ("responses", "english_pages", "html_bytes", "warc_bytes", "per_package")})
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
