"""Test helpers: where the committed sample data lies, and small WARC files written with warcio."""

from __future__ import annotations

import io
import pathlib

from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

ROOT = pathlib.Path(__file__).resolve().parents[1]
WARC_DIR = ROOT / "data" / "warc"
FIXTURES = ROOT / "tests" / "fixtures"
SAMPLE_WARCS = sorted(WARC_DIR.glob("*/*.gz"))


def document_stages(workflow_text: str) -> str:
    """A shipped workflow file's text without its model steps (``[train]``, ``[sft]``, ``[generate]``, whose
    files are named relative to it), with its model files made absolute: a copy that works anywhere."""
    return workflow_text.split("\n[train]")[0].replace('"../data/models/', f'"{ROOT}/data/models/')


def response(
    url: str,
    body: bytes,
    content_type: str | None = "text/html; charset=utf-8",
    status: str = "200 OK",
    extra_headers: list[tuple[str, str]] = (),
) -> dict:
    """A response record description for :func:`write_warc`."""
    headers = [("Content-Type", content_type)] if content_type else []
    headers += list(extra_headers) + [("Content-Length", str(len(body)))]
    return {"url": url, "body": body, "status": status, "headers": headers}


def write_warc(path, records: list[dict], gzip: bool = True) -> bytes:
    """Write ``records`` (from :func:`response`) as a WARC file; returns its bytes."""
    buf = io.BytesIO()
    writer = WARCWriter(buf, gzip=gzip)
    for rec in records:
        http = StatusAndHeaders(rec["status"], rec["headers"], protocol="HTTP/1.1")
        writer.write_record(
            writer.create_warc_record(rec["url"], "response", payload=io.BytesIO(rec["body"]), http_headers=http)
        )
    data = buf.getvalue()
    if path is not None:
        with open(path, "wb") as f:
            f.write(data)
    return data


def server_timeout(seconds: float) -> float:
    """How long to wait for a server to come up: ``seconds`` on an idle machine, longer in proportion to the
    load (other processes holding the cores slow every start-up), at most ten times as long."""
    import os

    load = os.getloadavg()[0] / (os.cpu_count() or 1)
    return seconds * min(10.0, max(1.0, load))
