"""Run a workflow on Ray, resumably, with progress bars: consecutive per-shard stages run as one task per
shard; a global stage (deduplication) runs its phases over all shards once the stage before it is done.

Without an address a local Ray starts; with ``--address`` or ``RAY_ADDRESS`` (set for you under
``ray job submit``) the run uses that cluster. A shard whose worker dies is retried by Ray; a shard that
fails for good is reported at the end, and rerunning the same command redoes only unfinished shards.
"""

from __future__ import annotations

import logging
import os
import socket
import time

from pipeline import storage
from pipeline.engine.executor import Executor, RayExecutor
from pipeline.inputs import Shard, plan_shards
from pipeline.locks import FolderLock
from pipeline.report.collect import collect_stats
from pipeline.rundir import RunDir
from pipeline.stages.base import GlobalContext, GlobalStage, ShardContext, Stage, output_fields, process_shard
from pipeline.workflow import Workflow
from tokenizer.errors import ConfigError

log = logging.getLogger("refinery")


def run_workflow(
    workflow: Workflow,
    *,
    output: str | None = None,
    address: str | None = None,
    restart: bool = False,
    num_cpus: int | None = None,
    progress: bool = True,
    executor: Executor | None = None,
) -> dict:
    """Run (or resume) ``workflow``; returns the merged statistics, also written to ``<run>/stats.json``.
    Tasks run on Ray unless an ``executor`` is given (e.g. :class:`~pipeline.engine.executor.LocalExecutor`).
    The run directory is locked for the run's duration (:mod:`pipeline.locks`)."""
    workflow.check_run_dir(workflow.run_dir(output), "--output" if output else "run.output")
    run = RunDir(workflow.run_dir(output))
    with FolderLock(run.url, "run directory"):
        if restart:
            run.remove([s.name for s in workflow.stages])
        elif leftovers := run.remove_leftovers():
            log.info("removed %d temporary files a killed run left in %s", leftovers, run.url)
        plan = plan_shards(workflow.input_files, workflow.input.split_bytes)
        _record_workflow(run, workflow, plan)
        invocation = Invocation(run)
        if executor is None:
            env = storage.worker_env(workflow.storage)
            executor = RayExecutor(progress, address=address, num_cpus=num_cpus, env=env)
        _run_segments(run, workflow, plan, executor, invocation)
        stats = collect_stats(run)
        stats["run"].update(invocation.finish())
        run.write_json(run.path("stats.json"), stats)
    return stats


def _run_segments(run: RunDir, workflow: Workflow, plan: list[Shard], executor, invocation) -> None:
    """Every segment of stages that has work left, in order; finished ones are reported as skipped."""
    fields = output_fields(workflow.stages)
    upstream = None
    position = 0
    for segment in _segments(workflow.stages):
        indexes = range(position, position + len(segment))
        done = [run.done_shards(stage.name) for stage in segment]
        if any(len(d) < len(plan) for d in done):
            _report_resume(segment, done, len(plan))
            if isinstance(segment[0], GlobalStage):
                began = time.perf_counter()
                segment[0].run_global(GlobalContext(run, plan, upstream, executor, fields[position]))
                run.write_json(run.path(segment[0].name, "timing.json"), {"wall_s": time.perf_counter() - began})
            else:
                _run_shards(run, workflow, plan, segment, done, upstream, [fields[i] for i in indexes], executor)
            invocation.checkpoint()
        else:
            log.info("%s: done before, skipped", ", ".join(s.name for s in segment))
        upstream = segment[-1].name
        position += len(segment)


def _report_resume(segment: list[Stage], done: list[set], shards: int) -> None:
    for stage, finished in zip(segment, done):
        if finished:
            log.info("%s: %d of %d shards done before, skipped", stage.name, len(finished), shards)


class Invocation:
    """This invocation's record in ``<run>/invocations/``, so that the run's wall time adds up the
    invocations before it (an interrupted one counts up to its last finished stage)."""

    def __init__(self, run: RunDir):
        self.run = run
        self.started = time.time()
        self.path = run.path("invocations", f"{self.started:.6f}-{socket.gethostname()}-{os.getpid()}.json")
        self.checkpoint()

    def checkpoint(self) -> None:
        self.run.write_json(self.path, {"started": self.started, "wall_s": round(time.time() - self.started, 3)})

    def finish(self) -> dict:
        """Record the end; the run's total wall time and number of invocations."""
        self.checkpoint()
        folder = self.run.path("invocations")
        records = [p for p in self.run.fs.ls(folder, detail=False) if p.endswith(".json")]
        walls = [self.run.read_json(p)["wall_s"] for p in records]
        return {
            "wall_s": round(sum(walls), 3),
            "invocations": len(walls),
            "invocation_wall_s": round(time.time() - self.started, 3),
        }


def _segments(stages: list[Stage]) -> list[list[Stage]]:
    """Consecutive per-shard stages run together in one task per shard; a global stage runs alone."""
    segments: list[list[Stage]] = []
    for stage in stages:
        if isinstance(stage, GlobalStage) or not segments or isinstance(segments[-1][0], GlobalStage):
            segments.append([stage])
        else:
            segments[-1].append(stage)
    return segments


def _record_workflow(run: RunDir, workflow: Workflow, plan: list[Shard]) -> None:
    """Write ``workflow.json``, or check that a rerun uses the workflow the run was started with."""
    path = run.path("workflow.json")
    record = {
        "name": workflow.run.name,
        "file": os.path.abspath(workflow.file),
        "normalized": workflow.normalized(),
        "stages": [{"name": s.name, "kind": s.kind} for s in workflow.stages],
        "shards": [s.to_json() for s in plan],
    }
    if run.exists(path):
        old = run.read_json(path)
        if old["normalized"] != record["normalized"]:
            changed = [k for k in record["normalized"] if old["normalized"].get(k) != record["normalized"][k]]
            raise ConfigError(
                workflow.file,
                ", ".join(changed),
                f"differs from the run in {run.url} started with this name; "
                "use --restart to start it over, or another run name",
            )
        return
    run.write_json(path, record)


def _run_shards(run, workflow, plan, segment, done, upstream, fields, executor) -> None:
    """One task per shard that has a stage of ``segment`` left to do."""
    todo = [(shard, [shard.id in d for d in done]) for shard in plan]
    todo = [(shard, flags) for shard, flags in todo if not all(flags)]
    totals = [0, 0]

    def show(summary: dict, bar) -> None:
        first, last = summary.get(segment[0].name), summary.get(segment[-1].name)
        totals[0] += first[0] if first else 0
        totals[1] += last[1] if last else 0
        bar.set_postfix_str(f"docs {totals[0]:,} in, {totals[1]:,} kept", refresh=False)

    limits = int(workflow.input.max_record_bytes), int(workflow.input.max_document_bytes)
    calls = [(ShardContext(run, shard, workflow.run.on_error, *limits), flags) for shard, flags in todo]
    executor.map(
        _shard_task,
        calls,
        shared=(segment, upstream, fields),
        total=len(plan),
        desc=f"{workflow.run.name}: {', '.join(s.name for s in segment)}",
        labels=[f"shard {shard.id} ({shard.describe()})" for shard, _ in todo],
        on_result=show,
    )


def _shard_task(shared, ctx: ShardContext, done: list[bool]) -> dict:
    segment, upstream, fields = shared
    return process_shard(ctx, segment, done, upstream, fields)
