"""Supervised fine-tuning as plain tensor functions, for loops of one's own (SFT steps composed with RL
steps, say); :class:`trainer.sft.SFTTrainer` is built from the same functions.

::

    batch = encode_prompts_and_responses(prompts, responses, tokenizer)      # ids, labels, response mask
    out = response_log_probs(model, batch.input_ids, batch.labels, with_entropy=True)
    loss, metadata = sft_microbatch_train_step(out.log_probs, batch.response_mask, grad_accum)
    # ... after grad_accum micro-batches: optimizer.step(), optimizer.zero_grad()

Labels are the next tokens (``labels[i] = ids[i + 1]``); the response mask marks the labels that are
response tokens, the only ones a loss counts. A model is ours (:class:`trainer.model.Transformer`, which
returns logits) or any module whose output has ``.logits`` (Hugging Face causal LMs). These functions
mirror the CS336 assignment's adapters (``tokenize_prompt_and_output``, ``compute_entropy``,
``get_response_log_probs``, ``masked_normalize``, ``sft_microbatch_train_step``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from trainer.data import Batch
from trainer.loss import IGNORE


@dataclass
class Example:
    """One tokenized sequence: inputs, their next tokens (``labels``) and which labels are learned."""

    inputs: np.ndarray  # int64 token ids
    labels: np.ndarray  # int64 next tokens
    learned: np.ndarray  # bool, one per label

    @property
    def targets(self) -> np.ndarray:
        """The labels, :data:`IGNORE` where nothing is learned (what ``model(..., targets=)`` takes)."""
        return np.where(self.learned, self.labels, IGNORE).astype(np.int64)


def example_from(ids: list[int], learned: list[bool]) -> Example:
    """The example of a sequence of token ids and, per id, whether the model learns to predict it."""
    ids_array = np.asarray(ids, dtype=np.int64)
    return Example(ids_array[:-1], ids_array[1:], np.asarray(learned[1:], dtype=bool))


class ResponseBatch(NamedTuple):
    """Right-padded examples: ``input_ids`` and ``labels`` (int64) and ``response_mask`` (bool), all (rows,
    longest example); padding is ``pad_id`` and never in the mask."""

    input_ids: torch.Tensor
    labels: torch.Tensor
    response_mask: torch.Tensor

    def as_batch(self) -> Batch:
        """The trainer's batch: inputs and targets, :data:`IGNORE` outside the response mask."""
        return Batch(self.input_ids, self.labels.masked_fill(~self.response_mask, IGNORE))


def pad_examples(examples: list[Example], pad_id: int = 0) -> ResponseBatch:
    """One row per example, right-padded to the longest (the attention is causal, so padding after an
    example never changes what its positions compute)."""
    if not examples:
        raise ValueError("no examples to pad")
    width = max(len(e.inputs) for e in examples)
    inputs = np.full((len(examples), width), pad_id, dtype=np.int64)
    labels = np.full((len(examples), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(examples), width), dtype=bool)
    for i, e in enumerate(examples):
        inputs[i, : len(e.inputs)], labels[i, : len(e.labels)], mask[i, : len(e.learned)] = (
            e.inputs,
            e.labels,
            e.learned,
        )
    return ResponseBatch(torch.from_numpy(inputs), torch.from_numpy(labels), torch.from_numpy(mask))


def encode_prompts_and_responses(prompts: list[str], responses: list[str], tokenizer, pad_id: int = 0) -> ResponseBatch:
    """Each prompt and its response encoded apart and joined (``tokenizer.encode(text) -> ids``: ours, or a
    Hugging Face tokenizer), as one padded batch whose response mask covers the response tokens."""
    if len(prompts) != len(responses):
        raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
    examples = []
    for prompt, response in zip(prompts, responses):
        prompt_ids, response_ids = list(tokenizer.encode(prompt)), list(tokenizer.encode(response))
        if len(prompt_ids) + len(response_ids) < 2:
            raise ValueError(f"prompt {prompt!r} and response {response!r} hold fewer than two tokens")
        ids = prompt_ids + response_ids
        examples.append(example_from(ids, [False] * len(prompt_ids) + [True] * len(response_ids)))
    return pad_examples(examples, pad_id)


def token_entropy(logits: torch.Tensor) -> torch.Tensor:
    """The entropy (nats) of the next-token distribution at every position: logits (..., vocab) to (...),
    in float32 whatever the logits' dtype."""
    return _entropy(torch.log_softmax(logits.float(), dim=-1))


def _entropy(log_p: torch.Tensor) -> torch.Tensor:
    return -(log_p.exp() * log_p).sum(-1)


class ResponseLogProbs(NamedTuple):
    log_probs: torch.Tensor  # (rows, length): log p(label | the inputs up to it); 0 where a label is IGNORE
    entropy: torch.Tensor | None  # (rows, length): the predicted distribution's entropy, when asked for


def response_log_probs(
    model: torch.nn.Module, input_ids: torch.Tensor, labels: torch.Tensor, with_entropy: bool = False
) -> ResponseLogProbs:
    """The model's log-probability of every label (float32), and optionally the entropy of each position's
    next-token distribution. Gradients flow when enabled; the logits are materialized (batch x length x
    vocabulary), so for the training loss alone ``model(ids, targets=...)`` is cheaper on CPU."""
    logits = model(input_ids)
    logits = getattr(logits, "logits", logits)
    log_p = torch.log_softmax(logits.float(), dim=-1)
    counted = labels != IGNORE
    picked = log_p.gather(-1, labels.clamp_min(0)[..., None]).squeeze(-1) * counted
    entropy = _entropy(log_p) if with_entropy else None
    return ResponseLogProbs(picked, entropy)


def masked_normalize(
    values: torch.Tensor, mask: torch.Tensor, normalize_constant: float, dim: int | None = None
) -> torch.Tensor:
    """The sum of ``values`` where ``mask`` is true (over ``dim``, or all), divided by a constant."""
    return torch.where(mask.bool(), values, torch.zeros_like(values)).sum(dim=dim) / normalize_constant


def masked_mean(values: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """The mean of ``values`` where ``mask`` is true (over ``dim``, or all); NaN where nothing is."""
    return masked_normalize(values, mask, 1.0, dim) / mask.bool().sum(dim=dim)


def microbatch_train_step(summed_loss: torch.Tensor, normalizer: float) -> tuple[torch.Tensor, dict]:
    """Backpropagate one micro-batch's share of an optimizer step, ``summed_loss / normalizer``, where the
    normalizer is what the whole step's summed loss is divided by (its response tokens on every rank, or
    rows x gradient-accumulation steps x a constant), so that the gradients the micro-batches add up to are
    those of the step's loss. Returns that share (detached) and ``{"summed_loss": ...}``."""
    loss = summed_loss / normalizer
    loss.backward()
    return loss.detach(), {"summed_loss": summed_loss.detach()}


def sft_microbatch_train_step(
    policy_log_probs: torch.Tensor,
    response_mask: torch.Tensor,
    gradient_accumulation_steps: int,
    normalize_constant: float = 1.0,
) -> tuple[torch.Tensor, dict]:
    """One micro-batch of SFT on log-probabilities (rows, length): the loss is the negative log-likelihood of
    the response tokens, summed per row and divided by ``normalize_constant``, averaged over the rows and
    divided by ``gradient_accumulation_steps``; backpropagated. Returns the loss (detached) and metadata:
    ``summed_loss`` (the summed negative log-likelihood over the constant) and ``response_tokens``."""
    summed = -masked_normalize(policy_log_probs, response_mask, normalize_constant)
    loss, metadata = microbatch_train_step(summed, policy_log_probs.size(0) * gradient_accumulation_steps)
    return loss, {**metadata, "response_tokens": response_mask.bool().sum()}
