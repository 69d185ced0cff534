"""Run a workflow on Ray: one task per shard (the shard's chain of stages), resumable, with a progress bar.

Without an address a local Ray starts; with ``--address`` or ``RAY_ADDRESS`` (set for you under
``ray job submit``) the run uses that cluster. A shard whose worker dies is retried by Ray; a shard that
fails for good is reported at the end, and rerunning the same command redoes only unfinished shards.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from importlib import metadata

import ray
from tqdm import tqdm

from pipeline.inputs import Shard, plan_shards
from pipeline.rundir import RunDir
from pipeline.schema import ConfigError
from pipeline.stages import ShardContext, process_shard
from pipeline.stats import merge
from pipeline.workflow import Workflow

log = logging.getLogger("refinery")
TASK_RETRIES = 3


class RunFailed(Exception):
    """Some shards failed for good; the others are complete, and a rerun resumes."""


def connect(address: str | None = None, num_cpus: int | None = None) -> None:
    """Connect to the Ray cluster at ``address`` (or ``RAY_ADDRESS``), else start a local Ray on loopback."""
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, logging_level=logging.WARNING)
        return
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(num_cpus=num_cpus, include_dashboard=False, _node_ip_address="127.0.0.1", logging_level=logging.WARNING)


def run_workflow(
    workflow: Workflow,
    *,
    output: str | None = None,
    address: str | None = None,
    restart: bool = False,
    num_cpus: int | None = None,
    progress: bool = True,
) -> dict:
    """Run (or resume) ``workflow``; returns the merged statistics, also written to ``<run>/stats.json``."""
    run = RunDir(workflow.run_dir(output))
    if restart:
        run.remove()
    plan = plan_shards(workflow.input_files, workflow.input.split_bytes)
    _record_workflow(run, workflow, plan)
    done = [run.done_shards(stage.name) for stage in workflow.stages]
    todo = [(shard, [shard.id in d for d in done]) for shard in plan]
    todo = [(shard, flags) for shard, flags in todo if not all(flags)]
    started = time.time()
    if todo:
        connect(address, num_cpus)
        _execute(run, workflow, todo, total=len(plan), progress=progress)
    stats = collect_stats(run)
    stats["run"]["wall_s"] = round(time.time() - started, 3)
    run.write_json(run.path("stats.json"), stats)
    return stats


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


def _execute(run: RunDir, workflow: Workflow, todo: list, *, total: int, progress: bool) -> None:
    task = ray.remote(num_cpus=1, max_retries=TASK_RETRIES, retry_exceptions=[OSError])(_shard_task)
    stages_ref = ray.put(workflow.stages)
    window = max(2, 2 * int(ray.cluster_resources().get("CPU", 1)))
    pending: dict = {}
    failures: list[tuple[str, str]] = []
    queue = list(reversed(todo))
    totals = [0, 0]
    bar = tqdm(
        total=total,
        initial=total - len(todo),
        unit="shard",
        desc=workflow.run.name,
        disable=not progress,
        file=sys.stderr,
        dynamic_ncols=True,
    )
    with bar:
        while queue or pending:
            while queue and len(pending) < window:
                shard, done = queue.pop()
                ctx = ShardContext(run, shard, workflow.run.on_error, int(workflow.input.max_record_bytes))
                pending[task.remote(ctx, stages_ref, done)] = shard
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                shard = pending.pop(ref)
                try:
                    summary = ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - a failed shard must not stop the others
                    cause = getattr(exc, "cause", None) or exc  # a RayTaskError wraps the task's own exception
                    failures.append((shard.id, f"{type(cause).__name__}: {cause}"))
                    log.error("shard %s (%s) failed: %s", shard.id, shard.path, exc)
                    continue
                first, last = summary.get(workflow.stages[0].name), summary.get(workflow.stages[-1].name)
                totals[0] += first[0] if first else 0
                totals[1] += last[1] if last else 0
                bar.set_postfix_str(f"docs {totals[0]:,} in, {totals[1]:,} kept", refresh=False)
                bar.update(1)
    if failures:
        listing = "; ".join(f"{sid}: {err.splitlines()[0][:200]}" for sid, err in failures[:5])
        raise RunFailed(
            f"{len(failures)} of {total} shards failed ({listing}). Finished shards are kept: "
            "rerun the same command to redo only the failed ones."
        )


def _shard_task(ctx: ShardContext, stages, done: list[bool]) -> dict:
    logger = logging.getLogger("refinery")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("refinery %(levelname)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.WARNING)
    return process_shard(ctx, stages, done)


def collect_stats(run: RunDir) -> dict:
    """Merge the shard statistics of every stage of the run (complete or not) into one document."""
    record = run.read_json(run.path("workflow.json"))
    shard_ids = [s["id"] for s in record["shards"]]
    stages = []
    for stage in record["stages"]:
        paths = [run.shard_stats(stage["name"], sid) for sid in sorted(run.done_shards(stage["name"]))]
        parts = [json.loads(data) for data in run.fs.cat(paths).values()] if paths else []
        merged = merge(parts) if parts else {"stage": stage["name"], "kind": stage["kind"], "shards": []}
        merged["shards_done"] = len(merged.pop("shards"))
        stages.append(merged)
    complete = all(s["shards_done"] == len(shard_ids) for s in stages)
    return {
        "run": {
            "name": record["name"],
            "workflow": record["file"],
            "run_dir": run.url,
            "shards": len(shard_ids),
            "inputs": len({s["path"] for s in record["shards"]}),
            "complete": complete,
            "versions": _versions(),
        },
        "stages": stages,
    }


def _versions() -> dict:
    out = {"python": sys.version.split()[0]}
    for dist in ("refinery", "ray", "resiliparse", "fasttext-community", "pyarrow", "numpy"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out
