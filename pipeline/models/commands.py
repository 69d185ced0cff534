"""``refinery train``, ``sft``, ``sweep``, ``ablate``, ``generate`` and ``quantize``: training, fine-tuning,
hyperparameter sweeps and data ablations from TOML files, and text from a checkpoint."""

from __future__ import annotations

import argparse
import json
import sys


class ShowDefaults(argparse.HelpFormatter):
    """Help that names each option's default, where it has one worth naming."""

    def _get_help_string(self, action):
        text = action.help or ""
        unset = action.default is None or action.default is False or action.default in ([], argparse.SUPPRESS)
        if not unset and "default" not in text:
            text += " (default: %(default)s)"
        return text


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``train``, ``sft``, ``sweep``, ``ablate``, ``generate`` and ``quantize``."""
    p = sub.add_parser("train", help="train a language model on token shards (resumes from its checkpoint)")
    p.add_argument("config", help="a training TOML file, e.g. workflows/train.toml")
    _add_run_options(p)
    p.set_defaults(func=train_command)

    p = sub.add_parser("sft", help="fine-tune on prompt/response or chat JSONL (resumes from its checkpoint)")
    p.add_argument("config", help="a fine-tuning TOML file, e.g. workflows/sft.toml")
    p.add_argument("--skip-bad-lines", action="store_true", help="count and skip malformed JSONL lines")
    _add_run_options(p)
    p.set_defaults(func=sft_command)

    p = sub.add_parser("sweep", help="run (or resume) a hyperparameter sweep: one Ray task per training trial")
    p.add_argument("sweep", help="a sweep TOML file, e.g. workflows/sweep.toml")
    p.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS, else a local Ray)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override a setting of every trial"
    )
    p.set_defaults(func=sweep_command)

    _register_ablate(sub)
    _register_generate(sub)

    p = sub.add_parser("quantize", help="write an int8 weight-only copy of a checkpoint; print the perplexity change")
    p.add_argument("checkpoint", help="a checkpoint.pt, or the out_dir that holds it")
    p.add_argument("--out", required=True, help="the quantized checkpoint to write")
    p.add_argument("--shards", action="append", help="held-out shards (default: the checkpoint's training shards)")
    p.add_argument("--valid-fraction", type=float, default=0.05, help="tail of each shard held out (default 0.05)")
    p.add_argument("--eval-batches", type=int, default=50)
    p.add_argument("--no-eval", action="store_true", help="skip the perplexity measurement")
    p.set_defaults(func=quantize_command)


def _register_ablate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ablate", help="compare datasets: small models at equal tokens, one tokenizer, several seeds; a verdict"
    )
    p.add_argument("ablation", help="an ablation TOML file, e.g. workflows/ablate-demo.toml")
    p.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS, else a local Ray)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=ablate_command)


def _register_generate(sub: argparse._SubParsersAction) -> None:
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
    p.set_defaults(func=generate_command)


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


def train_command(args) -> int:
    from pipeline.locks import OutputClaim
    from pipeline.models.configs import load_train_config
    from trainer.loop import Trainer

    config = load_train_config(args.config, args.set)
    with OutputClaim(config.train.out_dir, "training out_dir"):
        return _fit(Trainer(config, resume=not args.restart, progress=not args.no_progress))


def sft_command(args) -> int:
    from pipeline.locks import OutputClaim
    from pipeline.models.configs import load_sft_config
    from trainer.sft import SFTTrainer

    overrides = args.set + (["data.skip_bad_lines=true"] if args.skip_bad_lines else [])
    config = load_sft_config(args.config, overrides)
    with OutputClaim(config.train.out_dir, "fine-tuning out_dir"):
        return _fit(SFTTrainer(config, resume=not args.restart, progress=not args.no_progress))


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


def sweep_command(args) -> int:
    from pipeline.models.sweep_file import load_sweep, skipped_lines
    from pipeline.models.sweeps import run_sweep
    from trainer.sweep import format_table

    sweep = load_sweep(args.sweep, args.set)
    for line in skipped_lines(sweep):  # IsoFLOP budget x size with too few (or many) steps
        print(line, file=sys.stderr)
    rows = run_sweep(sweep, address=args.address, progress=not args.no_progress)
    print(format_table(rows))
    print(f"\nresults.jsonl, results.csv and sweep.html in {sweep.output}")
    return 1 if any(r["status"] == "failed" for r in rows) else 0


def ablate_command(args) -> int:
    from pipeline.models.ablation_file import load_ablation
    from pipeline.models.ablations import run_ablation
    from pipeline.report.ablation import verdict_lines

    ablation = load_ablation(args.ablation)
    record = run_ablation(ablation, address=args.address, progress=not args.no_progress)
    print("\n".join(verdict_lines(record)))
    failed = [r for r in record["trials"] if r["status"] != "done"]
    for row in failed:
        print(f"{row['trial']} {row['status']}: {row.get('reason', '')}")
    print(f"\nablation.json, results.jsonl and ablation.html in {ablation.output}")
    return 1 if failed else 0


def generate_command(args) -> int:
    from pipeline.models.inference import generate_text

    return generate_text(args)


def quantize_command(args) -> int:
    from pipeline.models.inference import quantize_text

    return quantize_text(args)
