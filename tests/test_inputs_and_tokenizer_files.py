"""Inputs named as folders, GPT-2's own tokenizer files, malformed tokenizer directories, and settings that
used to pass validation and fail later: each is a clear error naming the file and key, or works."""

from __future__ import annotations

import json
import shutil

import pytest

from pipeline.cli import main
from pipeline.engine.executor import LocalExecutor
from pipeline.inputs import InputError, InputFile, Shard, expand_inputs, plan_shards
from pipeline.runner import run_workflow
from pipeline.workflow import load_workflow
from tests.helpers import FIXTURES, ROOT, WARC_DIR
from tokenizer.bpe import Tokenizer
from tokenizer.errors import ConfigError
from tokenizer.shards import ShardReader

BPE = FIXTURES / "cs336" / "bpe"


def gpt2_dir(tmp_path):
    folder = tmp_path / "gpt2"
    folder.mkdir()
    shutil.copy(BPE / "gpt2_vocab.json", folder / "vocab.json")
    shutil.copy(BPE / "gpt2_merges.txt", folder / "merges.txt")
    return folder


def test_tokenize_with_gpt2s_own_files(tmp_path, capsys):
    """`refinery tokenize --tokenizer DIR` on GPT-2's vocab.json + merges.txt used to fail with
    KeyError: '<|endoftext|>'."""
    folder = gpt2_dir(tmp_path)
    text = tmp_path / "docs.txt"
    text.write_text("Hello world.<|endoftext|>A second document.", encoding="utf-8")
    assert main(["tokenize", str(text), "--tokenizer", str(folder), "--output", str(tmp_path / "out")]) == 0
    shard = ShardReader(str(tmp_path / "out" / "docs"))
    tokenizer = Tokenizer.load(str(folder))
    assert tokenizer.special_ids == {"<|endoftext|>": 50256}
    assert len(shard) == 2 and tokenizer.decode(shard.document(1).tolist()) == "A second document."


@pytest.mark.parametrize(
    "vocab, merges, meta, key",
    [
        ({"a": -1}, "", None, "'a'"),  # a negative id
        (["a", "b"], "", None, ""),  # the vocabulary as a list
        ({"a": 10**9}, "", None, "'a'"),  # an id far beyond the vocabulary
        ({"a": 0, "b": 0}, "", None, "'b'"),  # two tokens, one id
        (None, "#version: 0.2\na\n", None, "line 2"),  # a merge that is not a pair
        (None, "", {"special_tokens": "<|endoftext|>"}, "special_tokens"),  # not a list
        (None, "", "not json", ""),
    ],
)
def test_malformed_tokenizer_directories_are_config_errors_naming_file_and_key(tmp_path, vocab, merges, meta, key):
    folder = gpt2_dir(tmp_path)
    if vocab is not None:
        (folder / "vocab.json").write_text(json.dumps(vocab))
    if merges:
        (folder / "merges.txt").write_text(merges)
    if meta is not None:
        (folder / "refinery.json").write_text(meta if isinstance(meta, str) else json.dumps(meta))
    with pytest.raises(ConfigError) as err:
        Tokenizer.load(str(folder))
    assert err.value.file.startswith(str(folder)) and err.value.key == key, str(err.value)


def test_a_directory_as_an_input_means_its_input_files(tmp_path):
    folder = tmp_path / "crawl"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(WARC_DIR / "dolma" / "sample-0000.warc.gz", folder / "a.warc.gz")
    shutil.copy(WARC_DIR / "dolma" / "sample-0001.warc.gz", folder / "sub" / "b.warc.gz")
    (folder / "README.txt").write_text("not an input")
    (folder / ".hidden.warc.gz").write_bytes(b"")
    files = expand_inputs([str(folder)])
    assert [f.path.rsplit("/", 1)[-1] for f in files] == ["a.warc.gz", "b.warc.gz"]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match=r"the folder .*empty.* holds no input files \(\.warc"):
        expand_inputs([str(empty)])
    wf = tmp_path / "wf.toml"
    wf.write_text(
        f'[run]\nname = "d"\n[input]\npaths = ["{empty.name}"]\n[[stages]]\nkind = "extract"\n', encoding="utf-8"
    )
    with pytest.raises(ConfigError, match=r"input.paths\[0\]: the folder 'empty' holds no input files"):
        load_workflow(str(wf))


def test_settings_that_used_to_fail_late_fail_at_load(tmp_path):
    base = f'[run]\nname = "x"\noutput = "{tmp_path}/runs"\n[input]\npaths = ["{WARC_DIR}/dolma/*.warc.gz"]\n'
    cases = {
        'split_bytes = "0.5MiB"\n': None,  # fine: a whole number of bytes
        "split_bytes = 65536.5\n": "input.split_bytes",
        'split_bytes = "70.0001KB"\n': "input.split_bytes",
    }
    for extra, key in cases.items():
        wf = tmp_path / "wf.toml"
        wf.write_text(base + extra + '[[stages]]\nkind = "extract"\n')
        if key is None:
            load_workflow(str(wf))
            continue
        with pytest.raises(ConfigError) as err:
            load_workflow(str(wf))
        assert err.value.key == key and "whole number of bytes" in err.value.expected
    wf.write_text(
        base + '[[stages]]\nkind = "extract"\n[[stages]]\nkind = "tokenize"\nvocab_size = 300\n'
        'special_tokens = ["<|endoftext|>", "<|user|>", "<|endoftext|>"]\n'
    )
    duplicated = r"stages\[1\]\.special_tokens: each token once; listed twice: <\|endoftext\|>"
    with pytest.raises(ConfigError, match=duplicated):
        load_workflow(str(wf))


def test_a_run_that_keeps_nothing_finishes_without_a_tokenizer_or_empty_files(tmp_path):
    """A WAT-only input keeps no document: the run completes (no tokenizer to train, no empty Parquet or token
    shards written) instead of failing in its last stage."""
    wf = tmp_path / "wf.toml"
    wf.write_text(
        f'[run]\nname = "wat"\noutput = "{tmp_path}/runs"\n[input]\n'
        f'paths = ["{WARC_DIR}/commoncrawl-whirlwind/whirlwind.warc.wat.gz"]\n'
        '[[stages]]\nkind = "extract"\n[[stages]]\nkind = "exact_dedup"\n'
        '[[stages]]\nkind = "tokenize"\nvocab_size = 300\n'
    )
    stats = run_workflow(load_workflow(str(wf)), executor=LocalExecutor(progress=False))
    assert stats["run"]["complete"] and stats["stages"][-1]["docs_in"] == 0
    run_dir = tmp_path / "runs" / "wat"
    assert not list(run_dir.glob("*/kept/*.parquet")) and not list(run_dir.glob("*/rejected/*.parquet"))
    assert not list((run_dir / "tokenize").rglob("*.bin"))


def test_empty_shards_are_not_written_and_the_rest_still_load_with_datasets(tmp_path):
    import datasets

    text = (ROOT / "workflows" / "demo.toml").read_text()
    wf = tmp_path / "wf.toml"
    wf.write_text(
        f'[run]\nname = "e"\noutput = "{tmp_path}/runs"\n[input]\npaths = ["{WARC_DIR}/*/*.warc.gz"]\n'
        'split_bytes = "128KiB"\n[[stages]]\nkind = "extract"\n'
        '[[stages]]\nkind = "filter"\n  [[stages.filters]]\n  kind = "language"\n  languages = ["de"]\n'
    )
    assert "split_bytes" in text
    stats = run_workflow(load_workflow(str(wf)), executor=LocalExecutor(progress=False))
    kept_files = list((tmp_path / "runs" / "e" / "filter" / "kept").glob("*.parquet"))
    assert 0 < len(kept_files) < stats["run"]["shards"]
    loaded = datasets.load_dataset("parquet", data_files=[str(p) for p in kept_files], split="train")
    assert len(loaded) == stats["stages"][1]["docs_kept"]


def test_shards_are_sized_by_content_not_by_the_number_of_input_files(tmp_path):
    """80 small files made 51 shards (and as many tiny outputs): consecutive small files of one format now
    share a shard up to `split_bytes`, a large .gz WARC is cut into equal ranges, and every document is
    read once."""
    files = [InputFile(f"a/{i:02d}.jsonl", 10_000) for i in range(80)] + [
        InputFile("b/big.warc.gz", 300_000),
        InputFile("b/small.warc.gz", 20_000),
        InputFile("c/plain.warc", 500_000),
    ]
    plan = plan_shards(files, 100_000)
    assert [(s.id, s.path, s.start, s.end, len(s.also)) for s in plan[8:]] == [
        ("000080-0000", "b/big.warc.gz", 0, 100_000, 0),
        ("000080-0001", "b/big.warc.gz", 100_000, 200_000, 0),
        ("000080-0002", "b/big.warc.gz", 200_000, 300_000, 0),
        ("000081-0000", "b/small.warc.gz", 0, None, 0),
        ("000082-0000", "c/plain.warc", 0, None, 0),
    ]
    assert [len(s.parts()) for s in plan[:8]] == [10] * 8  # 10 files of 10 kB in each 100 kB shard
    assert [p for s in plan for p, _, _ in s.parts()] == [f.path for f in files[:80]] + ["b/big.warc.gz"] * 3 + [
        "b/small.warc.gz",
        "c/plain.warc",
    ]
    assert Shard(**json.loads(json.dumps(plan[0].to_json()))) == plan[0]  # as workflow.json keeps it

    inputs = tmp_path / "in"
    inputs.mkdir()
    for i in range(80):
        (inputs / f"{i:02d}.jsonl").write_text(json.dumps({"id": f"d{i}", "text": f"document number {i}. " * 30}))
    wf = tmp_path / "wf.toml"
    wf.write_text(
        f'[run]\nname = "many"\noutput = "{tmp_path}/runs"\n[input]\npaths = ["{inputs}"]\n'
        'split_bytes = "64KiB"\n[[stages]]\nkind = "filter"\n  [[stages.filters]]\n  kind = "gopher_repetition"\n'
    )
    stats = run_workflow(load_workflow(str(wf)), executor=LocalExecutor(progress=False))
    assert stats["run"]["shards"] == 1 and stats["stages"][0]["docs_in"] == 80
    import pyarrow.parquet as pq

    outputs = sorted((tmp_path / "runs" / "many" / "filter").glob("*/*.parquet"))
    ids = sorted(i for p in outputs for i in pq.read_table(p, columns=["id"])["id"].to_pylist())
    assert ids == sorted(f"d{i}" for i in range(80)) and len(outputs) <= 2


def test_documents_above_the_size_limit_are_skipped_and_counted_for_every_input_kind(tmp_path):
    """A 100 MB document from Parquet took a worker to 6.2 GB: every input kind now skips documents above
    `max_document_bytes` (counted, with their size), and reads the rest."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    big = "word " * (20 << 10)  # 100 KiB of text
    small = [f"document {i} " * 50 for i in range(3)]
    pq.write_table(pa.table({"id": ["big", "s0", "s1", "s2"], "text": [big, *small]}), tmp_path / "docs.parquet")
    (tmp_path / "docs.jsonl").write_text(
        "\n".join(json.dumps({"id": i, "text": t}) for i, t in enumerate([big, *small]))
    )
    for name, input_kind in (("p", "docs.parquet"), ("j", "docs.jsonl")):
        wf = tmp_path / f"{name}.toml"
        wf.write_text(
            f'[run]\nname = "{name}"\noutput = "{tmp_path}/runs"\n[input]\npaths = ["{tmp_path}/{input_kind}"]\n'
            'max_document_bytes = "64KiB"\n[[stages]]\nkind = "exact_dedup"\n'
        )
        stats = run_workflow(load_workflow(str(wf)), executor=LocalExecutor(progress=False))
        first = stats["stages"][0]
        assert first["dropped"] == {"input.document_too_large": 1} and first["docs_kept"] == 3, first
    wf = tmp_path / "w.toml"
    wf.write_text(
        f'[run]\nname = "w"\noutput = "{tmp_path}/runs"\n[input]\npaths = ["{WARC_DIR}/debian-docs/*.warc.gz"]\n'
        'max_document_bytes = "64KiB"\n[[stages]]\nkind = "extract"\n'
    )
    extract = run_workflow(load_workflow(str(wf)), executor=LocalExecutor(progress=False))["stages"][0]
    assert extract["dropped"].get("extract.document_too_large", 0) > 0
    assert extract["histograms"]["text_chars_kept"]["max"] <= 64 << 10
