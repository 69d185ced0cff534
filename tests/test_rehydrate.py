"""Rehydration (FineWeb-2): survivors of duplicate clusters written as many times as the table says, on real
text (dolma-ccnet pages) copied into clusters of planted sizes that span every row of FineWeb-2's table."""

from __future__ import annotations

import bisect
import glob
import gzip
import json
import random
from collections import Counter

import pyarrow.parquet as pq
import pytest

from pipeline.engine.executor import LocalExecutor
from pipeline.rundir import RunDir
from pipeline.runner import run_workflow
from pipeline.stages.rehydrate import FINEWEB2_WEIGHTS, bucket_labels, buckets, copies_of
from pipeline.workflow import load_workflow
from tests.helpers import FIXTURES
from tests.test_training_shards import documents, run_stage
from tokenizer.shards import ShardReader

PLANTED = [1000, 100, 99, 5, 4, 3, 2]  # cluster sizes of the first pages; the other pages are unique
FINEWEB2_COPIES = {1000: 1, 100: 8, 99: 5, 5: 5, 4: 3, 3: 3, 2: 2, 1: 1}  # the README's list, by hand
WORKFLOW = """
[run]
name = "rehydrate"

[input]
paths = ["docs/*.jsonl"]

[[stages]]
kind = "exact_dedup"

[[stages]]
kind = "tokenize"
vocab_size = 300

[[stages]]
kind = "training_shards"
documents_per_shard = 16
rehydrate = true
cluster_size_column = "exact_dedup_cluster_size"
"""


def fineweb2_reference(size: int) -> int:
    """FineWeb-2's published rehydration block (README, "Deduplication"), for one cluster size."""
    upsampling_weights = {1: 1, 2: 2, 3: 3, 5: 5, 100: 8, 1000: 1}
    limits = sorted(upsampling_weights.keys())
    return upsampling_weights[limits[bisect.bisect_right(limits, size) - 1]]


def test_the_default_table_is_fineweb2s():
    sizes = list(range(1, 3000))
    assert copies_of(buckets(sizes, FINEWEB2_WEIGHTS), FINEWEB2_WEIGHTS).tolist() == [
        fineweb2_reference(s) for s in sizes
    ]
    assert copies_of(buckets([None], FINEWEB2_WEIGHTS), FINEWEB2_WEIGHTS).tolist() == [1]  # in no cluster
    assert bucket_labels(FINEWEB2_WEIGHTS) == [
        "rehydrate.1.x1",
        "rehydrate.2.x2",
        "rehydrate.3-4.x3",
        "rehydrate.5-99.x5",
        "rehydrate.100-999.x8",
        "rehydrate.1000+.x1",
    ]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Real pages, the first ones copied into clusters of the planted sizes, in three JSONL files in a
    seeded order; the workflow above run on them."""
    folder = tmp_path_factory.mktemp("rehydrate")
    pages = []
    for path in sorted((FIXTURES / "text/dolma-ccnet").glob("*.jsonl.gz")):
        with gzip.open(path, "rt") as f:
            pages += [json.loads(line)["text"][:600] for line in f]
    docs = [page for page, size in zip(pages, PLANTED) for _ in range(size)] + pages[len(PLANTED) :]
    random.Random(0).shuffle(docs)
    (folder / "docs").mkdir()
    for part in range(3):
        with open(folder / "docs" / f"part{part}.jsonl", "w") as f:
            f.writelines(json.dumps({"id": f"{part}-{i}", "text": t}) + "\n" for i, t in enumerate(docs[part::3]))
    (folder / "wf.toml").write_text(WORKFLOW)
    workflow = load_workflow(str(folder / "wf.toml"))
    stats = run_workflow(workflow, output=str(folder / "runs"), executor=LocalExecutor(progress=False))
    return workflow, stats["run"]["run_dir"]


def survivors(run_dir: str) -> list[tuple[tuple[int, ...], int]]:
    """Each document the dedup stage kept, as tokenize encoded it (row for row), with its cluster's size."""
    out = []
    for prefix in sorted(glob.glob(f"{run_dir}/tokenize/shards/*.json")):
        shard = ShardReader(prefix)
        name = shard.prefix.rsplit("/", 1)[-1]
        sizes = pq.read_table(f"{run_dir}/exact_dedup/kept/{name}.parquet")["exact_dedup_cluster_size"].to_pylist()
        out += [(tuple(shard.document(i).tolist()), sizes[i] or 1) for i in range(len(shard))]
    return out


def test_rehydration_repeats_exactly_the_documents_the_table_says(run):
    _, run_dir = run
    kept = survivors(run_dir)
    assert sorted(size for _, size in kept) == sorted(PLANTED + [1] * (len(kept) - len(PLANTED)))
    merged = documents(f"{run_dir}/training_shards/shards")
    assert Counter(merged) == Counter({tokens: FINEWEB2_COPIES[size] for tokens, size in kept})
    eight = next(tokens for tokens, size in kept if size == 100)
    places = [i for i, doc in enumerate(merged) if doc == eight]
    assert len(places) == 8 and places[-1] - places[0] > 7  # copies are shuffled apart, not written side by side
    sizes = [len(ShardReader(p)) for p in sorted(glob.glob(f"{run_dir}/training_shards/shards/*.json"))]
    assert sizes[:-1] == [16] * (len(sizes) - 1) and sum(sizes) == len(merged)


def test_the_statistics_count_documents_per_bucket(run):
    _, run_dir = run
    stage = RunDir(run_dir).read_json(f"{run_dir}/stats.json")["stages"][-1]
    unique = stage["docs_in"] - len(PLANTED)
    assert {k: v for k, v in stage["events"].items() if k.startswith("rehydrate.")} == {
        "rehydrate.1.x1": unique,
        "rehydrate.2.x2": 1,
        "rehydrate.3-4.x3": 2,
        "rehydrate.5-99.x5": 2,
        "rehydrate.100-999.x8": 1,
        "rehydrate.1000+.x1": 1,
    }
    assert stage["events"]["documents_written"] == unique + 2 + 3 + 3 + 5 + 5 + 8 + 1


def test_the_table_is_a_parameter(run):
    _, run_dir = run
    folder = run_stage(
        run,
        "own-table",
        documents_per_shard=16,
        rehydrate=True,
        cluster_size_column="exact_dedup_cluster_size",
        upsampling_weights=[(1, 2), (3, 1), (100, 4)],
    )
    own = {1: 2, 2: 2, 3: 1, 4: 1, 5: 1, 99: 1, 100: 4, 1000: 4}
    assert Counter(documents(f"{folder}/shards")) == Counter({tokens: own[size] for tokens, size in survivors(run_dir)})


def test_rehydration_needs_a_cluster_size_column(run):
    with pytest.raises(ValueError, match="no earlier stage writes 'minhash_dedup_cluster_size'"):
        run_stage(run, "no-column", rehydrate=True)
