"""Byte-level BPE training.

Pre-tokenization (GPT-2's regex, special tokens cutting the text so that nothing merges across them) runs
in parallel over chunks and only counts distinct pre-tokens; memory is bounded by their number, not by the
corpus. The merge loop (:mod:`tokenizer._bpe`, in C) updates pair counts incrementally; ties between equally
frequent pairs go to the lexicographically greater pair of byte strings.

The vocabulary is: ids 0-255 the single bytes, then the special tokens, then one token per merge.
"""

from __future__ import annotations

import os
from array import array
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from typing import Callable, Iterable

import regex

from tokenizer import _bpe
from tokenizer.formats import GPT2_PATTERN

PRETOKEN = regex.compile(GPT2_PATTERN)
CHUNK_BYTES = 16 << 20


def special_splitter(special_tokens: Iterable[str]) -> regex.Pattern | None:
    """A pattern that finds special tokens, longest first (so that overlapping ones resolve to the longest)."""
    tokens = sorted(set(special_tokens), key=len, reverse=True)
    return regex.compile("|".join(regex.escape(t) for t in tokens)) if tokens else None


def count_pretokens(texts: Iterable[str], special_tokens: Iterable[str] = ()) -> Counter:
    """How often each pre-token occurs in ``texts`` (special tokens removed, never counted)."""
    splitter = special_splitter(special_tokens)
    counts: Counter = Counter()
    for text in texts:
        for part in splitter.split(text) if splitter else (text,):
            counts.update(PRETOKEN.findall(part))
    return counts


def file_chunks(path: str, special_tokens: list[str], chunk_bytes: int = CHUNK_BYTES) -> list[tuple[int, int]]:
    """Byte ranges of a text file, cut just before a special token near every ``chunk_bytes`` (or at a line
    break when the file has none), so that no pre-token or special token is cut."""
    size = os.path.getsize(path)
    marks = [t.encode("utf-8") for t in special_tokens] or [b"\n"]
    bounds = [0]
    with open(path, "rb") as f:
        while bounds[-1] + chunk_bytes < size:
            f.seek(bounds[-1] + chunk_bytes)
            window = f.read(1 << 20)
            found = [i for i in (window.find(m) for m in marks) if i >= 0]
            if not found:
                break  # one long stretch without a boundary: keep it whole
            bounds.append(bounds[-1] + chunk_bytes + min(found))
    bounds.append(size)
    return list(zip(bounds, bounds[1:]))


def chunk_bytes_for(total: int, workers: int) -> int:
    """Pre-tokenization chunk size: about four chunks per worker (so that the last ones balance the load),
    between 1 MiB and ``CHUNK_BYTES``."""
    return max(1 << 20, min(CHUNK_BYTES, -(-total // (4 * workers))))


def count_file_chunk(path: str, start: int, end: int, special_tokens: list[str]) -> Counter:
    """Pre-token counts of bytes ``[start, end)`` of a UTF-8 text file; invalid UTF-8 is an error naming the
    file and the byte offset."""
    with open(path, "rb") as f:
        f.seek(start)
        data = f.read(end - start)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: invalid UTF-8 at byte {start + exc.start}: {exc.reason}") from None
    return count_pretokens([text], special_tokens)


def pretoken_counts_of_files(
    paths: list[str], special_tokens: list[str], workers: int | None = None, map_fn: Callable | None = None
) -> Counter:
    """Pre-token counts of text files, chunk by chunk in parallel (``map_fn(fn, *iterables)`` as given, else a
    process pool of ``workers``)."""
    workers = workers or os.cpu_count() or 1
    size = chunk_bytes_for(sum(os.path.getsize(p) for p in paths), workers)
    jobs = [(p, s, e) for p in paths for s, e in file_chunks(p, special_tokens, size)]
    args = ([j[0] for j in jobs], [j[1] for j in jobs], [j[2] for j in jobs], [special_tokens] * len(jobs))
    total: Counter = Counter()
    if map_fn is not None:
        results = map_fn(count_file_chunk, *args)
    elif workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(max_workers=min(workers, len(jobs))) as pool:
            for counts in pool.map(count_file_chunk, *args):
                total.update(counts)
        return total
    else:
        results = map(count_file_chunk, *args)
    for counts in results:
        total.update(counts)
    return total


def train_from_counts(
    counts: Counter, vocab_size: int, special_tokens: list[str]
) -> tuple[dict[int, bytes], list[tuple[bytes, bytes]]]:
    """Vocabulary and ordered merges from pre-token counts (strings or bytes)."""
    specials = list(dict.fromkeys(special_tokens))
    base = 256 + len(specials)
    if vocab_size < base:
        raise ValueError(f"vocab_size {vocab_size} is below 256 bytes + {len(specials)} special tokens = {base}")
    vocab = [bytes([b]) for b in range(256)] + [t.encode("utf-8") for t in specials]
    words, freqs = [], []
    for token, count in counts.items():
        raw = token.encode("utf-8") if isinstance(token, str) else token
        if len(raw) > 1:  # a single byte has no pair to merge
            words.append(array("i", list(raw)).tobytes())
            freqs.append(count)
    pairs = _bpe.train_merges(words, freqs, vocab, vocab_size - base)
    merges = []
    for a, b in pairs:
        merges.append((vocab[a], vocab[b]))
        vocab.append(vocab[a] + vocab[b])
    return dict(enumerate(vocab)), merges


def train_bpe(
    input_path: str | list[str], vocab_size: int, special_tokens: list[str] = (), *, workers: int | None = None
) -> tuple[dict[int, bytes], list[tuple[bytes, bytes]]]:
    """Train byte-level BPE on UTF-8 text file(s); returns (vocabulary id -> bytes, ordered merges)."""
    paths = [input_path] if isinstance(input_path, (str, os.PathLike)) else list(input_path)
    if not paths or all(os.path.getsize(p) == 0 for p in paths):
        raise ValueError("cannot train a tokenizer on an empty corpus")
    counts = pretoken_counts_of_files([str(p) for p in paths], list(special_tokens), workers)
    if not counts:
        raise ValueError("the corpus holds no text outside its special tokens")
    return train_from_counts(counts, vocab_size, list(special_tokens))
