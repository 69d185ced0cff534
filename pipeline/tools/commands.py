"""``refinery tokenizer train``, ``refinery tokenize``, ``refinery shards`` and ``refinery quality train``:
tools that work on files outside a workflow. Inputs are files, folders, globs or URLs of any format
:mod:`pipeline.reader` reads."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``tokenizer``, ``tokenize``, ``shards`` and ``quality``."""
    p = sub.add_parser("tokenizer", help="train a byte-level BPE tokenizer on text, Parquet, JSONL or WARC files")
    tsub = p.add_subparsers(dest="action", required=True)
    t = tsub.add_parser("train", help="train a tokenizer")
    t.add_argument("inputs", nargs="+", help="files, folders or globs: text, Parquet (text column), JSONL, WARC")
    t.add_argument("--vocab-size", type=int, required=True)
    t.add_argument(
        "--special-token",
        action="append",
        dest="special_tokens",
        help="a special token (repeatable; default <|endoftext|>)",
    )
    t.add_argument("--output", required=True, help="directory for vocab.json, merges.txt, tokenizer.json")
    t.add_argument("--workers", type=int, help="processes (default: all CPUs)")
    t.set_defaults(func=train_tokenizer_command)

    p = sub.add_parser("tokenize", help="encode files into packed token shards, one shard per file, in parallel")
    p.add_argument("inputs", nargs="+", help="text files (documents separated by --eos-token), Parquet, JSONL, WARC")
    p.add_argument("--tokenizer", required=True, help="a tokenizer directory (refinery or GPT-2 files)")
    p.add_argument("--output", required=True, help="directory for the shards")
    p.add_argument(
        "--eos-token", default="<|endoftext|>", help="the special token that separates documents in text files"
    )
    p.add_argument("--workers", type=int, help="processes (default: all CPUs)")
    p.set_defaults(func=tokenize_command)

    p = sub.add_parser("shards", help="inspect, verify or export token shards")
    ssub = p.add_subparsers(dest="action", required=True)
    s = ssub.add_parser("inspect", help="counts per shard and a few documents decoded")
    s.add_argument("path", help="a shard (its path without extension) or a directory of shards")
    s.add_argument("--tokenizer", help="tokenizer directory (default: ../tokenizer next to the shards, if any)")
    s.add_argument("-n", type=int, default=2, help="documents to decode (default 2)")
    s.set_defaults(func=inspect_shards_command)
    s = ssub.add_parser("verify", help="check headers, indexes, EOS placement and token ranges")
    s.add_argument("paths", nargs="+", help="shards or directories of shards")
    s.set_defaults(func=verify_shards_command)
    s = ssub.add_parser("export", help="write shards for other trainers: Megatron-LM .bin/.idx or Parquet input_ids")
    s.add_argument("paths", nargs="+", help="shards or directories of shards")
    s.add_argument("--format", required=True, choices=("megatron", "parquet"), help="tokenizer/export.py's formats")
    s.add_argument("--output", required=True, help="directory for the exported files, named as the shards")
    s.set_defaults(func=export_shards_command)

    _register_quality(sub)


def _register_quality(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("quality", help="train a fastText quality classifier for the quality_classifier filter")
    qsub = p.add_subparsers(dest="action", required=True)
    q = qsub.add_parser("train", help="train on positive (high-quality) and negative text; print held-out scores")
    q.add_argument(
        "--positive", nargs="+", required=True, help="files, directories or globs: WARC, Parquet, JSONL, text"
    )
    q.add_argument("--negative", nargs="+", required=True, help="the same, for low-quality text")
    q.add_argument("--output", required=True, help="model file (.bin, or .ftz to quantize)")
    q.add_argument("--valid-fraction", type=float, default=0.1, help="held-out share of documents (default 0.1)")
    q.add_argument("--epoch", type=int, default=5)
    q.add_argument("--lr", type=float, default=0.1)
    q.add_argument("--word-ngrams", type=int, default=2)
    q.add_argument("--dim", type=int, default=64)
    q.add_argument("--bucket", type=int, default=1_000_000, help="hash buckets for word n-grams (default 1M)")
    q.add_argument("--min-chars", type=int, default=100, help="skip shorter documents (default 100)")
    q.add_argument(
        "--chunk-words", type=int, default=0, help="train on passages of this many words (default: documents)"
    )
    q.add_argument("--no-balance", action="store_true", help="do not repeat the smaller class to the larger's size")
    q.add_argument("--threads", type=int, help="training threads (default: all CPUs; 1 is reproducible)")
    q.set_defaults(func=train_quality_command)
    q = qsub.add_parser("eval", help="precision, recall and ROC AUC of a model on labelled pages it never saw")
    q.add_argument("model", help="a fastText model (label hq), e.g. from `refinery quality train`")
    q.add_argument("--positive", nargs="+", required=True, help="files, directories or globs of high-quality text")
    q.add_argument("--negative", nargs="+", required=True, help="the same, for low-quality text")
    q.add_argument("--min-chars", type=int, default=100, help="skip shorter documents (default 100)")
    q.add_argument("--threshold", type=float, default=0.5, help="P(hq) at or above which a page is kept (0.5)")
    q.set_defaults(func=eval_quality_command)


def input_paths(patterns: list[str]) -> list[str]:
    """The files named by command-line inputs (files, folders, globs, URLs), in order."""
    from pipeline.inputs import InputError, expand_inputs
    from pipeline.reader import FORMATS

    try:
        return [f.path for f in expand_inputs(patterns, formats=tuple(FORMATS))]
    except InputError as exc:
        raise FileNotFoundError(str(exc)) from None


def train_tokenizer_command(args) -> int:
    from pipeline.tools.tokenize_files import train_tokenizer_files

    special = args.special_tokens or ["<|endoftext|>"]
    tokenizer = train_tokenizer_files(input_paths(args.inputs), args.output, args.vocab_size, special, args.workers)
    print(f"tokenizer {tokenizer.hash}: {len(tokenizer)} tokens, {len(tokenizer.merges)} merges -> {args.output}")
    return 0


def tokenize_command(args) -> int:
    from pipeline.tools.tokenize_files import encode_files

    headers = encode_files(input_paths(args.inputs), args.tokenizer, args.output, args.eos_token, args.workers)
    tokens = sum(h["tokens"] for h in headers)
    documents = sum(h["documents"] for h in headers)
    print(f"{len(headers)} shards, {documents:,} documents, {tokens:,} tokens -> {args.output}")
    return 0


def inspect_shards_command(args) -> int:
    from pipeline.tools.shards import inspect_shards

    print(inspect_shards(args.path, args.tokenizer, args.n))
    return 0


def verify_shards_command(args) -> int:
    from pipeline.tools.shards import verify_shards

    lines, bad = verify_shards(args.paths)
    print("\n".join(lines))
    return 1 if bad else 0


def export_shards_command(args) -> int:
    from pipeline.tools.shards import shard_prefixes
    from tokenizer.export import export_shard

    prefixes = [p for path in args.paths for p in shard_prefixes(path)]
    if not prefixes:
        raise FileNotFoundError(f"no shards in {', '.join(args.paths)}")
    for prefix in prefixes:
        export_shard(prefix, args.output, args.format)
    print(f"{len(prefixes)} shards -> {args.output} ({args.format})")
    return 0


def train_quality_command(args) -> int:
    from pipeline.tools.quality import train_quality_classifier

    report = train_quality_classifier(
        args.positive,
        args.negative,
        args.output,
        valid_fraction=args.valid_fraction,
        epoch=args.epoch,
        lr=args.lr,
        word_ngrams=args.word_ngrams,
        dim=args.dim,
        bucket=args.bucket,
        min_chars=args.min_chars,
        chunk_words=args.chunk_words,
        balance=not args.no_balance,
        threads=args.threads,
    )
    print(report.render())
    print(f'model -> {args.output} (label "hq"; use it with kind = "quality_classifier", model = "{args.output}")')
    return 0


def eval_quality_command(args) -> int:
    from pipeline.tools.quality import evaluate_quality_classifier

    report = evaluate_quality_classifier(
        args.model, args.positive, args.negative, min_chars=args.min_chars, threshold=args.threshold
    )
    print(report.render())
    return 0
