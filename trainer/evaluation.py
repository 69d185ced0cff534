"""Evaluation without downloads: a model's bits per byte on reference documents, and its log-likelihood of
each choice of multiple-choice items (:mod:`trainer.eval_tasks`).

Bits per byte divides the negative log-likelihood of a document's tokens (in bits) by the document's UTF-8
bytes, so it does not depend on the tokenizer. A document is read after an end-of-sequence token (as in the
training shards, where EOS separates documents), in windows of the model's context: a document longer than
the context is scored in windows that overlap by half, each scoring only the tokens the previous one did not,
so every token after the first window sees at least half a context of text before it.

Items are scored by the summed log-probability of each choice's tokens after the context's (the context cut
on the left to fit). An item counts as right when the true choice has the highest log-likelihood per byte
(longer choices are not penalised), and its continuous score is the probability the model gives the true
choice relative to the other choices (their summed log-likelihoods, softmaxed), DataDecide's ``CORRECT
PROB``, which ranks small models more reliably than accuracy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from trainer.eval_tasks import Item

LN2 = math.log(2)


@dataclass
class EncodedItem:
    """An item's context and choices as token ids, with the choices' UTF-8 byte counts."""

    task: str
    context: list[int]
    choices: list[list[int]]
    choice_bytes: list[int]
    answer: int


def encode_item(item: Item, encode, eos_id: int) -> EncodedItem:
    """``item`` through the tokenizer's ``encode`` (a context starts after EOS, like a document)."""
    return EncodedItem(
        item.task,
        [eos_id, *encode(item.context)],
        [encode(c) for c in item.choices],
        [len(c.encode("utf-8")) for c in item.choices],
        item.answer,
    )


def _windows(ids: list[int], length: int) -> list[tuple[list[int], int]]:
    """(window of at most ``length + 1`` tokens, index of its first scored target) covering ``ids``: the first
    window scores every target, later ones start half a window back and score only their new targets."""
    if len(ids) <= length + 1:
        return [(ids, 0)]
    stride = max(1, length // 2)
    out = [(ids[: length + 1], 0)]
    end = length  # targets scored so far: ids[1 : end + 1]
    while end < len(ids) - 1:
        start = min(end - (length - stride), len(ids) - 1 - length)
        window = ids[start : start + length + 1]
        out.append((window, end - start))
        end = start + length
    return out


@torch.no_grad()
def _target_log_probs(model, rows: list[list[int]], device, batch_size: int) -> list[torch.Tensor]:
    """For each row of ids, the log-probability of every token after the first given those before it."""
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))  # rows of like length share a batch: less padding
    out: list[torch.Tensor] = [torch.empty(0)] * len(rows)
    for i in range(0, len(order), batch_size):
        batch = [rows[k] for k in order[i : i + batch_size]]
        width = max(len(r) for r in batch) - 1
        inputs = torch.zeros(len(batch), width, dtype=torch.long)
        targets = torch.zeros(len(batch), width, dtype=torch.long)
        for j, row in enumerate(batch):
            inputs[j, : len(row) - 1] = torch.tensor(row[:-1])
            targets[j, : len(row) - 1] = torch.tensor(row[1:])
        logits = model(inputs.to(device)).float()
        picked = -F.cross_entropy(logits.transpose(1, 2), targets.to(device), reduction="none").cpu()
        for j, k in enumerate(order[i : i + batch_size]):
            out[k] = picked[j, : len(rows[k]) - 1]
    return out


def document_bits(model, documents: list[list[int]], eos_id: int, batch_size: int = 32) -> list[float]:
    """The negative log-likelihood in bits of each document's tokens (each read after EOS; its own closing EOS
    not counted, since it has no bytes)."""
    model.eval()
    length = model.config.context_length
    device = next(model.parameters()).device
    rows, owners, firsts = [], [], []
    for d, ids in enumerate(documents):
        for window, first in _windows([eos_id, *ids], length):
            rows.append(window)
            owners.append(d)
            firsts.append(first)
    bits = [0.0] * len(documents)
    for d, first, logp in zip(owners, firsts, _target_log_probs(model, rows, device, batch_size)):
        bits[d] -= float(logp[first:].sum()) / LN2
    return bits


def choice_log_likelihoods(model, items: list[EncodedItem], batch_size: int = 64) -> list[list[float]]:
    """The summed log-probability (nats) of each choice's tokens after its item's context."""
    model.eval()
    length = model.config.context_length
    device = next(model.parameters()).device
    rows, spans = [], []
    for item in items:
        for choice in item.choices:
            choice = choice[:length]  # a choice longer than the context is scored on its first tokens
            context = item.context[-(length + 1 - len(choice)) :]
            rows.append(context + choice)
            spans.append(len(choice))
    scores = [
        float(logp[len(logp) - n :].sum()) for logp, n in zip(_target_log_probs(model, rows, device, batch_size), spans)
    ]
    out, k = [], 0
    for item in items:
        out.append(scores[k : k + len(item.choices)])
        k += len(item.choices)
    return out


def item_scores(item: EncodedItem, log_likelihoods: list[float]) -> tuple[float, float]:
    """(1.0 if right else 0.0, the probability of the true choice relative to the others)."""
    per_byte = [ll / max(b, 1) for ll, b in zip(log_likelihoods, item.choice_bytes)]
    right = float(max(range(len(per_byte)), key=per_byte.__getitem__) == item.answer)
    top = max(log_likelihoods)
    weights = [math.exp(ll - top) for ll in log_likelihoods]
    return right, weights[item.answer] / sum(weights)
