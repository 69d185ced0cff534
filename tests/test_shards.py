"""Packed token shards: written documents read back exactly; damaged shards are refused or reported."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tokenizer.shards import ShardError, ShardReader, ShardWriter, verify_shard


def write(prefix, docs, vocab_size=1000, eos=999):
    with ShardWriter(str(prefix), vocab_size=vocab_size, eos_id=eos, tokenizer_hash="abc") as w:
        for doc in docs:
            w.write(doc)
    return str(prefix)


def test_documents_read_back_exactly(tmp_path):
    rng = np.random.default_rng(0)
    docs = [rng.integers(0, 999, size=int(n)).tolist() for n in rng.integers(0, 300, size=50)]
    prefix = write(tmp_path / "s", docs)
    shard = ShardReader(prefix)
    assert len(shard) == 50 and shard.header["tokens"] == sum(map(len, docs)) + 50
    assert shard.dtype == np.dtype("<u2")
    assert [shard.document(i).tolist() for i in range(50)] == docs
    assert verify_shard(prefix, "abc") == []


def test_large_vocabularies_use_uint32(tmp_path):
    prefix = write(tmp_path / "big", [[70_000, 5], [1]], vocab_size=100_000, eos=99_999)
    shard = ShardReader(prefix)
    assert shard.dtype == np.dtype("<u4") and shard.document(0).tolist() == [70_000, 5]


def test_an_empty_shard_is_valid(tmp_path):
    prefix = write(tmp_path / "empty", [])
    assert len(ShardReader(prefix)) == 0 and verify_shard(prefix) == []


@pytest.mark.parametrize(
    "damage, message",
    [
        ("truncate", "the header says"),
        ("header-count", "the header says"),
        ("index", "offsets for"),
        ("eos", "do not end with EOS"),
        ("id-range", "outside the vocabulary"),
        ("no-header", "no header"),
    ],
)
def test_damaged_shards_are_reported(tmp_path, damage, message):
    prefix = write(tmp_path / "s", [[1, 2, 3], [4, 5], [6]])
    if damage == "truncate":
        with open(prefix + ".bin", "r+b") as f:
            f.truncate(6)
    elif damage == "header-count":
        header = json.loads(open(prefix + ".json").read())
        header["tokens"] += 1
        open(prefix + ".json", "w").write(json.dumps(header))
    elif damage == "index":
        open(prefix + ".idx", "ab").write(b"\0" * 8)
    elif damage in ("eos", "id-range"):
        tokens = np.fromfile(prefix + ".bin", dtype="<u2")
        tokens[3 if damage == "eos" else 0] = 7 if damage == "eos" else 4000
        tokens.tofile(prefix + ".bin")
    else:
        import os

        os.remove(prefix + ".json")
    problems = verify_shard(prefix)
    assert problems and message in " ".join(problems)
    if damage in ("truncate", "header-count", "index", "no-header"):
        with pytest.raises(ShardError, match=message):
            ShardReader(prefix)


def test_a_failed_write_leaves_no_shard(tmp_path):
    prefix = tmp_path / "s"
    with pytest.raises(ValueError, match="token ids must be in"):
        with ShardWriter(str(prefix), vocab_size=10, eos_id=9, tokenizer_hash="x") as w:
            w.write([1, 2])
            w.write([10])
    assert list(tmp_path.iterdir()) == []
