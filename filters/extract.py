"""WARC records to documents: HTML responses through resiliparse, WET conversion records as they are.

Every response that does not become a document gets a reason (``revisit``, ``redirect``, ``http_error``,
``not_html``, ``binary_payload``, ``payload_too_large``, ``nesting_too_deep``, ``unparseable_http``,
``html_error``, ``extract_timeout``, ``empty_text``); records that are not documents at all (requests,
metadata, warcinfo) get none.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from resiliparse.extract.html2text import extract_plain_text

from filters.charset import decode_html
from filters.extract_worker import ExtractionTimeout, extract_text
from filters.http import parse_http_response
from filters.warc import WarcRecord
from tokenizer.errors import require

HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_SNIFF_MARKERS = (b"<!doctype html", b"<html", b"<head", b"<body", b"<title", b"<meta")
_BINARY_MAGIC = (
    b"\x89PNG",
    b"\xff\xd8\xff",
    b"GIF8",
    b"%PDF",
    b"PK\x03\x04",
    b"\x1f\x8b",
    b"RIFF",
    b"\x00\x00\x01\x00",
    b"OggS",
    b"ID3",
    b"\x7fELF",
    b"wOFF",
    b"wOF2",
)
_CONTROL_BYTES = bytes(c for c in range(32) if c not in (9, 10, 12, 13, 27))


@dataclass(kw_only=True)
class HtmlExtractor:
    """Turns ``response`` records into documents with resiliparse; ``conversion`` (WET) records pass through.

    ``main_content`` keeps only the main content (drops navigation, footers); ``max_payload_bytes`` skips
    larger payloads with the reason ``payload_too_large``. Main-content extraction takes time in proportion
    to the depths of the page's elements added up, so pages nested deeper than ``max_nesting_depth``, or whose
    tag depths add up to more than ``max_depth_sum``, are skipped as ``nesting_too_deep`` (the real pages of
    ``data/warc`` stay below 40 and 400,000). ``timeout_s`` bounds the extraction of one page whatever its
    markup (:mod:`filters.extract_worker`; skipped as ``extract_timeout``); 0 extracts in this process,
    without a limit.
    """

    main_content: bool = True
    alt_texts: bool = True
    list_bullets: bool = True
    max_payload_bytes: int = 4 << 20
    max_nesting_depth: int = 2000
    max_depth_sum: int = 10_000_000
    timeout_s: float = 5.0

    def __post_init__(self):
        require(self.max_payload_bytes > 0, "max_payload_bytes", "must be > 0")
        require(self.max_nesting_depth > 0, "max_nesting_depth", "must be > 0")
        require(self.max_depth_sum > 0, "max_depth_sum", "must be > 0")
        require(self.timeout_s >= 0, "timeout_s", "must be >= 0 (0: no limit)")

    def extract(self, record: WarcRecord, source: str) -> tuple[dict, str | None] | None:
        """(document, None) for a kept document, (stub, reason) for a skipped one, None for a non-document."""
        if record.type == "conversion":
            return self._from_wet(record, source)
        if record.type == "revisit":
            return _stub(record, source), "revisit"
        if record.type != "response":
            return None
        doc = _stub(record, source)
        if record.oversized or record.content_length > self.max_payload_bytes + (1 << 16):
            return doc, "payload_too_large"
        response = parse_http_response(record.block, self.max_payload_bytes)
        if response is None:
            return doc, "unparseable_http"
        doc["http_status"] = response.status
        media_type = response.media_type or _media_type(record.headers.get("warc-identified-payload-type"))
        doc["content_type"] = media_type or ""
        if 300 <= response.status < 400:
            return doc, "redirect"
        if response.status != 200:
            return doc, "http_error"
        body = response.body
        if response.body_too_large or len(body) > self.max_payload_bytes:
            return doc, "payload_too_large"
        if media_type not in HTML_TYPES and not (
            media_type in (None, "application/octet-stream") and _looks_html(body)
        ):
            return doc, "not_html"
        if _looks_binary(body):
            return doc, "binary_payload"
        html, doc["charset"], doc["charset_source"] = decode_html(body, response.charset)
        if self.main_content and nesting_exceeds(html, self.max_nesting_depth, self.max_depth_sum):
            return doc, "nesting_too_deep"
        try:
            text = self._text(html)
        except ExtractionTimeout:
            doc["detail"] = f"extraction took longer than {self.timeout_s} s"
            return doc, "extract_timeout"
        except Exception as exc:  # resiliparse raises on pathological markup; the run goes on
            doc["detail"] = f"{type(exc).__name__}: {exc}"
            return doc, "html_error"
        doc["text"] = text.strip()
        return doc, (None if doc["text"] else "empty_text")

    def _text(self, html: str) -> str:
        options = {"main_content": self.main_content, "alt_texts": self.alt_texts, "list_bullets": self.list_bullets}
        if self.timeout_s:
            return extract_text(html, timeout_s=self.timeout_s, **options)
        return extract_plain_text(html, **options)

    def _from_wet(self, record: WarcRecord, source: str) -> tuple[dict, str | None]:
        doc = _stub(record, source)
        doc["content_type"] = "text/plain"
        if record.oversized or len(record.block) > self.max_payload_bytes:
            return doc, "payload_too_large"
        doc["text"] = record.block.decode("utf-8", "replace").strip()
        doc["charset"], doc["charset_source"] = "utf-8", "wet"
        return doc, (None if doc["text"] else "empty_text")


# elements that never nest (void), that HTML closes implicitly, or that a parser never nests: no depth added
_FLAT_ELEMENTS = frozenset(
    "area base br col embed hr img input link meta param source track wbr keygen command "
    "p li dt dd tr td th option optgroup rb rt rtc rp thead tbody tfoot colgroup caption html head body".split()
)
# an end tag does not close an element opened outside one of these (HTML's "has an element in scope")
_SCOPE_ELEMENTS = frozenset("applet marquee object table template".split())
_TAG = re.compile(r"<(/?)([a-z][a-z0-9]*)")


def nesting_exceeds(html: str, limit: int, max_depth_sum: int) -> bool:
    """True when the element nesting of ``html`` goes deeper than ``limit``, or the depths at which its tags
    open add up to more than ``max_depth_sum``. Depth is estimated from the tags as an HTML parser builds the
    tree: an end tag closes the innermost open element of its name (and those opened inside it) only if one
    is open within the current scope; other end tags are ignored, as a parser ignores them."""
    opens = html.count("<") - html.count("</") - html.count("<!")
    if opens <= limit and opens * opens <= 2 * max_depth_sum:
        return False  # too few tags to nest deeper or to add up (n tags open at depths below n)
    stack: list[str] = []
    open_in_scope: dict[str, int] = {}  # element name -> how many are open inside the innermost scope element
    outer_scopes: list[dict[str, int]] = []
    depth_sum = 0
    for slash, name in _TAG.findall(html.lower()):
        if not slash:
            depth = len(stack)
            depth_sum += depth
            if name in _FLAT_ELEMENTS:
                continue
            if name in _SCOPE_ELEMENTS:
                outer_scopes.append(open_in_scope)
                open_in_scope = {}
            open_in_scope[name] = open_in_scope.get(name, 0) + 1
            stack.append(name)
            if depth >= limit or depth_sum > max_depth_sum:
                return True
        elif open_in_scope.get(name):  # else not open, or only outside the current scope: ignored
            while True:
                top = stack.pop()
                open_in_scope[top] -= 1
                if top in _SCOPE_ELEMENTS:
                    open_in_scope = outer_scopes.pop()
                if top == name:
                    break
    return depth_sum > max_depth_sum


def _stub(record: WarcRecord, source: str) -> dict:
    h = record.headers
    record_id = h.get("warc-record-id", "").strip().strip("<>")
    return {
        "id": record_id or f"{source}@{record.offset}",
        "url": h.get("warc-target-uri", "").strip().strip("<>"),
        "date": h.get("warc-date", ""),
        "text": "",
        "source": source,
        "offset": record.offset,
    }


def _media_type(value: str | None) -> str | None:
    return value.split(";", 1)[0].strip().lower() or None if value else None


def _looks_html(body: bytes) -> bool:
    head = body[:1024].lstrip().lower()
    return any(marker in head for marker in _SNIFF_MARKERS)


def _looks_binary(body: bytes) -> bool:
    """Binary data declared as text: a known file signature, NUL bytes, or many control bytes up front."""
    head = body[:4096]
    if head.startswith(_BINARY_MAGIC):
        return True
    if b"\x00" in head and not head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return True
    controls = len(head) - len(head.translate(None, _CONTROL_BYTES))
    return controls > 0.1 * max(len(head), 1)
