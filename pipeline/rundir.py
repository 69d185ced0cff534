"""The run directory: where every stage writes its outputs per shard, local or on shared storage (fsspec).

Layout::

    <run>/workflow.json          the normalised workflow and input plan the run was started with
    <run>/<stage>/kept/<shard>.parquet
    <run>/<stage>/rejected/<shard>.parquet
    <run>/<stage>/stats/<shard>.json     written last: its presence marks the shard done
    <run>/stats.json             all shards merged, per stage

Every file is written under a temporary name and renamed, so a file with its final name is complete.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from fsspec.core import url_to_fs


class RunDir:
    """Paths and atomic writes inside one run directory (a local path or an fsspec URL)."""

    def __init__(self, url: str):
        self.url = url
        self.fs, self.root = url_to_fs(url)

    def __reduce__(self):  # travel to Ray workers as the URL, not as a filesystem object
        return (RunDir, (self.url,))

    def path(self, *parts: str) -> str:
        return "/".join([self.root.rstrip("/"), *parts])

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
        if not self.fs.exists(folder):
            return set()
        names = (p.rsplit("/", 1)[-1] for p in self.fs.ls(folder, detail=False))
        return {n[: -len(".json")] for n in names if n.endswith(".json")}

    def read_json(self, path: str) -> Any:
        with self.fs.open(path, "r") as f:
            return json.load(f)

    def write_json(self, path: str, obj: Any) -> None:
        self.write_bytes(path, json.dumps(obj, indent=1, sort_keys=True).encode("utf-8"))

    def write_bytes(self, path: str, data: bytes) -> None:
        tmp = self.temp_name(path)
        with self.fs.open(tmp, "wb") as f:
            f.write(data)
        self.commit(tmp, path)

    def temp_name(self, path: str) -> str:
        """A temporary name beside ``path``; create its folder."""
        self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        return f"{path}.tmp-{uuid.uuid4().hex[:12]}"

    def commit(self, tmp: str, path: str) -> None:
        """Rename a finished temporary file to its final name (atomic on local disks)."""
        self.fs.mv(tmp, path)

    def remove(self) -> None:
        """Delete the whole run directory."""
        if self.fs.exists(self.root):
            self.fs.rm(self.root, recursive=True)

    def open(self, path: str, mode: str = "rb"):
        return self.fs.open(path, mode)
