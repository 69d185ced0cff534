"""The sides of the dedup benchmark: the project's MinHash stage (run as `minhash_dedup_files` does, with a
per-phase memory meter), and what a user writes with datasketch (MinHash + MinHashLSH) or with rensa (Rust
RMinHash + RMinHashLSH): the same shingles, the same bands x rows, union-find over the candidates."""

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
    """A LocalExecutor that records, per phase, wall and CPU seconds, tasks, the peak RSS of its largest task
    and the most any task added to the RSS it started from (after collecting garbage and releasing Arrow's
    unused memory): the task's own memory, without what the process held before."""
    import gc

    import pyarrow as pa

    from pipeline.engine.executor import LocalExecutor

    class PhaseMeter(LocalExecutor):
        def __init__(self):
            super().__init__(progress=False)
            self.phases: dict[str, dict] = {}

        def map(self, fn, calls, *, shared=None, desc="", **_):
            name = re.sub(r"cc-\d+-", "cc-", desc.split(": ", 1)[-1])  # connected-component rounds together
            entry = self.phases.setdefault(name, {"s": 0.0, "cpu_s": 0.0, "tasks": 0, "peak_mb": 0.0})
            results = []
            for args in calls:
                gc.collect()  # what earlier tasks left in the allocators is not this task's memory
                pa.default_memory_pool().release_unused()
                _reset_peak()
                start_mb = vmhwm_mb()
                t0, c0 = time.perf_counter(), time.process_time()
                results.append(fn(shared, *args))
                entry["s"] += time.perf_counter() - t0
                entry["cpu_s"] += time.process_time() - c0
                entry["tasks"] += 1
                entry["peak_mb"] = max(entry["peak_mb"], vmhwm_mb())
                entry["task_mb"] = max(entry.get("task_mb", 0.0), vmhwm_mb() - start_mb)
            return results

    return PhaseMeter()


def run_stage(
    run, shards, *, threshold: float, verify: bool, docs_per_partition: int = 200_000, profile=None, executor=None
):
    """Run the MinHash stage (all phases, LocalExecutor: this process, one task after the other); wall and CPU
    seconds."""
    from pipeline.engine.executor import LocalExecutor
    from pipeline.stages.base import GlobalContext, output_fields
    from pipeline.stages.dedup.minhash import MinHashDedupStage, MinHashOptions

    shutil.rmtree(run.path(STAGE_NAME), ignore_errors=True)
    stage = MinHashDedupStage(
        name=STAGE_NAME,
        options=MinHashOptions(threshold=threshold, verify=verify, docs_per_partition=docs_per_partition),
    )
    ctx = GlobalContext(run, shards, "files", executor or LocalExecutor(progress=False), output_fields([stage])[0])
    t0, c0 = time.perf_counter(), time.process_time()
    if profile is not None:
        profile.enable()
    stage.run_global(ctx)
    if profile is not None:
        profile.disable()
    return time.perf_counter() - t0, time.process_time() - c0


def timed(fn, *args) -> tuple[float, float]:
    """Wall and CPU seconds of ``fn(*args)`` in this process."""
    t0, c0 = time.perf_counter(), time.process_time()
    fn(*args)
    return time.perf_counter() - t0, time.process_time() - c0


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


# -- library loops -------------------------------------------------------------------------------------------------


def lsh_shape(threshold: float) -> tuple[int, int]:
    """Bands x rows that the project's stage uses at ``threshold`` (112 hashes): the libraries get the same."""
    from filters.dedup import lsh_bands

    return lsh_bands(threshold, 112)


def shingle_strings(text: str) -> list[str]:
    """The stage's shingles as a user builds them: 5-word strings of ``filters.dedup.normalize(text)``."""
    from filters.dedup import normalize

    words = normalize(text).split()
    return [" ".join(words[k : k + 5]) for k in range(max(len(words) - 4, 1))]


def union_find(n: int, candidates) -> np.ndarray:
    """Each document's cluster root (its smallest member) from ``candidates``: (i, [j, ...]) pairs."""
    parent = list(range(n))

    def find(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for i, found in candidates:
        for j in found:
            a, b = find(i), find(j)
            if a != b:
                parent[max(a, b)] = min(a, b)  # the root stays the smallest index: the survivor
    return np.array([find(i) for i in range(n)], dtype=np.int64)


def datasketch_dedup(texts, threshold: float = 0.8) -> np.ndarray:
    """datasketch: a MinHash per document (112 permutations, the affine64 scheme, xxh3 of each shingle string),
    MinHashLSH with the stage's bands x rows, every document queried, union-find. Returns each document's
    cluster root. ``texts`` may be an iterator (read lazily)."""
    from datasketch import MinHash, MinHashLSH

    from filters.dedup import hash64

    lsh = MinHashLSH(num_perm=112, params=lsh_shape(threshold))
    minhashes = []
    for i, text in enumerate(texts):
        m = MinHash(num_perm=112, seed=1, scheme="affine64", hashfunc=hash64)
        m.update_batch([s.encode() for s in shingle_strings(text)])
        lsh.insert(i, m)
        minhashes.append(m)
    return union_find(len(minhashes), ((i, lsh.query(m)) for i, m in enumerate(minhashes)))


def rensa_dedup(texts, threshold: float = 0.8) -> np.ndarray:
    """rensa 0.5: an RMinHash per document over the same shingle strings (bands x rows permutations, seed 1),
    RMinHashLSH with the same bands, every document queried, union-find. Returns each document's cluster
    root."""
    from rensa import RMinHash, RMinHashLSH

    bands, rows = lsh_shape(threshold)
    lsh = RMinHashLSH(threshold=threshold, num_perm=bands * rows, num_bands=bands)
    minhashes = []
    for i, text in enumerate(texts):
        m = RMinHash(num_perm=bands * rows, seed=1)
        m.update(shingle_strings(text))
        lsh.insert(i, m)
        minhashes.append(m)
    return union_find(len(minhashes), ((i, lsh.query(m)) for i, m in enumerate(minhashes)))


LIBRARIES = {"datasketch": datasketch_dedup, "rensa": rensa_dedup}
