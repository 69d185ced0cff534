"""Supervised fine-tuning: maximize p(response | prompt) on conversations, reusing the trainer's loop,
optimizers, schedules, checkpoints and logging (:class:`SFTTrainer` changes only the data, the starting
weights, the loss normalizer and the evaluation).

::

    [init]      checkpoint = "runs/train-demo"      (a pretraining checkpoint; omit to start from [model])
    [data]      train = ["data/sft/train.jsonl"], valid = [...], pack = false
    [template]  user = "<|user|>\\n{content}\\n", assistant = "<|assistant|>\\n{content}<|endoftext|>"
    [loss]      normalization = "tokens" (mean per response token) or "constant" (sum / constant)
    [eval]      examples = 200, max_new_tokens = 16  (exact match of greedy answers on held-out examples)
    [optim] [schedule] [train]  as for pretraining
"""

from __future__ import annotations

import math
import sys
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Literal

import torch

from tokenizer.bpe import Tokenizer
from tokenizer.errors import invalid
from trainer.chat import ChatTemplate, CompiledTemplate
from trainer.checkpoint import checkpoint_path, load_checkpoint, model_config_of
from trainer.config import LoopConfig, check_training_memory
from trainer.data import Batch
from trainer.generate import generate_batch
from trainer.loop import Trainer
from trainer.loss import IGNORE
from trainer.model import Transformer
from trainer.model_config import ModelConfig
from trainer.optim import OptimConfig
from trainer.schedule import ScheduleConfig
from trainer.sft_data import SFTData, SFTDataConfig, encode_examples, read_conversations
from trainer.sft_functions import masked_normalize, response_log_probs


@dataclass(kw_only=True)
class InitConfig:
    checkpoint: str = ""  # a training checkpoint (or the out_dir holding it); "" starts from random weights
    tokenizer: str = ""  # a tokenizer directory; default: the one the checkpoint names

    def checkpoint_file(self) -> str:
        """The checkpoint file (``checkpoint`` may name the training run's directory, or a URL)."""
        return checkpoint_path(self.checkpoint)


@dataclass(kw_only=True)
class LossConfig:
    normalization: Literal["tokens", "constant"] = "tokens"
    constant: float = 0.0  # with "constant": a step's summed loss is divided by this (e.g. tokens per step)

    def __post_init__(self):
        if self.normalization == "constant" and self.constant <= 0:
            raise invalid("constant", 'must be > 0 with normalization = "constant"')


@dataclass(kw_only=True)
class EvalConfig:
    examples: int = 200  # held-out examples whose greedy answer is compared with the reference; 0: none
    max_new_tokens: int = 32

    def __post_init__(self):
        if self.examples < 0 or self.max_new_tokens < 1:
            raise invalid("examples", "expected examples >= 0 and max_new_tokens >= 1")


@dataclass(kw_only=True)
class SFTConfig:
    model: ModelConfig
    init: InitConfig = field(default_factory=InitConfig)
    data: SFTDataConfig
    template: ChatTemplate = field(default_factory=ChatTemplate)
    loss: LossConfig = field(default_factory=LossConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: LoopConfig = field(default_factory=lambda: LoopConfig(eval_at_start=True))

    def __post_init__(self):
        check_training_memory(self.model, self.train, self.optim.name)

    def to_dict(self) -> dict:
        return asdict(self)


def pretrained_model_config(init: InitConfig) -> ModelConfig:
    """The model configuration of the checkpoint to start from (checked against its tensors)."""
    path = init.checkpoint_file()
    return model_config_of(load_checkpoint(path), path)


class SFTTrainer(Trainer):
    """Fine-tunes on conversations: loss on the assistant's tokens only, held-out loss, entropy, response
    log-probability and exact-match accuracy of greedy answers."""

    config: SFTConfig

    def __init__(self, config: SFTConfig, *, resume: bool = True, progress: bool = True):
        self._pretrained = load_checkpoint(config.init.checkpoint_file()) if config.init.checkpoint else None
        pretrained = self._pretrained or {}
        directory = config.init.tokenizer or pretrained.get("tokenizer_dir", "")
        if not directory:
            why = pretrained.get("tokenizer_refused", "the checkpoint names none")
            raise invalid("init.tokenizer", f"no tokenizer ({why}): name a tokenizer directory")
        self.tokenizer_dir = directory
        self.template = CompiledTemplate(config.template, Tokenizer.load(directory))
        self.counts: Counter = Counter()
        super().__init__(config, resume=resume, progress=progress)

    def _build_data(self) -> SFTData:
        c = self.config
        length = c.model.context_length
        train = read_conversations(c.data.train, c.data.skip_bad_lines, self.counts)
        valid = read_conversations(c.data.valid, c.data.skip_bad_lines, self.counts) if c.data.valid else []
        self.valid_conversations = valid
        examples = encode_examples(train, self.template, length, self.counts)
        held_out = encode_examples(valid, self.template, length, Counter())
        if self.dist.main:
            counted = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in sorted(self.counts.items()))
            print(
                f"sft data: {len(examples)} training examples, {len(held_out)} held out"
                + (f"; {counted}" if counted else ""),
                file=sys.stderr,
            )
        return SFTData(
            examples,
            held_out,
            context_length=length,
            pack=c.data.pack,
            seed=c.train.seed,
            rank=self.dist.rank,
            world=self.dist.world,
            vocab_size=len(self.template.tokenizer),
        )

    def _build_model(self) -> Transformer:
        model = Transformer(self.config.model)
        if self._pretrained is not None:
            model.load_state_dict(self._pretrained.pop("model"))
        return model

    def _build_teacher(self) -> None:
        return None  # fine-tuning files have no [distill] section

    def tokenizer_source(self) -> str:
        return self.tokenizer_dir

    def checkpoint_extras(self) -> dict:
        return {
            **super().checkpoint_extras(),
            "template": asdict(self.config.template),
            "data_counts": dict(self.counts),
        }

    def _normalizer(self, batches: list[Batch]) -> float:
        if self.config.loss.normalization == "constant":
            return self.config.loss.constant
        return super()._normalizer(batches)

    @torch.no_grad()
    def evaluate(self) -> dict:
        """Held-out ``val_loss`` (per response token), ``val_entropy`` (mean entropy of the predicted
        distribution at response tokens), ``val_response_logprob`` (mean over examples of log p(response |
        prompt)) and ``val_exact_match`` (greedy answers equal to the reference, stripped)."""
        self.model.eval()
        loss = entropy = count = 0.0
        logprobs: list[float] = []
        for batch in self.data.validation_batches(self.config.train.batch_size, self.config.train.eval_batches):
            batch = batch.to(self.device)
            counted = batch.targets != IGNORE
            with self._autocast():
                out = response_log_probs(self.model, batch.inputs, batch.targets, with_entropy=True)
            loss -= float(masked_normalize(out.log_probs, counted, 1.0))
            entropy += float(masked_normalize(out.entropy, counted, 1.0))
            count += float(counted.sum())
            logprobs += masked_normalize(out.log_probs, counted, 1.0, dim=-1).tolist()
        metrics = {}
        if count:
            metrics = {
                "val_loss": loss / count,
                "val_entropy": entropy / count,
                "val_response_logprob": sum(logprobs) / len(logprobs),
            }
        if self.config.eval.examples and self.valid_conversations:
            metrics["val_exact_match"] = self.exact_match(self.valid_conversations[: self.config.eval.examples])
        self.model.train()
        return metrics

    def exact_match(self, conversations, batch_size: int = 32) -> float:
        """The share of conversations whose last assistant turn the model reproduces greedily (stripped);
        prompts are decoded in batches (batched greedy decoding gives what one-by-one decoding gives)."""
        asks = []
        for conversation in conversations:
            last = max(i for i, (role, _) in enumerate(conversation) if role == "assistant")
            prompt = self.template.prompt(conversation[:last])
            room = self.config.model.context_length - len(prompt)
            if room >= 1:  # a prompt that fills the context cannot be answered: a miss
                asks.append((prompt, min(self.config.eval.max_new_tokens, room), conversation[last][1].strip()))
        asks.sort(key=lambda ask: (ask[1], len(ask[0])))
        hits = 0
        for start in range(0, len(asks), batch_size):
            chunk = asks[start : start + batch_size]
            limit = min(ask[1] for ask in chunk)
            if limit < max(ask[1] for ask in chunk):  # rows with different room: one by one
                outs = [
                    generate_batch(self.model, [p], n, temperature=0, eos_id=self.template.stop_id) for p, n, _ in chunk
                ]
                answers = [out.tokens[0] for out in outs]
            else:
                prompts = [p for p, _, _ in chunk]
                answers = generate_batch(self.model, prompts, limit, temperature=0, eos_id=self.template.stop_id).tokens
            hits += sum(self.template.answer(a).strip() == want for a, (_, _, want) in zip(answers, chunk))
        return hits / len(conversations) if conversations else math.nan
