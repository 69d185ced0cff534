"""Load fastText models once per process, from a local path or an fsspec URL (fetched to a local cache)."""

from __future__ import annotations

import functools
import hashlib
import os
import tempfile
from pathlib import Path

MODELS_DIR = Path(__file__).parent / "models"
DEFAULT_LID_MODEL = MODELS_DIR / "lid.176.ftz"


def local_copy(url: str) -> str:
    """A local path for ``url``: the path itself when local, else a cached download (fsspec)."""
    if "://" not in url or url.startswith("file://"):
        path = url.removeprefix("file://")
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
