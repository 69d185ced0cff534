"""``refinery tokenizer train`` and ``refinery tokenize``: a tokenizer trained on, and token shards encoded
from, files outside a workflow (text, Parquet, JSONL, WARC; read by :mod:`pipeline.reader`), in parallel
processes."""

from __future__ import annotations

import os
from collections import Counter
from concurrent.futures import ProcessPoolExecutor

from pipeline.reader import file_format, read_texts
from pipeline.stages.tokenize import EOT, write_shard
from tokenizer.bpe import Tokenizer
from tokenizer.train import count_pretokens, pretoken_counts_of_files, train_from_counts


def file_documents(path: str, eos_token: str = EOT):
    """The documents' texts of an input file; a text file is cut into documents at ``eos_token``."""
    return read_texts(path, text_separator=eos_token)


def train_tokenizer_files(
    inputs: list[str], output: str, vocab_size: int, special_tokens: list[str], workers: int | None = None
) -> Tokenizer:
    """``refinery tokenizer train``: text files (chunked in parallel at special tokens) and any other input
    format (documents counted in parallel, one process per file)."""
    texts = [p for p in inputs if file_format(p) == "text" and "://" not in p and not p.endswith(".gz")]
    others = [p for p in inputs if p not in texts]
    counts = pretoken_counts_of_files(texts, special_tokens, workers) if texts else Counter()
    if others:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for part in pool.map(_count_file, others, [special_tokens] * len(others)):
                counts.update(part)
    if not counts:
        raise ValueError("cannot train a tokenizer on an empty corpus")
    tokenizer = Tokenizer(*train_from_counts(counts, vocab_size, special_tokens), special_tokens)
    tokenizer.save(output)
    return tokenizer


def _count_file(path: str, special_tokens: list[str]) -> Counter:
    return count_pretokens(file_documents(path, special_tokens[0] if special_tokens else EOT), special_tokens)


def encode_files(
    inputs: list[str], tokenizer_dir: str, output: str, eos_token: str = EOT, workers: int | None = None
) -> list[dict]:
    """``refinery tokenize``: one token shard per input file (text split at ``eos_token``; Parquet, JSONL or
    WARC documents), encoded in parallel processes; returns the shards' headers."""
    names = [_shard_name(p) for p in inputs]
    if len(set(names)) != len(names):
        raise ValueError("input files must have distinct names: each becomes the shard of that name")
    prefixes = [os.path.join(output, name) for name in names]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(_encode_file, inputs, prefixes, [tokenizer_dir] * len(inputs), [eos_token] * len(inputs)))


def _shard_name(path: str) -> str:
    name = os.path.basename(path.rstrip("/"))
    return name.removesuffix(".gz").rsplit(".", 1)[0] if "." in name else name


def _encode_file(path: str, prefix: str, tokenizer_dir: str, eos_token: str) -> dict:
    return write_shard(prefix, file_documents(path, eos_token), Tokenizer.load(tokenizer_dir), eos_token)
