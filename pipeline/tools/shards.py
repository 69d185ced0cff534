"""``refinery shards inspect`` and ``refinery shards verify``: token shards' counts, a few documents decoded,
and a check of headers, indexes, EOS placement and token ranges."""

from __future__ import annotations

import os

from tokenizer.bpe import Tokenizer
from tokenizer.shards import ShardReader, verify_shard


def shard_prefixes(path: str) -> list[str]:
    """The shards at ``path``: a directory's shards, or one shard named with or without its extension."""
    if os.path.isdir(path):
        return sorted(os.path.join(path, n)[: -len(".json")] for n in os.listdir(path) if n.endswith(".json"))
    return [path.removesuffix(".json").removesuffix(".bin").removesuffix(".idx")]


def inspect_shards(path: str, tokenizer_dir: str | None, n: int) -> str:
    """Counts per shard and the first ``n`` documents decoded (with ``tokenizer_dir``, else the tokenizer
    folder next to the shards' folder, when there is one)."""
    prefixes = shard_prefixes(path)
    if not prefixes:
        raise ValueError(f"no shards in {path}")
    shards = [ShardReader(p) for p in prefixes]
    lines = [f"{'shard':<40}{'documents':>12}{'tokens':>14}  dtype   tokenizer"]
    for shard in shards:
        h = shard.header
        lines.append(
            f"{os.path.basename(shard.prefix):<40}{h['documents']:>12,}{h['tokens']:>14,}  {h['dtype']:<7} "
            f"{h['tokenizer_hash']}"
        )
    lines.append(f"{'total':<40}{sum(len(s) for s in shards):>12,}{sum(s.header['tokens'] for s in shards):>14,}")
    guess = os.path.join(os.path.dirname(os.path.abspath(prefixes[0])), "..", "tokenizer")
    directory = tokenizer_dir or (guess if os.path.isdir(guess) else None)
    if directory:
        tokenizer = Tokenizer.load(directory)
        for shard, i in [(s, i) for s in shards for i in range(len(s))][:n]:
            ids = shard.document(i)
            lines.append(f"\n--- {os.path.basename(shard.prefix)} document {i}: {len(ids):,} tokens")
            lines.append(tokenizer.decode(ids.tolist())[:600])
    elif n:
        lines.append(f"\n(no tokenizer at {os.path.normpath(guess)}: give --tokenizer DIR to see documents decoded)")
    return "\n".join(lines)


def verify_shards(paths: list[str]) -> tuple[list[str], int]:
    """One line per shard (``ok`` or its problems) and the number of bad shards."""
    lines, bad = [], 0
    prefixes = [p for path in paths for p in shard_prefixes(path)]
    for prefix in prefixes:
        problems = verify_shard(prefix)
        bad += bool(problems)
        lines.append(f"{prefix}: {'ok' if not problems else '; '.join(problems)}")
    lines.append(f"{len(prefixes) - bad} of {len(prefixes)} shards ok")
    return lines, bad
