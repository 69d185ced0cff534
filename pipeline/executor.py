"""Where tasks run: on Ray (a local Ray or a cluster) or in this process, behind one small interface, so
that every stage runs the same code on one worker or many (and tests can compare the two)."""

from __future__ import annotations

import logging
import sys
from typing import Any, Callable

from tqdm import tqdm

log = logging.getLogger("refinery")
TASK_RETRIES = 3


class RunFailed(Exception):
    """Some tasks failed for good; the others are complete, and a rerun resumes."""


class Executor:
    """Runs ``fn(shared, *args)`` for every ``args`` in ``calls``; results come back in the order of calls."""

    def __init__(self, progress: bool = True):
        self.progress = progress

    def map(
        self,
        fn: Callable,
        calls: list[tuple],
        *,
        shared: Any = None,
        desc: str = "",
        labels: list[str] | None = None,
        total: int | None = None,
        on_result: Callable[[Any, tqdm], None] | None = None,
    ) -> list:
        """``labels`` name the calls in failure messages; ``total`` sizes the progress bar when some work was
        done before (resumed runs); ``on_result`` updates the bar's text as results arrive."""
        raise NotImplementedError  # pragma: no cover - interface

    def _bar(self, desc: str, n: int, total: int | None) -> tqdm:
        total = n if total is None else total
        return tqdm(
            total=total,
            initial=total - n,
            desc=desc,
            unit="task",
            disable=not self.progress,
            file=sys.stderr,
            dynamic_ncols=True,
        )


class LocalExecutor(Executor):
    """Every task in this process, one after the other."""

    def map(self, fn, calls, *, shared=None, desc="", labels=None, total=None, on_result=None):
        results = []
        with self._bar(desc, len(calls), total) as bar:
            for args in calls:
                result = fn(shared, *args)
                results.append(result)
                if on_result:
                    on_result(result, bar)
                bar.update(1)
        return results


class RayExecutor(Executor):
    """Tasks of one CPU on Ray, at most twice as many in flight as the cluster has CPUs; a task whose worker
    dies is retried; tasks that fail for good are reported together after the others finished."""

    def map(self, fn, calls, *, shared=None, desc="", labels=None, total=None, on_result=None):
        import ray

        task = ray.remote(num_cpus=1, max_retries=TASK_RETRIES, retry_exceptions=[OSError])(_call)
        shared_ref = ray.put(shared)
        window = max(2, 2 * int(ray.cluster_resources().get("CPU", 1)))
        labels = labels or [str(i) for i in range(len(calls))]
        results: list = [None] * len(calls)
        pending: dict = {}
        failures: list[tuple[str, str]] = []
        queue = list(reversed(range(len(calls))))
        with self._bar(desc, len(calls), total) as bar:
            while queue or pending:
                while queue and len(pending) < window:
                    i = queue.pop()
                    pending[task.remote(fn, shared_ref, *calls[i])] = i
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    i = pending.pop(ref)
                    try:
                        results[i] = ray.get(ref)
                    except Exception as exc:  # noqa: BLE001 - one failed task must not stop the others
                        cause = getattr(exc, "cause", None) or exc  # a RayTaskError wraps the task's exception
                        failures.append((labels[i], f"{type(cause).__name__}: {cause}"))
                        log.error("%s %s failed: %s", desc, labels[i], exc)
                        continue
                    if on_result:
                        on_result(results[i], bar)
                    bar.update(1)
        if failures:
            listing = "; ".join(f"{label}: {err.splitlines()[0][:200]}" for label, err in failures[:5])
            raise RunFailed(
                f"{desc}: {len(failures)} of {len(calls)} tasks failed ({listing}). Finished work is "
                "kept: rerun the same command to redo only what failed."
            )
        return results


def _call(fn, shared, *args):
    logger = logging.getLogger("refinery")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("refinery %(levelname)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.WARNING)
    return fn(shared, *args)
