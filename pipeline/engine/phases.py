"""The intermediate work of a global stage: phases of tasks whose outputs are partitioned files under
``<run>/<stage>/_work/<phase>/``. A phase that finished (all its tasks) is marked and skipped on a rerun,
so an interrupted stage resumes at the phase it was in."""

from __future__ import annotations

import logging
from typing import Any, Callable

from pipeline.engine.executor import Executor
from pipeline.rundir import RunDir

log = logging.getLogger("refinery")


class Work:
    """Phases of one global stage."""

    def __init__(self, run: RunDir, stage: str, executor: Executor):
        self.run = run
        self.stage = stage
        self.executor = executor

    def part(self, phase: str, i: int) -> str:
        """The file that task ``i`` of ``phase`` writes."""
        return self.run.path(self.stage, "_work", phase, f"part-{i:05d}.parquet")

    def parts(self, phase: str, n: int) -> list[str]:
        """The files of all ``n`` tasks of ``phase``."""
        return [self.part(phase, i) for i in range(n)]

    def phase(self, phase: str, fn: Callable, calls: list[tuple], *, shared: Any = None, mark: bool = True) -> list:
        """Run ``fn(shared, *call)`` for every call unless ``phase`` already finished; its results (small,
        JSON-serialisable) are kept with the marker and returned either way. A phase with ``mark=False``
        always runs: the final write, whose tasks skip the shards already written."""
        marker = self.run.path(self.stage, "_work", phase, "_SUCCESS.json")
        if mark:
            try:
                results = self.run.read_json(marker)["results"]
                log.info("%s: phase %s done before, skipped", self.stage, phase)
                return results
            except FileNotFoundError:
                pass
        results = self.executor.map(
            fn, calls, shared=shared, desc=f"{self.stage}: {phase}", labels=[f"task {i}" for i in range(len(calls))]
        )
        if mark:
            self.run.write_json(marker, {"results": results})
        return results
