"""HTML extraction: exact text, skip reasons on real crawls, charsets, and input that must not crash a run."""

from __future__ import annotations

import gzip
import io
import random
import subprocess
import sys
import time
from collections import Counter

import pytest

from filters.charset import decode_html
from filters.extract import HTML_TYPES, HtmlExtractor, nesting_exceeds
from filters.http import parse_http_response
from filters.warc import WarcRecord, iter_records
from tests.helpers import FIXTURES, ROOT, SAMPLE_WARCS, WARC_DIR, response, write_warc
from tests.hostile import nesting_bombs, within


def extract_all(data: bytes, extractor: HtmlExtractor | None = None, **params) -> list[tuple[dict, str | None]]:
    extractor = extractor or HtmlExtractor(**params)
    out = []
    for record in iter_records(io.BytesIO(data)):
        assert isinstance(record, WarcRecord)
        result = extractor.extract(record, "test.warc.gz")
        if result is not None:
            out.append(result)
    return out


def test_moby_extracts_exactly_to_the_reference_text():
    html = (FIXTURES / "cs336/moby.html").read_bytes()
    expected = (FIXTURES / "cs336/moby_extracted.txt").read_text()
    [(doc, reason)] = extract_all(
        write_warc(None, [response("http://moby.example/", html, "text/html")]), main_content=False
    )
    assert reason is None
    assert doc["text"] == expected


def test_main_content_drops_the_tag_list_of_moby():
    html = (FIXTURES / "cs336/moby.html").read_bytes()
    [(doc, _)] = extract_all(write_warc(None, [response("http://moby.example/", html, "text/html")]), main_content=True)
    assert "Novel" not in doc["text"] and "Perth, the begrimed" in doc["text"]


def test_iana_capture_skips_revisits_redirects_and_non_html_with_reasons():
    results = extract_all((WARC_DIR / "pywb/iana.warc.gz").read_bytes())
    reasons = Counter(reason for _, reason in results)
    # 48 responses (20 text/html of which 4 are 302 redirects) and 123 revisits, per the file's provenance
    assert reasons == {None: 16, "revisit": 123, "not_html": 28, "redirect": 4}
    assert all(doc["text"] for doc, reason in results if reason is None)
    assert {doc["content_type"] for doc, reason in results if reason == "not_html"} >= {"text/css", "image/png"}


def test_clueweb_japanese_pages_decode_from_euc_jp():
    results = extract_all((WARC_DIR / "resiliparse/clueweb-quirk.warc.gz").read_bytes())
    assert len(results) == 29
    for doc, reason in results:
        assert reason is None
        assert (doc["charset"], doc["charset_source"]) == ("euc_jp", "http")
        assert "\ufffd" not in doc["text"]
        assert sum("\u3040" <= c <= "\u30ff" for c in doc["text"]) > 50  # kana


def test_wet_conversion_records_become_documents():
    [(doc, reason)] = extract_all((WARC_DIR / "commoncrawl-whirlwind/whirlwind.warc.wet.gz").read_bytes())
    assert reason is None
    assert doc["url"] == "https://an.wikipedia.org/wiki/Escopete"
    assert doc["text"].startswith("Escopete")


RUSSIAN = (
    "<html><head><title>Пример</title></head><body><p>Съешь же ещё этих мягких французских булок.</p></body></html>"
)


@pytest.mark.parametrize(
    "body, header, expected_source, expected_charset",
    [
        (RUSSIAN.encode("cp1251"), "text/html; charset=windows-1251", "http", "cp1251"),
        (
            RUSSIAN.replace("<head>", '<head><meta charset="windows-1251">').encode("cp1251"),
            "text/html",
            "meta",
            "cp1251",
        ),
        # a header that lies (utf-8 declared, cp1251 bytes): the meta tag wins
        (
            RUSSIAN.replace(
                "<head>", '<head><meta http-equiv="Content-Type" content="text/html; charset=windows-1251">'
            ).encode("cp1251"),
            "text/html; charset=utf-8",
            "meta",
            "cp1251",
        ),
        ((RUSSIAN * 20).encode("koi8-r"), "text/html", "detected", "koi8-r"),
        (b"\xef\xbb\xbf" + RUSSIAN.encode("utf-8"), "text/html; charset=iso-8859-1", "bom", "utf-8"),
        # valid UTF-8 under a legacy label: UTF-8
        (RUSSIAN.encode("utf-8"), "text/html; charset=iso-8859-1", "utf8", "utf-8"),
    ],
)
def test_charset_comes_from_bom_header_meta_then_detection(body, header, expected_source, expected_charset):
    from filters.http import content_type_charset

    text, charset, source = decode_html(body, content_type_charset(header))
    assert (source, charset) == (expected_source, expected_charset)
    assert "мягких французских" in text


def test_iso_8859_1_is_read_as_windows_1252_like_browsers():
    text, charset, _ = decode_html("<p>“smart quotes” – dash</p>".encode("cp1252"), "ISO-8859-1")
    assert charset == "cp1252" and "“smart quotes” – dash" in text


def test_bad_input_is_skipped_with_reasons_and_the_rest_still_extracted():
    rng = random.Random(7)
    png = b"\x89PNG\r\n\x1a\n" + bytes(rng.randrange(256) for _ in range(5000))
    noise = bytes(rng.randrange(256) for _ in range(5000))
    records = [
        response("http://ok1.example/", b"<html><body><p>first page</p></body></html>"),
        response("http://png.example/", png),  # binary declared as text/html
        response("http://noise.example/", b"<html><body>" + noise + b"</body></html>", "text/html; charset=utf-8"),
        response("http://huge.example/", b"<html><body>" + b"word " * (2 << 20) + b"</body></html>"),  # 10 MB
        response("http://gone.example/", b"<html>not here</html>", status="404 Not Found"),
        response(
            "http://moved.example/",
            b"",
            status="301 Moved Permanently",
            extra_headers=[("Location", "http://ok1.example/")],
        ),
        response(
            "http://gz.example/",
            gzip.compress(b"<html><body><p>compressed body</p></body></html>"),
            extra_headers=[("Content-Encoding", "gzip")],
        ),
        response(
            "http://chunked.example/",
            b"d\r\n<html>chunked\r\n7\r\n</html>\r\n0\r\n\r\n",
            extra_headers=[("Transfer-Encoding", "chunked")],
        ),
        response("http://notype.example/", b"<!DOCTYPE html><html><body><p>no content type</p></body></html>", None),
        response("http://ok2.example/", b"<html><body><p>last page</p></body></html>"),
    ]
    results = extract_all(write_warc(None, records))
    got = {doc["url"]: (reason, doc["text"]) for doc, reason in results}
    assert got["http://ok1.example/"] == (None, "first page")
    assert got["http://png.example/"][0] == "binary_payload"
    assert got["http://noise.example/"][0] in ("binary_payload", None)
    assert got["http://huge.example/"][0] == "payload_too_large"
    assert got["http://gone.example/"][0] == "http_error"
    assert got["http://moved.example/"][0] == "redirect"
    assert got["http://gz.example/"] == (None, "compressed body")
    assert got["http://chunked.example/"] == (None, "chunked")
    assert got["http://notype.example/"] == (None, "no content type")
    assert got["http://ok2.example/"] == (None, "last page")


def test_undecodable_bytes_in_declared_utf8_become_replacement_characters():
    body = b"<html><body><p>caf\xc3\xa9 " + b"\xff\xfe\xfd" * 3 + b" ok</p>" + "é".encode() * 2000 + b"</body></html>"
    [(doc, reason)] = extract_all(write_warc(None, [response("http://bad.example/", body)]))
    assert reason is None
    assert doc["text"].startswith("café \ufffd") and "ok" in doc["text"]
    assert (doc["charset"], doc["charset_source"]) == ("utf-8", "http")


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br"])
def test_a_decompression_bomb_is_cut_at_the_payload_limit(encoding):
    import zlib

    import brotli

    zeros = b"\0" * (256 << 20)
    compress = {"gzip": gzip.compress, "deflate": zlib.compress, "br": lambda b: brotli.compress(b, quality=5)}
    body = compress[encoding](zeros)
    assert len(body) < 1 << 19  # 256 MiB from under 512 KiB
    block = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Encoding: " + encoding.encode() + b"\r\n\r\n" + body
    response = parse_http_response(block, max_body_bytes=1 << 20)
    assert response.body_too_large and len(response.body) == (1 << 20) + 1
    [(doc, reason)] = extract_all(write_warc(None, [response_record(block)]))
    assert reason == "payload_too_large"


def response_record(block: bytes) -> dict:
    """A record whose HTTP block is given raw (warcio would rewrite our Content-Encoding)."""
    head, _, body = block.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = [tuple(line.split(": ", 1)) for line in lines[1:]]
    return {"url": "http://bomb.example/", "body": body, "status": lines[0].split(" ", 1)[1], "headers": headers}


def test_a_cut_off_chunked_body_keeps_its_text_without_chunk_sizes():
    from filters.http import parse_http_response

    block = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nc8\r\n<html><body><p>" + b"a" * 50
    response = parse_http_response(block)
    assert response.body == b"<html><body><p>" + b"a" * 50


def test_pathologically_deep_markup_is_skipped_and_flat_markup_is_not():
    deep = b"<html><body>" + b"<div>x" * 20_000 + b"</body></html>"
    paragraphs = b"<html><body>" + b"<p>word " * 20_000 + b"</body></html>"
    results = extract_all(
        write_warc(None, [response("http://deep.example/", deep), response("http://flat.example/", paragraphs)])
    )
    assert [reason for _, reason in results] == ["nesting_too_deep", None]
    shallow = extract_all(write_warc(None, [response("http://deep.example/", deep)]), main_content=False)
    assert shallow[0][1] is None  # full-text extraction is linear: no limit needed


def test_a_utf16_label_on_bytes_without_nuls_is_ignored():
    text, charset, source = decode_html(b"<html><body>plain ascii page</body></html>", "utf-16")
    assert "plain ascii page" in text and source == "detected"


@pytest.mark.parametrize("shape", list(nesting_bombs(16)))
def test_markup_nested_deep_behind_stray_end_tags_is_skipped(shape):
    """End tags that close nothing (or close only outside a table or object, which HTML ignores) used to
    count as closing a level: such a page passed the guard and took 20 s to extract (n = 16,000)."""
    page = nesting_bombs(16_000)[shape]
    [(doc, reason)] = within(120, extract_all, write_warc(None, [response("http://deep.example/", page)]))
    assert reason == "nesting_too_deep"


def real_pages() -> list[str]:
    pages = []
    for path in SAMPLE_WARCS:
        for record in iter_records(io.BytesIO(path.read_bytes())):
            response_ = parse_http_response(record.block) if record.type == "response" else None
            if response_ is not None and response_.status == 200 and response_.media_type in HTML_TYPES:
                pages.append(decode_html(response_.body, response_.charset)[0])
    return pages


def test_no_real_page_is_too_deep_for_the_guard():
    extractor = HtmlExtractor()
    pages = real_pages()
    assert len(pages) > 500
    assert not any(nesting_exceeds(h, extractor.max_nesting_depth, extractor.max_depth_sum) for h in pages)


SLOW_PAGE = b"<html><body>" + b"<div>x" * 8000  # about 1.5 s of main-content extraction, alone on a core


def test_an_extraction_over_its_time_limit_is_skipped_and_the_next_page_extracted():
    impatient = HtmlExtractor(timeout_s=0.2, max_nesting_depth=10**6, max_depth_sum=10**12)  # no guard
    [(doc, reason)] = within(
        60, extract_all, write_warc(None, [response("http://slow.example/", SLOW_PAGE)]), impatient
    )
    assert reason == "extract_timeout" and doc["url"] == "http://slow.example/"
    page = b"<html><body><p>a page after the one that timed out</p></body></html>"
    [(doc, reason)] = extract_all(write_warc(None, [response("http://ok.example/", page)]), HtmlExtractor())
    assert (reason, doc["text"]) == (None, "a page after the one that timed out")


def test_the_extraction_process_ends_with_a_parent_killed_in_the_middle_of_a_page():
    """The child's own alarm ends it (even inside resiliparse's native code) shortly after the limit, so it
    cannot spend the minutes this page takes once its parent is gone."""
    script = (
        "from filters import extract_worker\n"
        "print(extract_worker._child().proc.pid, flush=True)\n"
        "extract_worker.extract_text('<html><body>' + '<div>x' * 60000, timeout_s=3.0)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    time.sleep(1.0)  # the page is being extracted
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 60
    while process_alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not process_alive(child)


def process_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has ended
    except FileNotFoundError:
        return False
