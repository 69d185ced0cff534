"""Parse the HTTP response inside a WARC ``response`` record, tolerating what real crawls contain.

Header lines may end in CRLF or LF only (ClueWeb09 mixes them); a body may still carry a
``Transfer-Encoding: chunked`` framing or a ``Content-Encoding`` that the crawler did (Common Crawl) or did
not (ClueWeb09) undo: we decode only what the bytes show is really encoded.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

_HEADER_END = re.compile(rb"\r?\n\r?\n")
_STATUS_LINE = re.compile(rb"HTTP/\d(?:\.\d)?\s+(\d{3})")
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]+)[^\r\n]*\r?\n")
MAX_HEADER_BYTES = 1 << 16


@dataclass(slots=True)
class HttpResponse:
    """Status code, headers (lower-case names; repeated headers joined by ", ") and decoded body."""

    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def media_type(self) -> str | None:
        """The media type of Content-Type without parameters, lower case (``text/html``), or None."""
        value = self.headers.get("content-type")
        if not value:
            return None
        return value.split(";", 1)[0].strip().lower() or None

    @property
    def charset(self) -> str | None:
        """The ``charset`` parameter of Content-Type, or None."""
        return content_type_charset(self.headers.get("content-type", ""))


def content_type_charset(content_type: str) -> str | None:
    """The charset parameter of a Content-Type value, unquoted, or None."""
    for param in content_type.split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip("\"'").strip() or None
    return None


def parse_http_response(block: bytes) -> HttpResponse | None:
    """Parse a raw HTTP response; None when the block does not start with an HTTP status line."""
    m = _STATUS_LINE.match(block)
    if not m:
        return None
    end = _HEADER_END.search(block, 0, MAX_HEADER_BYTES)
    if end is None:
        head, body = block[:MAX_HEADER_BYTES], b""
    else:
        head, body = block[: end.start()], block[end.end() :]
    headers: dict[str, str] = {}
    for raw in head.split(b"\n")[1:]:
        name, sep, value = raw.decode("latin-1").partition(":")
        if not sep:
            continue
        name = name.strip().lower()
        value = value.strip()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = _dechunk(body)
    body = _decode_content(body, headers.get("content-encoding", "").lower())
    return HttpResponse(int(m.group(1)), headers, body)


def _dechunk(body: bytes) -> bytes:
    """Undo chunked transfer coding; the body unchanged when it is not validly chunked."""
    out = []
    pos = 0
    while True:
        m = _CHUNK_SIZE.match(body, pos)
        if not m:
            return body
        size = int(m.group(1), 16)
        pos = m.end()
        if size == 0:
            return b"".join(out)
        if pos + size > len(body):
            return body
        out.append(body[pos : pos + size])
        pos += size
        if body[pos : pos + 2] == b"\r\n":
            pos += 2
        elif body[pos : pos + 1] == b"\n":
            pos += 1


def _decode_content(body: bytes, encoding: str) -> bytes:
    """Decompress gzip / deflate / br bodies when the bytes are really compressed."""
    try:
        if "gzip" in encoding and body[:2] == b"\x1f\x8b":
            return zlib.decompressobj(31).decompress(body)
        if "deflate" in encoding and body[:1] in (b"\x78", b"\x58", b"\x68", b"\x08"):
            return zlib.decompressobj().decompress(body)
        if encoding.strip() == "br":
            import brotli

            return brotli.decompress(body)
    except Exception:
        return body
    return body
