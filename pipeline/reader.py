"""The one reader of input files: WARC / WET / ARC records (extracted to documents as the ``extract`` stage
does), Parquet rows, JSONL lines and plain text, from local paths or fsspec URLs. Workflows, ``refinery
quality train``, ``refinery tokenizer train``, ``refinery tokenize`` and the plain-files dedup API all read
through it; which files to read (globs, folders, URLs) is :func:`pipeline.inputs.expand_inputs`.

The format is told by the file name (:func:`file_format`). Every document is a dict with at least ``id``,
``text``, ``source`` (the file) and ``offset`` (record offset, row or line number); WARC documents also
carry ``url``, ``date`` and the HTTP annotations. :func:`read_items` yields everything a file holds,
skips and read problems included, for a stage that counts them; :func:`read_documents` and
:func:`read_texts` only what is kept.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass

import fsspec
import pyarrow.parquet as pq

from filters.warc import ReadIssue, iter_records

log = logging.getLogger("refinery")

WARC_SUFFIXES = (".warc", ".warc.gz", ".wet", ".wet.gz", ".wat", ".wat.gz", ".arc", ".arc.gz")
FORMATS = {
    "warc": WARC_SUFFIXES,
    "parquet": (".parquet",),
    "jsonl": (".jsonl", ".json", ".jsonl.gz", ".json.gz"),
    "text": (".txt", ".txt.gz"),
}
PARQUET_BATCH_ROWS = 1024
DEFAULT_MAX_DOCUMENT_BYTES = 8 << 20


def file_format(path: str) -> str:
    """``warc``, ``parquet``, ``jsonl`` or ``text`` (anything else), by the file name."""
    name = path.lower()
    for fmt, suffixes in FORMATS.items():
        if name.endswith(suffixes):
            return fmt
    return "text"


def open_input(url: str, decompress: bool = False):
    """Open an input file (local path or fsspec URL) for binary random access; with ``decompress``, a
    ``.gz`` (or other compressed) JSONL or text file is read decompressed."""
    return fsspec.open(url, "rb", compression="infer" if decompress else None).open()


@dataclass(slots=True)
class Item:
    """One thing read from an input file: a document (``reason`` None: keep it; else why it is skipped) or,
    with ``doc`` None, a WARC record that is not a document (request, metadata, warcinfo).
    ``record_type`` is the WARC record type (None for other formats); ``size`` the bytes read for it."""

    doc: dict | None
    reason: str | None = None
    record_type: str | None = None
    size: int = 0


def read_items(
    path: str,
    start: int = 0,
    end: int | None = None,
    *,
    extractor=None,
    max_record_bytes: int = 1 << 26,
    text_separator: str | None = None,
    on_error: str = "skip",
    fmt: str | None = None,
    max_document_bytes: int = DEFAULT_MAX_DOCUMENT_BYTES,
) -> Iterator[Item | ReadIssue]:
    """Everything in ``path`` (WARC files: the records whose offset lies in ``[start, end)``), in file order.

    WARC records go through ``extractor`` (an :class:`filters.extract.HtmlExtractor`; default settings if
    None); an extraction that raises is a skipped document with reason ``error`` (``on_error="raise"``
    raises instead). A text file is one document, or several cut at ``text_separator``. ``fmt`` overrides the
    format told by the name (``"text"`` reads any file whole). A document whose text is longer than
    ``max_document_bytes`` (UTF-8) is skipped as ``document_too_large``, its text dropped: the filters' work
    and memory per document grow with its size (word lists, n-gram hashes: up to ~60x the text)."""
    fmt = fmt or file_format(path)
    if fmt == "warc":
        items = _warc_items(path, start, end, extractor, max_record_bytes, on_error)
    elif fmt == "parquet":
        items = _parquet_items(path)
    elif fmt == "jsonl":
        items = _jsonl_items(path)
    else:
        items = _text_items(path, text_separator)
    for item in items:
        if isinstance(item, Item) and item.reason is None and item.doc is not None:
            _limit_size(item, max_document_bytes)
        yield item


def _limit_size(item: Item, limit: int) -> None:
    """Skip the document of ``item`` (reason ``document_too_large``) when its text exceeds ``limit`` bytes."""
    text = item.doc["text"]
    if len(text) * 4 <= limit:  # cannot exceed it: UTF-8 takes at most 4 bytes a character
        return
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > limit:
        item.doc["text"] = ""
        item.doc["detail"] = f"{size:,} bytes of text > max_document_bytes {limit:,}"
        item.reason = "document_too_large"


def read_documents(path: str, **options) -> Iterator[dict]:
    """The kept documents of ``path`` (read problems are logged, skipped records only counted in a stage)."""
    for item in read_items(path, **options):
        if isinstance(item, ReadIssue):
            log.warning("%s @%d: %s (%s)", path, item.offset, item.reason, item.detail)
        elif item.doc is not None and item.reason is None:
            yield item.doc


def read_texts(path: str, min_chars: int = 1, **options) -> Iterator[str]:
    """The texts of the kept documents of ``path`` that have at least ``min_chars`` characters."""
    for doc in read_documents(path, **options):
        if len(doc["text"]) >= min_chars:
            yield doc["text"]


def _warc_items(path, start, end, extractor, max_record_bytes, on_error) -> Iterator[Item | ReadIssue]:
    if extractor is None:
        from filters.extract import HtmlExtractor

        extractor = HtmlExtractor()
    with open_input(path) as f:
        for record in iter_records(f, start, end, max_record_bytes=max_record_bytes):
            if isinstance(record, ReadIssue):
                yield record
                continue
            try:
                out = extractor.extract(record, path)
            except Exception as exc:
                if on_error == "raise":
                    raise
                log.exception("%s @%d: extraction failed", path, record.offset)
                out = _error_stub(record, path, exc), "error"
            size = len(record.block)
            if out is None:
                yield Item(None, None, record.type, size)
            else:
                yield Item(out[0], out[1], record.type, size)


def _error_stub(record, source: str, exc: Exception) -> dict:
    return {
        "id": record.headers.get("warc-record-id", f"{source}@{record.offset}").strip("<>"),
        "url": record.headers.get("warc-target-uri", ""),
        "text": "",
        "source": source,
        "offset": record.offset,
        "detail": f"{type(exc).__name__}: {exc}",
    }


def _parquet_items(path: str) -> Iterator[Item | ReadIssue]:
    with open_input(path) as f:
        table = pq.ParquetFile(f)
        if "text" not in table.schema_arrow.names:
            raise ValueError(f"{path}: a Parquet input needs a 'text' column")
        row = 0
        for batch in table.iter_batches(batch_size=PARQUET_BATCH_ROWS):
            for doc in batch.to_pylist():
                text = doc.get("text") or ""
                doc["text"] = text
                doc.setdefault("id", None)
                doc["id"] = doc["id"] or f"{path}#{row}"
                doc.setdefault("source", path)
                doc.setdefault("offset", row)
                row += 1
                yield Item(doc, None, None, len(text.encode("utf-8")))


def _jsonl_items(path: str) -> Iterator[Item | ReadIssue]:
    with open_input(path, decompress=True) as raw:
        for number, line in enumerate(raw, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                yield ReadIssue(number, "malformed_json", f"line {number}: {exc}")
                continue
            text = record.get("text") if isinstance(record, dict) else None
            if not isinstance(text, str):
                yield ReadIssue(number, "no_text", f"line {number}: no 'text' string")
                continue
            doc = {
                "id": str(record.get("id") or f"{path}:{number}"),
                "url": str(record.get("url") or ""),
                "date": str(record.get("date") or ""),
                "text": text,
                "source": path,
                "offset": number,
            }
            yield Item(doc, None, None, len(line))


def _text_items(path: str, separator: str | None) -> Iterator[Item | ReadIssue]:
    with open_input(path, decompress=True) as raw:
        data = raw.read()
    text = data.decode("utf-8", "replace")  # line endings kept as they are
    parts = text.split(separator) if separator else [text]
    for i, part in enumerate(parts):
        if separator and not part.strip():
            continue
        doc = {"id": path if not separator else f"{path}#{i}", "text": part, "source": path, "offset": i}
        yield Item(doc, None, None, len(part.encode("utf-8")))
