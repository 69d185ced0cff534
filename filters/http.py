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
    """Status code, headers (lower-case names; repeated headers joined by ", ") and decoded body.
    ``body_too_large``: decoding would exceed the caller's limit; ``body`` is then cut there."""

    status: int
    headers: dict[str, str]
    body: bytes
    body_too_large: bool = False

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


def parse_http_response(block: bytes, max_body_bytes: int = 1 << 26) -> HttpResponse | None:
    """Parse a raw HTTP response; None when the block does not start with an HTTP status line. Compressed
    bodies are decoded up to ``max_body_bytes`` (a small compressed body can expand to gigabytes)."""
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
    body, too_large = _decode_content(body, headers.get("content-encoding", "").lower(), max_body_bytes)
    return HttpResponse(int(m.group(1)), headers, body, too_large)


def _dechunk(body: bytes) -> bytes:
    """Undo chunked transfer coding: the chunks (a cut-off last one included); the body unchanged when it
    does not start as a chunked body."""
    out = []
    pos = 0
    while True:
        m = _CHUNK_SIZE.match(body, pos)
        if not m:
            return b"".join(out) if out else body
        size = int(m.group(1), 16)
        pos = m.end()
        if size == 0:
            return b"".join(out)
        out.append(body[pos : pos + size])
        if pos + size >= len(body):
            return b"".join(out)
        pos += size
        if body[pos : pos + 2] == b"\r\n":
            pos += 2
        elif body[pos : pos + 1] == b"\n":
            pos += 1


def _decode_content(body: bytes, encoding: str, limit: int) -> tuple[bytes, bool]:
    """Decompress gzip / deflate / br bodies when the bytes really are compressed, producing at most
    ``limit + 1`` bytes; returns the body and whether it exceeds ``limit``."""
    try:
        if "gzip" in encoding and body[:2] == b"\x1f\x8b":
            out = zlib.decompressobj(31).decompress(body, limit + 1)
        elif "deflate" in encoding and body[:1] in (b"\x78", b"\x58", b"\x68", b"\x08"):
            out = zlib.decompressobj().decompress(body, limit + 1)
        elif encoding.strip() == "br":
            import brotli

            out = brotli.Decompressor().process(body, output_buffer_limit=limit + 1)
        else:
            out = body
    except Exception:  # not really compressed, or damaged: keep the bytes as they are
        out = body
    return out[: limit + 1], len(out) > limit
