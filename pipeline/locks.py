"""One process at a time per output folder: a run directory, a training ``out_dir``, a sweep's output.

A lock is the file ``<folder>/.refinery.lock`` (local or on object storage, through fsspec) naming its holder:
host, pid, the process's start time (so a reused pid is not mistaken for the holder) and a heartbeat that a
background thread refreshes. A second process is refused with the holder's name. A lock whose holder is gone
is taken over: on the same host when its process no longer exists; from another host (where the process
cannot be looked up) when its heartbeat is older than :data:`STALE_AFTER_S`. Object stores have no
exclusive create, so a new lock is written, read back after a moment, and kept only if it is still ours.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid

from fsspec.core import url_to_fs

log = logging.getLogger("refinery")
LOCK_NAME = ".refinery.lock"
HEARTBEAT_S = 30.0
STALE_AFTER_S = 300.0
SETTLE_S = 0.2  # object stores: how long to wait before reading a new lock back


class FolderLocked(RuntimeError):
    """Another live process holds the folder."""


def _process_start(pid: int) -> str | None:
    """The start time of process ``pid`` in clock ticks since boot (Linux), to tell a reused pid apart."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return None


def _alive(pid: int, started: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    return started is None or _process_start(pid) in (None, started)


class FolderLock:
    """The lock of ``folder`` for this process; ``what`` names the folder's role in messages."""

    def __init__(self, folder: str, what: str = "folder"):
        self.folder = folder.rstrip("/")
        self.what = what
        self.fs, root = url_to_fs(self.folder)
        self.path = f"{root.rstrip('/')}/{LOCK_NAME}"
        self.token = uuid.uuid4().hex
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _record(self) -> dict:
        pid = os.getpid()
        return {
            "host": socket.gethostname(),
            "pid": pid,
            "process_start": _process_start(pid),
            "token": self.token,
            "heartbeat": time.time(),
        }

    def _read(self) -> dict | None:
        try:
            with self.fs.open(self.path, "r") as f:
                return json.load(f)
        except FileNotFoundError:
            return None
        except (ValueError, OSError):
            return {}  # a torn or unreadable lock: treated as stale

    def _write(self) -> None:
        self.fs.makedirs(self.path.rsplit("/", 1)[0], exist_ok=True)
        with self.fs.open(self.path, "w") as f:
            json.dump(self._record(), f)

    def holder_is_live(self, holder: dict) -> bool:
        """Whether the process that wrote ``holder`` still runs (or, on another host, still beats)."""
        if not holder:
            return False
        if holder.get("host") == socket.gethostname():
            return _alive(int(holder.get("pid", -1)), holder.get("process_start"))
        return time.time() - float(holder.get("heartbeat", 0)) < STALE_AFTER_S

    def acquire(self) -> FolderLock:
        """Take the lock, or raise :class:`FolderLocked` naming the live holder."""
        holder = self._read()
        if holder is not None and holder.get("token") != self.token:
            if self.holder_is_live(holder):
                raise FolderLocked(
                    f"the {self.what} {self.folder} is in use by pid {holder.get('pid')} on {holder.get('host')} "
                    f"(since its lock {self.folder}/{LOCK_NAME} was last refreshed "
                    f"{time.time() - float(holder.get('heartbeat', 0)):.0f} s ago); wait for it to finish, or stop it"
                )
            log.warning(
                "taking over the lock of %s from pid %s on %s, which is gone",
                self.folder,
                holder.get("pid"),
                holder.get("host"),
            )
        self._write()
        if "://" in self.folder and not self.folder.startswith("file://"):
            time.sleep(SETTLE_S)
            if (self._read() or {}).get("token") != self.token:
                raise FolderLocked(f"another process took the lock of the {self.what} {self.folder} at the same time")
        self._thread = threading.Thread(target=self._beat, name="refinery-lock", daemon=True)
        self._thread.start()
        return self

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                if (self._read() or {}).get("token") == self.token:
                    self._write()
            except OSError as exc:  # a storage hiccup: the next beat tries again
                log.warning("could not refresh the lock of %s: %s", self.folder, exc)

    def release(self) -> None:
        """Stop the heartbeat and delete the lock if it is still ours."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            if (self._read() or {}).get("token") == self.token:
                self.fs.rm(self.path)
        except OSError as exc:
            log.warning("could not remove the lock of %s: %s", self.folder, exc)

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


class OutputClaim:
    """A training ``out_dir`` (or a sweep's output) held by this process: locked, and cleared (below it) of
    the temporary files (``*.tmp``, ``*.tmp-*``) that a killed writer left. Under ``torchrun`` only rank 0 takes
    the lock (the other ranks write nothing there)."""

    def __init__(self, folder: str, what: str):
        self.lock = FolderLock(folder, what) if os.environ.get("RANK", "0") == "0" else None

    def __enter__(self) -> OutputClaim:
        if self.lock is not None:
            self.lock.acquire()
            fs, root = self.lock.fs, self.lock.path.rsplit("/", 1)[0]
            if fs.exists(root):
                for path in fs.find(root):
                    name = path.rsplit("/", 1)[-1]
                    if name.endswith(".tmp") or ".tmp-" in name:
                        fs.rm(path)
                        log.info("removed %s, left by a killed run", path)
        return self

    def __exit__(self, *exc) -> None:
        if self.lock is not None:
            self.lock.release()
