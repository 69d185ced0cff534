"""The WARC reader against warcio and fastwarc on real files, by byte range, and on damaged input."""

from __future__ import annotations

import gzip
import io
import random
import zlib

import pytest
from fastwarc.warc import ArchiveIterator as FastwarcIterator
from warcio.archiveiterator import ArchiveIterator as WarcioIterator

from filters.http import parse_http_response
from filters.warc import ReadIssue, WarcRecord, iter_records
from tests.helpers import SAMPLE_WARCS, WARC_DIR, response, write_warc
from tests.hostile import MIB, bomb_member, raw_record, within


def read_all(data: bytes, start: int = 0, end: int | None = None, **kw) -> tuple[list[WarcRecord], list[ReadIssue]]:
    items = list(iter_records(io.BytesIO(data), start, end, **kw))
    return [r for r in items if isinstance(r, WarcRecord)], [r for r in items if isinstance(r, ReadIssue)]


def member_offsets(data: bytes) -> list[int]:
    offsets, pos = [], 0
    while pos < len(data):
        offsets.append(pos)
        d = zlib.decompressobj(31)
        d.decompress(data[pos:])
        pos = len(data) - len(d.unused_data)
    return offsets


@pytest.mark.parametrize("path", SAMPLE_WARCS, ids=lambda p: p.name)
def test_same_records_as_warcio_and_fastwarc(path):
    data = path.read_bytes()
    records, issues = read_all(data)
    assert issues == []
    with open(path, "rb") as f:
        expected = [
            (r.rec_type, r.rec_headers.get_header("WARC-Record-ID"), r.raw_stream.read())
            for r in WarcioIterator(f, no_record_parse=True)
        ]
    assert [(r.type, r.headers.get("warc-record-id"), r.block) for r in records] == expected
    fast = [(str(r.record_type), r.record_id) for r in FastwarcIterator(io.BytesIO(data), parse_http=False)]
    assert [(r.type, r.headers.get("warc-record-id")) for r in records] == fast


@pytest.mark.parametrize("name", ["pywb/iana.warc.gz", "dolma/sample-0000.warc.gz", "resiliparse/warcfile.warc.gz"])
@pytest.mark.parametrize("split", [4096, 50_000, 10**6])
def test_byte_ranges_cover_every_record_exactly_once(name, split):
    data = (WARC_DIR / name).read_bytes()
    whole, _ = read_all(data)
    pieces = []
    for start in range(0, len(data), split):
        records, issues = read_all(data, start, min(start + split, len(data)))
        assert issues == []
        pieces += records
    assert [(r.offset, r.headers["warc-record-id"]) for r in pieces] == [
        (r.offset, r.headers["warc-record-id"]) for r in whole
    ]


def test_a_corrupt_gzip_member_costs_only_its_own_record():
    data = bytearray((WARC_DIR / "pywb/iana.warc.gz").read_bytes())
    whole, _ = read_all(bytes(data))
    offsets = member_offsets(bytes(data))
    victim = offsets[40]
    for i in range(victim + 30, victim + 60):  # inside the deflate stream of member 40
        data[i] ^= 0x5A
    records, issues = read_all(bytes(data))
    assert [i.reason for i in issues] == ["corrupt_gzip_member"]
    assert issues[0].offset == victim
    survivors = [r for r in whole if r.offset != victim]
    assert [(r.offset, r.block) for r in records] == [(r.offset, r.block) for r in survivors]
    assert len(records) == len(whole) - 1


def test_a_truncated_file_keeps_every_complete_record():
    data = (WARC_DIR / "dolma/sample-0001.warc.gz").read_bytes()
    whole, _ = read_all(data)
    offsets = member_offsets(data)
    cut = offsets[20] + 100
    records, issues = read_all(data[:cut])
    assert [i.reason for i in issues] == ["truncated_gzip_member"]
    complete = [r for r in records if not r.truncated]
    assert [r.block for r in complete] == [r.block for r in whole if r.offset < offsets[20]]


def test_garbage_between_members_is_skipped_and_reported():
    data = (WARC_DIR / "warcio/example.warc.gz").read_bytes()
    offsets = member_offsets(data)
    damaged = data[: offsets[3]] + b"\x00" * 777 + data[offsets[3] :]
    records, issues = read_all(damaged)
    assert [i.reason for i in issues] == ["garbage_between_members"]
    assert len(records) == len(read_all(data)[0])


@pytest.mark.parametrize(
    "content, reason",
    [
        (b"", "empty_file"),
        (b"<html><body>not a WARC file at all</body></html>" * 50, "not_warc"),
        (gzip.compress(b"just some text, gzipped" * 100), "not_warc"),
    ],
)
def test_files_that_are_not_warc_are_reported(content, reason):
    records, issues = read_all(content)
    assert records == []
    assert [i.reason for i in issues] == [reason]


def test_uncompressed_warc_resynchronises_after_a_damaged_header():
    plain = gzip.decompress((WARC_DIR / "pywb/iana.warc.gz").read_bytes())
    whole, issues = read_all(plain)
    assert issues == [] and len(whole) == 343
    victim = whole[100]
    damaged = plain[: victim.offset] + b"GARBAGE/1.0\r\n" + plain[victim.offset + len(b"WARC/1.0\r\n") :]
    records, issues = read_all(damaged)
    assert [i.reason for i in issues] == ["malformed_record"]
    assert len(records) == len(whole) - 1
    assert victim.headers["warc-record-id"] not in {r.headers["warc-record-id"] for r in records}


def test_oversized_records_are_skipped_unread(tmp_path):
    big = b"<html><body>" + random.Random(0).randbytes(3 << 20) + b"</body></html>"  # incompressible, like a video
    data = write_warc(
        None,
        [
            response("http://a.example/", b"<html>small</html>"),
            response("http://b.example/", big),
            response("http://c.example/", b"<html>after</html>"),
        ],
    )
    records, issues = read_all(data, max_record_bytes=1 << 20)
    assert issues == []
    assert [r.oversized for r in records] == [False, True, False]
    assert records[1].block == b"" and records[1].content_length > 3 << 20
    assert b"after" in records[2].block


def test_clueweb_lf_only_http_headers_parse():
    """ClueWeb09 puts LF-only HTTP headers in CRLF WARC records; fastwarc 2.0.1 loses 10 KB of HTML there."""
    records, _ = read_all((WARC_DIR / "resiliparse/clueweb-quirk.warc.gz").read_bytes())
    responses = [r for r in records if r.type == "response"]
    assert len(responses) == 29
    first = parse_http_response(responses[0].block)
    assert first.status == 200
    assert first.media_type == "text/html" and first.charset == "EUC-JP"
    assert len(first.body) == 31_293 and first.body.startswith(b"<html>")


def split_everywhere(data: bytes, points) -> None:
    """Reading in two shards split at any point gives the records of reading the whole file."""
    whole = [(r.offset, r.headers["warc-record-id"]) for r in read_all(data)[0]]
    for cut in points:
        left, _ = read_all(data, 0, cut)
        right, _ = read_all(data, cut, len(data))
        assert [(r.offset, r.headers["warc-record-id"]) for r in left + right] == whole, cut


def test_members_starting_with_a_line_break_are_found_from_any_split():
    """Some writers put the CRLF that ends a record at the start of the next gzip member."""
    data = b"".join(
        gzip.compress((b"\r\n" if i % 2 else b"") + raw_record(f"x{i}", b"<p>page</p>" * 50)) for i in range(6)
    )
    assert len(read_all(data)[0]) == 6
    split_everywhere(data, range(1, len(data), 7))


def test_gzip_data_carried_inside_a_record_never_yields_records():
    """A crawled .warc.gz stored verbatim (deflate's stored blocks) holds valid-looking gzip members."""
    inner = write_warc(None, [response(f"http://inner.example/{i}", b"<p>inner</p>" * 200) for i in range(3)])
    members = [
        gzip.compress(raw_record("outer-0", b"<p>before</p>")),
        gzip.compress(raw_record("outer-1", inner), compresslevel=0),
        gzip.compress(raw_record("outer-2", b"<p>after</p>")),
    ]
    data = b"".join(members)
    assert inner in data  # verbatim
    assert [r.headers["warc-target-uri"] for r in read_all(data)[0]] == ["outer-0", "outer-1", "outer-2"]
    split_everywhere(data, range(1, len(data), 97))


@pytest.mark.parametrize("compress", [lambda b: gzip.compress(b), lambda b: b], ids=["single-gzip-stream", "plain"])
@pytest.mark.parametrize(
    "length_error, reason",
    [(-10, "malformed_record"), (-300, "malformed_record"), (60_000_000, "content_length_mismatch"), (7, None)],
)
def test_a_record_with_a_lying_content_length_costs_only_itself(compress, length_error, reason):
    """Too short: the rest of the block is skipped to the next record. Too long, past the next records (60 MB
    declared, over the 64 MiB limit or not): the block is cut where the next record starts, which is read."""
    records = [raw_record(f"x{i}", b"<p>page %d</p>" % i * 30, length_error if i == 3 else 0) for i in range(10)]
    found, issues = read_all(compress(b"".join(records)), max_record_bytes=1 << 26)
    assert [r.headers["warc-target-uri"] for r in found] == [f"x{i}" for i in range(10)]
    if reason is None:  # 7 bytes too long: the lie takes in the record's own terminator and nothing else
        assert issues == [] or [i.reason for i in issues] == ["content_length_mismatch"]
    else:
        assert [i.reason for i in issues] == [reason]
    if length_error > 0:
        assert found[3].block.endswith(b"<p>page 3</p>") and not found[3].truncated


@pytest.mark.parametrize("declared", [60_000_000, 999_999_999_999])
@pytest.mark.parametrize("compress", [lambda b: gzip.compress(b), lambda b: b], ids=["single-gzip-stream", "plain"])
def test_a_content_length_past_the_end_of_the_file_swallows_no_record(compress, declared):
    """The second of four records declares more bytes than the file holds (more than the record limit, so it
    would be skipped unread): the two records after it are read, and the lie reported."""
    data = raw_record("a") + raw_record("b", declared=declared) + raw_record("c") + raw_record("d")
    found, issues = read_all(compress(data), max_record_bytes=1 << 20)
    assert [r.headers["warc-target-uri"] for r in found] == ["a", "b", "c", "d"]
    assert [i.reason for i in issues] == ["content_length_mismatch"]
    assert found[1].block.startswith(b"HTTP/1.1 200") and found[1].block.endswith(b"<p>page</p>")
    # the last record of a file declaring too much is a truncated record, with the bytes there are
    found, issues = read_all(compress(raw_record("a") + raw_record("b", declared=declared)), max_record_bytes=1 << 20)
    assert [r.truncated for r in found] == [False, True] and found[1].block.startswith(b"HTTP/1.1 200")
    assert [i.reason for i in issues] in (["truncated_record"], ["content_length_mismatch"])  # plain, gzip


def test_a_member_ending_next_to_a_read_boundary_is_not_garbage():
    import os as _os

    from filters.warc import CHUNK

    for target in (CHUNK - 2, CHUNK - 1, CHUNK + 1):
        lo, hi = 1000, CHUNK
        while lo < hi:  # the payload size whose (incompressible) member is exactly `target` bytes
            mid = (lo + hi) // 2
            size = len(gzip.compress(raw_record("a", _os.urandom(mid))))
            lo, hi = (mid + 1, hi) if size < target else (lo, mid)
        first = gzip.compress(raw_record("a", _os.urandom(lo)))
        if len(first) != target:
            continue  # random bytes compress a little differently each time; another target will do
        data = first + gzip.compress(raw_record("b", b"<p>b</p>"))
        records, issues = read_all(data)
        assert issues == [] and len(records) == 2


def record_ids(records) -> list[str]:
    return [r.headers["warc-record-id"] for r in records]


@pytest.mark.parametrize("order", ["gzip then plain", "plain then gzip"])
def test_a_gzip_part_and_a_plain_part_in_one_file_are_both_read(order):
    """A .warc appended to a .warc.gz (or the reverse): every record of both parts, in file order; warcio
    reads the first order the same way, and raises on the second."""
    data = (WARC_DIR / "pywb/iana.warc.gz").read_bytes()
    whole, _ = read_all(data)
    cut = member_offsets(data)[150]
    head, tail = data[:cut], data[cut:]
    mixed = head + gzip.decompress(tail) if order == "gzip then plain" else gzip.decompress(head) + tail
    records, issues = read_all(mixed)
    assert issues == []
    assert record_ids(records) == record_ids(whole)
    assert [r.block for r in records] == [r.block for r in whole]
    if order == "gzip then plain":
        warcio = [r.rec_headers.get_header("WARC-Record-ID") for r in WarcioIterator(io.BytesIO(mixed))]
        assert warcio == record_ids(whole)
    split_everywhere(mixed, range(1, len(mixed), len(mixed) // 40))


def test_plain_records_between_gzip_members_are_read_by_the_shard_where_they_start():
    members = [gzip.compress(raw_record(f"g{i}", b"<p>gzip</p>" * 40)) for i in range(6)]
    plain = b"".join(raw_record(f"p{i}", b"<p>plain</p>" * 40) for i in range(4))
    data = b"".join(members[:3]) + plain + b"".join(members[3:])
    records, issues = read_all(data)
    assert issues == []
    assert [r.headers["warc-target-uri"] for r in records] == [
        "g0",
        "g1",
        "g2",
        "p0",
        "p1",
        "p2",
        "p3",
        "g3",
        "g4",
        "g5",
    ]
    split_everywhere(data, range(1, len(data), 13))


def lie_bomb() -> bytes:
    """A response declaring 1 TB, followed by as many zeros as the member yields (256 MiB)."""
    return bomb_member(raw_record("bomb", b"", declared=10**12)[:-4], 256)


@pytest.mark.parametrize(
    "shape, bomb",
    [
        ("a record declaring 1 TB, then zeros", lie_bomb),
        ("a record, then line breaks", lambda: bomb_member(raw_record("bomb"), 256, b"\r\n")),
        ("a record, then zeros", lambda: bomb_member(raw_record("bomb"), 256)),
        ("a record, then WARC/ lines", lambda: bomb_member(raw_record("bomb"), 64, b"WARC/1.0\r\n")),
        (
            "a record, then headers without a length",
            lambda: bomb_member(raw_record("bomb"), 64, b"WARC/1.0\r\nA: b\r\n\r\n"),
        ),
        ("tiny records", lambda: bomb_member(raw_record("bomb"), 64, raw_record("tiny", b""))),
    ],
)
def test_a_decompression_bomb_costs_a_bounded_amount_of_work(shape, bomb):
    """A gzip member that expands to hundreds of MiB from a few hundred KB: what it yields before the limit
    is read, the cut is reported with the bytes decompressed (bounded, whatever the bomb's size), and the
    next member is read."""
    member = bomb()
    data = gzip.compress(raw_record("before")) + member + gzip.compress(raw_record("after"))
    records, issues = within(120, read_all, data, 0, None)
    uris = [r.headers["warc-target-uri"] for r in records]
    assert uris[0] == "before" and uris[1] == "bomb" and uris[-1] == "after", shape
    assert len(uris) < 2000  # tiny records: a few hundred, not millions
    assert [i.reason for i in issues] == ["decompression_limit"]
    decompressed = int(issues[0].detail.split()[2])
    assert decompressed <= (1 << 26) + 2 * MIB  # the bound: one maximal record block, 64 KiB and a chunk


def test_a_decompression_bomb_costs_the_same_at_any_size():
    """Work is bounded by the limit, not by the bomb: four times the zeros, the same bytes decompressed."""
    cut = []
    for mib in (64, 256):
        member = bomb_member(raw_record("bomb"), mib)
        _, issues = read_all(gzip.compress(raw_record("before")) + member, max_record_bytes=1 << 20)
        cut.append(issues[0].detail)
    assert cut[0] == cut[1]


def test_a_flood_of_warc_lines_is_one_issue_and_read_in_linear_time():
    """200,000 lines that each start a record whose header never ends: one issue for the run of bad bytes,
    and the record after it read (each line used to rescan 64 KiB: minutes for a 2 MB file)."""
    data = raw_record("before") + b"WARC/1.0\r\n" * 200_000 + raw_record("after")
    records, issues = within(120, read_all, data, 0, None)
    assert [r.headers["warc-target-uri"] for r in records] == ["before", "after"]
    assert [i.reason for i in issues] == ["malformed_record"]


def test_a_gzip_member_after_a_header_that_never_ends_is_still_found():
    """Uncompressed bytes whose header has no end for more than 64 KiB are skipped in one jump, but not past
    a gzip member of WARC records inside them."""
    data = raw_record("a") + b"WARC/1.0\r\n" + b"x" * 30_000 + gzip.compress(raw_record("b")) + b"y" * 100_000
    records, issues = read_all(data)
    assert [r.headers["warc-target-uri"] for r in records] == ["a", "b"]
    assert [i.reason for i in issues] == ["malformed_record", "garbage_between_members"]


def test_a_damaged_member_that_runs_on_to_the_end_of_the_file_loses_only_itself():
    """Two bit flips (found by the fuzz run) make member 3's deflate stream decode on over member 4 and the
    uncompressed record after it, to the end of the file: reading resumes after the member's start."""
    data = (WARC_DIR / "warcio/example.warc.gz").read_bytes()
    offsets = member_offsets(data)
    damaged = bytearray(data[: offsets[5]])
    damaged[2147] ^= 0x08
    damaged[2609] ^= 0x01
    records, issues = read_all(bytes(damaged) + gzip.decompress(data[offsets[5] :]))
    assert "truncated_gzip_member" in [i.reason for i in issues]
    whole, _ = read_all(data)
    assert record_ids(records) == record_ids(whole[:3] + whole[4:])
