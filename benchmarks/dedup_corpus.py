"""The dedup benchmark's corpus: real extracted documents plus seeded near-duplicates at controlled
Jaccard similarities, and the exact ground truth (every pair sharing a shingle)."""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / ".work"
DEDUP_WORK = WORK / "dedup"
MIN_WORDS = 50

sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def peak_rss_mb() -> dict:
    """Peak resident set size, MB: ``VmHWM`` of this process's address space, and getrusage's ru_maxrss of
    this process and of its largest waited-for child. On Linux ru_maxrss survives fork + exec: a worker started
    by a big parent reports at least the parent's RSS at the fork (tested: a 300 MB parent gives every child
    312 MB), so the table uses VmHWM, which a new program starts afresh, and max'es it with the children's."""
    with open("/proc/self/status") as f:
        hwm = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024
    return {
        "vmhwm_mb": hwm,
        "ru_maxrss_self_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "ru_maxrss_children_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }


def current_rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


# -- base documents -----------------------------------------------------------------------------------------------


def base_documents(warc: Path, manifest: dict) -> list[str]:
    """Texts of the WARC's pages as the project extracts them (main content), those of >= MIN_WORDS words;
    cached next to the WARC, keyed by its checksum."""
    cache = DEDUP_WORK / f"base-{manifest['sha256'][:16]}-{MIN_WORDS}w.json"
    if cache.exists():
        return json.loads(cache.read_text())
    from filters.extract import HtmlExtractor
    from filters.warc import WarcRecord, iter_records

    extractor = HtmlExtractor(main_content=True)
    texts = []
    with open(warc, "rb") as f:
        for record in iter_records(f):
            if not isinstance(record, WarcRecord):
                continue
            result = extractor.extract(record, str(warc))
            if result is not None and result[1] is None and len(result[0]["text"].split()) >= MIN_WORDS:
                texts.append(result[0]["text"])
    DEDUP_WORK.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(texts))
    return texts


# -- planted near-duplicates --------------------------------------------------------------------------------------

_SPLIT = re.compile(r"(\s+)")


def edit_rate(target_jaccard: float, n: int = 5) -> float:
    """Share of words to edit so that about ``target_jaccard`` of the n-gram sets remains: an edit touches
    the n shingles around it, so a share u = (1 - r)**n survives and J ~ u / (2 - u)."""
    return 1.0 - (2 * target_jaccard / (1 + target_jaccard)) ** (1 / n)


def edit(text: str, rate: float, rng: np.random.Generator, vocab: list[str]) -> str:
    """Replace, delete or insert (one third each) a share ``rate`` of the words, keeping the whitespace."""
    parts = _SPLIT.split(text)  # word, space, word, ..., word
    n = (len(parts) + 1) // 2
    where = np.flatnonzero(rng.random(n) < rate).tolist()
    ops = rng.integers(0, 3, len(where)).tolist()
    words = rng.integers(0, len(vocab), len(where)).tolist()
    out, prev = [], 0
    for i, op, w in zip(where, ops, words):
        out += parts[2 * prev : 2 * i]
        space = parts[2 * i + 1] if 2 * i + 1 < len(parts) else ""
        if op == 0:  # replace
            out += [vocab[w], space]
        elif op == 2:  # insert before
            out += [vocab[w], " ", parts[2 * i], space]
        prev = i + 1  # op == 1: delete
    out += parts[2 * prev :]
    return "".join(out).strip()


def plant(sources: list[str], rng: np.random.Generator, vocab: list[str], share: float) -> list[tuple[str, str]]:
    """Edited copies of a ``share`` of ``sources``: 1-3 copies each, target Jaccard U(0.5, 1.0) (5% exact);
    30% of the copies are copied again (target U(0.75, 1.0)), so clusters have chains. (text, kind) pairs."""
    out = []
    for i in np.flatnonzero(rng.random(len(sources)) < share).tolist():
        for _ in range(int(rng.choice([1, 1, 2, 2, 3]))):
            target = 1.0 if rng.random() < 0.05 else rng.uniform(0.5, 1.0)
            copy = edit(sources[i], edit_rate(target), rng, vocab)
            out.append((copy, "copy"))
            if rng.random() < 0.3:
                out.append((edit(copy, edit_rate(rng.uniform(0.75, 1.0)), rng, vocab), "copy-of-copy"))
    return out


def replica(base: list[str], j: int, seed: int, vocab: list[str], share: float) -> list[tuple[str, str]]:
    """Replica 0: the base texts and near-duplicates of them. Replica j > 0: every base text rewritten
    (target Jaccard U(0.15, 0.35) to it: another document as far as dedup is concerned), plus near-duplicates
    of those."""
    rng = np.random.default_rng([seed, j])
    if j == 0:
        docs = [(t, "base") for t in base]
    else:
        docs = [(edit(t, edit_rate(rng.uniform(0.15, 0.35)), rng, vocab), "variant") for t in base]
    return docs + plant([t for t, _ in docs], rng, vocab, share)


def make_corpus(base: list[str], scale: int, seed: int, vocab: list[str], share: float) -> list[tuple[str, str]]:
    docs = [d for j in range(scale) for d in replica(base, j, seed, vocab, share)]
    order = np.random.default_rng([seed, 1000 + scale]).permutation(len(docs))
    return [docs[i] for i in order.tolist()]


def write_corpus(docs: list[tuple[str, str]], folder: Path) -> list[Path]:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    paths = []
    for i, (text, _) in enumerate(docs):
        p = folder / f"{i:07d}.txt"
        p.write_text(text, encoding="utf-8")
        paths.append(p)
    return paths


# -- ground truth ----------------------------------------------------------------------------------------------


def ground_truth(texts: list[str], threshold: float, ngram: int = 5) -> dict:
    """Exact Jaccard of every pair of documents sharing a shingle; components of {J >= threshold}."""
    from scipy.sparse import coo_matrix, csr_matrix
    from scipy.sparse.csgraph import connected_components

    from filters.dedup import jaccard, shingle_set

    t0 = time.perf_counter()
    sets = [shingle_set(t, ngram) for t in texts]
    n = len(sets)
    sizes = np.array([len(s) for s in sets], dtype=np.int64)
    ids, column = np.unique(np.concatenate(sets), return_inverse=True)
    # rows = documents, columns = shingles; X X^T counts, for every pair with a shingle in common (and only
    # those), how many they share: the sum over each shingle's posting list (X's columns) of its pairs
    x = csr_matrix(
        (np.ones(len(column), dtype=np.int32), (np.repeat(np.arange(n), sizes), column)), shape=(n, len(ids))
    )
    shared = (x @ x.T).tocoo()
    upper = shared.row < shared.col
    u, v, common = shared.row[upper].astype(np.int64), shared.col[upper].astype(np.int64), shared.data[upper]
    sim = common / (sizes[u] + sizes[v] - common)
    order = np.lexsort((v, u))
    u, v, sim = u[order], v[order], sim[order]
    # cross-check against the project's jaccard() on every pair above 0.25 (and a sample of the rest)
    check = np.flatnonzero(sim >= 0.25)
    rest = np.flatnonzero(sim < 0.25)
    if len(rest):
        check = np.r_[check, np.random.default_rng(0).choice(rest, min(2000, len(rest)), replace=False)]
    worst = max((abs(jaccard(sets[a], sets[b]) - s) for a, b, s in zip(u[check], v[check], sim[check])), default=0.0)
    if worst > 1e-12:
        raise AssertionError(f"shared-shingle counts disagree with filters.dedup.jaccard by {worst}")
    edge = sim >= threshold
    graph = coo_matrix((np.ones(edge.sum()), (u[edge], v[edge])), shape=(n, n))
    _, label = connected_components(graph, directed=False)
    first = np.full(label.max() + 1, n)
    np.minimum.at(first, label, np.arange(n))
    removed = np.arange(n) != first[label]
    return {
        "u": u,
        "v": v,
        "sim": sim,
        "label": label,
        "removed": removed,
        "pairs_evaluated": len(sim),
        "checked_with_jaccard": len(check),
        "seconds": time.perf_counter() - t0,
    }
