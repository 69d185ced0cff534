"""Tokenizer files: GPT-2's ``vocab.json`` + ``merges.txt`` (byte-level tokens written with GPT-2's
printable byte-to-character map), refinery's own directory (those two files plus ``refinery.json`` for the
special tokens), and Hugging Face's ``tokenizer.json``."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re

from tokenizer.errors import ConfigError

GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
FORMAT_VERSION = 1
SPECIAL_SHAPE = re.compile(r"<\|[^|<>\s]+\|>")  # how GPT-2 style vocabularies write special tokens


@functools.cache
def byte_to_char() -> dict[int, str]:
    """GPT-2's map of the 256 bytes to printable characters (printable bytes map to themselves)."""
    kept = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), 256))
    chars = list(kept)
    extra = 0
    for b in range(256):
        if b not in kept:
            kept.append(b)
            chars.append(256 + extra)
            extra += 1
    return {b: chr(c) for b, c in zip(kept, chars)}


@functools.cache
def char_to_byte() -> dict[str, int]:
    return {c: b for b, c in byte_to_char().items()}


def to_chars(token: bytes) -> str:
    table = byte_to_char()
    return "".join(table[b] for b in token)


def from_chars(text: str) -> bytes:
    table = char_to_byte()
    return bytes(table[c] for c in text)


def load_gpt2(vocab_path: str, merges_path: str, special_tokens: list[str] = ()) -> tuple[dict, list, list]:
    """Vocabulary (id -> bytes), merges and special tokens from GPT-2 style files. Special tokens found in
    ``vocab.json`` keep their id; others are appended. A malformed file is a :class:`ConfigError` naming it
    and the entry (ids must be the integers 0..n-1, each once)."""
    raw = _json_file(vocab_path)
    if not isinstance(raw, dict):
        raise ConfigError(vocab_path, "", f"expected a JSON object of token -> id, got a {type(raw).__name__}")
    specials = list(special_tokens)
    vocab: dict[int, bytes] = {}
    for text, i in raw.items():
        if not isinstance(i, int) or isinstance(i, bool) or not 0 <= i < len(raw):
            raise ConfigError(
                vocab_path, repr(text), f"expected an id in 0..{len(raw) - 1} (the ids are 0..n-1), got {i!r}"
            )
        if i in vocab:
            raise ConfigError(vocab_path, repr(text), f"id {i} is given to two tokens")
        try:
            vocab[i] = text.encode("utf-8") if text in specials else from_chars(text)
        except KeyError as exc:
            raise ConfigError(vocab_path, repr(text), f"character {exc.args[0]!r} is not in GPT-2's byte map") from None
    merges = _merges(merges_path)
    for token in specials:
        if token.encode("utf-8") not in vocab.values():
            vocab[max(vocab) + 1 if vocab else 0] = token.encode("utf-8")
    return vocab, merges, specials


def _json_file(path: str):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise ConfigError(path, "", "no such file (a tokenizer directory holds vocab.json and merges.txt)") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(path, "", f"not valid JSON: {exc}") from None


def _merges(path: str) -> list[tuple[bytes, bytes]]:
    merges = []
    try:
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                line = line.rstrip("\n")
                if not line or line.startswith("#version"):
                    continue
                left, sep, right = line.partition(" ")
                if not sep or " " in right:
                    raise ConfigError(
                        path, f"line {number}", f"expected two tokens separated by one space, got {line!r}"
                    )
                try:
                    merges.append((from_chars(left), from_chars(right)))
                except KeyError as exc:
                    raise ConfigError(
                        path, f"line {number}", f"character {exc.args[0]!r} is not in GPT-2's byte map"
                    ) from None
    except FileNotFoundError:
        raise ConfigError(path, "", "no such file (a tokenizer directory holds vocab.json and merges.txt)") from None
    return merges


def save(directory: str, vocab: dict[int, bytes], merges: list[tuple[bytes, bytes]], special_tokens: list[str]) -> None:
    """Write ``vocab.json``, ``merges.txt``, ``refinery.json`` and Hugging Face's ``tokenizer.json``."""
    os.makedirs(directory, exist_ok=True)
    specials = {t.encode("utf-8") for t in special_tokens}
    names = {i: (b.decode("utf-8") if b in specials else to_chars(b)) for i, b in vocab.items()}
    _write(
        os.path.join(directory, "vocab.json"),
        json.dumps({names[i]: i for i in sorted(vocab)}, ensure_ascii=False, indent=0),
    )
    _write(
        os.path.join(directory, "merges.txt"),
        "#version: 0.2\n" + "".join(f"{to_chars(a)} {to_chars(b)}\n" for a, b in merges),
    )
    meta = {
        "format": "refinery-bpe",
        "version": FORMAT_VERSION,
        "special_tokens": list(special_tokens),
        "pattern": GPT2_PATTERN,
        "hash": tokenizer_hash(vocab, merges, special_tokens),
    }
    _write(os.path.join(directory, "refinery.json"), json.dumps(meta, indent=1))
    _write(
        os.path.join(directory, "tokenizer.json"),
        json.dumps(hf_tokenizer_json(vocab, merges, special_tokens), ensure_ascii=False),
    )
    for name, content in hf_special_token_files(vocab, special_tokens).items():
        _write(os.path.join(directory, name), json.dumps(content, ensure_ascii=False, indent=1))


def load(directory: str) -> tuple[dict, list, list]:
    """A tokenizer saved by :func:`save`, or any GPT-2 style ``vocab.json`` + ``merges.txt`` pair, whose
    special tokens are then the entries written ``<|name|>`` (GPT-2's ``<|endoftext|>``)."""
    if not os.path.isdir(directory):
        raise ConfigError(directory, "", "no such tokenizer directory")
    meta_path = os.path.join(directory, "refinery.json")
    vocab_path = os.path.join(directory, "vocab.json")
    if os.path.exists(meta_path):
        meta = _json_file(meta_path)
        specials = meta.get("special_tokens") if isinstance(meta, dict) else None
        if not isinstance(specials, list) or not all(isinstance(t, str) and t for t in specials):
            raise ConfigError(meta_path, "special_tokens", f"expected a list of non-empty strings, got {specials!r}")
        if len(set(specials)) != len(specials):
            raise ConfigError(meta_path, "special_tokens", f"a special token is listed twice: {specials!r}")
    else:
        raw = _json_file(vocab_path)
        specials = (
            [t for t in raw if isinstance(t, str) and SPECIAL_SHAPE.fullmatch(t)] if isinstance(raw, dict) else []
        )
    return load_gpt2(vocab_path, os.path.join(directory, "merges.txt"), specials)


def tokenizer_hash(vocab: dict[int, bytes], merges: list[tuple[bytes, bytes]], special_tokens: list[str]) -> str:
    """A short fingerprint of a tokenizer, written into every token shard it produces."""
    h = hashlib.sha256()
    for i in sorted(vocab):
        h.update(i.to_bytes(4, "little") + len(vocab[i]).to_bytes(2, "little") + vocab[i])
    for a, b in merges:
        h.update(len(a).to_bytes(2, "little") + a + len(b).to_bytes(2, "little") + b)
    h.update("\x00".join(special_tokens).encode("utf-8"))
    return h.hexdigest()[:16]


def hf_tokenizer_json(vocab: dict[int, bytes], merges: list[tuple[bytes, bytes]], special_tokens: list[str]) -> dict:
    """Hugging Face ``tokenizers`` JSON: byte-level BPE with GPT-2's pre-tokenization and our special tokens."""
    specials = {t.encode("utf-8"): t for t in special_tokens}
    model_vocab = {(specials[b] if b in specials else to_chars(b)): i for i, b in vocab.items()}
    added = [
        {
            "id": i,
            "content": specials[b],
            "single_word": False,
            "lstrip": False,
            "rstrip": False,
            "normalized": False,
            "special": True,
        }
        for i, b in sorted(vocab.items())
        if b in specials
    ]
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": False,
            "vocab": model_vocab,
            "merges": [[to_chars(a), to_chars(b)] for a, b in merges],
        },
    }


def hf_special_token_files(vocab: dict[int, bytes], special_tokens: list[str]) -> dict[str, dict]:
    """``tokenizer_config.json`` and ``special_tokens_map.json``, so that ``transformers``'
    ``AutoTokenizer.from_pretrained(directory)`` knows the end-of-text token and the other special tokens.
    The end-of-text token is ``<|endoftext|>`` when there is one, else the first special token."""
    eos = "<|endoftext|>" if "<|endoftext|>" in special_tokens else (special_tokens[0] if special_tokens else None)
    others = [t for t in special_tokens if t != eos]
    ids = {b: i for i, b in vocab.items()}
    decoder = {
        str(ids[t.encode("utf-8")]): {
            "content": t,
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
            "special": True,
        }
        for t in special_tokens
    }
    names = {"eos_token": eos, "additional_special_tokens": others} if eos else {}
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "clean_up_tokenization_spaces": False,
        "model_max_length": 1_000_000_000_000_000_019_884_624_838_656,  # transformers' "no limit"
        "added_tokens_decoder": decoder,
        **names,
    }
    return {"tokenizer_config.json": config, "special_tokens_map.json": names}


def _write(path: str, text: str) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)
