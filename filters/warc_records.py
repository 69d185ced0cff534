"""WARC records parsed from a stream of bytes: one gzip member's output, or a run of uncompressed records.

A record is a ``WARC/<version>`` line, header lines, a blank line, ``Content-Length`` bytes of block and a
blank line. What damaged and hostile files do to that, and what the parser does:

* **A Content-Length that lies.** After each block the parser checks that a record boundary follows (line
  breaks, then ``WARC/`` or the end of the data). When none does and a record starts inside the declared
  block, the length ran over the records after it: the block is cut there and the issue reported
  (``content_length_mismatch``), so the records it would have swallowed are still read. The same check
  catches an oversized record (skipped unread) whose length runs past the rest of the file. A length that
  is too short leaves bytes that are skipped to the next record (``malformed_record``).
* **Garbage.** Bytes that do not parse are skipped to the next line starting ``WARC/<digit>`` (in a run of
  uncompressed records, also to a gzip member of WARC records); one issue per run of bad bytes.
* **Time linear in the input.** A header search never rescans bytes known to hold no header end, and the
  buffer is consumed from its front without copying it, so a flood of ``WARC/`` lines costs time in
  proportion to its length, not its square.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from typing import Iterator

GZIP_MAGIC = b"\x1f\x8b\x08"
MAX_HEADER_BYTES = 1 << 16
MAX_BLANK_PEEK = 1 << 12  # line breaks looked past after a block, to see what follows
MEMBER_LOOKAHEAD = 1 << 10  # bytes after a gzip magic needed to judge whether a member of WARC records starts
_HEADER_END = re.compile(rb"\r?\n\r?\n")
# a record start: WARC/<digit> after a line break, or a whole version line after other bytes (a damaged line break)
_LINE_START = re.compile(rb"\nWARC/\d|WARC/\d+\.\d+\r?\n")
_WARC_START = re.compile(rb"WARC/\d")
_BLANK = re.compile(rb"[\r\n]*")
_TERMINATOR = re.compile(rb"(?:\r?\n){1,2}\Z")


@dataclass(slots=True)
class WarcRecord:
    """One WARC record.

    ``offset`` is where the record can be found again: the gzip member holding it (compressed files) or the
    record itself (uncompressed). ``headers`` has lower-case names. ``block`` is the record body (the HTTP
    message of a response); it is empty when ``oversized`` (longer than the reader's limit, skipped unread).
    ``truncated`` means the data ended before ``content_length`` bytes of block. When the declared length
    was found to lie (a record starts inside it), ``content_length`` is the length of the block read.
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


class Malformed(Exception):
    """A record that cannot be parsed; ``consumed`` tells whether its header bytes were read past;
    ``no_start_before``: no record can start before this stream position (its header could not end)."""

    def __init__(self, message: str, position: int, consumed: bool, no_start_before: int = 0):
        super().__init__(message)
        self.position = position
        self.consumed = consumed
        self.no_start_before = no_start_before


def member_starts_warc(data: bytes) -> bool:
    """Whether ``data`` starts with a gzip member whose output starts (after line breaks) with ``WARC/``."""
    try:
        out = zlib.decompressobj(31).decompress(data[: 1 << 14], 64)
    except zlib.error:
        return False
    return out.lstrip(b"\r\n").startswith(b"WARC/")


def record_line(data: bytes | bytearray, i: int) -> int | None:
    """Index of the first record start at or after ``i`` in ``data`` (see ``_LINE_START``), or None."""
    pos = max(i - 1, 0)
    while (m := _LINE_START.search(data, pos)) is not None:
        at = m.start() + (data[m.start()] == 0x0A)
        if at >= i:
            return at
        pos = m.start() + 1
    return None


class RecordParser:
    """The consecutive WARC records of ``stream``, whose first byte is at position ``base``.

    ``stream`` has ``read()`` (the next chunk, ``b""`` at the end), ``skip(n)`` (drop up to ``n`` bytes and
    say how many there were), ``seek(pos)``, ``expect_block(n)`` (``n`` bytes of record block follow: a
    gzip member allows that much more output) and ``stopped`` (true once a limit cut the stream short).
    ``plain``: the stream is a file's uncompressed bytes, in which a gzip member of WARC records ends the
    run; its position is then left in ``member_at``.
    """

    def __init__(self, stream, base: int, max_record_bytes: int, *, plain: bool = False):
        self._stream = stream
        self._buf = bytearray()
        self._pos = base  # stream position of self._buf[0]
        self._eof = False
        self._max = max_record_bytes
        self._plain = plain
        self._clean = (base, base)  # (a, b): no header end starts in [a, b) (from a failed header search)
        self._notes: list[ReadIssue] = []
        self.member_at: int | None = None

    def records(self, offset: int | None) -> Iterator[WarcRecord | ReadIssue]:
        """Records and read issues in stream order; ``offset`` (a gzip member's) replaces their positions."""
        bad, starts = None, 0
        while True:
            try:
                record = self._next_record()
            except Malformed as exc:
                if bad is None:
                    bad, starts, bad_from = ReadIssue(exc.position, "malformed_record", str(exc)), 0, exc.position
                starts += 1
                if self._resync(exc.consumed, exc.no_start_before):
                    continue
                record = None
            if bad is not None:
                if starts > 1:
                    bad.detail += f" (and {starts - 1} more bad record starts)"
                bad.detail += f"; skipped {self._pos - bad_from} bytes"
                self._notes.insert(0, bad)
                bad = None
            for note in self._notes:
                note.offset = note.offset if offset is None else offset
                yield note
            self._notes.clear()
            if record is None:
                return
            record.offset = record.offset if offset is None else offset
            yield record

    def _next_record(self) -> WarcRecord | None:
        """The next record; None at the end of the stream (or, in a plain run, at a gzip member)."""
        self._skip_blank()
        self._fill_to(6)
        start = self._pos
        if not self._buf:
            return None
        if self._plain and self._buf.startswith(GZIP_MAGIC) and self._member_here():
            self.member_at = start
            return None
        if not _WARC_START.match(self._buf):
            raise Malformed(f"expected a WARC/ version line, got {bytes(self._buf[:40])!r}", start, consumed=False)
        end = self._header_end()
        head = self._take(end.end())
        lines = head[: end.start()].decode("utf-8", "replace").replace("\r", "").split("\n")
        headers = _parse_header_lines(lines[1:])
        try:
            length = int(headers.get("content-length", ""))
        except ValueError:
            raise Malformed(f"bad Content-Length {headers.get('content-length')!r}", start, consumed=True) from None
        if length < 0:
            raise Malformed(f"negative Content-Length {length}", start, consumed=True)
        rtype = headers.get("warc-type", "unknown").strip().lower()
        if length > self._max:
            return self._oversized(WarcRecord(start, rtype, headers, b"", length, oversized=True))
        self._stream.expect_block(length)
        block = self._read_block(length)
        record = WarcRecord(start, rtype, headers, block, length, truncated=len(block) < length)
        if record.truncated or not self._boundary_follows():  # does a record start inside the block?
            self._unread(block)
            self._fill_to(len(block) + MEMBER_LOOKAHEAD)  # a start may straddle the declared end
            cut, _ = self._start_in_buffer(0, final=True)
            if cut is not None and cut < len(block):
                return self._cut(record, self._take(cut))
            self._drop(len(block))
        return record

    def _oversized(self, record: WarcRecord) -> WarcRecord:
        """A record longer than the limit: skipped unread, unless its length turns out to be a lie."""
        block_start = self._pos
        self._stream.expect_block(self._max)
        if self._skip(record.content_length) == record.content_length and self._boundary_follows():
            return record
        if self._stream.stopped:  # the rest of the stream is given up (and reported): the record stays skipped
            return record
        self._seek(block_start)  # the length runs past the data or into other records: where does it end?
        cut = self._scan(0, limit=self._max)
        if cut is not None:
            return self._cut(record, self._take(cut))
        if self._eof:  # no record starts before the end of the data: a truncated record
            block = self._take(len(self._buf))
            return WarcRecord(record.offset, record.type, record.headers, block, record.content_length, truncated=True)
        record.truncated = not self._resync(False)
        if not record.truncated:
            self._notes.append(
                ReadIssue(record.offset, "content_length_mismatch", f"no record boundary after {record.content_length}")
            )
        return record

    def _cut(self, record: WarcRecord, block: bytes) -> WarcRecord:
        """``record`` with its block cut where the next record starts (the declared length lied)."""
        block = _TERMINATOR.sub(b"", block)
        detail = f"Content-Length {record.content_length} runs into the next record; read {len(block)} bytes"
        self._notes.append(ReadIssue(record.offset, "content_length_mismatch", detail))
        return WarcRecord(record.offset, record.type, record.headers, block, len(block))

    def _header_end(self) -> re.Match:
        """The blank line ending the headers that start the buffer; raises Malformed when there is none."""
        a, b = self._clean
        i = min(b - self._pos, len(self._buf)) if a <= self._pos else 0
        while True:
            m = _HEADER_END.search(self._buf, max(i, 0))
            if m:
                return m
            i = max(0, len(self._buf) - 3)  # a header end may straddle the end of the buffer
            self._clean = (self._pos, self._pos + i)
            if len(self._buf) > MAX_HEADER_BYTES:
                # a record starting before the last 64 KiB of these bytes would have as long a header
                skip_to = self._pos + i - MAX_HEADER_BYTES
                raise Malformed(
                    "no end of WARC headers within 64 KiB", self._pos, consumed=False, no_start_before=skip_to
                )
            if not self._fill():
                raise Malformed("the stream ends inside the WARC headers", self._pos, consumed=False)

    def _boundary_follows(self) -> bool:
        """Whether only line breaks, then a record start or the end of the stream, follow."""
        while True:
            n = _BLANK.match(self._buf).end()
            if len(self._buf) - n >= 6 or self._eof:
                break
            if n > MAX_BLANK_PEEK or not self._fill():
                break
        rest = bytes(self._buf[n : n + 6])
        if not rest:
            return self._eof
        return bool(_WARC_START.match(rest)) or (self._plain and rest.startswith(GZIP_MAGIC))

    def _scan(self, i: int, limit: int | None = None) -> int | None:
        """Buffer index of the next record start at or after index ``i``, reading on as needed. Without
        ``limit`` the bytes before it are dropped as the scan goes; with one, it gives up (None) once the buffer
        holds more than ``limit`` bytes. None at the end of the stream."""
        while True:
            found, i = self._start_in_buffer(i, final=self._eof)
            if found is not None or self._eof:
                return found
            if limit is not None and len(self._buf) > limit:
                return None
            if limit is None and i > 0:
                self._drop(i)
                i = 0
            self._fill()

    def _start_in_buffer(self, i: int, final: bool) -> tuple[int | None, int]:
        """(index of a record start at or after ``i`` or None, where to search next once more bytes are in).
        ``final``: no more bytes will come, so a gzip magic near the end is judged on what there is."""
        buf = self._buf
        if i == 0 and _WARC_START.match(buf):
            return 0, 0
        line = record_line(buf, i)
        resume = max(i, len(buf) - 16)  # a line start may straddle the end of the buffer
        if self._plain:
            stop = len(buf) if line is None else line
            g = buf.find(GZIP_MAGIC, i, stop)
            while g >= 0:
                if not final and len(buf) - g < MEMBER_LOOKAHEAD:
                    return None, min(resume, g)
                if member_starts_warc(bytes(buf[g : g + (1 << 14)])):
                    return g, g
                g = buf.find(GZIP_MAGIC, g + 1, stop)
        return line, resume

    def _resync(self, here: bool, no_start_before: int = 0) -> bool:
        """Skip to the next record start, not before stream position ``no_start_before``; False at the end
        of the stream. ``here``: the failed record's header was read past, so a record may start right at the
        buffer."""
        jump = min(no_start_before - self._pos, len(self._buf)) - 1  # keep the line break before a start
        if jump > 0 and self._plain and (member := self._buf.find(GZIP_MAGIC, 0, jump)) > 0:
            jump, here = member, True  # a gzip member in there may end the run: not jumped over
        if jump > 0:
            self._drop(jump)
        self._fill_to(6)
        found = self._scan(0 if here else 1)
        if found is None:
            self._drop(len(self._buf))
            return False
        self._drop(found)
        return True

    def _member_here(self) -> bool:
        self._fill_to(MEMBER_LOOKAHEAD)
        return member_starts_warc(bytes(self._buf[: 1 << 14]))

    def _skip_blank(self) -> None:
        while True:
            self._drop(_BLANK.match(self._buf).end())
            if self._buf or not self._fill():
                return

    def _read_block(self, length: int) -> bytes:
        while len(self._buf) < length and self._fill():
            pass
        return self._take(length)

    def _skip(self, n: int) -> int:
        """Drop ``n`` bytes (buffered ones first); returns how many there were."""
        have = min(n, len(self._buf))
        self._drop(have)
        if have == n:
            return n
        moved = self._stream.skip(n - have)
        self._pos += moved
        self._eof = have + moved < n
        return have + moved

    def _seek(self, pos: int) -> None:
        self._stream.seek(pos)
        self._buf.clear()
        self._pos = pos
        self._eof = False

    def _fill(self) -> bool:
        data = self._stream.read()
        if not data:
            self._eof = True
            return False
        self._buf += data
        return True

    def _fill_to(self, n: int) -> None:
        while len(self._buf) < n and self._fill():
            pass

    def _take(self, n: int) -> bytes:
        with memoryview(self._buf) as view:
            out = bytes(view[:n])
        self._drop(len(out))
        return out

    def _drop(self, n: int) -> None:
        del self._buf[:n]  # O(1) at the front of a bytearray
        self._pos += n

    def _unread(self, data: bytes) -> None:
        self._buf[:0] = data
        self._pos -= len(data)


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
