"""What ``refinery sample`` and the report show of a run's documents: rejected documents per reason
(sampled uniformly), the members of a dedup cluster, and two texts side by side."""

from __future__ import annotations

import random
import textwrap
from collections import Counter

import pyarrow.parquet as pq

from pipeline.rundir import RunDir


def rejected_rows(run: RunDir, reason: str | None = None):
    """Every rejected document of the run (with ``reason`` only, if given), stage by stage, file by file."""
    for stage in run.read_json(run.path("workflow.json"))["stages"]:
        folder = run.path(stage["name"], "rejected")
        if not run.fs.exists(folder):
            continue
        for path in sorted(p for p in run.fs.ls(folder, detail=False) if p.endswith(".parquet")):
            with run.open(path) as f:
                table = pq.read_table(f, filters=[("reason", "=", reason)] if reason else None)
            yield from table.to_pylist()


def sample_rejected(run: RunDir, reason: str, n: int, seed: int = 0) -> list[dict]:
    """Up to ``n`` rejected documents with ``reason`` (uniformly sampled with ``seed``), from every stage."""
    return samples_by_reason(run, n, seed, reason).get(reason, [])


def samples_by_reason(run: RunDir, n: int, seed: int = 0, reason: str | None = None) -> dict[str, list[dict]]:
    """Up to ``n`` rejected documents per reason (or for ``reason`` only), each matching document equally
    likely (reservoir sampling with ``seed``), in one pass over the rejected files."""
    rng = random.Random(seed)
    chosen: dict[str, list[dict]] = {}
    seen: Counter = Counter()
    for row in rejected_rows(run, reason):
        key = row.get("reason") or ""
        seen[key] += 1
        bucket = chosen.setdefault(key, [])
        if len(bucket) < n:
            bucket.append(row)
        elif (j := rng.randrange(seen[key])) < n:
            bucket[j] = row
    return chosen


def cluster_members(run: RunDir, cluster: str) -> list[dict]:
    """Every document of a dedup cluster (its id is the surviving document's id), survivor first."""
    members = []
    for stage in run.read_json(run.path("workflow.json"))["stages"]:
        column = f"{stage['kind']}_cluster"
        for outcome in ("kept", "rejected"):
            folder = run.path(stage["name"], outcome)
            if not run.fs.exists(folder):
                continue
            for path in sorted(p for p in run.fs.ls(folder, detail=False) if p.endswith(".parquet")):
                with run.open(path) as f:
                    if column not in pq.read_schema(f).names:
                        break  # not a clustering stage
                    f.seek(0)
                    table = pq.read_table(f, filters=[(column, "=", cluster)])
                members += [{**row, "stage": stage["name"], "outcome": outcome} for row in table.to_pylist()]
    return sorted(members, key=lambda m: (m["outcome"] != "kept", m["stage"], m["id"]))


def side_by_side(left: str, right: str, width: int = 100, rows: int = 40) -> str:
    """Two texts in two columns, line by line, for comparing near-duplicates in a terminal."""
    half = (width - 3) // 2
    a = [chunk for line in left.splitlines() for chunk in textwrap.wrap(line, half) or [""]]
    b = [chunk for line in right.splitlines() for chunk in textwrap.wrap(line, half) or [""]]
    out = []
    for i in range(min(max(len(a), len(b)), rows)):
        x, y = (a[i] if i < len(a) else ""), (b[i] if i < len(b) else "")
        out.append(f"{x:<{half}} {'|' if x == y else '*'} {y}")
    return "\n".join(out)


def known_reasons(stats: dict) -> list[str]:
    """Every drop reason that occurs in the run."""
    return sorted({r for stage in stats["stages"] for r in stage.get("dropped", {})})
