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

from pipeline.reader import FORMATS, file_format

_GLOB_CHARS = set("*?[")
FOLDER_FORMATS = ("warc", "parquet", "jsonl")  # what a folder given as an input means (plain .txt: by name only)


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


def expand_inputs(
    patterns: list[str], base_dir: str = ".", formats: tuple[str, ...] = FOLDER_FORMATS
) -> list[InputFile]:
    """Files matched by ``patterns``: files, globs, folders (their files of the given ``formats``, see
    :func:`pipeline.reader.file_format`, recursively, hidden files left out) or fsspec URLs of any of these;
    relative paths resolved against ``base_dir``. Sorted and without duplicates. Raises :class:`InputError`
    for a pattern that matches nothing or cannot be listed (a missing fsspec backend such as s3fs, no
    credentials, no network)."""
    found: dict[str, int] = {}
    for index, pattern in enumerate(patterns):
        try:
            if "://" in pattern:
                matches = _expand_url(pattern, formats)
            else:
                matches = _expand_local(pattern, base_dir, formats)
        except ImportError as exc:  # fsspec names the package: "Install s3fs to access S3"
            raise InputError(index, f"cannot read {pattern!r}: {exc}") from None
        except Exception as exc:  # the backends raise their own errors (credentials, network, permissions)
            raise InputError(index, f"cannot list {pattern!r}: {type(exc).__name__}: {exc}") from None
        if not matches:
            what = f"no input file ({', '.join(formats)}) in the folder" if _is_folder(pattern, base_dir) else "no file"
            raise InputError(index, f"{what} matches {pattern!r}")
        found.update(matches)
    return [InputFile(path, size) for path, size in sorted(found.items())]


def _is_folder(pattern: str, base_dir: str) -> bool:
    return "://" not in pattern and os.path.isdir(os.path.join(base_dir, pattern))


def _wanted(path: str, formats: tuple[str, ...]) -> bool:
    name = path.rstrip("/").rsplit("/", 1)[-1]
    return not name.startswith(".") and file_format(name) in formats and name.lower().endswith(_suffixes(formats))


def _suffixes(formats: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(s for f in formats for s in FORMATS[f])


def _expand_local(pattern: str, base_dir: str, formats: tuple[str, ...]) -> dict[str, int]:
    path = pattern if os.path.isabs(pattern) else os.path.join(base_dir, pattern)
    names = glob.glob(path, recursive=True) if _GLOB_CHARS & set(pattern) else [path]
    out = {}
    for name in names:
        if os.path.isdir(name):
            for folder, subdirs, files in os.walk(name):
                subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
                for f in files:
                    if _wanted(f, formats):
                        full = os.path.abspath(os.path.join(folder, f))
                        out[full] = os.path.getsize(full)
        elif os.path.isfile(name):
            out[os.path.abspath(name)] = os.path.getsize(name)
    return out


def _expand_url(pattern: str, formats: tuple[str, ...]) -> dict[str, int]:
    fs, path = url_to_fs(pattern)
    paths = fs.glob(path) if _GLOB_CHARS & set(path) else [path]
    out = {}
    for p in paths:
        info = fs.info(p)
        if info.get("type") == "directory":
            for q, sub in fs.find(p, detail=True).items():
                if sub.get("type") == "file" and _wanted(q, formats):
                    out[fs.unstrip_protocol(q)] = int(sub.get("size") or 0)
        elif info.get("type") == "file":
            out[fs.unstrip_protocol(p)] = int(info.get("size") or 0)
    return out


def plan_shards(files: list[InputFile], split_bytes: int) -> list[Shard]:
    """Shards of ``files``: byte ranges of at most ``split_bytes`` for ``.gz`` WARC files, whole files otherwise."""
    shards = []
    for index, f in enumerate(files):
        splittable = file_format(f.path) == "warc" and f.path.endswith(".gz") and f.size > split_bytes
        bounds = range(0, f.size, split_bytes) if splittable else [0]
        for part, start in enumerate(bounds):
            end = min(start + split_bytes, f.size) if splittable else None
            shards.append(Shard(f"{index:06d}-{part:04d}", f.path, start, end))
    return shards
