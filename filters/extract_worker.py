"""resiliparse's HTML-to-text extraction in a child process, so that one document can be given a time limit.

resiliparse extracts in native code that no Python-level watchdog interrupts: neither ``SIGALRM`` with a
handler nor resiliparse's own ``time_guard`` stops a 5-second extraction before it returns (measured), and
main-content extraction takes time quadratic in the nesting of the markup. So each process that extracts
keeps one child (``python -m filters.extract_worker``) and sends it one document at a time through pipes;
a document that takes longer than its limit gets the child killed (:class:`ExtractionTimeout`) and the next
document a new child (about 20 ms to start). This works the same in the driver, in Ray workers (whatever
thread a task runs in) and in pool processes. The child also sets an alarm of its own, whose default action
ends it even inside native code, so it cannot outlive a parent that was killed mid-document.
"""

from __future__ import annotations

import atexit
import os
import select
import signal
import struct
import subprocess
import sys
import threading
import time

_REQUEST = struct.Struct("<BdQ")  # option flags, the child's own alarm in seconds, payload length
_RESPONSE = struct.Struct("<BQ")  # status, payload length
_MAIN_CONTENT, _ALT_TEXTS, _LIST_BULLETS = 1, 2, 4
_OK, _FAILED = 0, 1
_READY = b"r"
CHILD_GRACE_S = 1.0  # the child's own alarm fires this long after the parent's limit
STARTUP_TIMEOUT_S = 60.0  # for the child to start and import resiliparse (seconds on a loaded machine)


class ExtractionTimeout(Exception):
    """The extraction of a document took longer than its limit (its process was killed)."""


class ExtractionFailed(Exception):
    """resiliparse raised on a document, or the extraction process died; the message says which."""


def extract_text(
    html: str, *, timeout_s: float, main_content: bool = True, alt_texts: bool = True, list_bullets: bool = True
) -> str:
    """The text of ``html`` as resiliparse extracts it, computed in this process's extraction child within
    ``timeout_s`` seconds; raises :class:`ExtractionTimeout` or :class:`ExtractionFailed`."""
    flags = _MAIN_CONTENT * main_content | _ALT_TEXTS * alt_texts | _LIST_BULLETS * list_bullets
    payload = html.encode("utf-8", "surrogatepass")
    with _lock:
        try:
            return _child().extract(payload, flags, timeout_s)
        except BrokenPipeError:  # the child died between documents (killed from outside): once more, new child
            return _child().extract(payload, flags, timeout_s)


class _Child:
    """One extraction child process and its pipes."""

    def __init__(self):
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "filters.extract_worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            start_new_session=True,  # a Ctrl-C in the terminal is the parent's to handle
        )
        self.pid = os.getpid()  # the process that owns this child (a forked copy must start its own)
        try:  # the child says it is ready once resiliparse is imported: a document's clock starts after that
            if self._read(1, time.monotonic() + STARTUP_TIMEOUT_S) != _READY:
                raise ExtractionFailed("the extraction process sent no ready signal")
        except BaseException:
            self.close()
            raise

    def extract(self, payload: bytes, flags: int, timeout_s: float) -> str:
        deadline = time.monotonic() + timeout_s
        try:
            _write_all(self.proc.stdin.fileno(), _REQUEST.pack(flags, timeout_s + CHILD_GRACE_S, len(payload)))
            _write_all(self.proc.stdin.fileno(), payload)
            status, size = _RESPONSE.unpack(self._read(_RESPONSE.size, deadline))
            text = self._read(size, deadline).decode("utf-8", "surrogatepass")
        except BaseException:
            self.close()
            raise
        if status != _OK:
            raise ExtractionFailed(text)
        return text

    def _read(self, n: int, deadline: float) -> bytes:
        fd, parts, have = self.proc.stdout.fileno(), [], 0
        poller = select.poll()  # not select(): a Ray worker may hold file descriptors above 1024
        poller.register(fd, select.POLLIN)
        while have < n:
            left = deadline - time.monotonic()
            if left <= 0 or not poller.poll(left * 1000):
                raise ExtractionTimeout(f"no answer in time; extraction process {self.proc.pid} killed")
            data = os.read(fd, min(n - have, 1 << 20))
            if not data:
                code = self.proc.wait()
                raise ExtractionFailed(f"the extraction process died (exit status {code})")
            parts.append(data)
            have += len(data)
        return b"".join(parts)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            try:
                pipe.close()
            except OSError:
                pass


_lock = threading.Lock()
_current: _Child | None = None


def _child() -> _Child:
    """This process's extraction child, started when there is none (or it was killed, or we are a fork)."""
    global _current
    if _current is None or _current.pid != os.getpid() or _current.proc.poll() is not None:
        if _current is not None and _current.pid == os.getpid():
            _current.close()
        _current = _Child()
    return _current


@atexit.register
def _stop_child() -> None:
    if _current is not None and _current.pid == os.getpid():
        _current.close()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _read_exact(fd: int, n: int) -> bytes | None:
    parts, have = [], 0
    while have < n:
        data = os.read(fd, min(n - have, 1 << 20))
        if not data:
            return None
        parts.append(data)
        have += len(data)
    return b"".join(parts)


def _serve() -> None:
    """The child: extract documents from stdin until it closes, one reply each on stdout."""
    from resiliparse.extract.html2text import extract_plain_text

    signal.signal(signal.SIGALRM, signal.SIG_DFL)  # the alarm ends the process, even inside native code
    rfd, wfd = sys.stdin.fileno(), sys.stdout.fileno()
    _write_all(wfd, _READY)
    while (head := _read_exact(rfd, _REQUEST.size)) is not None:
        flags, alarm_s, size = _REQUEST.unpack(head)
        html = (_read_exact(rfd, size) or b"").decode("utf-8", "surrogatepass")
        signal.setitimer(signal.ITIMER_REAL, alarm_s)
        try:
            text, status = (
                extract_plain_text(
                    html,
                    main_content=bool(flags & _MAIN_CONTENT),
                    alt_texts=bool(flags & _ALT_TEXTS),
                    list_bullets=bool(flags & _LIST_BULLETS),
                ),
                _OK,
            )
        except Exception as exc:  # resiliparse raises on pathological markup: the parent reports it
            text, status = f"{type(exc).__name__}: {exc}", _FAILED
        signal.setitimer(signal.ITIMER_REAL, 0)
        out = text.encode("utf-8", "surrogatepass")
        _write_all(wfd, _RESPONSE.pack(status, len(out)) + out)


if __name__ == "__main__":
    _serve()
