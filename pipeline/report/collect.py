"""A run's statistics, read back: every finished shard's statistics merged per stage (complete run or not),
with the run's settings and the versions that produced it."""

from __future__ import annotations

import json
import sys
from importlib import metadata

from pipeline.rundir import RunDir
from pipeline.stats import merge


def load_stats(run: RunDir) -> dict:
    """``stats.json`` of a finished run; for an unfinished one, the shards done so far, merged now."""
    if not run.exists(run.path("workflow.json")):
        raise FileNotFoundError(f"{run.url} is not a refinery run directory (no workflow.json)")
    path = run.path("stats.json")
    stats = run.read_json(path) if run.exists(path) else None
    if stats is None or not stats["run"].get("complete"):
        stats = collect_stats(run)
    return stats


def collect_stats(run: RunDir) -> dict:
    """Merge the shard statistics of every stage of the run (complete or not) into one document."""
    record = run.read_json(run.path("workflow.json"))
    shard_ids = [s["id"] for s in record["shards"]]
    stages = []
    for stage in record["stages"]:
        paths = [run.shard_stats(stage["name"], sid) for sid in sorted(run.done_shards(stage["name"]))]
        parts = [json.loads(data) for data in run.read_many(paths).values()]
        merged = merge(parts) if parts else {"stage": stage["name"], "kind": stage["kind"], "shards": []}
        merged["shards_done"] = len(merged.pop("shards"))
        for extra, key in (("clusters.json", "clusters"), ("timing.json", "timing")):
            try:
                merged[key] = run.read_json(run.path(stage["name"], extra))
            except FileNotFoundError:
                pass
        stages.append(merged)
    complete = all(s["shards_done"] == len(shard_ids) for s in stages)
    return {
        "run": {
            "name": record["name"],
            "workflow": record["file"],
            "run_dir": run.url,
            "shards": len(shard_ids),
            "inputs": len({p for s in record["shards"] for p in [s["path"], *s.get("also", ())]}),
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
