"""``paragraph_dedup`` (Bloom filter) on real pages: the filter's false-positive rate against its stated bound,
the stage against an exact paragraph dedup written here with sets of word tuples (equal when the filter is
large, wrong only by removing more when it is small, within the bound), and the output of the new
corpus-wide stages (``paragraph_dedup``, ``sentence_dedup``) byte-identical on one worker or through Ray,
however the files were split."""

from __future__ import annotations

import glob
import gzip
import json
import os

import numpy as np
import pyarrow.parquet as pq
import pytest

from filters.bloom import BloomFilter, bits_for
from filters.dedup import normalize, shingle_hashes
from pipeline.engine.executor import LocalExecutor
from pipeline.runner import run_workflow
from pipeline.workflow import load_workflow
from tests.helpers import FIXTURES, WARC_DIR


def real_texts() -> list[str]:
    texts = [(FIXTURES / "cs336/high_quality_wiki_reference.txt").read_text()]
    texts.append((FIXTURES / "cs336/bpe/corpus.en").read_text())
    for name in ("cc_en_head-0091.jsonl.gz", "cc_en_head-0174.jsonl.gz"):
        with gzip.open(FIXTURES / "text/dolma-ccnet" / name, "rt") as f:
            texts += [json.loads(line)["text"] for line in f]
    return texts


@pytest.mark.parametrize("rate", [0.1, 0.02])
def test_bloom_false_positives_match_the_stated_bound(rate):
    """Keys: 5-gram hashes of real text; half go in, the other half (less those truly in) are asked."""
    texts = real_texts()
    inside = np.unique(np.concatenate([shingle_hashes(t, 5) for t in texts[::2]]))
    outside = np.setdiff1d(np.unique(np.concatenate([shingle_hashes(t, 5) for t in texts[1::2]])), inside)
    assert len(inside) > 15_000 and len(outside) > 15_000
    bloom = BloomFilter.for_keys(len(inside), rate)
    assert bloom.bits == bits_for(len(inside), rate) and bloom.nbytes == bloom.bits // 8
    bloom.add(inside)
    assert bloom.contains(inside).all()  # never a false negative
    measured = bloom.contains(outside).mean()
    bound = bloom.bound(len(inside))
    assert abs(bound - rate) < 0.1 * rate
    sigma = (bound * (1 - bound) / len(outside)) ** 0.5
    assert abs(measured - bound) < 4 * sigma, (measured, bound)
    assert abs(bloom.fill() ** bloom.hashes - bound) < 0.1 * bound


def test_seen_then_add_keeps_a_group_from_seeing_itself():
    keys = np.array([1, 2, 1, 3, 2, 2, 4], dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    groups = np.array([0, 0, 0, 1, 1, 1, 2])
    bloom = BloomFilter.for_keys(100, 1e-9)
    # group 0 repeats key 1 (not seen: same group); group 1 repeats key 2 of group 0 (seen), twice
    assert bloom.seen_then_add(keys, groups).tolist() == [False, False, False, False, True, True, False]
    assert bloom.seen_then_add(keys[:2], np.array([9, 9])).tolist() == [True, True]


# -- the stage against exact dedup ------------------------------------------------------------------------


def exact_paragraph_dedup(docs: list[dict], ngram_size: int, min_words: int, p_threshold: float, d_threshold: float):
    """For each document in input order: (paragraphs removed, dropped?) with sets of word tuples, no hashing."""
    seen: set = set()
    out = []
    for doc in docs:
        paragraphs = doc["text"].split("\n")
        keys = []
        for paragraph in paragraphs:
            words = tuple(normalize(paragraph).split())
            if not words or len(words) < min_words:
                keys.append([])
            elif ngram_size and len(words) >= ngram_size:
                keys.append(list(zip(*(words[i:] for i in range(ngram_size)))))
            else:
                keys.append([words])
        hits = []
        for ks in keys:  # a paragraph sees the paragraphs before it, its own document's included
            hits.append(sum(k in seen for k in ks))
            seen.update(ks)
        total = sum(map(len, keys))
        removed = [i for i, ks in enumerate(keys) if ks and hits[i] / len(ks) > p_threshold]
        dropped = total > 0 and sum(hits) / total > d_threshold
        left = "\n".join(p for i, p in enumerate(paragraphs) if i not in removed)
        out.append((len(removed), dropped or not left.strip()))
    return out


WARCS = ["debian-docs/*.warc.gz", "dolma/*.warc.gz", "pywb/*.warc.gz"]
WORKFLOW = """
[run]
name = "{name}"
output = "runs"
[input]
paths = {paths}
split_bytes = "{split}"
{extract}
[[stages]]
kind = "paragraph_dedup"
docs_per_partition = {per_partition}
{options}
"""


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> str:
    """The sample pages, extracted once: a glob of Parquet files that a workflow can take as its input."""
    folder = tmp_path_factory.mktemp("pages")
    paths = json.dumps([f"{WARC_DIR}/{p}" for p in WARCS])
    (folder / "wf.toml").write_text(
        f'[run]\nname = "pages"\noutput = "."\n[input]\npaths = {paths}\n[[stages]]\nkind = "extract"\n'
    )
    run_workflow(load_workflow(str(folder / "wf.toml")), executor=LocalExecutor(progress=False))
    return str(folder / "pages/extract/kept/*.parquet")


def dedup_run(
    tmp_path,
    name: str,
    options: str,
    inputs: str | None = None,
    split: str = "64KiB",
    per_partition: int = 100,
    **kwargs,
) -> dict:
    """A run of ``paragraph_dedup`` (and the stages in ``options``) on extracted ``inputs`` (a Parquet glob),
    or on the sample WARC files, cut every ``split`` bytes."""
    paths = [inputs] if inputs else [f"{WARC_DIR}/{p}" for p in WARCS]
    extract = "" if inputs else '[[stages]]\nkind = "extract"'
    text = WORKFLOW.format(
        name=name, paths=json.dumps(paths), split=split, extract=extract, per_partition=per_partition, options=options
    )
    (tmp_path / f"{name}.toml").write_text(text)
    workflow = load_workflow(str(tmp_path / f"{name}.toml"))
    return run_workflow(workflow, **({"executor": LocalExecutor(progress=False)} | kwargs))


def stage_outcome(stats: dict, stage: str = "paragraph_dedup") -> tuple[list[dict], list[tuple[int, bool]]]:
    """The stage's input documents in input order, and per document (paragraphs removed, dropped?)."""
    run_dir = stats["run"]["run_dir"]
    upstream = stats["stages"][0]["stage"]
    inputs = [
        d for f in sorted(glob.glob(f"{run_dir}/{upstream}/kept/*.parquet")) for d in pq.read_table(f).to_pylist()
    ]
    out = {}
    for kind in ("kept", "rejected"):
        for f in glob.glob(f"{run_dir}/{stage}/{kind}/*.parquet"):
            for d in pq.read_table(f).to_pylist():
                out[d["id"]] = (d["paragraphs_removed"], kind == "rejected")
    return inputs, [out[d["id"]] for d in inputs]


@pytest.mark.parametrize(
    "options, ngram_size, min_words",
    [("false_positive_rate = 1e-9", 13, 13), ("ngram_size = 0\nmin_words = 3\nfalse_positive_rate = 1e-9", 0, 3)],
)
def test_a_large_filter_equals_exact_paragraph_dedup(tmp_path, pages, options, ngram_size, min_words):
    stats = dedup_run(tmp_path, "large", options, pages)
    docs, got = stage_outcome(stats)
    expected = exact_paragraph_dedup(docs, ngram_size, min_words, 0.8, 0.8)
    assert got == expected
    removed = sum(r for r, dropped in got if not dropped)
    assert removed > 300 and 10 < sum(d for _, d in got) < len(docs) / 2  # real boilerplate, not a toy
    stage = stats["stages"][1]
    assert stage["events"]["paragraphs_removed"] == removed
    bloom = json.loads(open(f"{stats['run']['run_dir']}/paragraph_dedup/bloom.json").read())
    assert bloom["false_positive_bound"] <= 1e-9 * 1.1 and bloom["partitions"] == len(bloom["filters"]) > 1
    assert stage["events"]["bloom_bytes"] == bloom["bytes"] and stage["events"]["bloom_keys"] == bloom["keys"]
    rejected = pq.read_table(f"{stats['run']['run_dir']}/paragraph_dedup/rejected").to_pylist()
    unit = f"{ngram_size}-grams" if ngram_size else "paragraphs"
    assert all(f" {unit} seen before" in d["detail"] for d in rejected if d["reason"].endswith("duplicate_document"))


def test_a_small_filter_only_removes_more_and_stays_within_its_bound(tmp_path, pages):
    """Whole paragraphs, a 5% filter, documents never dropped for their share: every difference from exact
    dedup is a paragraph removed that exact dedup keeps, and they are at most 5% of the paragraphs checked."""
    options = "ngram_size = 0\nmin_words = 1\nfalse_positive_rate = 0.05\ndocument_threshold = 1.0"
    stats = dedup_run(tmp_path, "small", options, pages)
    docs, got = stage_outcome(stats)
    expected = exact_paragraph_dedup(docs, 0, 1, 0.8, 1.0)
    extra = []
    for (removed, dropped), (exact_removed, exact_dropped) in zip(got, expected):
        assert removed >= exact_removed and dropped >= exact_dropped
        extra.append(removed - exact_removed)
    first_seen = len({tuple(normalize(p).split()) for d in docs for p in d["text"].split("\n") if normalize(p)})
    bloom = json.loads(open(f"{stats['run']['run_dir']}/paragraph_dedup/bloom.json").read())
    assert 0.04 < bloom["false_positive_bound"] <= 0.055 and bloom["keys"] > 20_000
    assert 0 < sum(extra) / first_seen <= bloom["false_positive_bound"], (sum(extra), first_seen)
    assert bloom["bytes"] < 1.1 * bloom["keys"] * 6.24 / 8  # -ln(0.05) / ln(2)^2 bits a key


@pytest.mark.parametrize(
    "options, key, expected",
    [
        ("false_positive_rate = 1.5", "stages[1].false_positive_rate", "must be between 0 and 1"),
        ('bloom_bytes = "lots"', "stages[1].bloom_bytes", "expected a size in bytes"),
        ("ngram_size = -1", "stages[1].ngram_size", "must be >= 0"),
        ("paragraph_threshold = 1", "stages[1].paragraph_threshold", "must be in [0, 1)"),
        ('[[stages]]\nkind = "sentence_dedup"\nn_sentences = 0', "stages[2].n_sentences", "must be >= 1"),
    ],
)
def test_bad_settings_name_the_file_and_key(tmp_path, options, key, expected):
    from tokenizer.errors import ConfigError

    path = tmp_path / "wf.toml"
    paths = json.dumps([f"{WARC_DIR}/{p}" for p in WARCS])
    extract = '[[stages]]\nkind = "extract"'
    path.write_text(
        WORKFLOW.format(name="bad", paths=paths, split="64MiB", extract=extract, per_partition=10, options=options)
    )
    with pytest.raises(ConfigError) as err:
        load_workflow(str(path))
    assert (err.value.file, err.value.key) == (str(path), key) and expected in err.value.expected


# -- determinism of the corpus-wide stages ----------------------------------------------------------------

STAGES = """
ngram_size = 13
false_positive_rate = 0.05
[[stages]]
kind = "sentence_dedup"
docs_per_partition = 100
"""


def outputs(run_dir: str) -> dict[str, bytes]:
    out = {}
    for stage in ("paragraph_dedup", "sentence_dedup"):
        paths = sorted(glob.glob(f"{run_dir}/{stage}/*/*.parquet")) + [f"{run_dir}/{stage}/bloom.json"]
        for path in paths:
            if os.path.exists(path):
                with open(path, "rb") as f:
                    out[os.path.relpath(path, run_dir)] = f.read()
    return out


@pytest.mark.slow
def test_corpus_wide_stages_are_byte_identical_on_one_worker_and_on_ray(tmp_path, ray_session):
    local = dedup_run(tmp_path, "local", STAGES, per_partition=200)
    distributed = dedup_run(tmp_path, "ray", STAGES, per_partition=200, executor=None, progress=False)
    a, b = outputs(local["run"]["run_dir"]), outputs(distributed["run"]["run_dir"])
    assert len(a) > 100 and a == b
    assert distributed["stages"][1]["events"]["paragraphs_removed"] > 0
    assert distributed["stages"][2]["events"]["sentences_removed"] > 0


@pytest.mark.slow
def test_corpus_wide_stages_do_not_depend_on_how_files_were_split(tmp_path, ray_session):
    small = dedup_run(tmp_path, "split", STAGES, per_partition=200, executor=None, progress=False)
    whole = dedup_run(tmp_path, "whole", STAGES, split="64MiB", per_partition=200, executor=None, progress=False)
    assert small["run"]["shards"] > 3 * whole["run"]["shards"]

    def kept(stats, stage):
        table = pq.read_table(f"{stats['run']['run_dir']}/{stage}/kept", columns=["id", "text"])
        return sorted(zip(table["id"].to_pylist(), table["text"].to_pylist()))

    for stage in ("paragraph_dedup", "sentence_dedup"):
        assert kept(small, stage) == kept(whole, stage), stage
    for i in (1, 2):
        assert small["stages"][i]["dropped"] == whole["stages"][i]["dropped"]
        assert small["stages"][i]["events"] == whole["stages"][i]["events"]
