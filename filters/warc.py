"""Read WARC files record by record: robust to damage, and by byte range.

A ``.warc.gz`` is a chain of gzip members, usually one record each. We walk that chain with zlib and
parse records with a small streaming parser (:mod:`filters.warc_records`), so that

* a shard of a large file (a byte range ``[start, end)``) reads exactly the records whose gzip member
  starts inside the range: the shards of one file cover every record once. A shard finds the member chain
  up to 1 MiB before its start and walks it from there with the same code as the shard before it, so both
  agree on where members start, even where a record carries gzip data of its own;
* a corrupt or truncated gzip member costs that member only: it is reported and reading resumes at the
  next member that decompresses to ``WARC/`` (or the next ``WARC/`` line);
* uncompressed records mixed into a gzip file (a ``.warc`` appended to a ``.warc.gz``, or the reverse) are
  read: a run of them is read whole by the shard in which it starts. A file that starts uncompressed is
  read whole by the shard that starts at 0;
* decompression is bounded, per gzip member (so every shard cuts a member at the same byte): beyond 100
  times its compressed size it may yield only 64 KiB more than the record blocks it holds (at most
  ``max_record_bytes`` of them), and what is not record block (headers, line breaks, garbage: what costs
  parsing) may not pass 64 KiB plus 10 times its compressed size. A member cut there is reported as
  ``decompression_limit`` and reading resumes at the next member: a decompression bomb costs time in
  proportion to these bounds, not to its size;
* HTTP-era quirks (LF-only line ends, WARC/0.18, header continuation lines) parse.

Why not fastwarc or warcio here: fastwarc 2.0 panics on non-seekable streams and, like warcio, abandons
a file at its first corrupt gzip member; neither reads a byte range. Both are this reader's reference in
the tests (same records, same bytes, on every sample file) and the benchmark compares against them.

Nothing raises for bad input: unreadable bytes come out as :class:`ReadIssue` with a reason and offset.
"""

from __future__ import annotations

import re
import zlib
from typing import BinaryIO, Iterator

from filters.warc_records import (
    GZIP_MAGIC,
    MEMBER_LOOKAHEAD,
    ReadIssue,
    RecordParser,
    WarcRecord,
    member_starts_warc,
)

__all__ = ["ReadIssue", "WarcRecord", "iter_records"]

DAMAGED_START_WINDOW = 1 << 20  # how far into a file that starts with neither gzip nor WARC/ to look for a member
CHUNK = 1 << 16
SYNC_BEFORE = 1 << 20  # a shard finds the member chain this many bytes before its start
MEMBER_RATIO = 100  # a gzip member may always decompress to this many times its compressed size
MEMBER_SLACK = 1 << 16  # beyond that ratio: this many bytes besides its record blocks
UNBLOCKED_RATIO = 10  # bytes outside record blocks: at most MEMBER_SLACK plus this many times the input
_UNIT = re.compile(rb"\x1f\x8b\x08|\nWARC/\d|WARC/\d+\.\d+\r?\n")  # a gzip member, or an uncompressed record
_PLAIN_START = re.compile(rb"[\r\n]*WARC/\d")


class _CorruptMember(Exception):
    pass


class _TooMuchOutput(Exception):
    pass


class _Source:
    """A file read forward in chunks, knowing the absolute offset of its next byte, with push-back."""

    def __init__(self, f: BinaryIO, pos: int):
        self._f = f
        f.seek(0, 2)
        self.size = f.tell()
        self.seek(pos)

    def read(self) -> bytes:
        if self._pending:
            data, self._pending = self._pending, b""
        else:
            data = self._f.read(CHUNK)
        self.pos += len(data)
        return data

    def peek(self, n: int) -> bytes:
        """Up to ``n`` bytes from the current position, left unread."""
        data = b""
        while len(data) < n and (more := self.read()):
            data += more
        self.unread(data)
        return data[:n]

    def unread(self, data: bytes) -> None:
        if data:
            self._pending = data + self._pending
            self.pos -= len(data)

    def seek(self, pos: int) -> None:
        self._f.seek(pos)
        self._pending = b""
        self.pos = pos

    def skip(self, n: int) -> int:
        """Move ``n`` bytes forward (fewer at the end of the file); returns how many."""
        target = min(self.pos + n, self.size)
        moved = max(0, target - self.pos)
        self.seek(self.pos + moved)
        return moved


class _Member:
    """The decompressed bytes of one gzip member, read lazily from a :class:`_Source` (the stream interface
    of :class:`filters.warc_records.RecordParser`), with decompression bounded as the module says."""

    def __init__(self, src: _Source, max_record_bytes: int):
        self.offset = src.pos
        self._src = src
        self._d = zlib.decompressobj(31)
        self._tail = b""
        self._max_blocks = max_record_bytes
        self._blocks = 0  # output announced as record blocks
        self.bytes_in = self.bytes_out = 0
        self.truncated = False
        self.stopped: _TooMuchOutput | None = None  # the limit was reached: the rest is given up

    def expect_block(self, n: int) -> None:
        self._blocks += n

    def read(self, size: int = CHUNK) -> bytes:
        if self.stopped:
            raise self.stopped
        while not self._d.eof:
            data = self._tail or self._src.read()
            if not data:
                self.truncated = True
                return b""
            try:
                out = self._d.decompress(data, size)
            except zlib.error as exc:
                raise _CorruptMember(str(exc)) from None
            if self._d.eof:  # the bytes after the member are the next member's (zlib lists them twice)
                self._tail = b""
                self._src.unread(self._d.unused_data)
                self.bytes_in += len(data) - len(self._d.unused_data)
            else:
                self._tail = self._d.unconsumed_tail
                self.bytes_in += len(data) - len(self._tail)
            self.bytes_out += len(out)
            if self._over_limit():
                self.stopped = _TooMuchOutput(f"stopped after {self.bytes_out} bytes from {self.bytes_in} compressed")
                raise self.stopped
            if out:
                return out
        return b""

    def _over_limit(self) -> bool:
        out, allowed = self.bytes_out, MEMBER_SLACK + min(self._blocks, self._max_blocks)
        if out > MEMBER_RATIO * self.bytes_in and out > allowed:
            return True
        return out - self._blocks > MEMBER_SLACK + UNBLOCKED_RATIO * self.bytes_in

    def skip(self, n: int) -> int:
        done = 0
        try:
            while done < n and (out := self.read(min(n - done, 1 << 20))):
                done += len(out)
        except _TooMuchOutput:
            pass  # raised again by the next read
        return done

    def seek(self, pos: int) -> None:
        """Back to output position ``pos`` (decompressing again from the start of the member)."""
        self._src.seek(self.offset)
        self._d = zlib.decompressobj(31)
        self._tail = b""
        self.truncated = False
        self.skip(pos)


class _PlainStream:
    """A file's uncompressed bytes from a position on (the stream interface of the record parser)."""

    stopped = None

    def __init__(self, src: _Source):
        self._src = src

    def read(self) -> bytes:
        return self._src.read()

    def skip(self, n: int) -> int:
        return self._src.skip(n)

    def seek(self, pos: int) -> None:
        self._src.seek(pos)

    def expect_block(self, n: int) -> None:
        pass


def iter_records(
    f: BinaryIO, start: int = 0, end: int | None = None, *, max_record_bytes: int = 1 << 26
) -> Iterator[WarcRecord | ReadIssue]:
    """Yield the records (and read issues) of a WARC file whose offset lies in ``[start, end)``.

    ``f`` is a seekable binary file. Compression is detected from the bytes, member by member. A file that
    starts uncompressed is read whole by the shard that starts at 0. Records longer than
    ``max_record_bytes`` are yielded with ``oversized=True`` and an empty block.
    """
    src = _Source(f, 0)
    head = src.peek(1 << 14)
    if _PLAIN_START.match(head):  # an uncompressed file: the shard that starts at 0 reads it all
        if start == 0:
            yield from _walk(src, 0, 0, None, max_record_bytes)
        return
    first, problem = _first_unit(src, head, end)
    if problem is not None and start == 0:
        yield problem
    if first is None:
        return
    sync = max(0, start - SYNC_BEFORE)
    pos = first if first >= sync else _find_unit(src, sync, end, plain_lines=False)
    yield from _walk(src, pos, start, end, max_record_bytes)


def _first_unit(src: _Source, head: bytes, end: int | None) -> tuple[int | None, ReadIssue | None]:
    """Where the first readable part of a file that does not start uncompressed begins (None: nowhere before
    ``end``), and the issue of a damaged start."""
    if not head:
        return None, ReadIssue(0, "empty_file", "the file is empty")
    if head.startswith(GZIP_MAGIC) and member_starts_warc(head):
        return 0, None
    if head.startswith(GZIP_MAGIC[:2]):
        found = _find_unit(src, 1, end)
        return found, ReadIssue(0, "not_warc", "the first gzip member does not decompress to a WARC record")
    window = DAMAGED_START_WINDOW if end is None else min(end, DAMAGED_START_WINDOW)
    found = _find_unit(src, 0, window, plain_lines=False)
    return found, ReadIssue(0, "not_warc", f"the file starts with {head[:4]!r}, neither gzip nor WARC/")


def _walk(src: _Source, pos, start, end, max_record_bytes) -> Iterator[WarcRecord | ReadIssue]:
    """Read the file from ``pos`` on, gzip member by member and run by run of uncompressed records. Those
    that start in ``[start, end)`` yield their records and issues; earlier ones are walked past."""
    while pos is not None and (end is None or pos < end):
        src.seek(pos)
        if src.peek(3).startswith(GZIP_MAGIC):
            pos = yield from _read_member(src, pos >= start, end, max_record_bytes)
        else:
            pos = yield from _read_plain(src, pos >= start, max_record_bytes)


def _read_member(src: _Source, mine: bool, end, max_record_bytes) -> Iterator[WarcRecord | ReadIssue]:
    """The records of the gzip member at ``src.pos`` (yielded when ``mine``); returns where to go on."""
    member = _Member(src, max_record_bytes)
    try:
        for item in RecordParser(member, 0, max_record_bytes).records(member.offset):
            if isinstance(item, WarcRecord) and item.truncated and not member.truncated and mine:
                detail = f"Content-Length {item.content_length}; the gzip member ends after {len(item.block)}"
                yield ReadIssue(member.offset, "content_length_mismatch", detail)
            if isinstance(item, WarcRecord):
                item.truncated = item.truncated or member.truncated
            if mine:
                yield item
        while member.read():
            pass
    except (_CorruptMember, _TooMuchOutput) as exc:
        if mine:
            reason = "corrupt_gzip_member" if isinstance(exc, _CorruptMember) else "decompression_limit"
            yield ReadIssue(member.offset, reason, exc.args[0])
        return _find_unit(src, member.offset + 1, end)
    if member.truncated:  # the end of the file, or damage that made the member run on over the next ones
        if mine:
            yield ReadIssue(member.offset, "truncated_gzip_member", "the file ends inside this gzip member")
        return _find_unit(src, member.offset + 1, end)
    nxt = src.peek(MEMBER_LOOKAHEAD)
    pos = src.pos
    if not nxt or nxt.startswith(GZIP_MAGIC):
        return pos if nxt else None
    plain = _PLAIN_START.match(nxt)
    if plain:  # uncompressed records follow
        return pos + plain.end() - len(b"WARC/0")
    found = _find_unit(src, pos, end)
    if mine:
        skipped = "to the end of the range" if found is None else f"{found - pos} bytes"
        yield ReadIssue(pos, "garbage_between_members", f"skipped {skipped}")
    return found


def _read_plain(src: _Source, mine: bool, max_record_bytes) -> Iterator[WarcRecord | ReadIssue]:
    """The run of uncompressed records at ``src.pos`` (yielded when ``mine``), up to a gzip member of WARC
    records or the end of the file; returns where that member starts (None: the end)."""
    parser = RecordParser(_PlainStream(src), src.pos, max_record_bytes, plain=True)
    for item in parser.records(None):
        if mine and isinstance(item, WarcRecord) and item.truncated:
            yield ReadIssue(item.offset, "truncated_record", "the file ends inside this record")
        if mine:
            yield item
    return parser.member_at


def _find_unit(src: _Source, pos: int, end: int | None, plain_lines: bool = True) -> int | None:
    """Offset of the first gzip member that decompresses to ``WARC/`` (with ``plain_lines``, or line
    ``WARC/<digit>``) at or after ``pos`` and before ``end``."""
    base = max(0, pos - 1)  # a line start is found by the line break before it
    src.seek(base)
    window = b""
    while True:
        data = src.read()
        window += data
        eof = not data
        cut = max(0, len(window) - 16)
        for m in _UNIT.finditer(window):
            at = base + m.start() + (window[m.start()] == 0x0A)
            if at < pos or (not plain_lines and m.group() != GZIP_MAGIC):
                continue
            if end is not None and at >= end:
                return None
            if m.group() != GZIP_MAGIC:
                return at
            if not eof and len(window) - m.start() < MEMBER_LOOKAHEAD:
                cut = min(cut, m.start())  # wait for more bytes before judging this candidate
                break
            if member_starts_warc(window[m.start() : m.start() + (1 << 14)]):
                return at
        if eof:
            return None
        if end is not None and base + cut >= end:
            return None
        base, window = base + cut, window[cut:]
