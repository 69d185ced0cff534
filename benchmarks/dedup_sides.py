"""The two sides of the dedup benchmark: the project's MinHash stage (run as `minhash_dedup_files` does, with
a per-phase memory meter) and a plain datasketch MinHashLSH loop."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import numpy as np

STAGE_NAME = "minhash_dedup"
CLUSTER_COL = f"{STAGE_NAME}_cluster"


# -- our side -----------------------------------------------------------------------------------------------------


def prepare_run(paths: list[Path], run_dir: Path, files_per_shard: int):
    """The input of the stage as ``minhash_dedup_files`` writes it (``files_as_run``), in ``run_dir``."""
    from pipeline.tools.dedup_files import files_as_run

    shutil.rmtree(run_dir, ignore_errors=True)
    return files_as_run(paths, str(run_dir), files_per_shard)


def vmhwm_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as f:  # "5": reset the peak RSS (VmHWM) to the current RSS
        f.write("5")


def phase_meter():
    """A LocalExecutor that records, per phase, seconds, tasks and the peak RSS of its largest task."""
    from pipeline.engine.executor import LocalExecutor

    class PhaseMeter(LocalExecutor):
        def __init__(self):
            super().__init__(progress=False)
            self.phases: dict[str, dict] = {}

        def map(self, fn, calls, *, shared=None, desc="", **_):
            name = re.sub(r"cc-\d+-", "cc-", desc.split(": ", 1)[-1])  # connected-component rounds together
            entry = self.phases.setdefault(name, {"s": 0.0, "tasks": 0, "peak_mb": 0.0})
            results = []
            for args in calls:
                _reset_peak()
                t0 = time.perf_counter()
                results.append(fn(shared, *args))
                entry["s"] += time.perf_counter() - t0
                entry["tasks"] += 1
                entry["peak_mb"] = max(entry["peak_mb"], vmhwm_mb())
            return results

    return PhaseMeter()


def run_stage(
    run, shards, *, threshold: float, verify: bool, docs_per_partition: int = 200_000, profile=None, executor=None
):
    """Run the MinHash stage (all phases, LocalExecutor: this process, one task after the other); seconds."""
    from pipeline.engine.executor import LocalExecutor
    from pipeline.stages.base import GlobalContext, output_fields
    from pipeline.stages.dedup.minhash import MinHashDedupStage, MinHashOptions

    shutil.rmtree(run.path(STAGE_NAME), ignore_errors=True)
    stage = MinHashDedupStage(
        name=STAGE_NAME,
        options=MinHashOptions(threshold=threshold, verify=verify, docs_per_partition=docs_per_partition),
    )
    ctx = GlobalContext(run, shards, "files", executor or LocalExecutor(progress=False), output_fields([stage])[0])
    t0 = time.perf_counter()
    if profile is not None:
        profile.enable()
    stage.run_global(ctx)
    if profile is not None:
        profile.disable()
    return time.perf_counter() - t0


def read_clusters(run, shards) -> dict:
    """id -> (survivor id, removed?) for every document, from the stage's kept and rejected Parquet."""
    import pyarrow.parquet as pq

    out = {}
    for shard in shards:
        for kind in ("kept", "rejected"):
            table = pq.read_table(getattr(run, kind)(STAGE_NAME, shard.id), columns=["id", CLUSTER_COL])
            for doc_id, survivor in zip(table["id"].to_pylist(), table[CLUSTER_COL].to_pylist()):
                out[doc_id] = (survivor or doc_id, kind == "rejected")
    return out


# -- datasketch side ----------------------------------------------------------------------------------------------


def datasketch_dedup(texts) -> tuple[np.ndarray, int]:
    """What a user writes: a MinHash per document over the same shingles, MinHashLSH with 14 bands of 8 rows,
    query every document, union-find. Returns each document's cluster root (its smallest member) and the
    number of documents. ``texts`` may be an iterator (read lazily)."""
    from datasketch import MinHash, MinHashLSH

    from filters.dedup import hash64, normalize

    lsh = MinHashLSH(num_perm=112, params=(14, 8))
    minhashes = []
    for i, text in enumerate(texts):
        m = MinHash(num_perm=112, seed=1, scheme="affine64", hashfunc=hash64)
        words = normalize(text).split()  # the same normalisation and 5-word shingles, built as strings
        m.update_batch([" ".join(words[k : k + 5]).encode() for k in range(max(len(words) - 4, 1))])
        lsh.insert(i, m)
        minhashes.append(m)
    parent = list(range(len(minhashes)))

    def find(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for i, m in enumerate(minhashes):
        for j in lsh.query(m):
            a, b = find(i), find(j)
            if a != b:
                parent[max(a, b)] = min(a, b)  # the root stays the smallest index: the survivor
    return np.array([find(i) for i in range(len(parent))]), len(parent)
