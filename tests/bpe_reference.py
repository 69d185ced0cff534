"""A deliberately simple BPE trainer (recounts every pair for every merge), the reference the fast trainer
is compared with: same pre-tokenization, same tie-break."""

from __future__ import annotations

from collections import Counter

from tokenizer.train import count_pretokens


def reference_merges(texts: list[str], vocab_size: int, special_tokens: list[str]) -> list[tuple[bytes, bytes]]:
    words = Counter(
        {tuple(bytes([b]) for b in t.encode()): c for t, c in count_pretokens(texts, special_tokens).items()}
    )
    merges = []
    while 256 + len(special_tokens) + len(merges) < vocab_size:
        pairs: Counter = Counter()
        for word, count in words.items():
            for pair in zip(word, word[1:]):
                pairs[pair] += count
        if not pairs:
            break
        best = max(pairs, key=lambda p: (pairs[p], p))
        merges.append(best)
        merged: Counter = Counter()
        for word, count in words.items():
            out, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and (word[i], word[i + 1]) == best:
                    out.append(word[i] + word[i + 1])
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            merged[tuple(out)] += count
        words = merged
    return merges
