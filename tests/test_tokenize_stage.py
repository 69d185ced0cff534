"""Tokenization outside the demo: training on a budget, a given tokenizer, and the command line."""

from __future__ import annotations

import gzip
import json
import os

import pytest

from pipeline.cli import main
from pipeline.engine.executor import LocalExecutor
from pipeline.runner import run_workflow
from pipeline.workflow import load_workflow
from tests.helpers import FIXTURES, WARC_DIR
from tokenizer.bpe import Tokenizer
from tokenizer.errors import ConfigError
from tokenizer.shards import ShardReader

WORKFLOW = f"""
[run]
name = "tok"

[input]
paths = ["{WARC_DIR}/dolma/*.warc.gz"]

[[stages]]
kind = "extract"

[[stages]]
kind = "tokenize"
vocab_size = 400
"""


def run(tmp_path, text):
    (tmp_path / "wf.toml").write_text(text)
    return run_workflow(
        load_workflow(str(tmp_path / "wf.toml")), output=str(tmp_path / "runs"), executor=LocalExecutor(progress=False)
    )


def test_training_uses_only_the_first_train_bytes(tmp_path):
    full = run(tmp_path, WORKFLOW.replace('name = "tok"', 'name = "full"'))
    small = run(
        tmp_path,
        WORKFLOW.replace('name = "tok"', 'name = "small"').replace(
            "vocab_size = 400", 'vocab_size = 400\ntrain_bytes = "20KB"'
        ),
    )
    counts = {}
    for stats in (full, small):
        marker = f"{stats['run']['run_dir']}/tokenize/_work/train/_SUCCESS.json"
        counts[stats["run"]["name"]] = json.load(open(marker))["results"][0]["distinct_pretokens"]
    assert counts["small"] < counts["full"] / 3
    assert small["stages"][-1]["docs_in"] == full["stages"][-1]["docs_in"]  # every document is still encoded


def test_a_given_tokenizer_is_used_as_it_is(tmp_path):
    bpe = FIXTURES / "cs336/bpe"
    gpt2 = Tokenizer.from_files(bpe / "gpt2_vocab.json", bpe / "gpt2_merges.txt", ["<|endoftext|>"])
    gpt2.save(tmp_path / "gpt2")
    stats = run(tmp_path, WORKFLOW.replace("vocab_size = 400", f'tokenizer = "{tmp_path}/gpt2"'))
    run_dir = stats["run"]["run_dir"]
    assert not os.path.exists(f"{run_dir}/tokenize/_work/train")
    shard = ShardReader(f"{run_dir}/tokenize/shards/000000-0000")
    assert shard.header["tokenizer_hash"] == gpt2.hash and shard.header["vocab_size"] == 50257


@pytest.mark.parametrize(
    "change, key, message",
    [
        ("vocab_size = 400", "stages[1].vocab_size", "must be at least 256 bytes + 1 special tokens"),
        ('vocab_size = 400\ntokenizer = "nowhere"', "stages[1].tokenizer", "no such tokenizer directory"),
        ('vocab_size = 400\neos_token = "</s>"', "stages[1].eos_token", "must be one of special_tokens"),
        ('vocab_size = 400\n[[stages]]\nkind = "exact_dedup"', "stages[2].kind", "no document stage can follow"),
    ],
)
def test_bad_tokenize_stages_are_refused(tmp_path, change, key, message):
    text = WORKFLOW.replace(
        "vocab_size = 400",
        change.replace("vocab_size = 400", "vocab_size = 100") if key.endswith("vocab_size") else change,
    )
    (tmp_path / "wf.toml").write_text(text)
    with pytest.raises(ConfigError) as err:
        load_workflow(str(tmp_path / "wf.toml"))
    assert err.value.key == key and message in str(err.value)


def test_command_line_train_tokenize_inspect_verify(tmp_path, capsys):
    docs = []
    for name in ("cc_en_head-0091.jsonl.gz", "cc_en_head-0174.jsonl.gz"):
        with gzip.open(FIXTURES / "text/dolma-ccnet" / name, "rt") as f:
            docs.append("<|endoftext|>".join(json.loads(line)["text"] for line in f))
    inputs = []
    for i, text in enumerate(docs):
        inputs.append(str(tmp_path / f"part{i}.txt"))
        open(inputs[-1], "w").write(text)
    assert main(["tokenizer", "train", *inputs, "--vocab-size", "600", "--output", str(tmp_path / "tok")]) == 0
    assert "600 tokens" in capsys.readouterr().out
    assert (
        main(
            [
                "tokenize",
                *inputs,
                "--tokenizer",
                str(tmp_path / "tok"),
                "--output",
                str(tmp_path / "shards"),
                "--workers",
                "2",
            ]
        )
        == 0
    )
    assert "2 shards, 20 documents" in capsys.readouterr().out
    assert main(["shards", "inspect", str(tmp_path / "shards"), "--tokenizer", str(tmp_path / "tok"), "-n", "1"]) == 0
    out = capsys.readouterr().out
    assert "part0" in out and "document 0" in out
    assert main(["shards", "inspect", str(tmp_path / "shards"), "-n", "1"]) == 0  # no tokenizer next to them
    assert "give --tokenizer DIR to see documents decoded" in capsys.readouterr().out
    tokenizer = Tokenizer.load(tmp_path / "tok")
    shard = ShardReader(tmp_path / "shards" / "part1")
    assert [tokenizer.decode(shard.document(i).tolist()) for i in range(len(shard))] == docs[1].split("<|endoftext|>")
    assert main(["shards", "verify", str(tmp_path / "shards")]) == 0
    with open(tmp_path / "shards" / "part0.bin", "r+b") as f:
        f.truncate(10)
    assert main(["shards", "verify", str(tmp_path / "shards")]) == 1
    assert "the header says" in capsys.readouterr().out
    assert main(["tokenizer", "train", inputs[0], "--vocab-size", "100", "--output", str(tmp_path / "x")]) == 2
    assert "vocab_size 100 is below" in capsys.readouterr().err
