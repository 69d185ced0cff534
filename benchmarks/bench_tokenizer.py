#!/usr/bin/env python3
"""Byte-level BPE tokenizer: training time and peak memory against Hugging Face ``tokenizers``, encoding
throughput against tiktoken, corpus -> token shards throughput, and bytes per token, in one run.

    /tmp/venv/bin/python benchmarks/bench_tokenizer.py              # full run (~50 MB corpus, 3 repeats)
    /tmp/venv/bin/python benchmarks/bench_tokenizer.py --quick      # ~10 MB slice, 1 repeat
    /tmp/venv/bin/python benchmarks/bench_tokenizer.py --profile 10 # also cProfile training and cold encoding

Corpus (``tokenizer_corpus.py``): English Debian documentation packages (``apt-get download`` +
``dpkg-deb -x``), HTML through resiliparse, Perl's POD as it is, English kept by the project's language
filter, one document per page joined with ``<|endoftext|>``; 5% of the documents (by a hash of their id) are
held out.

1. Training, vocabulary 10,000 + ``<|endoftext|>``, same corpus, same number of cores (``--workers``, 2):
   ours = ``tokenizer.train.train_bpe(corpus, 10000, [EOT], workers=2)`` (pre-tokenization and merges timed
   apart); HF = ``tokenizers`` ByteLevel BPE (``BpeTrainer``) with ``RAYON_NUM_THREADS=2``. Each run is a
   fresh subprocess (median of the repeats; peak memory from ``/proc/self/status`` VmHWM, which starts
   afresh at exec, unlike ``ru_maxrss``).
2. Encoding, one thread, with our trained tokenizer: the pure-Python path (cold: empty cache; warm: the
   second pass), the default tiktoken-backed path, and tiktoken itself loaded with our ranks (the anchor);
   the ids of all three are compared on the whole text.
3. ``pipeline.tools.tokenize_files.encode_files`` (``refinery tokenize``) on the corpus cut into 8 text files, with
   2 and 1 workers; shards checked with ``tokenizer.shards.verify_shard``.
4. Bytes per token on ``heldout.txt``: ours, HF's (trained in 1.), GPT-2's 50k tokenizer.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
ROOT = HERE.parent

from tokenizer_corpus import EOT, TOK_WORK  # noqa: E402
from tokenizer_corpus import build as build_corpus  # noqa: E402

VOCAB_SIZE = 10_000
GPT2_DIR = ROOT / "tests" / "fixtures" / "cs336" / "bpe"
N_PARTS = 8


def log(msg: str) -> None:
    print(f"[bench_tokenizer] {msg}", file=sys.stderr, flush=True)


def vmhwm_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024


def cpu_seconds() -> float:
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


# ---------------------------------------------------------------------------------------------------------
# one training run, in a fresh subprocess (``--side ours|hf``)


def side_main(args) -> int:
    corpus, out = args.corpus, args.out
    if args.side == "ours":
        from tokenizer import train
        from tokenizer.bpe import Tokenizer

        phases: dict[str, float] = {}

        def timed(name, fn):
            def wrapper(*a, **k):
                t0 = time.perf_counter()
                result = fn(*a, **k)
                phases[name] = time.perf_counter() - t0
                return result

            return wrapper

        # train_bpe looks these up in its module at call time: the wrappers time its two phases
        train.pretoken_counts_of_files = timed("pretokenize_s", train.pretoken_counts_of_files)
        train.train_from_counts = timed("merges_s", train.train_from_counts)
        t0 = time.perf_counter()
        vocab, merges = train.train_bpe(corpus, args.vocab_size, [EOT], workers=args.workers)
        seconds = time.perf_counter() - t0
        result = {"seconds": seconds, **phases, "peak_mb": vmhwm_mb(), "cpu_s": cpu_seconds()}
        result["workers_peak_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        tok = Tokenizer(vocab, merges, [EOT])
        result.update(vocab=len(vocab), merges=len(merges), hash=tok.hash)
        if out:
            tok.save(out)
    else:
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=args.vocab_size,
            special_tokens=[EOT],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        t0 = time.perf_counter()
        tok.train([corpus], trainer)
        seconds = time.perf_counter() - t0
        result = {"seconds": seconds, "peak_mb": vmhwm_mb(), "cpu_s": cpu_seconds(), "workers_peak_mb": 0.0}
        vocab = tok.get_vocab()
        import hashlib

        result.update(
            vocab=len(vocab),
            hash=hashlib.sha256(tok.to_str().encode()).hexdigest()[:16],
            eot_pieces=sum(1 for t in vocab if t != EOT and any(s in t for s in ("<|", "|>", "endoftext"))),
        )
        if out:
            os.makedirs(out, exist_ok=True)
            tok.save(os.path.join(out, "tokenizer.json"))
    print("RESULT " + json.dumps(result), flush=True)
    return 0


def run_side(side: str, corpus: Path, out: Path | None, workers: int, vocab_size: int) -> dict:
    env = dict(os.environ, RAYON_NUM_THREADS=str(workers), TOKENIZERS_PARALLELISM="true")
    cmd = [sys.executable, str(Path(__file__).resolve()), "--side", side, "--corpus", str(corpus)]
    cmd += ["--workers", str(workers), "--vocab-size", str(vocab_size)]
    if out is not None:
        cmd += ["--out", str(out)]
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    if res.returncode != 0:
        sys.exit(f"{side} training failed ({res.returncode}):\n{res.stderr[-3000:]}")
    line = next(line for line in res.stdout.splitlines() if line.startswith("RESULT "))
    result = json.loads(line[len("RESULT ") :])
    result["process_s"] = time.perf_counter() - t0
    return result


# ---------------------------------------------------------------------------------------------------------
# helpers


def med(values):
    return statistics.median(values)


def fmt_row(cells, widths):
    return "  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))


def table(header, rows):
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = [fmt_row(header, widths), "  ".join("-" * w for w in widths)]
    return "\n".join(lines + [fmt_row(r, widths) for r in rows])


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def slice_corpus(src: Path, dst_dir: Path, max_mb: float) -> Path:
    """The first documents of ``src`` up to ``max_mb`` MB, as ``dst_dir/corpus.txt`` (cached)."""
    dst = dst_dir / "corpus.txt"
    stamp = dst_dir / "source.json"
    want = {"source": str(src), "source_bytes": src.stat().st_size, "max_mb": max_mb}
    if dst.exists() and stamp.exists() and json.loads(stamp.read_text()) == want:
        return dst
    docs, total = [], 0
    for doc in src.read_text(encoding="utf-8").split(EOT):
        if total >= max_mb * 1e6:
            break
        docs.append(doc)
        total += len(doc.encode("utf-8")) + len(EOT)
    dst_dir.mkdir(parents=True, exist_ok=True)
    dst.write_text(EOT.join(docs), encoding="utf-8")
    stamp.write_text(json.dumps(want))
    return dst


def split_parts(corpus: Path, parts_dir: Path, n: int) -> list[Path]:
    """``corpus`` cut at document boundaries into ``n`` text files of about equal size (cached)."""
    stamp = parts_dir / "source.json"
    want = {"source": str(corpus), "bytes": corpus.stat().st_size, "mtime": corpus.stat().st_mtime, "n": n}
    paths = [parts_dir / f"part-{i:02d}.txt" for i in range(n)]
    if stamp.exists() and json.loads(stamp.read_text()) == want and all(p.exists() for p in paths):
        return paths
    docs = corpus.read_text(encoding="utf-8").split(EOT)
    sizes = [len(d.encode("utf-8")) for d in docs]
    total, target = sum(sizes), sum(sizes) / n
    groups: list[list[str]] = [[] for _ in range(n)]
    acc = 0
    for doc, size in zip(docs, sizes):
        groups[min(int(acc / target), n - 1)].append(doc)
        acc += size
    parts_dir.mkdir(parents=True, exist_ok=True)
    for path, group in zip(paths, groups):
        path.write_text(EOT.join(group), encoding="utf-8")
    stamp.write_text(json.dumps(want))
    assert total > 0
    return paths


def top_profile(prof, n: int) -> str:
    import io
    import pstats

    s = io.StringIO()
    pstats.Stats(prof, stream=s).strip_dirs().sort_stats("tottime").print_stats(n)
    lines = s.getvalue().splitlines()
    start = next(i for i, line in enumerate(lines) if "ncalls" in line)
    total = next((line.strip() for line in lines if "function calls" in line), "")
    return "\n".join(["  " + total] + ["  " + line for line in lines[start:] if line.strip()])


# ---------------------------------------------------------------------------------------------------------
# the sections


def bench_training(corpus: Path, tok_dir: Path, hf_dir: Path, args, report: dict) -> None:
    runs: dict[str, list[dict]] = {"ours": [], "hf": []}
    for r in range(args.repeats):
        for side, out in (("ours", tok_dir), ("hf", hf_dir)):
            res = run_side(side, corpus, out if r == 0 else None, args.workers, args.vocab_size)
            runs[side].append(res)
            log(f"train {side} #{r + 1}: {res['seconds']:.2f} s, peak {res['peak_mb']:.0f} MB")
    ours, hf = runs["ours"], runs["hf"]
    report["training"] = runs
    mb = corpus.stat().st_size / 1e6
    rows = []
    for name, rs in (("ours train_bpe", ours), ("HF tokenizers BpeTrainer", hf)):
        wall = med([x["seconds"] for x in rs])
        rows.append(
            [
                name,
                f"{wall:.2f}",
                f"{min(x['seconds'] for x in rs):.2f}",
                f"{med([x['cpu_s'] for x in rs]):.1f}",
                f"{mb / wall:.1f}",
                f"{med([x['peak_mb'] for x in rs]):.0f}",
                f"{med([x['workers_peak_mb'] for x in rs]):.0f}" if rs[0]["workers_peak_mb"] else "-",
                str(rs[0]["vocab"]),
            ]
        )
    for key, label in (("pretokenize_s", "  ours: pre-tokenization"), ("merges_s", "  ours: merges")):
        v = med([x[key] for x in ours])
        rows.append(
            [
                label,
                f"{v:.2f}",
                f"{min(x[key] for x in ours):.2f}",
                "",
                f"{mb / v:.1f}" if key[0] == "p" else "",
                "",
                "",
                "",
            ]
        )
    print(
        f"\n== 1. Training: vocab {args.vocab_size} + {EOT}, {mb:.1f} MB corpus, {args.workers} cores, "
        f"median of {args.repeats} (fresh subprocess each)"
    )
    print(
        table(
            ["", "wall s", "best s", "cpu s", "MB/s", "peak MB", "worker MB", "vocab"],
            rows,
        )
    )
    ratio = med([x["seconds"] for x in ours]) / med([x["seconds"] for x in hf])
    report["training_ratio"] = ratio
    from tokenizer.train import chunk_bytes_for, file_chunks

    size = chunk_bytes_for(corpus.stat().st_size, args.workers)
    chunks = [e - s for s, e in file_chunks(str(corpus), [EOT], size)]
    report["pretokenize_chunks_mb"] = [c / 1e6 for c in chunks]
    hashes = {x["hash"] for x in ours}
    print(
        "peak MB: the training process's VmHWM; worker MB: largest pre-tokenization worker (ru_maxrss of the "
        "reaped pool processes, shared pages counted; '-': no pool); HF is one multi-threaded process; "
        "cpu s: user + system of the process and its children."
    )
    print(
        f"ours pre-tokenization: {len(chunks)} chunk(s) of {', '.join(f'{c / 1e6:.1f}' for c in chunks)} MB "
        f"(tokenizer.train.chunk_bytes_for: {size / 2**20:.1f} MiB) for {args.workers} workers"
    )
    print(
        f"ours deterministic across repeats: {len(hashes) == 1} (hash {next(iter(hashes))}); "
        f"HF vocab tokens holding pieces of {EOT}: {hf[0].get('eot_pieces')} (HF does not cut the raw text at "
        "special tokens; its ties break differently: a speed baseline, not a reference)"
    )
    print(f"GOAL training time ours/HF <= 2.0x: {ratio:.2f}x  {verdict(ratio <= 2.0)}")


def bench_encoding(text: str, tok_dir: Path, args, report: dict):
    import tiktoken

    from tokenizer import formats
    from tokenizer.bpe import Tokenizer

    vocab, merges, specials = formats.load(str(tok_dir))
    mb = len(text.encode("utf-8")) / 1e6
    special_ids = {t: i for i, b in vocab.items() for t in specials if b == t.encode("utf-8")}
    anchor = tiktoken.Encoding(
        name="bench-anchor",
        pat_str=formats.GPT2_PATTERN,
        mergeable_ranks={b: i for i, b in vocab.items() if i not in special_ids.values()},
        special_tokens=special_ids,
    )
    eot_id = special_ids[EOT]
    pieces = text.split(EOT)

    def anchor_pieces():
        out = anchor.encode_ordinary(pieces[0])
        for p in pieces[1:]:
            out.append(eot_id)
            out.extend(anchor.encode_ordinary(p))
        return out

    times: dict[str, list[float]] = {k: [] for k in ("py_cold", "py_warm", "ours_tt", "tt_all", "tt_pieces")}
    ids: dict[str, list[int]] = {}
    cache_sizes = []
    for r in range(args.repeats):
        py = Tokenizer(vocab, merges, specials, backend="python")
        for key in ("py_cold", "py_warm"):
            t0 = time.perf_counter()
            out = py.encode(text)
            times[key].append(time.perf_counter() - t0)
            if r == 0:
                ids.setdefault("python", out)
        cache_sizes.append(len(py._cache))
        del py, out
        fast = Tokenizer(vocab, merges, specials, backend="tiktoken")
        assert fast.backend == "tiktoken"
        for key, fn in (
            ("ours_tt", lambda fast=fast: fast.encode(text)),
            ("tt_all", lambda: anchor.encode(text, allowed_special="all")),
            ("tt_pieces", anchor_pieces),
        ):
            t0 = time.perf_counter()
            out = fn()
            times[key].append(time.perf_counter() - t0)
            if r == 0:
                ids[key] = out
            del out
        log(f"encode #{r + 1}: " + ", ".join(f"{k} {mb / v[-1]:.1f} MB/s" for k, v in times.items()))
    same_tt = ids["python"] == ids["ours_tt"]
    same_anchor = ids["python"] == ids["tt_all"] == ids["tt_pieces"]
    n_tokens = len(ids["python"])
    del ids
    rate = {k: mb / med(v) for k, v in times.items()}
    anchor_rate = max(rate["tt_all"], rate["tt_pieces"])
    labels = {
        "py_cold": "ours backend=python, cold (empty cache)",
        "py_warm": "ours backend=python, warm (2nd pass)",
        "ours_tt": "ours default backend=tiktoken",
        "tt_all": "tiktoken .encode(allowed_special='all')",
        "tt_pieces": "tiktoken .encode_ordinary per document",
    }
    rows = [
        [labels[k], f"{rate[k]:.2f}", f"{mb / min(v):.2f}", f"{med(v):.2f}", f"{rate[k] / anchor_rate:.2f}"]
        for k, v in times.items()
    ]
    print(
        f"\n== 2. Encoding, one thread, our 10k vocabulary: {mb:.1f} MB of text ({n_tokens:,} tokens), "
        f"median of {args.repeats}"
    )
    print(table(["", "MB/s", "best MB/s", "s", "vs tiktoken"], rows))
    print(
        f"anchor = the faster tiktoken row ({anchor_rate:.2f} MB/s); MB = UTF-8 bytes / 1e6 of the input text; "
        f"pure-Python cache after one pass: {cache_sizes[0]:,} pre-tokens"
    )
    print(
        f"ids identical, backend=python vs backend=tiktoken: {same_tt}; vs tiktoken anchor (both calls): {same_anchor}"
    )
    for key in ("py_cold", "py_warm"):
        x = rate[key] / anchor_rate
        print(f"GOAL pure-Python ({key[3:]}) / tiktoken >= 0.5x: {x:.2f}x  {verdict(x >= 0.5)}")
    report["encoding"] = {
        "mb": mb,
        "tokens": n_tokens,
        "seconds": times,
        "mb_per_s": rate,
        "anchor_mb_per_s": anchor_rate,
        "ids_equal_python_tiktoken_backend": same_tt,
        "ids_equal_anchor": same_anchor,
        "cache_size": cache_sizes[0],
    }


def bench_shards(corpus: Path, work: Path, tok_dir: Path, args, report: dict) -> None:
    import numpy as np

    from pipeline.tools.tokenize_files import encode_files, file_documents
    from tokenizer.bpe import Tokenizer
    from tokenizer.shards import ShardReader, verify_shard

    parts = split_parts(corpus, work / "parts", N_PARTS)
    mb = sum(p.stat().st_size for p in parts) / 1e6
    tok = Tokenizer.load(str(tok_dir))
    out = work / "shards"
    runs: dict[int, list[tuple[float, int]]] = {}
    headers = []
    for r in range(args.repeats):
        for workers in (args.workers, 1):
            if out.exists():
                shutil.rmtree(out)
            t0 = time.perf_counter()
            headers = encode_files([str(p) for p in parts], str(tok_dir), str(out), workers=workers)
            dt = time.perf_counter() - t0
            runs.setdefault(workers, []).append((dt, sum(h["tokens"] for h in headers)))
            log(f"encode_files workers={workers} #{r + 1}: {dt:.2f} s")
    prefixes = [str(out / p.stem) for p in parts]
    problems = {p: verify_shard(p, tok.hash) for p in prefixes}
    bad = {p: v for p, v in problems.items() if v}
    docs = list(file_documents(str(parts[0])))
    reader = ShardReader(prefixes[0])
    same = len(reader) == len(docs) and all(
        np.array_equal(reader.document(i), np.asarray(tok.encode(d), dtype=reader.dtype)) for i, d in enumerate(docs)
    )
    tokens = headers and sum(h["tokens"] for h in headers)
    rows = []
    for workers in (args.workers, 1):
        rs = runs[workers]
        wall = med([x[0] for x in rs])
        rows.append(
            [f"encode_files workers={workers}", f"{wall:.2f}", f"{mb / wall:.2f}", f"{tokens / wall / 1e6:.2f}"]
        )
    print(
        f"\n== 3. Corpus -> token shards (pipeline.tools.tokenize_files.encode_files, `refinery tokenize`): "
        f"{N_PARTS} text files, {mb:.1f} MB, {tokens:,} tokens incl. one EOS per document, median of {args.repeats}"
    )
    print(table(["", "wall s", "MB/s", "Mtokens/s"], rows))
    print(
        f"verify_shard: {len(prefixes) - len(bad)}/{len(prefixes)} shards without problems"
        + (f" {bad}" if bad else "")
        + f"; {parts[0].name}: {len(docs)} documents, ids equal Tokenizer.encode per document: {same}"
    )
    report["shards"] = {
        "mb": mb,
        "tokens": tokens,
        "runs": {str(k): v for k, v in runs.items()},
        "problems": problems,
        "shard0_equal": same,
    }


def bench_bytes_per_token(heldout: Path, tok_dir: Path, hf_dir: Path, report: dict) -> None:
    from tokenizers import Tokenizer as HFTokenizer

    from pipeline.tools.tokenize_files import file_documents
    from tokenizer.bpe import Tokenizer

    docs = list(file_documents(str(heldout)))
    n_bytes = sum(len(d.encode("utf-8")) for d in docs)
    ours = Tokenizer.load(str(tok_dir))
    hf = HFTokenizer.from_file(str(hf_dir / "tokenizer.json"))
    gpt2 = Tokenizer.from_files(str(GPT2_DIR / "gpt2_vocab.json"), str(GPT2_DIR / "gpt2_merges.txt"), [EOT])
    counts = {
        f"ours (trained here, {len(ours):,} tokens)": sum(len(ours.encode(d)) for d in docs),
        f"HF tokenizers (trained here, {hf.get_vocab_size():,})": sum(
            len(e.ids) for e in hf.encode_batch(docs, add_special_tokens=False)
        ),
        f"GPT-2 ({len(gpt2):,}, tests/fixtures)": sum(len(gpt2.encode(d)) for d in docs),
    }
    print(f"\n== 4. Bytes per token on heldout.txt: {len(docs)} documents, {n_bytes / 1e6:.2f} MB (specials excluded)")
    print(
        table(["tokenizer", "tokens", "bytes/token"], [[k, f"{v:,}", f"{n_bytes / v:.3f}"] for k, v in counts.items()])
    )
    report["bytes_per_token"] = {k: n_bytes / v for k, v in counts.items()}


def profile_section(slice_path: Path, text: str, tok_dir: Path, args) -> None:
    import cProfile

    from tokenizer import formats
    from tokenizer.bpe import Tokenizer
    from tokenizer.train import train_bpe

    mb = slice_path.stat().st_size / 1e6
    prof = cProfile.Profile()
    prof.enable()
    train_bpe(str(slice_path), args.vocab_size, [EOT], workers=1)
    prof.disable()
    print(f"\n== Profile: train_bpe(workers=1, in-process) on {mb:.1f} MB, top {args.profile} by own time")
    print(top_profile(prof, args.profile))
    vocab, merges, specials = formats.load(str(tok_dir))
    py = Tokenizer(vocab, merges, specials, backend="python")
    prof = cProfile.Profile()
    prof.enable()
    py.encode(text)
    prof.disable()
    print(
        f"\n== Profile: cold backend='python' encode of {len(text.encode()) / 1e6:.1f} MB, "
        f"top {args.profile} by own time"
    )
    print(top_profile(prof, args.profile))


# ---------------------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a ~10 MB corpus slice and 1 repeat")
    ap.add_argument("--repeats", type=int, help="default 3 (quick: 1)")
    ap.add_argument("--corpus-mb", type=float, default=50.0, help="size of the corpus built (default 50)")
    ap.add_argument("--slice-mb", type=float, default=10.0, help="size of the --quick slice (default 10)")
    ap.add_argument("--encode-mb", type=float, default=0.0, help="encode only the first N MB (0: whole corpus)")
    ap.add_argument("--workers", type=int, default=2, help="cores for training and encode_files (default 2)")
    ap.add_argument("--vocab-size", type=int, default=VOCAB_SIZE)
    ap.add_argument("--profile", type=int, default=0, help="also cProfile training and cold encoding: top N")
    ap.add_argument("--json", type=Path, help="default: benchmarks/.work/tokenizer/last-run[-quick].json")
    ap.add_argument("--side", choices=["ours", "hf"], help=argparse.SUPPRESS)
    ap.add_argument("--corpus", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.side:
        return side_main(args)
    args.repeats = args.repeats or (1 if args.quick else 3)
    sys.stdout.reconfigure(line_buffering=True)
    t_start = time.perf_counter()

    import tiktoken
    import tokenizers

    manifest = build_corpus(max_mb=args.corpus_mb)
    full_dir = TOK_WORK / f"corpus-{args.corpus_mb:g}mb"
    heldout = full_dir / "heldout.txt"
    if args.quick:
        work = TOK_WORK / f"quick-{args.slice_mb:g}mb"
        corpus = slice_corpus(full_dir / "corpus.txt", work, args.slice_mb)
    else:
        work, corpus = full_dir, full_dir / "corpus.txt"
    tok_dir, hf_dir = work / "tok-ours", work / "tok-hf"
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    print(
        f"bench_tokenizer: {cpu}, {os.cpu_count()} CPUs; Python {platform.python_version()}, "
        f"tokenizers {tokenizers.__version__}, tiktoken {tiktoken.__version__}"
    )
    n_docs = corpus.read_text(encoding="utf-8").count(EOT) + 1
    print(
        f"corpus: {corpus.relative_to(ROOT)}: {corpus.stat().st_size / 1e6:.1f} MB, {n_docs} documents"
        + (f" (first documents of the {manifest['corpus_mb']} MB corpus)" if args.quick else "")
        + f"; heldout {manifest['heldout_mb']} MB, {manifest['heldout_documents']} documents; "
        f"{len(manifest['debs'])} Debian packages: "
        + ", ".join(f"{p} {v['mb']}" for p, v in list(manifest["per_package"].items()))
        + " (MB)"
    )
    report: dict = {"args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}}
    report["corpus"] = {"path": str(corpus), "mb": corpus.stat().st_size / 1e6, "documents": n_docs}
    report["manifest"] = {k: v for k, v in manifest.items() if k != "options"}

    bench_training(corpus, tok_dir, hf_dir, args, report)
    text = corpus.read_text(encoding="utf-8")
    if args.encode_mb:
        text = slice_text(text, args.encode_mb)
    bench_encoding(text, tok_dir, args, report)
    bench_shards(corpus, work, tok_dir, args, report)
    bench_bytes_per_token(heldout, tok_dir, hf_dir, report)
    if args.profile:
        slice_path = slice_corpus(full_dir / "corpus.txt", TOK_WORK / f"quick-{args.slice_mb:g}mb", args.slice_mb)
        profile_section(slice_path, slice_text(text, args.slice_mb), tok_dir, args)
    report["total_s"] = time.perf_counter() - t_start
    out = args.json or TOK_WORK / ("last-run-quick.json" if args.quick else "last-run.json")
    out.write_text(json.dumps(report, indent=1, default=str) + "\n")
    print(f"\ntotal {report['total_s']:.0f} s; JSON: {out}")
    return 0


def slice_text(text: str, max_mb: float) -> str:
    """The first documents of ``text`` up to about ``max_mb`` MB (cut just before a special token)."""
    cut = text.find(EOT, int(max_mb * 1e6))
    return text if cut < 0 else text[:cut]


if __name__ == "__main__":
    sys.exit(main())
