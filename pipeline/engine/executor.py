"""Where tasks run: on Ray (a local Ray or a cluster) or in this process, behind one small interface, so
that every stage, and every sweep trial, runs the same code on one worker or many (and tests can compare
the two). A task's resources (CPUs, GPUs) are given per call of :meth:`Executor.map`; a task that fails
for good is either reported with the others at the end (:class:`RunFailed`) or, with ``on_failure``,
turned into a result of its own (a sweep's ``failed`` row)."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from typing import Any, Callable

from tqdm import tqdm

log = logging.getLogger("refinery")
TASK_RETRIES = 3


class RunFailed(Exception):
    """Some tasks failed for good; the others are complete, and a rerun resumes."""


@dataclass(frozen=True)
class Resources:
    """What one task holds while it runs."""

    cpus: float = 1.0
    gpus: float = 0.0


@dataclass
class Job:
    """One :meth:`Executor.map` call: ``fn(shared, *args)`` for every ``args`` of ``calls``."""

    fn: Callable
    calls: list[tuple]
    shared: Any
    desc: str
    labels: list[str]
    resources: Resources
    on_result: Callable[[Any, tqdm], None] | None
    on_failure: Callable[[int, str], Any] | None

    def finished(self, i: int, result: Any, results: list, bar: tqdm) -> None:
        results[i] = result
        if self.on_result:
            self.on_result(result, bar)
        bar.update(1)


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
        resources: Resources | None = None,
        on_failure: Callable[[int, str], Any] | None = None,
        unit: str = "task",
    ) -> list:
        """``labels`` name the calls in failure messages; ``total`` sizes the progress bar when some work was
        done before (resumed runs); ``on_result`` sees each result as it arrives (and may update the bar's
        text); ``on_failure(index, error)`` makes a call that failed for good a result instead of an error;
        ``resources`` are what each task holds (default one CPU)."""
        labels = labels or [str(i) for i in range(len(calls))]
        job = Job(fn, calls, shared, desc, labels, resources or Resources(), on_result, on_failure)
        total = len(calls) if total is None else total
        bar = tqdm(
            total=total,
            initial=total - len(calls),
            desc=desc,
            unit=unit,
            disable=not self.progress,
            file=sys.stderr,
            dynamic_ncols=True,
        )
        with bar:
            results, failures = self._run(job, bar)
        if failures:
            listing = "; ".join(f"{label}: {err.splitlines()[0][:200]}" for label, err in failures[:5])
            raise RunFailed(
                f"{desc}: {len(failures)} of {len(calls)} tasks failed ({listing}). Finished work is "
                "kept: rerun the same command to redo only what failed."
            )
        return results

    def _run(self, job: Job, bar: tqdm) -> tuple[list, list[tuple[str, str]]]:
        """The results in call order, and (label, error) of the calls that failed for good."""
        raise NotImplementedError  # pragma: no cover - interface


class LocalExecutor(Executor):
    """Every task in this process, one after the other; a task that raises stops the map (unless
    ``on_failure`` turns it into a result)."""

    def _run(self, job, bar):
        results: list = [None] * len(job.calls)
        for i, args in enumerate(job.calls):
            try:
                result = job.fn(job.shared, *args)
            except Exception as exc:
                if job.on_failure is None:
                    raise
                result = job.on_failure(i, f"{type(exc).__name__}: {exc}")
            job.finished(i, result, results, bar)
        return results, []


class RayExecutor(Executor):
    """Tasks on Ray with the given resources, at most twice as many in flight as the cluster can run at once;
    a task whose worker dies (or that raises ``OSError``) is retried; tasks that fail for good are reported
    together after the others finished, or become results through ``on_failure``. Ray is connected to (or a
    local Ray started, see :func:`pipeline.engine.cluster.connect`) at the first task, so work that turns out
    to be done already never starts it."""

    def __init__(
        self,
        progress: bool = True,
        *,
        address: str | None = None,
        num_cpus: int | None = None,
        env: dict[str, str] | None = None,
    ):
        """``env``: environment variables of every task (storage settings and credentials), given to Ray as
        the tasks' runtime environment."""
        super().__init__(progress)
        self.address, self.num_cpus, self.env = address, num_cpus, env or {}

    def missing(self, need: Resources) -> dict[str, tuple[float, float]]:
        """What one task asks for beyond what the whole cluster has, as ``{"cpus" | "gpus": (asked, has)}``
        (connecting first): such a task would wait forever."""
        from pipeline.engine.cluster import capacity, connect

        connect(self.address, self.num_cpus)
        have = capacity()
        asked = {"cpus": (need.cpus, have["CPU"]), "gpus": (need.gpus, have["GPU"])}
        return {name: pair for name, pair in asked.items() if pair[0] > pair[1]}

    def _run(self, job, bar):
        import ray

        from pipeline.engine.cluster import connect

        connect(self.address, self.num_cpus)
        r = job.resources
        task = ray.remote(num_cpus=r.cpus, num_gpus=r.gpus, max_retries=TASK_RETRIES, retry_exceptions=[OSError])(_call)
        if self.env:
            task = task.options(runtime_env={"env_vars": self.env})
        shared_ref = ray.put(job.shared)
        window = _window(ray.cluster_resources(), r)
        results: list = [None] * len(job.calls)
        pending: dict = {}
        failures: list[tuple[str, str]] = []
        queue = list(reversed(range(len(job.calls))))
        while queue or pending:
            while queue and len(pending) < window:
                i = queue.pop()
                pending[task.remote(job.fn, shared_ref, *job.calls[i])] = i
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                i = pending.pop(ref)
                try:
                    result = ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - one failed task must not stop the others
                    cause = getattr(exc, "cause", None) or exc  # a RayTaskError wraps the task's exception
                    error = f"{type(cause).__name__}: {cause}"
                    if job.on_failure is None:
                        failures.append((job.labels[i], error))
                        log.error("%s %s failed: %s", job.desc, job.labels[i], exc)
                        continue
                    result = job.on_failure(i, error)
                job.finished(i, result, results, bar)
        return results, failures


def _window(cluster: dict, resources: Resources) -> int:
    """Tasks in flight at once: twice what the cluster can run side by side."""
    fit = cluster.get("CPU", 1) / resources.cpus if resources.cpus else 1
    if resources.gpus:
        fit = min(fit, cluster.get("GPU", 0) / resources.gpus)
    return max(2, 2 * int(fit))


def _call(fn, shared, *args):
    from pipeline.storage import apply_env

    apply_env()
    logger = logging.getLogger("refinery")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("refinery %(levelname)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.WARNING)
    return fn(shared, *args)
