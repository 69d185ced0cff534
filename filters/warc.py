"""Read WARC files record by record: robust to damage, and by byte range.

A ``.warc.gz`` is a chain of gzip members, usually one record each. We walk that chain with zlib and
parse records with a small streaming parser, so that

* a shard of a large file (a byte range ``[start, end)``) reads exactly the records whose gzip member
  starts inside the range: the shards of one file cover every record once. A shard finds the member chain
  up to 1 MiB before its start and walks it from there with the same code as the shard before it, so both
  agree on where members start, even where a record carries gzip data of its own;
* a corrupt or truncated gzip member costs that member only: it is reported and reading resumes at the
  next member that decompresses to ``WARC/``; in an uncompressed file, at the next ``WARC/`` line;
* HTTP-era quirks (LF-only line ends, WARC/0.18, header continuation lines) parse.

Why not fastwarc or warcio here: fastwarc 2.0 panics on non-seekable streams and, like warcio, abandons
a file at its first corrupt gzip member; neither reads a byte range. Both are this reader's reference in
the tests (same records, same bytes, on every sample file) and the benchmark compares against them.

Nothing raises for bad input: unreadable bytes come out as :class:`ReadIssue` with a reason and offset.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from typing import BinaryIO, Iterator

GZIP_MAGIC = b"\x1f\x8b\x08"
DAMAGED_START_WINDOW = 1 << 20  # how far into a file that starts with neither gzip nor WARC/ to look for a member
CHUNK = 1 << 16
MAX_HEADER_BYTES = 1 << 16
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_WARC_LINE = re.compile(rb"\nWARC/\d")
_WARC_START = re.compile(rb"WARC/\d")
SYNC_BEFORE = 1 << 20  # a shard finds the member chain this many bytes before its start


@dataclass(slots=True)
class WarcRecord:
    """One WARC record.

    ``offset`` is where the record can be found again: the gzip member holding it (compressed files) or the
    record itself (uncompressed). ``headers`` has lower-case names. ``block`` is the record body (the HTTP
    message of a response); it is empty when ``oversized`` (longer than the reader's limit, skipped unread).
    ``truncated`` means the file ended before ``content_length`` bytes of block.
    """

    offset: int
    type: str
    headers: dict[str, str]
    block: bytes
    content_length: int
    truncated: bool = False
    oversized: bool = False


@dataclass(slots=True)
class ReadIssue:
    """Bytes of a file that could not be read as WARC records; ``reason`` is a stable name for stats."""

    offset: int
    reason: str
    detail: str = ""


class _CorruptMember(Exception):
    pass


class _Malformed(Exception):
    """A record that cannot be parsed; ``consumed`` tells whether its header bytes were read past."""

    def __init__(self, message: str, position: int, consumed: bool):
        super().__init__(message)
        self.position = position
        self.consumed = consumed


class _Source:
    """A file read forward in chunks, knowing the absolute offset of its next byte, with push-back."""

    def __init__(self, f: BinaryIO, pos: int):
        self._f = f
        self.seek(pos)

    def read(self) -> bytes:
        if self._pending:
            data, self._pending = self._pending, b""
        else:
            data = self._f.read(CHUNK)
        self.pos += len(data)
        return data

    def unread(self, data: bytes) -> None:
        if data:
            self._pending = data + self._pending
            self.pos -= len(data)

    def seek(self, pos: int) -> None:
        self._f.seek(pos)
        self._pending = b""
        self.pos = pos


class _Member:
    """The decompressed bytes of one gzip member, read lazily from a :class:`_Source`."""

    def __init__(self, src: _Source):
        self.offset = src.pos
        self._src = src
        self._d = zlib.decompressobj(31)
        self._tail = b""
        self.truncated = False

    def read(self) -> bytes:
        while not self._d.eof:
            data = self._tail or self._src.read()
            if not data:
                self.truncated = True
                return b""
            try:
                out = self._d.decompress(data, CHUNK)
            except zlib.error as exc:
                raise _CorruptMember(str(exc)) from None
            self._tail = self._d.unconsumed_tail
            if self._d.eof:
                self._src.unread(self._d.unused_data)
            if out:
                return out
        return b""


class _PlainStream:
    """An uncompressed file as a stream of chunks (the same interface as :class:`_Member`)."""

    truncated = False

    def __init__(self, f: BinaryIO):
        self._f = f

    def read(self) -> bytes:
        return self._f.read(CHUNK)


class _RecordParser:
    """Parses consecutive WARC records from a chunk stream, tracking the offset of each record."""

    def __init__(self, stream, base: int, max_record_bytes: int):
        self._stream = stream
        self._buf = b""
        self._pos = base  # absolute offset of self._buf[0] (meaningful for uncompressed files)
        self._eof = False
        self._max = max_record_bytes

    def _fill(self) -> bool:
        data = self._stream.read()
        if not data:
            self._eof = True
            return False
        self._buf += data
        return True

    def _take(self, n: int) -> bytes:
        out, self._buf = self._buf[:n], self._buf[n:]
        self._pos += len(out)
        return out

    def _skip_blank(self) -> None:
        while True:
            stripped = self._buf.lstrip(b"\r\n")
            self._pos += len(self._buf) - len(stripped)
            self._buf = stripped
            if self._buf or not self._fill():
                return

    def next_record(self, offset: int | None) -> WarcRecord | None:
        """The next record (``offset`` overrides its position), None at the end; raises _Malformed."""
        self._skip_blank()
        while len(self._buf) < 6 and self._fill():
            pass
        if not self._buf:
            return None
        start = self._pos
        if not self._buf.startswith(b"WARC/"):
            raise _Malformed(f"expected a WARC/ version line, got {self._buf[:40]!r}", start, consumed=False)
        while True:
            m = _HEADER_END.search(self._buf)
            if m:
                break
            if len(self._buf) > MAX_HEADER_BYTES:
                raise _Malformed("no end of WARC headers within 64 KiB", start, consumed=False)
            if not self._fill():
                raise _Malformed("the stream ends inside the WARC headers", start, consumed=False)
        head = self._take(m.end())
        lines = head[: m.start()].decode("utf-8", "replace").replace("\r", "").split("\n")
        headers = _parse_header_lines(lines[1:])
        try:
            length = int(headers.get("content-length", ""))
        except ValueError:
            raise _Malformed(f"bad Content-Length {headers.get('content-length')!r}", start, consumed=True) from None
        if length < 0:
            raise _Malformed(f"negative Content-Length {length}", start, consumed=True)
        rtype = headers.get("warc-type", "unknown").strip().lower()
        pos = start if offset is None else offset
        if length > self._max:
            self._discard(length)
            return WarcRecord(pos, rtype, headers, b"", length, truncated=self._eof, oversized=True)
        block = self._read_block(length)
        return WarcRecord(pos, rtype, headers, block, length, truncated=len(block) < length)

    def _read_block(self, length: int) -> bytes:
        parts, have = [self._buf], len(self._buf)
        while have < length:  # collect chunks, then join once: linear in the block size
            data = self._stream.read()
            if not data:
                self._eof = True
                break
            parts.append(data)
            have += len(data)
        self._buf = b"".join(parts)
        return self._take(length)

    def _discard(self, n: int) -> None:
        while n > 0:
            if not self._buf and not self._fill():
                return
            n -= len(self._take(n))

    def resync(self, here: bool) -> int | None:
        """Skip to the next record start (a line ``WARC/<digit>``); return its offset, or None at the end.
        ``here``: the bytes of the failed record were read past, so a record may start right at the buffer."""
        while len(self._buf) < 6 and self._fill():
            pass
        if here and _WARC_START.match(self._buf):
            return self._pos
        while True:
            m = _WARC_LINE.search(self._buf)
            if m:
                self._take(m.start() + 1)
                return self._pos
            keep = self._buf[-8:]
            self._take(len(self._buf) - len(keep))
            if not self._fill():
                return None


def _records(parser: _RecordParser, offset: int | None) -> Iterator[WarcRecord | ReadIssue]:
    """Records of one stream; after a malformed record, reading resumes at the next record start."""
    while True:
        try:
            record = parser.next_record(offset)
        except _Malformed as exc:
            yield ReadIssue(exc.position if offset is None else offset, "malformed_record", str(exc))
            if parser.resync(exc.consumed) is None:
                return
            continue
        if record is None:
            return
        yield record


def _parse_header_lines(lines: list[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    last = None
    for line in lines:
        if line[:1] in (" ", "\t") and last:
            headers[last] += " " + line.strip()
            continue
        name, sep, value = line.partition(":")
        if sep:
            last = name.strip().lower()
            headers[last] = value.strip()
    return headers


def iter_records(
    f: BinaryIO, start: int = 0, end: int | None = None, *, max_record_bytes: int = 1 << 26
) -> Iterator[WarcRecord | ReadIssue]:
    """Yield the records (and read issues) of a WARC file whose offset lies in ``[start, end)``.

    ``f`` is a seekable binary file. Compression is detected from the first bytes. Uncompressed files are
    read whole by the shard that starts at 0. Records longer than ``max_record_bytes`` are yielded with
    ``oversized=True`` and an empty block.
    """
    f.seek(0)
    head = f.read(4)
    if not head:
        if start == 0:
            yield ReadIssue(0, "empty_file", "the file is empty")
        return
    if head.startswith(GZIP_MAGIC[:2]) or _find_member(_Source(f, 0), 0, DAMAGED_START_WINDOW) is not None:
        # a gzip file, or one whose first bytes are damaged but whose next members read: the first member is
        # reported and the chain resumes at the next one (every shard decides the same way)
        yield from _iter_gzip(f, start, end, max_record_bytes)
    elif start > 0:
        return
    elif head.startswith(b"WARC"):
        yield from _iter_plain(f, max_record_bytes)
    else:
        yield ReadIssue(0, "not_warc", f"the file starts with {head!r}, neither gzip nor WARC/")


def _iter_gzip(f, start, end, max_record_bytes):
    src = _Source(f, 0)
    first = 0 if _find_member(src, 0, 1) == 0 else None
    if start == 0 and first is None:
        yield ReadIssue(0, "not_warc", "the first gzip member does not decompress to a WARC record")
    sync = max(0, start - SYNC_BEFORE)
    if sync == 0:  # walk the chain from the start of the file, as the first shard does
        pos = first if first is not None else _find_member(src, 1, end)
    else:
        pos = _find_member(src, sync, end)
    while pos is not None and (end is None or pos < end):
        mine = pos >= start  # members before the range are walked (to find the chain), not read
        src.seek(pos)
        member = _Member(src)
        try:
            if mine:
                for item in _records(_RecordParser(member, 0, max_record_bytes), member.offset):
                    if isinstance(item, WarcRecord):
                        item.truncated = item.truncated or member.truncated
                    yield item
            while member.read():
                pass
        except _CorruptMember as exc:
            if mine:
                yield ReadIssue(member.offset, "corrupt_gzip_member", exc.args[0])
            pos = _find_member(src, member.offset + 1, end)
            continue
        if member.truncated:
            if mine:
                yield ReadIssue(member.offset, "truncated_gzip_member", "the file ends inside this gzip member")
            return
        nxt = src.read()
        while 0 < len(nxt) < len(GZIP_MAGIC) and (more := src.read()):
            nxt += more
        if not nxt:
            return
        src.unread(nxt)
        pos = src.pos
        if not nxt.startswith(GZIP_MAGIC):
            found = _find_member(src, pos, end)
            if pos >= start:
                skipped = "to the end of the range" if found is None else f"{found - pos} bytes"
                yield ReadIssue(pos, "garbage_between_members", f"skipped {skipped}")
            pos = found


def _find_member(src: _Source, pos: int, end: int | None) -> int | None:
    """Offset of the first gzip member at or after ``pos`` (and before ``end``) that decompresses to ``WARC/``."""
    src.seek(pos)
    base, window = pos, b""
    while True:
        data = src.read()
        window += data
        eof = not data
        i = window.find(GZIP_MAGIC)
        while i >= 0:
            if end is not None and base + i >= end:
                return None
            if not eof and len(window) - i < 1024:
                break  # wait for more bytes before judging this candidate
            if _starts_warc(window[i:]):
                return base + i
            i = window.find(GZIP_MAGIC, i + 1)
        if eof:
            return None
        cut = i if i >= 0 else max(0, len(window) - 2)
        if end is not None and base + cut >= end:
            return None
        base, window = base + cut, window[cut:]


def _starts_warc(data: bytes) -> bool:
    try:
        out = zlib.decompressobj(31).decompress(data[: 1 << 14], 64)
    except zlib.error:
        return False
    return out.lstrip(b"\r\n").startswith(b"WARC/")


def _iter_plain(f: BinaryIO, max_record_bytes: int) -> Iterator[WarcRecord | ReadIssue]:
    f.seek(0)
    yield from _records(_RecordParser(_PlainStream(f), 0, max_record_bytes), None)
