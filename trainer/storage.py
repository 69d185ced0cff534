"""Training from and into object storage (``s3://``, ``gs://``, any fsspec URL), through a bounded, verified
local cache: the trainer memory-maps shards and writes checkpoints with a local rename, so remote files are
copied in once and results copied out once.

- **Shards** named by URL (``s3://bucket/run/tokenize/shards/*``) are downloaded into
  ``$REFINERY_CACHE/objects/`` (default ``~/.cache/refinery``), each file under a temporary name then renamed, and
  kept only if its size is what the storage listed; a shard already there with the right size is not fetched
  again. The cache holds at most ``REFINERY_CACHE_BYTES`` (default 64 GiB): a corpus larger than that is refused
  before training starts, with the number to raise.
- **An out_dir** named by URL is mirrored: the run works in a local folder of the cache; at start it fetches
  the remote checkpoint and metrics (so a rerun resumes exactly), and after each checkpoint and at the end it
  uploads metrics, run files and tokenizer first and the checkpoint last. An object appears only when its
  upload completes, so a reader never sees a partial checkpoint; a kill between uploads leaves the previous
  checkpoint, which the rerun resumes from.
- **Single files** (a checkpoint to fine-tune from, a teacher) and **folders** (a tokenizer) by URL are
  fetched into the cache the same way.
"""

from __future__ import annotations

import hashlib
import os
import uuid

DEFAULT_CACHE_BYTES = 64 << 30


def is_url(path: str) -> bool:
    """Whether ``path`` names remote storage (a local path, or ``file://``, does not)."""
    return "://" in str(path) and not str(path).startswith("file://")


def cache_root() -> str:
    root = os.environ.get("REFINERY_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "refinery")
    return os.path.join(root, "objects")


def cache_limit() -> int:
    return int(os.environ.get("REFINERY_CACHE_BYTES", DEFAULT_CACHE_BYTES))


def _fs(url: str):
    from fsspec.core import url_to_fs

    return url_to_fs(url)


def local_folder(url: str) -> str:
    """Where the cache keeps the folder at ``url``: one local folder per remote folder (so a shard's three
    files stay together), named by a hash of the URL."""
    url = url.rstrip("/")
    digest = hashlib.sha256(url.encode()).hexdigest()[:16]
    return os.path.join(cache_root(), f"{digest}-{url.rsplit('/', 1)[-1]}")


def _local_name(url: str) -> str:
    """Where the cache keeps the file at ``url``."""
    folder, _, name = url.rstrip("/").rpartition("/")
    return os.path.join(local_folder(folder), name)


def fetch(url: str, size: int | None = None, local: str = "") -> str:
    """The local copy of the file at ``url`` (downloaded unless the cache holds it with the right size), at
    ``local`` if given."""
    fs, path = _fs(url)
    size = int(fs.info(path)["size"]) if size is None else size
    local = local or _local_name(url)
    if os.path.exists(local) and os.path.getsize(local) == size:
        return local
    os.makedirs(os.path.dirname(local), exist_ok=True)
    tmp = f"{local}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        fs.get_file(path, tmp)
        if os.path.getsize(tmp) != size:
            raise OSError(f"{url}: downloaded {os.path.getsize(tmp)} bytes, the storage lists {size}")
        os.replace(tmp, local)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return local


def fetch_folder(url: str, local: str = "") -> str:
    """The local copy of the files directly in the folder at ``url`` (into ``local`` if given)."""
    fs, path = _fs(url)
    local = local or local_folder(url)
    files = [e for e in fs.ls(path, detail=True) if e["type"] == "file"]
    if not files:
        raise FileNotFoundError(f"no files in {url}")
    for entry in files:
        name = entry["name"].rsplit("/", 1)[-1]
        fetch(fs.unstrip_protocol(entry["name"]), int(entry["size"]), os.path.join(local, name))
    return local


def fetch_checkpoint(url: str) -> str:
    """The local copy of a remote checkpoint file, with the ``tokenizer`` folder beside it (which the
    checkpoint names relative to itself) when there is one."""
    fs, path = _fs(url)
    folder = url.rstrip("/").rsplit("/", 1)[0]
    local = local_folder(folder)
    copy = fetch(url, local=os.path.join(local, url.rsplit("/", 1)[-1]))
    tokenizer = f"{path.rsplit('/', 1)[0]}/tokenizer"
    if fs.exists(f"{tokenizer}/vocab.json"):
        fetch_folder(f"{folder}/tokenizer", os.path.join(local, "tokenizer"))
    return copy


def remote_headers(pattern: str) -> list[str]:
    """The shard headers (``.json``) matching a URL pattern, as paths of its filesystem, sorted."""
    fs, path = _fs(pattern)
    base = path.removesuffix(".bin").removesuffix(".json").removesuffix(".idx")
    return sorted(p for p in fs.glob(base + ".json") or fs.glob(base) if p.endswith(".json"))


def remote_shards(pattern: str) -> list[str]:
    """Local prefixes of the shards matching a URL pattern (their ``.json``, ``.idx`` and ``.bin`` fetched),
    in the order of their URLs; the tokenizer folder beside the shards' folder comes along when there is one."""
    fs, _ = _fs(pattern)
    headers = remote_headers(pattern)
    listed: dict[str, int] = {}
    for folder in dict.fromkeys(p.rsplit("/", 1)[0] for p in headers):
        listed.update({e["name"]: int(e["size"]) for e in fs.ls(folder, detail=True) if e["type"] == "file"})
    prefixes = [h[: -len(".json")] for h in headers if h[: -len(".json")] + ".bin" in listed]
    total = sum(listed[p + s] for p in prefixes for s in (".bin", ".idx", ".json"))
    if total > cache_limit():
        raise OSError(
            f"the shards of {pattern} hold {total:,} bytes, more than the local cache may ({cache_limit():,}); "
            "set REFINERY_CACHE_BYTES higher (and REFINERY_CACHE to a disk with room)"
        )
    local = []
    for prefix in prefixes:
        for suffix in (".bin", ".idx", ".json"):  # the header last: it marks the shard complete
            fetch(fs.unstrip_protocol(prefix + suffix), listed[prefix + suffix])
        local.append(_local_name(fs.unstrip_protocol(prefix)))
    if prefixes:
        tokenizer = prefixes[0].rsplit("/", 2)[0] + "/tokenizer"
        if fs.exists(tokenizer + "/vocab.json"):
            _link_tokenizer(os.path.dirname(local[0]), fetch_folder(fs.unstrip_protocol(tokenizer)))
    return local


def _link_tokenizer(shards_dir: str, target: str) -> None:
    """Make ``<shards folder>/../tokenizer`` of the cached shards point at the cached tokenizer folder, as it
    is on the storage (the trainer looks for the tokenizer there)."""
    link = os.path.join(os.path.dirname(shards_dir), "tokenizer")
    if os.path.realpath(link) != os.path.realpath(target):
        if os.path.islink(link):
            os.remove(link)
        if not os.path.exists(link):
            os.symlink(target, link)


class RemoteOutput:
    """A remote ``out_dir`` worked on through a local mirror (see the module's docstring)."""

    FIRST = ("metrics.jsonl", "training.json")  # uploaded before the checkpoint
    LAST = "checkpoint.pt"

    def __init__(self, url: str):
        self.url = url.rstrip("/")
        self.fs, self.root = _fs(self.url)
        self.local = local_folder(self.url)
        os.makedirs(self.local, exist_ok=True)

    def pull(self) -> None:
        """Fetch the remote checkpoint and metrics (a resumed run starts from them); drop local ones the
        storage does not have (a cache left by a run whose results were deleted)."""
        for name in (self.LAST, *self.FIRST):
            remote, local = f"{self.root}/{name}", os.path.join(self.local, name)
            if self.fs.exists(remote):
                part = f"{local}.part-{uuid.uuid4().hex[:8]}"  # ranks of one node fetch side by side
                self.fs.get_file(remote, part)
                os.replace(part, local)
            elif os.path.exists(local):
                os.remove(local)

    def push(self) -> None:
        """Upload the run's files, the checkpoint last."""
        for name in sorted(os.listdir(self.local)):
            path = os.path.join(self.local, name)
            if name == self.LAST or ".tmp" in name or ".part" in name:
                continue
            if os.path.isdir(path):
                for inner in sorted(os.listdir(path)):
                    self.fs.put_file(os.path.join(path, inner), f"{self.root}/{name}/{inner}")
            else:
                self.fs.put_file(path, f"{self.root}/{name}")
        checkpoint = os.path.join(self.local, self.LAST)
        if os.path.exists(checkpoint):
            self.fs.put_file(checkpoint, f"{self.root}/{self.LAST}")
