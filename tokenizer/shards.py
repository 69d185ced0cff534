"""Packed token shards: what the trainer reads.

A shard ``<name>`` is three files:

* ``<name>.bin``: every document's token ids followed by the end-of-sequence id, back to back, as uint16 when
  the vocabulary fits (else uint32), little-endian;
* ``<name>.idx``: uint64 offsets (in tokens) of every document's first token, plus the total: documents + 1;
* ``<name>.json``: the header (format, dtype, token and document counts, vocabulary size, EOS id, tokenizer
  hash). It is written last, after the other two are complete, so a shard with a header is whole.
"""

from __future__ import annotations

import json
import os
from typing import Iterable

import numpy as np

FORMAT = "refinery-shard"
VERSION = 1


class ShardError(ValueError):
    """A shard whose files do not agree with each other or with its header."""


def dtype_for(vocab_size: int) -> np.dtype:
    """uint16 when every id fits, else uint32."""
    return np.dtype("<u2") if vocab_size <= 1 << 16 else np.dtype("<u4")


class ShardWriter:
    """Write documents (lists of token ids) to a shard; nothing counts as written until :meth:`close`."""

    def __init__(self, prefix: str, *, vocab_size: int, eos_id: int, tokenizer_hash: str, extra: dict | None = None):
        if not 0 <= eos_id < vocab_size:
            raise ValueError(f"eos_id {eos_id} is outside the vocabulary of {vocab_size}")
        self.prefix = str(prefix)
        self.dtype = dtype_for(vocab_size)
        self.vocab_size, self.eos_id, self.tokenizer_hash = vocab_size, eos_id, tokenizer_hash
        self.extra = extra or {}
        os.makedirs(os.path.dirname(os.path.abspath(self.prefix)), exist_ok=True)
        self._bin = open(self.prefix + ".bin.tmp", "wb")
        self._offsets = [0]
        self.header: dict | None = None  # set by close()

    def write(self, ids: Iterable[int]) -> None:
        """Append one document (its ids, then EOS)."""
        array = np.fromiter(ids, dtype=np.int64)
        if len(array) and (array.min() < 0 or array.max() >= self.vocab_size):
            raise ValueError(f"token ids must be in [0, {self.vocab_size}), got {array.min()}..{array.max()}")
        self._bin.write(np.append(array, self.eos_id).astype(self.dtype).tobytes())
        self._offsets.append(self._offsets[-1] + len(array) + 1)

    def close(self) -> dict:
        """Finish the shard; returns its header."""
        self._bin.close()
        with open(self.prefix + ".idx.tmp", "wb") as f:
            f.write(np.asarray(self._offsets, dtype="<u8").tobytes())
        header = {
            "format": FORMAT,
            "version": VERSION,
            "dtype": self.dtype.name,
            "tokens": self._offsets[-1],
            "documents": len(self._offsets) - 1,
            "vocab_size": self.vocab_size,
            "eos_id": self.eos_id,
            "tokenizer_hash": self.tokenizer_hash,
            **self.extra,
        }
        os.replace(self.prefix + ".bin.tmp", self.prefix + ".bin")
        os.replace(self.prefix + ".idx.tmp", self.prefix + ".idx")
        with open(self.prefix + ".json.tmp", "w") as f:
            json.dump(header, f, indent=1)
        os.replace(self.prefix + ".json.tmp", self.prefix + ".json")
        self.header = header
        return header

    def __enter__(self) -> "ShardWriter":
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is None:
            self.close()
        else:  # leave no half-written files behind
            self._bin.close()
            for suffix in (".bin.tmp", ".idx.tmp"):
                if os.path.exists(self.prefix + suffix):
                    os.remove(self.prefix + suffix)


class ShardReader:
    """A shard memory-mapped for reading; the header's counts are checked against the files' sizes."""

    def __init__(self, prefix: str):
        prefix = str(prefix).removesuffix(".json").removesuffix(".bin").removesuffix(".idx")
        self.prefix = prefix
        try:
            with open(prefix + ".json") as f:
                self.header = json.load(f)
        except FileNotFoundError:
            raise ShardError(f"{prefix}.json: no header (the shard is missing or was not finished)") from None
        if self.header.get("format") != FORMAT:
            raise ShardError(f"{prefix}.json: not a {FORMAT} header")
        self.dtype = np.dtype(self.header["dtype"]).newbyteorder("<")
        expected = self.header["tokens"] * self.dtype.itemsize
        actual = os.path.getsize(prefix + ".bin")
        if actual != expected:
            raise ShardError(
                f"{prefix}.bin: the header says {self.header['tokens']} tokens ({expected} bytes), "
                f"the file has {actual} bytes"
            )
        self.tokens = np.memmap(prefix + ".bin", dtype=self.dtype, mode="r") if expected else np.empty(0, self.dtype)
        self.offsets = np.fromfile(prefix + ".idx", dtype="<u8")
        if len(self.offsets) != self.header["documents"] + 1:
            raise ShardError(
                f"{prefix}.idx: {len(self.offsets)} offsets for {self.header['documents']} documents "
                f"(expected documents + 1)"
            )

    def __len__(self) -> int:
        return self.header["documents"]

    def document(self, i: int) -> np.ndarray:
        """Token ids of document ``i``, without its EOS."""
        start, end = int(self.offsets[i]), int(self.offsets[i + 1])
        return np.asarray(self.tokens[start : end - 1])


def verify_shard(prefix: str, tokenizer_hash: str | None = None) -> list[str]:
    """Problems found in a shard (an empty list for a good one): header, index, EOS placement, id range."""
    try:
        shard = ShardReader(prefix)
    except (ShardError, OSError, ValueError, KeyError) as exc:
        return [str(exc)]
    h, offsets, problems = shard.header, shard.offsets.astype(np.int64), []
    if len(offsets) and (offsets[0] != 0 or offsets[-1] != h["tokens"]):
        problems.append(f"index spans {offsets[0]}..{offsets[-1]}, expected 0..{h['tokens']}")
    if len(offsets) > 1 and (np.diff(offsets) < 1).any():
        problems.append("index offsets are not strictly increasing")
    if not problems and h["documents"]:
        ends = shard.tokens[offsets[1:] - 1]
        if (ends != h["eos_id"]).any():
            problems.append(f"{int((ends != h['eos_id']).sum())} documents do not end with EOS {h['eos_id']}")
        if len(shard.tokens) and int(shard.tokens.max()) >= h["vocab_size"]:
            problems.append(f"token id {int(shard.tokens.max())} is outside the vocabulary of {h['vocab_size']}")
    if tokenizer_hash and h.get("tokenizer_hash") != tokenizer_hash:
        problems.append(f"written by tokenizer {h.get('tokenizer_hash')}, not {tokenizer_hash}")
    return problems
