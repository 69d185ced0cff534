"""Deduplication: the CS336 fixtures, real template pages and planted near-duplicates against exact Jaccard,
MinHash signatures against datasketch's, LSH bands fitted to the threshold, distributed connected components
against union-find, and identical output on one worker or many."""

from __future__ import annotations

import glob
import gzip
import io
import itertools
import json
import os
import random
import shutil
import warnings

import numpy as np
import pyarrow as pa
import pytest
import xxhash
from datasketch import MinHash
from datasketch.lsh import _optimal_param

from filters.dedup import (
    MinHasher,
    MinHashParams,
    candidate_probability,
    jaccard,
    lsh_bands,
    normalize,
    shingle_hashes,
    shingle_set,
)
from filters.extract import HtmlExtractor
from filters.warc import iter_records
from pipeline.engine.executor import LocalExecutor
from pipeline.engine.phases import Work
from pipeline.engine.shuffle import partition_of, read_partition
from pipeline.rundir import RunDir
from pipeline.runner import run_workflow
from pipeline.stages.dedup.components import both_directions, connected_components, write_edges
from pipeline.tools.dedup_files import exact_dedup_files, line_dedup_files, minhash_dedup_files
from pipeline.workflow import load_workflow
from tests.helpers import FIXTURES, WARC_DIR

DEDUP = FIXTURES / "cs336/dedup"


def test_line_dedup_gives_the_cs336_expected_files(tmp_path):
    inputs = sorted(glob.glob(str(DEDUP / "documents_with_line_duplicates/*.txt")))
    written = line_dedup_files(inputs, tmp_path)
    assert [p.name for p in written] == [os.path.basename(p) for p in inputs]
    for path in written:
        assert path.read_bytes() == (DEDUP / "documents_line_deduplicated" / path.name).read_bytes(), path.name


def test_minhash_keeps_one_of_the_two_mit_licenses(tmp_path):
    inputs = [
        DEDUP / "documents_with_fuzzy_duplicates" / name
        for name in ("pytorch_license.txt", "rails_mit_license.txt", "react_mit_license.txt")
    ]
    written = minhash_dedup_files(inputs, tmp_path, num_hashes=100, num_bands=10, ngram_size=5, threshold=0.8)
    assert [p.name for p in written] == ["pytorch_license.txt", "rails_mit_license.txt"]
    assert written[1].read_bytes() == inputs[1].read_bytes()


def test_exact_dedup_compares_normalised_text(tmp_path):
    texts = {"a.txt": "Café, au lait!\n", "b.txt": "cafe au   LAIT", "c.txt": "Cafe au lait?", "d.txt": "Tea."}
    for name, text in texts.items():
        (tmp_path / name).write_text(text)
    inputs = [tmp_path / name for name in texts]
    assert normalize(texts["a.txt"]) == normalize(texts["b.txt"]) == "cafe au lait"
    assert [p.name for p in exact_dedup_files(inputs, tmp_path / "norm")] == ["a.txt", "d.txt"]
    assert [p.name for p in exact_dedup_files(inputs, tmp_path / "raw", normalize=False)] == list(texts)


def ccnet_texts() -> list[str]:
    texts = []
    for name in ("cc_en_head-0091.jsonl.gz", "cc_en_head-0174.jsonl.gz"):
        with gzip.open(FIXTURES / "text/dolma-ccnet" / name, "rt") as f:
            texts += [json.loads(line)["text"] for line in f]
    return texts


# characters where normalisation is subtle: accents (composed and combining), dotted capital I, final sigma,
# underscores, digits in other scripts, a lone surrogate, CJK and emoji
UNICODE_PIECES = ["Café", "cafe\u0301", "İstanbul", "ΟΔΟΣ", "snake_case", "٣٤", "Ⅳ", "x²", "\ud800", "中文", "😀", "ǅ"]


def reference_shingles(text: str, n: int) -> np.ndarray:
    """The documented shingle hash, in Python: XXH64 of each normalised word, folded over the n-gram."""
    words = [xxhash.xxh64_intdigest(w.encode("utf-8", "surrogatepass")) for w in normalize(text).split()]
    width = min(n, len(words))
    out = []
    for j in range(len(words) - width + 1 if words else 0):
        h = words[j]
        for k in range(1, width):
            h = mix64((h * 0x100000001B3 + words[j + k]) % 2**64)
        out.append(mix64(h ^ width))
    return np.array(out, dtype=np.uint64)


def mix64(h: int) -> int:
    h ^= h >> 31
    h = (h * 0xBF58476D1CE4E5B9) % 2**64
    return h ^ (h >> 29)


def test_shingle_hashes_are_xxh64_of_the_normalised_words():
    rng = random.Random(3)
    texts = ccnet_texts()[:2] + ["", "  ...  ", "one", "two words"]
    texts += [" ".join(rng.choices(UNICODE_PIECES + ["a", "B", "-", "  "], k=rng.randrange(1, 40))) for _ in range(300)]
    for text in texts:
        for n in (1, 2, 5):
            assert np.array_equal(shingle_hashes(text, n), reference_shingles(text, n)), (text, n)


@pytest.mark.parametrize("num_hashes", [112, 37, 5])  # 37 and 5: the permutations the wide kernel leaves over
def test_signatures_are_datasketchs_affine64_minhash(num_hashes):
    texts = ccnet_texts()[:12] + ["", "one", " ".join(UNICODE_PIECES)]
    params = MinHashParams(num_hashes=num_hashes, num_bands=1, threshold=1.0)
    signatures, offsets, values = MinHasher(params).signatures_and_sets(texts)
    assert np.array_equal(signatures, MinHasher(params).signatures(texts))
    for i, text in enumerate(texts):
        reference = MinHash(num_perm=num_hashes, seed=params.seed, scheme="affine64", hashfunc=int)
        reference.update_batch(shingle_hashes(text, 5).tolist())
        assert np.array_equal(signatures[i], reference.hashvalues), i
        assert np.array_equal(values[offsets[i] : offsets[i + 1]], shingle_set(text, 5))


def test_bands_are_fitted_to_the_threshold_as_datasketch_fits_them():
    for threshold in (0.3, 0.5, 0.7, 0.8, 0.9):
        for num_hashes in (64, 112):
            assert lsh_bands(threshold, num_hashes, 0.5, 0.5, 0.0) == _optimal_param(threshold, num_hashes, 0.5, 0.5)
    assert MinHashParams().bands == 14 and MinHashParams().rows_per_band == 8  # FineWeb's, at the default 0.8
    for threshold in (0.5, 0.6, 0.7, 0.8, 0.9):
        params = MinHashParams(threshold=threshold)
        assert params.bands * params.rows_per_band <= 112
        assert candidate_probability(threshold, params.bands, params.rows_per_band) >= 0.9, threshold


def test_bands_that_miss_the_threshold_are_warned_with_their_probability():
    with pytest.warns(UserWarning, match=r"14 bands x 8 rows .* threshold \(Jaccard 0.5\) with probability 0.053"):
        MinHashParams(threshold=0.5, num_bands=14)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        MinHashParams(threshold=0.5)
        MinHashParams(threshold=0.8, num_bands=14)


def test_derived_bands_find_what_fixed_bands_miss_at_a_low_threshold(tmp_path):
    """Copies at J = 0.55-0.7 of real documents, deduplicated at threshold 0.5: FineWeb's 14 x 8 bands
    compare such a pair with probability 0.12-0.43; the bands fitted to 0.5 (26 x 3) find nearly all."""
    rng = random.Random(11)
    texts, copies = [], []  # copies: (original, copy)
    for doc in ccnet_texts():
        words = doc.split()
        if len(words) < 150:
            continue
        original = len(texts)
        texts.append(doc)
        for rate in (0.05, 0.06, 0.07):
            copies.append((original, len(texts)))
            texts.append(" ".join(f"x{rng.randrange(10**6)}" if rng.random() < rate else w for w in words))
    paths = []
    for i, text in enumerate(texts):
        paths.append(tmp_path / f"doc{i:03d}.txt")
        paths[-1].write_text(text)
    copies = [(a, b) for a, b in copies if 0.55 <= jaccard(shingle_set(texts[a], 5), shingle_set(texts[b], 5)) < 0.7]
    assert len(copies) >= 20

    def found(**bands):
        kept = {p.name for p in minhash_dedup_files(paths, tmp_path / str(bands), threshold=0.5, **bands)}
        return np.mean([paths[b].name not in kept for _, b in copies])

    assert found() >= 0.95
    with pytest.warns(UserWarning):
        assert found(num_bands=14) < 0.5


def union_find_labels(edges: list[tuple[int, int]]) -> dict[int, int]:
    parent: dict[int, int] = {}

    def find(x):
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in edges:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return {x: find(x) for x in parent}


@pytest.mark.parametrize("partitions", [1, 3, 8])
def test_distributed_components_equal_union_find(tmp_path, partitions):
    rng = random.Random(partitions)
    nodes = rng.sample(range(1, 10**12), 3000)
    edges = [(rng.choice(nodes), rng.choice(nodes)) for _ in range(1500)]  # many small components
    chain = nodes[:400]
    rng.shuffle(chain)
    edges += list(zip(chain, chain[1:]))  # a long path, the worst case for label propagation
    edges += [(nodes[500], x) for x in nodes[501:700]]  # a big star
    edges = [(a, b) for a, b in edges if a != b]
    work = Work(RunDir(str(tmp_path)), "cc-test", LocalExecutor(progress=False))
    producers = 4
    for i in range(producers):
        part = np.array(edges[i::producers], dtype=np.int64)
        write_edges(work.run, work.part("edges", i), both_directions(part[:, 0], part[:, 1]), partitions)
    phase, n = connected_components(work, "edges", producers, partitions, partition_of)
    schema = pa.schema([("node", pa.int64()), ("label", pa.int64())])
    labels = {}
    for p in range(n):
        table = read_partition(work.run, work.parts(phase, n), p, schema)
        assert set(partition_of(table["label"].to_numpy(), n).tolist()) <= {p}
        labels.update(zip(table["node"].to_pylist(), table["label"].to_pylist()))
    assert labels == union_find_labels(edges)


def clueweb_pages(tmp_path) -> list:
    extractor = HtmlExtractor()
    paths = []
    for record in iter_records(io.BytesIO((WARC_DIR / "resiliparse/clueweb-quirk.warc.gz").read_bytes())):
        result = extractor.extract(record, "clueweb")
        if result and result[1] is None:
            paths.append(tmp_path / f"page{len(paths):02d}.txt")
            paths[-1].write_text(result[0]["text"])
    return paths


def components_at(sets: list[np.ndarray], threshold: float) -> list[int]:
    """For each document, the first document (input order) of its component in the exact graph J >= t."""
    edges = [(i, j) for i, j in itertools.combinations(range(len(sets)), 2) if jaccard(sets[i], sets[j]) >= threshold]
    labels = union_find_labels(edges)
    return [labels.get(i, i) for i in range(len(sets))]


def test_template_pages_cluster_exactly_as_their_true_jaccard_graph(tmp_path):
    """29 ClueWeb09 product pages of one shop: near-duplicates at many similarity levels."""
    pages = clueweb_pages(tmp_path)
    assert len(pages) == 29
    sets = [shingle_set(p.read_text(), 5) for p in pages]
    for threshold in (0.55, 0.6, 0.65):
        expected = components_at(sets, threshold)
        survivors = sorted(set(expected))
        assert 1 < len(survivors) < 29  # a real mix of clusters and singletons at this threshold
        # 50 bands of 2 rows: pairs at J >= 0.55 are candidates with probability > 0.9999
        written = minhash_dedup_files(
            pages, tmp_path / f"t{threshold}", num_hashes=100, num_bands=50, threshold=threshold
        )
        assert [p.name for p in written] == [pages[i].name for i in survivors], threshold


def planted_near_duplicates(rng: random.Random) -> tuple[list[str], list[tuple[int, int]]]:
    """Real CCNet documents, each followed by copies with a known share of their words replaced."""
    docs = []
    for name in ("cc_en_head-0091.jsonl.gz", "cc_en_head-0174.jsonl.gz"):
        with gzip.open(FIXTURES / "text/dolma-ccnet" / name, "rt") as f:
            docs += [json.loads(line)["text"] for line in f]
    texts, pairs = [], []
    for doc in docs:
        words = doc.split()
        if len(words) < 150:
            continue
        base = len(texts)
        texts.append(doc)
        for rate in (0.005, 0.01, 0.03, 0.08):
            edited = [f"x{rng.randrange(10**6)}" if rng.random() < rate else w for w in words]
            pairs.append((base, len(texts)))
            texts.append(" ".join(edited))
    return texts, pairs


def test_planted_near_duplicates_against_exact_jaccard(tmp_path):
    texts, pairs = planted_near_duplicates(random.Random(5))
    paths = []
    for i, text in enumerate(texts):
        paths.append(tmp_path / f"doc{i:03d}.txt")
        paths[-1].write_text(text)
    sets = [shingle_set(t, 5) for t in texts]
    similarity = {(a, b): jaccard(sets[a], sets[b]) for a, b in pairs}
    assert min(similarity.values()) < 0.7 < 0.9 < max(similarity.values())
    kept = {p.name for p in minhash_dedup_files(paths, tmp_path / "out")}
    for (_, copy), sim in similarity.items():
        if sim >= 0.85:
            assert paths[copy].name not in kept, (copy, sim)  # found (recall)
    # with verification, a removed document is connected to a kept one by pairs at J >= 0.8 (precision)
    truth = components_at(sets, 0.8)
    for i, path in enumerate(paths):
        if path.name not in kept:
            assert truth[i] != i and paths[truth[i]].name in kept


WORKFLOW = f"""
[run]
name = "dedup"

[input]
paths = ["{WARC_DIR}/resiliparse/*.warc.gz", "{WARC_DIR}/dolma/*.warc.gz", "{WARC_DIR}/pywb/*.warc.gz"]
split_bytes = "64KiB"

[[stages]]
kind = "extract"

[[stages]]
kind = "exact_dedup"
docs_per_partition = 7

[[stages]]
kind = "minhash_dedup"
num_hashes = 100
num_bands = 50
threshold = 0.6
docs_per_partition = 7

[[stages]]
kind = "line_dedup"
docs_per_partition = 7
"""


def dedup_outputs(run_dir: str) -> dict:
    out = {}
    for stage in ("exact_dedup", "minhash_dedup", "line_dedup"):
        for path in sorted(glob.glob(f"{run_dir}/{stage}/*/*.parquet")) + [f"{run_dir}/{stage}/clusters.json"]:
            if os.path.exists(path):
                with open(path, "rb") as f:
                    out[os.path.relpath(path, run_dir)] = f.read()
    return out


@pytest.mark.slow
def test_workflow_output_is_byte_identical_on_one_worker_or_many(tmp_path, ray_session):
    (tmp_path / "wf.toml").write_text(WORKFLOW)
    workflow = load_workflow(str(tmp_path / "wf.toml"))
    local = run_workflow(workflow, output=str(tmp_path / "local"), executor=LocalExecutor(progress=False))
    distributed = run_workflow(workflow, output=str(tmp_path / "ray"), progress=False)
    a, b = dedup_outputs(local["run"]["run_dir"]), dedup_outputs(distributed["run"]["run_dir"])
    assert a == b and len(a) > 50
    minhash = distributed["stages"][2]
    assert minhash["clusters"]["clusters"] >= 2 and minhash["clusters"]["largest"][0]["size"] >= 5
    assert minhash["clusters"]["verified_pairs"] <= minhash["clusters"]["candidate_pairs"]
    assert distributed["stages"][1]["dropped"]["exact_dedup.duplicate"] >= 1
    assert distributed["stages"][3]["events"]["lines_removed"] > 0
    # interrupt the MinHash stage after the fact: its last phases and some shards must be redone
    run_dir = distributed["run"]["run_dir"]
    shutil.rmtree(f"{run_dir}/minhash_dedup/_work/resolve")
    for path in sorted(glob.glob(f"{run_dir}/minhash_dedup/stats/*.json"))[::3]:
        os.remove(path)
    for path in glob.glob(f"{run_dir}/line_dedup/stats/*.json"):
        os.remove(path)
    run_workflow(workflow, output=str(tmp_path / "ray"), progress=False)
    assert dedup_outputs(run_dir) == b


@pytest.mark.slow
def test_survivors_do_not_depend_on_how_files_are_split(tmp_path, ray_session):
    (tmp_path / "wf.toml").write_text(WORKFLOW)
    workflow = load_workflow(str(tmp_path / "wf.toml"))
    small = run_workflow(workflow, output=str(tmp_path / "small"), progress=False)
    workflow.input.split_bytes = 64 << 20
    whole = run_workflow(workflow, output=str(tmp_path / "whole"), progress=False)
    assert small["run"]["shards"] > whole["run"]["shards"]

    def kept(stats, stage):
        import pyarrow.parquet as pq

        table = pq.read_table(f"{stats['run']['run_dir']}/{stage}/kept", columns=["id", "text"])
        return sorted(zip(table["id"].to_pylist(), table["text"].to_pylist()))

    for stage in ("exact_dedup", "minhash_dedup", "line_dedup"):
        assert kept(small, stage) == kept(whole, stage), stage
    assert small["stages"][2]["clusters"] == whole["stages"][2]["clusters"]
