"""Training shards: the token shards of a real run (pages of data/warc, extracted, deduplicated and tokenized
with a small vocabulary) merged into shuffled, fixed-size shards, read back by our reader, the trainer,
Megatron-LM's and Hugging Face's; the seeded permutation behind the shuffle."""

from __future__ import annotations

import glob
import os
import shutil
import struct
from collections import Counter

import numpy as np
import pyarrow.parquet as pq
import pytest

from pipeline.engine.executor import LocalExecutor, RayExecutor
from pipeline.inputs import Shard
from pipeline.rundir import RunDir
from pipeline.runner import run_workflow
from pipeline.stages.base import GlobalContext, output_fields
from pipeline.stages.permutation import SeededPermutation
from pipeline.stages.training_shards import TrainingShardsOptions, TrainingShardsStage
from pipeline.workflow import load_workflow
from tests.helpers import WARC_DIR
from tokenizer.errors import ConfigError
from tokenizer.shards import ShardReader, ShardWriter, verify_shard

WORKFLOW = f"""
[run]
name = "merged"

[input]
paths = ["{WARC_DIR}/resiliparse/*.warc.gz", "{WARC_DIR}/dolma/*.warc.gz", "{WARC_DIR}/pywb/*.warc.gz"]
split_bytes = "64KiB"

[[stages]]
kind = "extract"

[[stages]]
kind = "exact_dedup"

[[stages]]
kind = "minhash_dedup"
num_hashes = 100
num_bands = 50
threshold = 0.6

[[stages]]
kind = "tokenize"
vocab_size = 300

[[stages]]
kind = "training_shards"
documents_per_shard = 20
seed = 3
exports = ["megatron", "parquet"]
"""
PER_SHARD = 20


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The workflow above, run once in this process: its workflow and run directory."""
    folder = tmp_path_factory.mktemp("training-shards")
    (folder / "wf.toml").write_text(WORKFLOW)
    workflow = load_workflow(str(folder / "wf.toml"))
    stats = run_workflow(workflow, output=str(folder / "runs"), executor=LocalExecutor(progress=False))
    return workflow, stats["run"]["run_dir"]


def run_stage(run, name: str, executor=None, **options) -> str:
    """Another ``training_shards`` stage on the run's token shards (a new folder of the run); its folder."""
    workflow, run_dir = run
    rundir = RunDir(run_dir)
    plan = [Shard(**s) for s in rundir.read_json(rundir.path("workflow.json"))["shards"]]
    stage = TrainingShardsStage(name=name, options=TrainingShardsOptions(**options))
    columns = output_fields(workflow.stages)[-1]
    stage.run_global(GlobalContext(rundir, plan, "tokenize", executor or LocalExecutor(progress=False), columns))
    return f"{run_dir}/{name}"


def documents(folder: str) -> list[tuple[int, ...]]:
    """Every document (its ids, without EOS) of the token shards in ``folder``, shard after shard."""
    shards = [ShardReader(p) for p in sorted(glob.glob(f"{folder}/*.json"))]
    return [tuple(s.document(i).tolist()) for s in shards for i in range(len(s))]


def files(folder: str) -> dict[str, bytes]:
    """The bytes of every output file of a ``training_shards`` stage (shards and exports), by relative path."""
    paths = [p for sub in ("shards", "megatron", "parquet") for p in sorted(glob.glob(f"{folder}/{sub}/*"))]
    return {os.path.relpath(p, folder): open(p, "rb").read() for p in paths}


def test_merged_shards_hold_every_document_once_in_fixed_sizes(run):
    _, run_dir = run
    inputs, merged = documents(f"{run_dir}/tokenize/shards"), documents(f"{run_dir}/training_shards/shards")
    assert len(inputs) > 3 * PER_SHARD
    assert Counter(merged) == Counter(inputs)  # every document, whole, exactly once
    shards = [ShardReader(p) for p in sorted(glob.glob(f"{run_dir}/training_shards/shards/*.json"))]
    sizes = [len(s) for s in shards]
    assert sizes[:-1] == [PER_SHARD] * (len(sizes) - 1) and 1 <= sizes[-1] <= PER_SHARD
    assert sum(s.header["tokens"] for s in shards) == sum(
        ShardReader(p).header["tokens"] for p in glob.glob(f"{run_dir}/tokenize/shards/*.json")
    )
    first_input = ShardReader(sorted(glob.glob(f"{run_dir}/tokenize/shards/*.json"))[0])
    assert all(s.header["tokenizer_hash"] == first_input.header["tokenizer_hash"] for s in shards)
    assert all(verify_shard(s.prefix) == [] for s in shards)
    # shuffled across inputs: not the input order, and the first input's documents land in several shards
    assert merged != inputs
    first = {tuple(first_input.document(i).tolist()) for i in range(len(first_input))}
    assert len({i // PER_SHARD for i, doc in enumerate(merged) if doc in first}) > 1
    manifest = RunDir(run_dir).read_json(f"{run_dir}/training_shards/manifest.json")
    assert [m["documents"] for m in manifest["shards"]] == sizes and manifest["documents"] == len(inputs)


def test_the_order_follows_the_seed(run):
    _, run_dir = run
    merged = documents(f"{run_dir}/training_shards/shards")
    again = run_stage(run, "same-seed", seed=3, documents_per_shard=PER_SHARD, exports=["megatron", "parquet"])
    assert files(again) == files(f"{run_dir}/training_shards")
    other = documents(f"{run_stage(run, 'seed-4', seed=4, documents_per_shard=PER_SHARD)}/shards")
    assert Counter(other) == Counter(merged) and other != merged
    one_shard = documents(f"{run_stage(run, 'one-shard', seed=3, documents_per_shard=10**6)}/shards")
    assert one_shard == merged  # the order is the seed's; the shard size only cuts it


def test_the_statistics_count_documents_and_tokens(run):
    _, run_dir = run
    stats = RunDir(run_dir).read_json(f"{run_dir}/stats.json")
    tokenize, merged = stats["stages"][-2], stats["stages"][-1]
    assert merged["kind"] == "training_shards" and merged["shards_done"] == stats["run"]["shards"]
    assert merged["docs_in"] == merged["docs_kept"] == merged["events"]["documents_written"] == tokenize["docs_kept"]
    assert merged["events"]["tokens"] == merged["events"]["tokens_written"] == tokenize["events"]["tokens"]
    assert not os.path.exists(f"{run_dir}/training_shards/_work/scatter")  # the scattered copy is gone


def test_the_trainer_reads_the_merged_shards(run):
    from trainer.data import DataConfig, TokenData

    _, run_dir = run
    data = TokenData(DataConfig(train=[f"{run_dir}/training_shards/shards/*"], valid_fraction=0.1), 64, seed=0)
    batch = data.batch(8)
    assert batch.inputs.shape == (8, 64) and bool((batch.inputs[:, 1:] == batch.targets[:, :-1]).all())
    assert data.vocab_size == 300 and int(batch.inputs.max()) < 300


def merged_documents_with_eos(run_dir: str) -> list[list[int]]:
    shards = [ShardReader(p) for p in sorted(glob.glob(f"{run_dir}/training_shards/shards/*.json"))]
    return [s.document(i).tolist() + [s.header["eos_id"]] for s in shards for i in range(len(s))]


def test_parquet_export_reads_back_with_datasets(run, tmp_path):
    import datasets

    _, run_dir = run
    parquet = sorted(glob.glob(f"{run_dir}/training_shards/parquet/*.parquet"))
    loaded = datasets.load_dataset("parquet", data_files=parquet, split="train", cache_dir=str(tmp_path / "hf"))
    assert loaded["input_ids"] == merged_documents_with_eos(run_dir)


def read_megatron_index(path: str) -> dict:
    """Megatron-LM's ``.idx`` as its reader (``_IndexReader``) lays it out, read with ``struct`` and NumPy."""
    data = open(path, "rb").read()
    assert data[:9] == b"MMIDIDX\x00\x00"
    version, code, sequences, document_entries = struct.unpack("<QBQQ", data[9:34])
    lengths = np.frombuffer(data, "<i4", sequences, 34)
    pointers = np.frombuffer(data, "<i8", sequences, 34 + lengths.nbytes)
    document_index = np.frombuffer(data, "<i8", document_entries, 34 + lengths.nbytes + pointers.nbytes)
    assert 34 + lengths.nbytes + pointers.nbytes + document_index.nbytes == len(data)
    return {"version": version, "code": code, "lengths": lengths, "pointers": pointers, "documents": document_index}


def test_megatron_export_follows_the_published_layout(run):
    _, run_dir = run
    for prefix in sorted(glob.glob(f"{run_dir}/training_shards/shards/*.json")):
        shard = ShardReader(prefix)
        name = os.path.basename(shard.prefix)
        index = read_megatron_index(f"{run_dir}/training_shards/megatron/{name}.idx")
        assert index["version"] == 1 and index["code"] == 8  # uint16
        assert index["lengths"].tolist() == np.diff(shard.offsets.astype(np.int64)).tolist()
        assert index["pointers"].tolist() == (shard.offsets[:-1].astype(np.int64) * 2).tolist()
        assert index["documents"].tolist() == list(range(len(shard) + 1))
        bin_bytes = open(f"{run_dir}/training_shards/megatron/{name}.bin", "rb").read()
        assert bin_bytes == open(shard.prefix + ".bin", "rb").read()


def test_the_export_command_and_wide_vocabularies(run, tmp_path):
    from pipeline.cli import main

    _, run_dir = run
    docs = documents(f"{run_dir}/tokenize/shards")[:5]
    with ShardWriter(str(tmp_path / "wide" / "part"), vocab_size=70_000, eos_id=69_999, tokenizer_hash="x") as w:
        for doc in docs:  # ids past 65535: a uint32 shard
            w.write([i + 65_536 for i in doc])
    assert (
        main(["shards", "export", str(tmp_path / "wide"), "--format", "megatron", "--output", str(tmp_path / "m")]) == 0
    )
    assert (
        main(["shards", "export", str(tmp_path / "wide"), "--format", "parquet", "--output", str(tmp_path / "p")]) == 0
    )
    index = read_megatron_index(str(tmp_path / "m" / "part.idx"))
    assert index["code"] == 4 and index["lengths"].tolist() == [len(d) + 1 for d in docs]  # Megatron's int32
    ids = np.fromfile(tmp_path / "m" / "part.bin", dtype="<i4")
    expected = [[i + 65_536 for i in doc] + [69_999] for doc in docs]
    assert ids.tolist() == [i for doc in expected for i in doc]
    assert pq.read_table(tmp_path / "p" / "part.parquet")["input_ids"].to_pylist() == expected


@pytest.mark.slow
def test_megatron_export_reads_back_with_megatron_core(run, tmp_path):
    indexed = pytest.importorskip("megatron.core.datasets.indexed_dataset")
    _, run_dir = run
    expected = merged_documents_with_eos(run_dir)
    read = []
    for prefix in sorted(glob.glob(f"{run_dir}/training_shards/megatron/*.idx")):
        dataset = indexed.IndexedDataset(prefix.removesuffix(".idx"))
        read += [dataset[i].tolist() for i in range(len(dataset))]
        builder = indexed.IndexedDatasetBuilder(str(tmp_path / "built.bin"), dtype=np.uint16)
        for i in range(len(dataset)):  # Megatron's own writer, given the same documents, writes the same bytes
            builder.add_document(dataset[i], [len(dataset[i])])
        builder.finalize(str(tmp_path / "built.idx"))
        assert open(tmp_path / "built.idx", "rb").read() == open(prefix, "rb").read()
        assert open(tmp_path / "built.bin", "rb").read() == open(prefix.removesuffix(".idx") + ".bin", "rb").read()
    assert read == expected


def test_an_interrupted_stage_resumes_to_the_same_shards(run, tmp_path):
    workflow, run_dir = run
    copy = tmp_path / "runs" / "merged"
    shutil.copytree(run_dir, copy)
    before = files(f"{copy}/training_shards")
    shutil.rmtree(f"{copy}/training_shards/_work/write")
    for path in (
        glob.glob(f"{copy}/training_shards/*/00001.*") + sorted(glob.glob(f"{copy}/training_shards/stats/*"))[::2]
    ):
        os.remove(path)
    run_workflow(workflow, output=str(tmp_path / "runs"), executor=LocalExecutor(progress=False))
    assert files(f"{copy}/training_shards") == before


@pytest.mark.slow
def test_shards_do_not_depend_on_workers_input_splits_or_storage(run, tmp_path, ray_session):
    import fsspec

    workflow, run_dir = run
    expected = files(f"{run_dir}/training_shards")
    options = {"seed": 3, "documents_per_shard": PER_SHARD, "exports": ["megatron", "parquet"]}
    assert files(run_stage(run, "on-ray", RayExecutor(progress=False), **options)) == expected
    workflow = load_workflow(workflow.file)
    workflow.input.split_bytes = 64 << 20  # whole files: fewer, larger input shards
    whole = run_workflow(workflow, output=str(tmp_path / "whole"), executor=LocalExecutor(progress=False))
    assert whole["run"]["shards"] < RunDir(run_dir).read_json(f"{run_dir}/stats.json")["run"]["shards"]
    assert files(f"{whole['run']['run_dir']}/training_shards") == expected
    # on object storage (fsspec's in-memory file system): written in a temporary folder, then uploaded
    remote = run_workflow(workflow, output=f"memory://{tmp_path.name}", executor=LocalExecutor(progress=False))
    fs = fsspec.filesystem("memory")
    folder = f"{RunDir(remote['run']['run_dir']).root}/training_shards"
    assert {path: fs.cat(f"{folder}/{path}") for path in expected} == expected


@pytest.mark.parametrize(
    "old, new, key, message",
    [
        ("seed = 3", "seed = -1", "stages[4].seed", "must be >= 0"),
        (
            'exports = ["megatron", "parquet"]',
            'exports = ["npy"]',
            "stages[4].exports[0]",
            "expected one of 'megatron'",
        ),
        ("seed = 3", "upsampling_weights = [[2, 1]]", "stages[4].upsampling_weights", "from size 1"),
        ("seed = 3", "upsampling_weights = [[1, 1], [5, 2], [3, 3]]", "stages[4].upsampling_weights", "increase"),
        ("seed = 3", "upsampling_weights = [[1, 0]]", "stages[4].upsampling_weights", "copies must be >= 1"),
        (
            "seed = 3",
            '[[stages]]\nkind = "exact_dedup"\nname = "again"',
            "stages[5].kind",
            "no stage can follow 'training_shards'",
        ),
        (
            'kind = "training_shards"',
            'kind = "exact_dedup"\nname = "again"',
            "stages[4].kind",
            "no document stage can follow",
        ),
    ],
)
def test_bad_training_shards_stages_are_refused(tmp_path, old, new, key, message):
    (tmp_path / "wf.toml").write_text(WORKFLOW.replace(old, new))
    with pytest.raises(ConfigError) as err:
        load_workflow(str(tmp_path / "wf.toml"))
    assert err.value.key == key and message in str(err.value)


def test_training_shards_need_a_tokenize_stage_right_before(tmp_path):
    text = WORKFLOW.replace('[[stages]]\nkind = "tokenize"\nvocab_size = 300\n\n', "")
    (tmp_path / "wf.toml").write_text(text)
    with pytest.raises(ConfigError, match="must directly follow a 'tokenize' stage"):
        load_workflow(str(tmp_path / "wf.toml"))


@pytest.mark.parametrize("n", [1, 2, 3, 5, 64, 1000, 4097])
def test_the_permutation_is_a_bijection_whatever_the_batch(n):
    permute = SeededPermutation(n, seed=7)
    whole = permute(np.arange(n))
    assert sorted(whole.tolist()) == list(range(n))
    parts = [permute(piece) for piece in np.array_split(np.arange(n), 7)]  # piece by piece, as workers do
    assert np.concatenate(parts).tolist() == whole.tolist()


def test_the_permutation_spreads_neighbours_and_changes_with_the_seed():
    n = 10_000
    a, b = SeededPermutation(n, 0)(np.arange(n)), SeededPermutation(n, 1)(np.arange(n))
    assert (a == b).mean() < 0.01
    per_tenth = np.bincount(a[: n // 10] // (n // 10), minlength=10)  # the first tenth, over every tenth
    assert per_tenth.min() > 60 and per_tenth.max() < 140
    assert abs(np.corrcoef(np.arange(n), a)[0, 1]) < 0.05
