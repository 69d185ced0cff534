"""The ``refinery`` command line."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from pipeline.schema import ConfigError

EXIT_CONFIG = 2


class ShowDefaults(argparse.HelpFormatter):
    """Help that names each option's default, where it has one worth naming."""

    def _get_help_string(self, action):
        text = action.help or ""
        unset = action.default is None or action.default is False or action.default in ([], argparse.SUPPRESS)
        if not unset and "default" not in text:
            text += " (default: %(default)s)"
        return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="refinery", description="Curate web text for language models.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="run (or resume) a workflow file on Ray")
    p.add_argument("workflow", help="a workflow file, e.g. workflows/demo.toml")
    p.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS, else a local Ray)")
    p.add_argument("--output", help="parent folder of the run directory (default: the workflow's run.output)")
    p.add_argument("--restart", action="store_true", help="delete the run directory first and start over")
    p.add_argument("--num-cpus", type=int, help="CPUs of the local Ray (default: all)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--no-models", action="store_true", help="skip the workflow's [train], [sft] and [generate]")
    p.set_defaults(func=_run)

    p = sub.add_parser("validate", help="check a workflow, training or sweep file without running it")
    p.add_argument("workflow")
    p.set_defaults(func=_validate)

    p = sub.add_parser("stats", help="print the funnel of a run: documents and bytes per stage, filter, reason")
    p.add_argument("run", help="a run directory (runs/<name>) or its URL")
    p.add_argument("--json", action="store_true", help="print the merged statistics as JSON")
    p.set_defaults(func=_stats)

    p = sub.add_parser("report", help="write <run>/report.html: funnel, score histograms, samples, training curves")
    p.add_argument("run", help="a run directory (runs/<name>) or its URL")
    p.add_argument("--compare", metavar="RUN_B", help="a second run: funnels side by side")
    p.add_argument(
        "--training", action="append", default=[], metavar="DIR", help="a training out_dir to include (repeatable)"
    )
    p.add_argument("--output", help="where to write the HTML (default: <run>/report.html)")
    p.set_defaults(func=_report)

    p = sub.add_parser("sample", help="print documents dropped for one reason, or the members of a dedup cluster")
    p.add_argument("run", help="a run directory (runs/<name>) or its URL")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--reason", help="a drop reason as `refinery stats` prints it")
    which.add_argument("--cluster", help="a dedup cluster id (its surviving document's id): members side by side")
    p.add_argument("-n", type=int, default=5, help="how many documents (default 5)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    p.add_argument("--chars", type=int, default=800, help="characters of text to show per document (default 800)")
    p.set_defaults(func=_sample)

    p = sub.add_parser("tokenizer", help="train a byte-level BPE tokenizer on text or Parquet files")
    tsub = p.add_subparsers(dest="action", required=True)
    t = tsub.add_parser("train", help="train a tokenizer")
    t.add_argument("inputs", nargs="+", help="UTF-8 text files, or Parquet files with a text column")
    t.add_argument("--vocab-size", type=int, required=True)
    t.add_argument(
        "--special-token",
        action="append",
        dest="special_tokens",
        help="a special token (repeatable; default <|endoftext|>)",
    )
    t.add_argument("--output", required=True, help="directory for vocab.json, merges.txt, tokenizer.json")
    t.add_argument("--workers", type=int, help="processes (default: all CPUs)")
    t.set_defaults(func=_train_tokenizer)

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
    q.set_defaults(func=_train_quality)

    p = sub.add_parser("tokenize", help="encode files into packed token shards, one shard per file, in parallel")
    p.add_argument("inputs", nargs="+", help="text files (documents separated by --eos-token) or Parquet files")
    p.add_argument("--tokenizer", required=True, help="a tokenizer directory (refinery or GPT-2 files)")
    p.add_argument("--output", required=True, help="directory for the shards")
    p.add_argument(
        "--eos-token", default="<|endoftext|>", help="the special token that separates documents in text files"
    )
    p.add_argument("--workers", type=int, help="processes (default: all CPUs)")
    p.set_defaults(func=_tokenize)

    p = sub.add_parser("train", help="train a language model on token shards (resumes from its checkpoint)")
    p.add_argument("config", help="a training TOML file, e.g. workflows/train.toml")
    _add_run_options(p)
    p.set_defaults(func=_train)

    p = sub.add_parser("sft", help="fine-tune on prompt/response or chat JSONL (resumes from its checkpoint)")
    p.add_argument("config", help="a fine-tuning TOML file, e.g. workflows/sft.toml")
    p.add_argument("--skip-bad-lines", action="store_true", help="count and skip malformed JSONL lines")
    _add_run_options(p)
    p.set_defaults(func=_sft)

    p = sub.add_parser("sweep", help="run (or resume) a hyperparameter sweep: one Ray task per training trial")
    p.add_argument("sweep", help="a sweep TOML file, e.g. workflows/sweep.toml")
    p.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS, else a local Ray)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override a setting of every trial"
    )
    p.set_defaults(func=_sweep)

    p = sub.add_parser(
        "generate",
        help="continue prompts (or answer them, after fine-tuning) with a checkpoint",
        formatter_class=ShowDefaults,
    )
    p.add_argument("checkpoint", help="a checkpoint.pt, or the out_dir that holds it")
    p.add_argument("--prompt", action="append", required=True, help="repeat for a batch of prompts")
    p.add_argument("--tokenizer", help="tokenizer directory (default: the one recorded in the checkpoint)")
    p.add_argument("--max-new-tokens", type=int, default=100, help="tokens to generate at most, per prompt")
    p.add_argument("--temperature", type=float, default=0.8, help="0: greedy")
    p.add_argument("--top-k", type=int, default=50, help="sample from the k likeliest tokens only")
    p.add_argument("--top-p", type=float, default=0.95, help="then from the fewest whose probability reaches p")
    p.add_argument(
        "--seed", type=int, default=0, help="prompt i samples with seed + i; a seed gives the same text every time"
    )
    p.add_argument("--stop", action="append", default=[], help="stop when this text appears (repeatable)")
    p.add_argument("--eos-token", default="<|endoftext|>", help="stop at this special token")
    p.add_argument("--draft", help="a smaller checkpoint that proposes tokens (speculative decoding)")
    p.add_argument("--draft-k", type=int, default=4, help="tokens the draft proposes per target pass")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="cuda runs in bfloat16")
    p.add_argument("--no-stream", action="store_true", help="print a single prompt's text at the end")
    p.add_argument("--no-cache", action="store_true", help="recompute the whole sequence every step")
    p.add_argument(
        "--raw", action="store_true", help="continue the prompt as text even if the checkpoint has a chat template"
    )
    p.set_defaults(func=_generate)

    p = sub.add_parser("quantize", help="write an int8 weight-only copy of a checkpoint; print the perplexity change")
    p.add_argument("checkpoint", help="a checkpoint.pt, or the out_dir that holds it")
    p.add_argument("--out", required=True, help="the quantized checkpoint to write")
    p.add_argument("--shards", action="append", help="held-out shards (default: the checkpoint's training shards)")
    p.add_argument("--valid-fraction", type=float, default=0.05, help="tail of each shard held out (default 0.05)")
    p.add_argument("--eval-batches", type=int, default=50)
    p.add_argument("--no-eval", action="store_true", help="skip the perplexity measurement")
    p.set_defaults(func=_quantize)

    p = sub.add_parser("shards", help="inspect or verify token shards")
    ssub = p.add_subparsers(dest="action", required=True)
    s = ssub.add_parser("inspect", help="counts per shard and a few documents decoded")
    s.add_argument("path", help="a shard (its path without extension) or a directory of shards")
    s.add_argument("--tokenizer", help="tokenizer directory (default: ../tokenizer next to the shards, if any)")
    s.add_argument("-n", type=int, default=2, help="documents to decode (default 2)")
    s.set_defaults(func=_inspect_shards)
    s = ssub.add_parser("verify", help="check headers, indexes, EOS placement and token ranges")
    s.add_argument("paths", nargs="+", help="shards or directories of shards")
    s.set_defaults(func=_verify_shards)

    p = sub.add_parser("scaling", help="fit a scaling law to a sweep's results; predict compute-optimal N and D")
    ssub = p.add_subparsers(dest="action", required=True)
    s = ssub.add_parser("fit", help="fit L = E + A/N^alpha + B/D^beta and IsoFLOP profiles; write JSON and HTML")
    s.add_argument("results", help="a sweep's results.jsonl or CSV, or the directory holding it")
    s.add_argument("--loss", default="final_val_loss", help="loss column (default final_val_loss)")
    s.add_argument("--params", default="params", help="N column (default params: non-embedding; or params_total)")
    s.add_argument("--best", action="store_true", help="of runs with equal N and D (an lr grid), keep the lowest loss")
    s.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples for the uncertainty (default 200)")
    s.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    s.add_argument("--tolerance", type=float, default=0.1, help="IsoFLOP: relative FLOPs spread of a budget (0.1)")
    s.add_argument("--html", default="", help="plots (default: <results dir>/scaling.html)")
    s.add_argument("--fit-json", default="", help="the fit (default: <results dir>/scaling_fit.json)")
    s.set_defaults(func=_scaling_fit)
    s = ssub.add_parser("predict", help="compute-optimal N, D and loss for a FLOPs budget, and D = 20N's")
    s.add_argument("fit", help="a scaling_fit.json, or the directory holding it")
    s.add_argument("--flops", type=float, nargs="+", required=True, metavar="C", help="FLOPs budget(s), e.g. 1e18")
    s.add_argument("--tokens-per-param", type=float, default=20.0, help="the alternative's D/N (default 20)")
    s.set_defaults(func=_scaling_predict)

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="refinery %(levelname)s: %(message)s")
    try:
        return args.func(args)
    except (ConfigError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG


def _add_run_options(p: argparse.ArgumentParser) -> None:
    """The options ``train`` and ``sft`` share: overrides, restart, progress bar."""
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override a setting, e.g. --set train.steps=100 (repeatable)",
    )
    p.add_argument("--restart", action="store_true", help="ignore an existing checkpoint in out_dir")
    p.add_argument("--no-progress", action="store_true")


def _run(args) -> int:
    from pipeline.funnel import render_funnel
    from pipeline.modelling import check_model_steps, render_summary, run_model_steps
    from pipeline.report import write_report
    from pipeline.runner import RunFailed, run_workflow
    from pipeline.workflow import load_workflow

    workflow = load_workflow(args.workflow)
    models = not args.no_models and (workflow.train or workflow.sft)
    if models:
        check_model_steps(workflow, workflow.run_dir(args.output))
    try:
        stats = run_workflow(
            workflow,
            output=args.output,
            address=args.address,
            restart=args.restart,
            num_cpus=args.num_cpus,
            progress=not args.no_progress,
        )
    except RunFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(render_funnel(stats))
    run_dir = stats["run"]["run_dir"]
    print(f"\nrun directory: {run_dir}")
    done = run_model_steps(workflow, run_dir, progress=not args.no_progress) if models else {}
    report = write_report(run_dir)
    if models:
        print("\n" + render_summary(stats, done, report))
    else:
        print(f"report: {report}")
    return 0


def _validate(args) -> int:
    import tomllib

    from pipeline.workflow import load_workflow

    try:
        with open(args.workflow, "rb") as f:
            sections = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError):
        sections = {}
    if "sweep" in sections and "stages" not in sections:  # a sweep file: its trials, built but not run
        from pipeline.sweeping import describe_sweep, load_sweep

        print(describe_sweep(load_sweep(args.workflow)))
        return 0
    if "stages" not in sections and {"init", "template", "loss", "eval"} & set(sections):  # a fine-tuning file
        from pipeline.training import MissingCheckpoint, load_sft_config

        try:
            config = load_sft_config(args.workflow)
        except MissingCheckpoint as exc:  # every other section was checked before the checkpoint
            print(f"{args.workflow}: valid fine-tuning configuration, but {exc.message} yet (train it first)")
            return 0
        print(
            f"{args.workflow}: valid fine-tuning configuration; {config.model.n_layers} layers x "
            f"{config.model.d_model}, {config.train.steps} steps"
        )
        print(_costs(config))
        return 0
    if "stages" not in sections and ("model" in sections or "data" in sections):  # a training file
        from pipeline.training import MissingCheckpoint, load_train_config

        try:
            config = load_train_config(args.workflow)
        except MissingCheckpoint as exc:  # every other section was checked before the teacher
            print(f"{args.workflow}: valid training configuration, but {exc.message} yet (train the teacher first)")
            return 0
        print(
            f"{args.workflow}: valid training configuration; {config.model.n_layers} layers x {config.model.d_model}, "
            f"{config.train.steps} steps"
        )
        print(_costs(config))
        return 0
    from pipeline.modelling import check_model_steps

    workflow = load_workflow(args.workflow)
    check_model_steps(workflow, workflow.run_dir())
    stages = ", ".join(f"{s.name} ({s.kind})" for s in workflow.stages)
    steps = [f"{n} ({getattr(workflow, n).config})" for n in ("train", "sft") if getattr(workflow, n)]
    steps += [f"generate ({len(workflow.generate.prompts)} prompts)"] if workflow.generate else []
    print(
        f"{args.workflow}: valid; {len(workflow.input_files)} input files; stages: {stages}"
        + (f"; then {', '.join(steps)}" if steps else "")
    )
    return 0


def _costs(config) -> str:
    from trainer.accounting import describe

    dtype = "bfloat16" if config.train.dtype == "bfloat16" else "float32"
    return describe(config.model, config.train.batch_size, config.optim.name, dtype)


def _open_run(path: str):
    from pipeline.rundir import RunDir

    if "://" not in path and not os.path.isdir(path) and os.path.isdir(os.path.join("runs", path)):
        path = os.path.join("runs", path)
    return RunDir(path)


def _stats(args) -> int:
    from pipeline.funnel import load_stats, render_funnel

    stats = load_stats(_open_run(args.run))
    print(json.dumps(stats, indent=1) if args.json else render_funnel(stats))
    return 0


def _report(args) -> int:
    from pipeline.report import write_report

    compare = _open_run(args.compare).url if args.compare else None
    path = write_report(_open_run(args.run).url, compare, args.training, args.output or "")
    print(f"report: {path}")
    return 0


def _sample(args) -> int:
    from pipeline.funnel import known_reasons, load_stats, sample_rejected

    run = _open_run(args.run)
    if args.cluster:
        return _show_cluster(run, args.cluster, args.n, args.chars)
    reasons = known_reasons(load_stats(run))
    if args.reason not in reasons:
        print(
            f"error: no document was dropped for {args.reason!r}; reasons in this run: {', '.join(reasons)}",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    docs = sample_rejected(run, args.reason, args.n, args.seed)
    for i, doc in enumerate(docs, 1):
        text = (doc.get("text") or "").strip()
        shown = text[: args.chars] + (
            f" [... {len(text) - args.chars:,} more characters]" if len(text) > args.chars else ""
        )
        print(f"--- {i}/{len(docs)}  {doc['reason']}  {doc.get('url') or ''}")
        print(f"    id {doc['id']}  from {doc.get('source')} @ {doc.get('offset')}")
        if doc.get("detail"):
            print(f"    detail: {doc['detail']}")
        print(shown or "    (no text)")
    return 0


def _train_tokenizer(args) -> int:
    from pipeline.tokenization import train_tokenizer_files

    tokenizer = train_tokenizer_files(
        args.inputs, args.output, args.vocab_size, args.special_tokens or ["<|endoftext|>"], args.workers
    )
    print(f"tokenizer {tokenizer.hash}: {len(tokenizer)} tokens, {len(tokenizer.merges)} merges -> {args.output}")
    return 0


def _train_quality(args) -> int:
    from pipeline.quality import train_quality_classifier

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


def _tokenize(args) -> int:
    from pipeline.tokenization import encode_files

    headers = encode_files(args.inputs, args.tokenizer, args.output, args.eos_token, args.workers)
    tokens = sum(h["tokens"] for h in headers)
    print(
        f"{len(headers)} shards, {sum(h['documents'] for h in headers):,} documents, {tokens:,} tokens -> {args.output}"
    )
    return 0


def _shard_prefixes(path: str) -> list[str]:
    if os.path.isdir(path):
        return sorted(os.path.join(path, n)[: -len(".json")] for n in os.listdir(path) if n.endswith(".json"))
    return [path.removesuffix(".json").removesuffix(".bin").removesuffix(".idx")]


def _inspect_shards(args) -> int:
    from tokenizer.bpe import Tokenizer
    from tokenizer.shards import ShardReader

    prefixes = _shard_prefixes(args.path)
    if not prefixes:
        raise ValueError(f"no shards in {args.path}")
    shards = [ShardReader(p) for p in prefixes]
    print(f"{'shard':<40}{'documents':>12}{'tokens':>14}  dtype   tokenizer")
    for shard in shards:
        h = shard.header
        print(
            f"{os.path.basename(shard.prefix):<40}{h['documents']:>12,}{h['tokens']:>14,}  {h['dtype']:<7} "
            f"{h['tokenizer_hash']}"
        )
    print(f"{'total':<40}{sum(len(s) for s in shards):>12,}{sum(s.header['tokens'] for s in shards):>14,}")
    guess = os.path.join(os.path.dirname(os.path.abspath(prefixes[0])), "..", "tokenizer")
    directory = args.tokenizer or (guess if os.path.isdir(guess) else None)
    if directory:
        tokenizer = Tokenizer.load(directory)
        samples = [(s, i) for s in shards for i in range(len(s))][: args.n]
        for shard, i in samples:
            ids = shard.document(i)
            print(f"\n--- {os.path.basename(shard.prefix)} document {i}: {len(ids):,} tokens")
            print(tokenizer.decode(ids.tolist())[:600])
    elif args.n:
        print(f"\n(no tokenizer at {os.path.normpath(guess)}: give --tokenizer DIR to see documents decoded)")
    return 0


def _verify_shards(args) -> int:
    from tokenizer.shards import verify_shard

    bad = 0
    prefixes = [p for path in args.paths for p in _shard_prefixes(path)]
    for prefix in prefixes:
        problems = verify_shard(prefix)
        bad += bool(problems)
        print(f"{prefix}: {'ok' if not problems else '; '.join(problems)}")
    print(f"{len(prefixes) - bad} of {len(prefixes)} shards ok")
    return 1 if bad else 0


def _scaling_fit(args) -> int:
    from pipeline.scaling_report import run_fit

    print(f"fitting, then {args.bootstrap} bootstrap refits for the uncertainty ...", file=sys.stderr, flush=True)
    print(
        run_fit(
            args.results,
            loss=args.loss,
            params=args.params,
            best=args.best,
            resamples=args.bootstrap,
            seed=args.seed,
            tolerance=args.tolerance,
            html=args.html,
            fit_json=args.fit_json,
        )
    )
    return 0


def _scaling_predict(args) -> int:
    from pipeline.scaling_report import render_predict
    from trainer.scaling import load_fit

    if any(c <= 0 for c in args.flops):
        raise ValueError("--flops must be positive")
    print(render_predict(load_fit(args.fit), args.flops, args.tokens_per_param))
    return 0


def _train(args) -> int:
    from pipeline.training import load_train_config
    from trainer.loop import Trainer

    config = load_train_config(args.config, args.set)
    return _fit(Trainer(config, resume=not args.restart, progress=not args.no_progress))


def _sft(args) -> int:
    from pipeline.training import load_sft_config
    from trainer.sft import SFTTrainer

    overrides = args.set + (["data.skip_bad_lines=true"] if args.skip_bad_lines else [])
    config = load_sft_config(args.config, overrides)
    return _fit(SFTTrainer(config, resume=not args.restart, progress=not args.no_progress))


def _sweep(args) -> int:
    from pipeline.sweeping import load_sweep, run_sweep, skipped_lines
    from trainer.sweep import format_table

    sweep = load_sweep(args.sweep, args.set)
    for line in skipped_lines(sweep):  # IsoFLOP budget x size with too few (or many) steps
        print(line, file=sys.stderr)
    rows = run_sweep(sweep, address=args.address, progress=not args.no_progress)
    print(format_table(rows))
    print(f"\nresults.jsonl, results.csv and sweep.html in {sweep.output}")
    return 1 if any(r["status"] == "failed" for r in rows) else 0


def _fit(trainer) -> int:
    m = trainer.model
    if trainer.dist.main:
        print(
            f"model: {m.num_parameters():,} parameters ({m.num_parameters(embedding=False):,} without the "
            f"embedding), {m.flops_per_token()['training']:,} training FLOPs per token; from step {trainer.step}",
            file=sys.stderr,
        )
    last = trainer.run()
    if trainer.dist.main:
        print(json.dumps(last))
        print(f"checkpoint and metrics.jsonl in {trainer.config.train.out_dir}")
    return 0


def _generate(args) -> int:
    from pipeline.inference import generate_command

    return generate_command(args)


def _quantize(args) -> int:
    from pipeline.inference import quantize_command

    return quantize_command(args)


def _show_cluster(run, cluster: str, n: int, chars: int) -> int:
    from pipeline.funnel import cluster_members, side_by_side

    members = cluster_members(run, cluster)
    if not members:
        print(f"error: no dedup cluster {cluster!r} in this run (`refinery stats` lists the largest)", file=sys.stderr)
        return EXIT_CONFIG
    survivor = members[0]
    print(f"cluster {cluster}: {len(members)} documents; kept: {survivor['id']} ({survivor.get('url')})")
    for other in members[1 : n + 1]:
        print(f"\n--- kept {survivor['id']}  |  {other['outcome']} {other['id']} ({other.get('url')})")
        print(side_by_side(survivor["text"][:chars], other["text"][:chars]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
