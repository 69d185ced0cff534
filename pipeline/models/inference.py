"""``refinery generate`` and ``refinery quantize``: text in and out of a checkpoint.

``generate`` takes one or more prompts (a batch, decoded together), streams the text of a single prompt as
it is produced, stops at EOS (or the chat template's end of turn) and at ``--stop`` strings, decodes
speculatively with ``--draft``, and reports prefill and decode speeds separately.
"""

from __future__ import annotations

import sys

import torch

from tokenizer.bpe import Tokenizer
from trainer.chat import ChatTemplate, CompiledTemplate
from trainer.checkpoint import checkpoint_path
from trainer.data import DataConfig
from trainer.generate import generate, generate_batch, load_model
from trainer.quantize import quantize_checkpoint
from trainer.speculative import speculative_generate
from trainer.threads import choose_threads


def checkpoint_file(path: str) -> str:
    """A checkpoint file, or the ``checkpoint.pt`` in a training run's directory (local or a URL)."""
    return checkpoint_path(path)


class TextStream:
    """Turns tokens into text as they arrive: writes what is complete (a character split across tokens, or
    the possible start of a stop string, is held back) and says when a stop token or string is reached."""

    def __init__(self, tokenizer: Tokenizer, stop_ids: set[int], stops: list[str], out=None):
        self.tokenizer, self.stop_ids, self.stops, self.out = tokenizer, stop_ids, [s for s in stops if s], out
        self.tokens: list[int] = []
        self.text = ""
        self.written = 0
        self.stopped = False

    def __call__(self, token: int) -> bool:
        if self.stopped:
            return True
        if token in self.stop_ids:
            self.stopped = True
        else:
            self.tokens.append(token)
            self.text = self.tokenizer.decode(self.tokens)
            cut = min((i for i in (self.text.find(s) for s in self.stops) if i >= 0), default=-1)
            if cut >= 0:
                self.text, self.stopped = self.text[:cut], True
        self._write(final=self.stopped)
        return self.stopped

    def finish(self) -> str:
        """Write what was held back; the whole text."""
        self._write(final=True)
        return self.text

    def _write(self, final: bool) -> None:
        end = len(self.text)
        if not final:
            end = len(self.text.rstrip("\ufffd"))
            hold = max((len(s) - 1 for s in self.stops), default=0)
            end = max(self.written, end - hold)
        if self.out is not None and end > self.written:
            self.out.write(self.text[self.written : end])
            self.out.flush()
        self.written = max(self.written, end)


def generate_text(args) -> int:
    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu":
        torch.set_num_threads(choose_threads()[0])  # the cores free now (trainer/threads.py)
    model, payload = load_model(checkpoint_file(args.checkpoint), device)
    directory = args.tokenizer or payload.get("tokenizer_dir")
    if not directory:
        why = payload.get("tokenizer_refused", "the checkpoint names no tokenizer")
        raise ValueError(f"{checkpoint_file(args.checkpoint)}: {why}: give --tokenizer DIR")
    tokenizer = Tokenizer.load(directory)
    chat = (
        None
        if args.raw or "template" not in payload
        else CompiledTemplate(ChatTemplate(**payload["template"]), tokenizer)
    )
    if chat:
        prompts, stop_id = [chat.prompt([("user", p)]) for p in args.prompt], chat.stop_id
    else:
        prompts, stop_id = [tokenizer.encode(p) for p in args.prompt], tokenizer.special_ids.get(args.eos_token)
    sampling = {"temperature": args.temperature, "top_k": args.top_k, "top_p": args.top_p, "eos_id": stop_id}
    streams = [TextStream(tokenizer, {stop_id}, args.stop) for _ in prompts]
    live = len(prompts) == 1 and not args.no_stream
    if live:
        streams[0].out = sys.stdout
        if not chat:
            print(args.prompt[0], end="", flush=True)
    if args.draft:
        if len(prompts) > 1:
            raise ValueError("speculative decoding (--draft) takes one prompt at a time")
        draft, _ = load_model(checkpoint_file(args.draft), device)
        out = speculative_generate(
            model,
            draft,
            prompts[0],
            args.max_new_tokens,
            k=args.draft_k,
            seed=args.seed,
            on_token=streams[0],
            **sampling,
        )
        stats = (
            f"{len(out.tokens)} tokens; prefill {len(prompts[0])} tokens in {out.prefill_s * 1000:.1f} ms (both "
            f"models), decode {out.decode_tokens_per_s:.1f} "
            f"tokens/s; draft acceptance {out.acceptance_rate:.0%} ({out.accepted}/{out.proposed}) "
            f"in {out.rounds} target passes"
        )
    elif args.no_cache:
        if len(prompts) > 1:
            raise ValueError("--no-cache takes one prompt at a time")
        out = generate(
            model, prompts[0], args.max_new_tokens, seed=args.seed, use_cache=False, on_token=streams[0], **sampling
        )
        stats = f"{len(out.tokens)} tokens; {len(out.tokens) / out.decode_s:.1f} tokens/s without a KV cache"
    else:
        out = generate_batch(
            model,
            prompts,
            args.max_new_tokens,
            seed=args.seed,
            on_token=lambda row, token: streams[row](token),
            **sampling,
        )
        stats = (
            f"{sum(len(t) for t in out.tokens)} tokens for {len(prompts)} prompt(s); prefill {out.prefill_tokens} "
            f"tokens at {out.prefill_tokens_per_s:,.0f} tokens/s, decode {out.decode_tokens_per_s:,.1f} tokens/s"
        )
    for i, stream in enumerate(streams):
        text = stream.finish()
        if live:
            print()
        elif len(prompts) == 1:
            print(text if chat else args.prompt[0] + text)
        else:
            print(f"[{i + 1}] {args.prompt[i]!r} -> {text!r}")
    print(f"\n[{stats}{', chat template' if chat else ''}; {device}]", file=sys.stderr)
    return 0


def quantize_text(args) -> int:
    from trainer.checkpoint import load_checkpoint

    path = checkpoint_file(args.checkpoint)
    config = load_checkpoint(path)["config"]
    pretraining = "init" not in config  # a fine-tuning checkpoint's data is conversations, not shards
    patterns = args.shards or (config["data"]["train"] if pretraining else [])
    data = DataConfig(train=patterns, valid_fraction=args.valid_fraction) if patterns and not args.no_eval else None
    report = quantize_checkpoint(path, args.out, data, batches=args.eval_batches)
    before, after = report["bytes_before"], report["bytes_after"]
    print(f"weights: {before / 1e6:.2f} MB -> {after / 1e6:.2f} MB ({after / before:.0%}); written to {args.out}")
    if data is None:
        print("held-out perplexity not measured (no shards: give --shards PATTERN)")
        return 0
    change = report["perplexity_after"] / report["perplexity_before"] - 1
    print(
        f"held-out loss {report['loss_before']:.4f} -> {report['loss_after']:.4f}, perplexity "
        f"{report['perplexity_before']:.3f} -> {report['perplexity_after']:.3f} ({change:+.2%}) "
        f"over {report['targets']:,} tokens"
    )
    return 0
