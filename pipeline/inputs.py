"""Input files of a run and their shards: the units of parallel work, resumption and output.

Shards are sized by content, about ``split_bytes`` of input each: a gzip-compressed WARC larger than that is cut
into byte ranges, each a shard that reads the records whose gzip member starts inside it (see
:mod:`filters.warc`), so one large file is processed by many workers; smaller files of one format are read
together, consecutive ones in a shard up to ``split_bytes``, so a thousand small files do not make a thousand
tiny outputs. An uncompressed file larger than ``split_bytes`` is one shard.
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
    """Bytes ``[start, end)`` of the input file ``path``, then the whole files ``also`` (small files read
    together); ``id`` names its outputs."""

    id: str
    path: str
    start: int
    end: int | None
    also: tuple[str, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "also", tuple(self.also))  # a list when read back from workflow.json

    def parts(self) -> list[tuple[str, int, int | None]]:
        """``(path, start, end)`` of every piece of input the shard reads, in order."""
        return [(self.path, self.start, self.end)] + [(path, 0, None) for path in self.also]

    def describe(self) -> str:
        """The shard's input for a progress label: the path, and how many more files it reads."""
        return self.path + (f" and {len(self.also)} more" if self.also else "")

    def to_json(self) -> dict:
        return {**asdict(self), "also": list(self.also)}


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
            if _is_folder(pattern, base_dir):
                kinds = ", ".join(s for f in formats for s in FORMATS[f])
                raise InputError(index, f"the folder {pattern!r} holds no input files ({kinds})")
            raise InputError(index, f"no file matches {pattern!r}")
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
    """Shards of ``files`` (sorted), of about ``split_bytes`` each: byte ranges of a ``.gz`` WARC larger than
    that, consecutive smaller files of one format together up to ``split_bytes``, any other file alone."""
    shards: list[Shard] = []
    group: list[tuple[int, InputFile]] = []

    def close_group() -> None:
        if group:
            (index, first), rest = group[0], group[1:]
            shards.append(Shard(f"{index:06d}-0000", first.path, 0, None, tuple(f.path for _, f in rest)))
            group.clear()

    for index, f in enumerate(files):
        fmt = file_format(f.path)
        if f.size > split_bytes:
            close_group()
            if fmt == "warc" and f.path.endswith(".gz"):
                pieces = -(-f.size // split_bytes)  # equal ranges, no small remainder
                bounds = [f.size * part // pieces for part in range(pieces + 1)]
                for part in range(pieces):
                    shards.append(Shard(f"{index:06d}-{part:04d}", f.path, bounds[part], bounds[part + 1]))
            else:
                shards.append(Shard(f"{index:06d}-0000", f.path, 0, None))
            continue
        if group and (file_format(group[0][1].path) != fmt or sum(g.size for _, g in group) + f.size > split_bytes):
            close_group()
        group.append((index, f))
    close_group()
    return shards
