"""The run directory: where every stage writes its outputs per shard, local or on shared storage (fsspec).

Layout::

    <run>/workflow.json          the normalised workflow and input plan the run was started with
    <run>/<stage>/kept/<shard>.parquet
    <run>/<stage>/rejected/<shard>.parquet
    <run>/<stage>/stats/<shard>.json     written last: its presence marks the shard done
    <run>/stats.json             all shards merged, per stage

Commit protocol (it holds without an atomic rename): a file with its final name is complete, and a shard's
statistics are written after its other outputs, so their presence marks the shard done and a rerun trusts
nothing else. On a local disk every file is written under a temporary name and renamed (a rerun deletes the
temporary files a killed run left, :meth:`RunDir.remove_leftovers`); on object storage it is uploaded once,
whole, under its final name (an object appears only when its upload completes), which costs one request
where a rename would cost a copy and a delete.
"""

from __future__ import annotations

import io
import json
import uuid
from contextlib import contextmanager
from typing import Any

import pyarrow as pa
from fsspec.core import url_to_fs

from pipeline.locks import LOCK_NAME

RUN_FILES = ("workflow.json", "stats.json", "report.html", "invocations")  # besides the stages' folders


class RunDir:
    """Paths and atomic writes inside one run directory (a local path or an fsspec URL)."""

    def __init__(self, url: str):
        self.url = url
        self.fs, self.root = url_to_fs(url)

    def __reduce__(self):  # travel to Ray workers as the URL, not as a filesystem object
        return (RunDir, (self.url,))

    def path(self, *parts: str) -> str:
        """A path inside the run, as its filesystem names it (no protocol: use with ``self.fs``)."""
        return "/".join([self.root.rstrip("/"), *parts])

    def full(self, *parts: str) -> str:
        """A path inside the run as a user or another program names it: local paths as they are, object
        storage with its protocol (``s3://bucket/...``)."""
        path = self.path(*parts)
        return path if self.local else self.fs.unstrip_protocol(path)

    @property
    def local(self) -> bool:
        """Whether the run lies on a local disk."""
        return "file" in self._protocols

    def kept(self, stage: str, shard: str) -> str:
        return self.path(stage, "kept", f"{shard}.parquet")

    def rejected(self, stage: str, shard: str) -> str:
        return self.path(stage, "rejected", f"{shard}.parquet")

    def shard_stats(self, stage: str, shard: str) -> str:
        return self.path(stage, "stats", f"{shard}.json")

    def exists(self, path: str) -> bool:
        return self.fs.exists(path)

    def done_shards(self, stage: str) -> set[str]:
        """Shards of ``stage`` whose statistics (the completion marker) exist: one listing, not one call each."""
        folder = self.path(stage, "stats")
        self.fs.invalidate_cache(folder)  # object stores cache listings: shards finish while we run
        try:
            names = [p.rsplit("/", 1)[-1] for p in self.fs.ls(folder, detail=False)]
        except FileNotFoundError:
            return set()
        return {n[: -len(".json")] for n in names if n.endswith(".json")}

    def read_bytes(self, path: str) -> bytes:
        """A whole file, in one request on object storage."""
        return self.fs.cat_file(path, **self._one_request)

    def read_many(self, paths: list[str]) -> dict[str, bytes]:
        """Whole files, fetched concurrently on object storage (a batch of requests in flight, not one after
        the other); path -> bytes."""
        return self.fs.cat(list(paths), **self._one_request) if paths else {}

    @property
    def _one_request(self) -> dict:
        """s3fs asks for an object's size (a second request) before fetching it, unless told not to split it."""
        return {"max_concurrency": 1} if "s3" in self._protocols else {}

    @property
    def _protocols(self) -> tuple[str, ...]:
        protocol = self.fs.protocol
        return protocol if isinstance(protocol, tuple) else (protocol,)

    def sizes(self, folder: str) -> dict[str, int]:
        """The files of ``folder`` and their sizes, from one listing."""
        self.fs.invalidate_cache(folder)
        try:
            return {e["name"]: int(e.get("size") or 0) for e in self.fs.ls(folder, detail=True)}
        except FileNotFoundError:
            return {}

    def read_json(self, path: str) -> Any:
        return json.loads(self.read_bytes(path))

    def reader(self, path: str):
        """A seekable file for reading ``path`` (Parquet): the local file, or an object read whole into memory
        (one GET, where a Parquet reader would make several ranged requests)."""
        return self.fs.open(path, "rb") if self.local else pa.BufferReader(self.read_bytes(path))

    def write_json(self, path: str, obj: Any) -> None:
        self.write_bytes(path, json.dumps(obj, indent=1, sort_keys=True).encode("utf-8"))

    def write_bytes(self, path: str, data: bytes) -> None:
        with self.writer(path) as f:
            f.write(data)

    @contextmanager
    def writer(self, path: str):
        """A binary file to write ``path`` through; the file appears complete or not at all. On a local disk
        it is written under a temporary name and renamed; on object storage it is uploaded whole when the
        block ends (an object store shows an object only once its upload finished), never when it raises."""
        if not self.local:
            buffer = io.BytesIO()
            yield buffer
            self.fs.pipe_file(path, buffer.getvalue())
            return
        folder = path.rsplit("/", 1)[0]
        self.fs.makedirs(folder, exist_ok=True)
        tmp = f"{path}.tmp-{uuid.uuid4().hex[:12]}"
        try:
            with self.fs.open(tmp, "wb") as f:
                yield f
            self.fs.mv(tmp, path)
        finally:
            if self.fs.exists(tmp):
                self.fs.rm(tmp)

    def remove(self, stages: list[str]) -> None:
        """Delete what a run wrote here: its ``workflow.json``, statistics, report, invocation records and
        the folders of ``stages`` and of the stages ``workflow.json`` names. Anything else (a user's file,
        another program's folder) stays, and a folder that ``workflow.json`` does not mark as a refinery run
        is refused."""
        if not self.fs.exists(self.root):
            return
        record = self.path("workflow.json")
        if not self.fs.exists(record):
            names = sorted(p.rsplit("/", 1)[-1] for p in self.fs.ls(self.root, detail=False))
            if [n for n in names if n != LOCK_NAME]:
                raise ValueError(
                    f"{self.url} is not a refinery run (no workflow.json) but holds {', '.join(names[:5])}: "
                    "refusing to delete it; choose another run name or output"
                )
            return
        written = set(stages) | {s["name"] for s in self.read_json(record).get("stages", [])}
        for name in sorted(written) + list(RUN_FILES):
            path = self.path(name)
            if self.fs.exists(path):
                self.fs.rm(path, recursive=True)

    def remove_leftovers(self) -> int:
        """Delete the temporary files (``*.tmp-*``) that killed writers left; how many there were. Call it
        only while holding the run's lock: a live writer's temporary files look the same."""
        if not self.fs.exists(self.root):
            return 0
        leftovers = [p for p in self.fs.find(self.root) if ".tmp-" in p.rsplit("/", 1)[-1]]
        for path in leftovers:
            self.fs.rm(path)
        return len(leftovers)

    def open(self, path: str, mode: str = "rb"):
        return self.fs.open(path, mode)
