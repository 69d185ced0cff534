"""The extract stage on damaged and hostile input: its statistics count the bytes read, not what records
declare, and one page's time limit holds inside Ray workers."""

from __future__ import annotations

import gzip
import json

import pytest

from filters.extract import HtmlExtractor
from pipeline.inputs import Shard
from pipeline.rundir import RunDir
from pipeline.runner import run_workflow
from pipeline.stages.base import ShardContext, process_shard
from pipeline.stages.extract import ExtractStage
from pipeline.workflow import load_workflow
from tests.hostile import raw_record


def extract_shard(tmp_path, path, max_record_bytes: int = 1 << 26) -> dict:
    """The extract stage's statistics for the whole of ``path``."""
    ctx = ShardContext(
        RunDir(str(tmp_path / "run")), Shard("000000-0000", str(path), 0, None), max_record_bytes=max_record_bytes
    )
    process_shard(ctx, [ExtractStage(name="extract", extractor=HtmlExtractor())], [False])
    return ctx.run.read_json(ctx.run.shard_stats("extract", "000000-0000"))


@pytest.mark.parametrize("compress", [gzip.compress, lambda b: b], ids=["warc.gz", "warc"])
def test_bytes_in_counts_the_bytes_read_not_the_lengths_records_declare(tmp_path, compress):
    """A 530-byte file whose last record declares 999,999,999,999 bytes was reported as 1 TB read."""
    data = raw_record("http://a.example/") + raw_record("http://b.example/", declared=999_999_999_999)
    path = tmp_path / ("lying.warc.gz" if compress is gzip.compress else "lying.warc")
    path.write_bytes(compress(data))
    stats = extract_shard(tmp_path, path)
    assert stats["docs_in"] == 2
    assert stats["bytes_in"] <= len(data)


def test_bytes_in_leaves_out_records_skipped_unread(tmp_path):
    big = raw_record("http://big.example/", b"<p>big</p>" * 200_000)  # 2 MB, over a 1 MiB record limit
    path = tmp_path / "big.warc.gz"
    path.write_bytes(gzip.compress(raw_record("http://a.example/")) + gzip.compress(big))
    stats = extract_shard(tmp_path, path, max_record_bytes=1 << 20)
    assert stats["docs_in"] == 2 and stats["dropped"] == {"extract.payload_too_large": 1}
    assert stats["bytes_in"] < 1000


def test_a_page_over_its_time_limit_in_a_ray_worker_is_counted_and_the_run_goes_on(tmp_path, ray_session):
    """The time limit (an extraction child process, killed) works where tasks run: in Ray workers."""
    slow = b"<html><body>" + b"<div>x" * 12_000  # about 3.5 s of main-content extraction
    page = b"<html><body><p>A page extracted after the slow one.</p></body></html>"
    data = b"".join(
        gzip.compress(raw_record(url, body)) for url, body in (("http://slow/", slow), ("http://ok/", page))
    )
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "pages.warc.gz").write_bytes(data)
    workflow = tmp_path / "wf.toml"
    workflow.write_text(
        '[run]\nname = "limits"\noutput = "out"\n[input]\npaths = ["in/*.warc.gz"]\n'
        '[[stages]]\nkind = "extract"\ntimeout_s = 0.5\nmax_nesting_depth = 1000000\nmax_depth_sum = 1000000000000\n'
    )
    stats = run_workflow(load_workflow(str(workflow)), progress=False)
    extract = stats["stages"][0]
    assert extract["dropped"] == {"extract.extract_timeout": 1}
    assert extract["docs_kept"] == 1
    stage_stats = json.loads((tmp_path / "out" / "limits" / "stats.json").read_text())
    assert stage_stats["stages"][0]["dropped"] == {"extract.extract_timeout": 1}
