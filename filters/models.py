"""Load fastText models once per process, from a local path or an fsspec URL (fetched to a local cache), and
check a local model file when a filter is built: that it exists, is a fastText model and has the labels the
filter needs, reading only its header and dictionary (never the matrices, which hold nearly all its bytes)."""

from __future__ import annotations

import functools
import hashlib
import os
import struct
import tempfile
from pathlib import Path

from tokenizer.errors import invalid, require

MODELS_DIR = Path(__file__).parent / "models"
DEFAULT_LID_MODEL = MODELS_DIR / "lid.176.ftz"

FASTTEXT_MAGIC = 793712314  # the first int32 of every .bin and .ftz that fastText writes
FASTTEXT_VERSION = 12  # the file format this fastText writes and reads (11 is read too)
# fastText's Args::save: dim, ws, epoch, minCount, neg, wordNgrams, loss, model, bucket, minn, maxn, lrUpdateRate, t
_ARGS = struct.Struct("<12id")
_DICTIONARY = struct.Struct("<iiiqq")  # Dictionary::save: entries, words, labels, tokens, pruned-index size


def local_path(url: str) -> str | None:
    """The file a model or list parameter names when it is local (a path or ``file://``); None for a URL."""
    return url.removeprefix("file://") if "://" not in url or url.startswith("file://") else None


def local_copy(url: str) -> str:
    """A local path for ``url``: the path itself when local, else a cached download (fsspec)."""
    path = local_path(url)
    if path is not None:
        if not os.path.exists(path):
            raise FileNotFoundError(f"model file not found: {path}")
        return path
    import fsspec

    cache = Path(os.environ.get("REFINERY_CACHE", Path.home() / ".cache" / "refinery")) / "models"
    cache.mkdir(parents=True, exist_ok=True)
    target = cache / (hashlib.sha256(url.encode()).hexdigest()[:16] + "-" + url.rsplit("/", 1)[-1])
    if not target.exists():
        fd, tmp = tempfile.mkstemp(dir=cache)
        with os.fdopen(fd, "wb") as out, fsspec.open(url, "rb") as src:
            while chunk := src.read(1 << 20):
                out.write(chunk)
        os.replace(tmp, target)
    return str(target)


@functools.lru_cache(maxsize=8)
def load_fasttext(path: str):
    """The fastText model at ``path`` (local or URL), loaded once per process."""
    import fasttext

    fasttext.FastText.eprint = lambda *args, **kwargs: None  # silence the load_model deprecation notice
    return fasttext.load_model(local_copy(path))


def fasttext_labels(path: str) -> list[str]:
    """The labels (without ``__label__``) of the fastText model file at local ``path``, read from its dictionary
    (a NUL-terminated word, an int64 count and an int8 type, 1 for a label, per entry; words come first).

    Raises ValueError naming what is wrong when the file is not a fastText model."""
    with open(path, "rb") as f:
        head = f.read(8 + _ARGS.size + _DICTIONARY.size)
        if len(head) < 8 or struct.unpack_from("<i", head)[0] != FASTTEXT_MAGIC:
            raise ValueError(f"{path} is not a fastText model (its first bytes are not fastText's magic number)")
        version = struct.unpack_from("<i", head, 4)[0]
        if version not in (11, FASTTEXT_VERSION):
            raise ValueError(f"{path} is fastText format version {version}; this fastText reads 11 and 12")
        if len(head) < 8 + _ARGS.size + _DICTIONARY.size:
            raise ValueError(f"{path} is a truncated fastText model")
        entries = _DICTIONARY.unpack_from(head, 8 + _ARGS.size)[0]
        labels, buffer, pos = [], b"", 0
        for _ in range(entries):  # under a microsecond per word: a million-word dictionary is read in a second
            end = buffer.find(b"\0", pos)
            while end < 0 or end + 10 > len(buffer):
                block = f.read(1 << 24)
                if not block:
                    raise ValueError(f"{path} is a truncated fastText model")
                buffer, pos = buffer[pos:] + block, 0
                end = buffer.find(b"\0")
            if buffer[end + 9] == 1:
                labels.append(buffer[pos:end].decode("utf-8", "replace").removeprefix("__label__"))
            pos = end + 10
    return labels


def check_fasttext_file(url: str, param: str, how_to_obtain: str, label: str = "") -> list[str] | None:
    """The labels of the model a filter parameter ``param`` names, after checking that a local file exists, is a
    fastText model and (with ``label``) has that label: a configuration error naming the problem and
    ``how_to_obtain`` otherwise. None for a URL, which is fetched and checked when first used."""
    path = local_path(url)
    if path is None:
        return None
    require(os.path.isfile(path), param, f"no such file: {path}; {how_to_obtain}")
    try:
        labels = fasttext_labels(path)
    except ValueError as exc:
        raise invalid(param, f"{exc}; {how_to_obtain}") from None
    if label:
        require(label in labels, "label", f"{path} has no label {label!r}; its labels: {', '.join(labels)}")
    return labels
