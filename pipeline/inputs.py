"""Input files of a run and their shards: the units of parallel work, resumption and output.

A gzip-compressed WARC larger than ``split_bytes`` is cut into byte ranges; each range is a shard that
reads the records whose gzip member starts inside it (see :mod:`filters.warc`), so one large file is
processed by many workers. Uncompressed files are one shard each.
"""

from __future__ import annotations

import glob
import os
from dataclasses import asdict, dataclass

from fsspec.core import url_to_fs

_GLOB_CHARS = set("*?[")


@dataclass(frozen=True)
class InputFile:
    path: str
    size: int


@dataclass(frozen=True)
class Shard:
    """Bytes ``[start, end)`` of the input file ``path``; ``id`` names its outputs."""

    id: str
    path: str
    start: int
    end: int | None

    def to_json(self) -> dict:
        return asdict(self)


class InputError(ValueError):
    """An input pattern that matches no file, or whose files cannot be listed; ``index`` is its position in
    the list."""

    def __init__(self, index: int, message: str):
        super().__init__(message)
        self.index = index


def expand_inputs(patterns: list[str], base_dir: str) -> list[InputFile]:
    """Files matched by ``patterns`` (globs or fsspec URLs; relative paths resolved against ``base_dir``),
    sorted and without duplicates. Raises :class:`InputError` for a pattern that matches nothing or cannot be
    listed (a missing fsspec backend such as s3fs, no credentials, no network)."""
    found: dict[str, int] = {}
    for index, pattern in enumerate(patterns):
        try:
            matches = _expand_url(pattern) if "://" in pattern else _expand_local(pattern, base_dir)
        except ImportError as exc:  # fsspec names the package: "Install s3fs to access S3"
            raise InputError(index, f"cannot read {pattern!r}: {exc}") from None
        except Exception as exc:  # the backends raise their own errors (credentials, network, permissions)
            raise InputError(index, f"cannot list {pattern!r}: {type(exc).__name__}: {exc}") from None
        if not matches:
            raise InputError(index, f"no file matches {pattern!r}")
        found.update(matches)
    return [InputFile(path, size) for path, size in sorted(found.items())]


def _expand_local(pattern: str, base_dir: str) -> dict[str, int]:
    path = pattern if os.path.isabs(pattern) else os.path.join(base_dir, pattern)
    names = glob.glob(path, recursive=True) if _GLOB_CHARS & set(pattern) else [path]
    return {os.path.abspath(p): os.path.getsize(p) for p in names if os.path.isfile(p)}


def _expand_url(pattern: str) -> dict[str, int]:
    fs, path = url_to_fs(pattern)
    paths = fs.glob(path) if _GLOB_CHARS & set(path) else [path]
    out = {}
    for p in paths:
        info = fs.info(p)
        if info.get("type") == "file":
            out[fs.unstrip_protocol(p)] = int(info.get("size") or 0)
    return out


def plan_shards(files: list[InputFile], split_bytes: int) -> list[Shard]:
    """Shards of ``files``: byte ranges of at most ``split_bytes`` for ``.gz`` files, whole files otherwise."""
    shards = []
    for index, f in enumerate(files):
        splittable = f.path.endswith(".gz") and f.size > split_bytes
        bounds = range(0, f.size, split_bytes) if splittable else [0]
        for part, start in enumerate(bounds):
            end = min(start + split_bytes, f.size) if splittable else None
            shards.append(Shard(f"{index:06d}-{part:04d}", f.path, start, end))
    return shards
