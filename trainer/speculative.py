"""Speculative decoding (Leviathan et al. 2023; Chen et al. 2023): a small draft model proposes ``k`` tokens,
the target model scores them all in one forward pass, and each proposal is accepted with probability
``min(1, p(x) / q(x))``; at the first rejection a token is drawn from ``max(0, p - q)`` renormalised, and
when all are accepted one more comes from the target's next distribution. The output is distributed exactly
as the target's own sampling (with the same temperature, top-k and top-p); at temperature 0 a proposal is
accepted when it is the target's argmax, so the output equals the target's greedy decoding.

State between rounds: the target's cache holds every token but the last one (``pending``), which the next
verification pass feeds first; the draft's cache may lag by the tokens it has not seen (``backlog``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from trainer.cache import KVCache
from trainer.generate import probabilities
from trainer.model import Transformer


@dataclass
class SpeculativeGeneration:
    tokens: list[int]
    proposed: int  # draft tokens offered to the target
    accepted: int  # of which the target accepted
    rounds: int  # target forward passes after the prefill
    prefill_s: float
    decode_s: float

    @property
    def acceptance_rate(self) -> float:
        return self.accepted / self.proposed if self.proposed else float("nan")

    @property
    def decode_tokens_per_s(self) -> float:
        return max(len(self.tokens) - 1, 0) / self.decode_s if self.decode_s > 0 else float("nan")


def accept_or_resample(
    proposal: int, p: torch.Tensor, q: torch.Tensor, generator: torch.Generator
) -> tuple[bool, int | None]:
    """The speculative sampling rule for one proposed token: (True, None) when accepted, else (False, the
    replacement drawn from the residual distribution max(0, p - q))."""
    u = torch.rand((), generator=generator, device=p.device)
    if float(u) * float(q[proposal]) < float(p[proposal]):  # u < p/q without dividing by a zero q
        return True, None
    residual = (p - q).clamp(min=0)
    total = residual.sum()
    residual = residual / total if total > 0 else p
    return False, int(torch.multinomial(residual, 1, generator=generator))


def _distribution(logits: torch.Tensor, temperature: float, top_k, top_p) -> torch.Tensor:
    return probabilities(logits, temperature, top_k, top_p) if temperature > 0 else logits


@torch.inference_mode()
def speculative_generate(
    target: Transformer,
    draft: Transformer,
    prompt: list[int],
    max_new_tokens: int,
    *,
    k: int = 4,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    eos_id: int | None = None,
    seed: int = 0,
    on_token: Callable[[int], bool | None] | None = None,
) -> SpeculativeGeneration:
    """Continue ``prompt`` with ``target``'s distribution, ``draft`` proposing ``k`` tokens per target pass.
    ``on_token`` (streaming) is called with each token as it is accepted; returning True stops generation
    after that token."""
    limit = _room(target, draft, prompt, max_new_tokens, k)
    target.eval()
    draft.eval()
    device = target.embed.weight.device
    sampling = (temperature, top_k, top_p)
    generator = torch.Generator(device=device).manual_seed(seed)
    size = len(prompt) + limit
    t_cache = KVCache(target.config, 1, size, device, target.embed.weight.dtype)
    d_cache = KVCache(draft.config, 1, size, device, draft.embed.weight.dtype)
    started = time.perf_counter()
    if len(prompt) > 1:
        head = torch.tensor([prompt[:-1]], device=device)
        target(head, t_cache)
        draft(head, d_cache)
    prefilled = time.perf_counter()
    pending, backlog = prompt[-1], [prompt[-1]]
    out: list[int] = []
    proposed = accepted = rounds = 0
    while len(out) < limit:
        n = min(k, limit - len(out) - 1)  # room for the proposals and the target's own token
        proposals, qs = _propose(draft, d_cache, backlog, n, sampling, generator)
        ps = target(torch.tensor([[pending, *proposals]], device=device), t_cache)[0]
        rounds += 1
        proposed += n
        new = _verify(proposals, ps, qs, sampling, generator)
        accepted += len(new) - 1
        kept = len(new) - 1  # proposals accepted; the last new token is the next pending one
        t_cache.rewind(t_cache.length - n + kept)
        seen = len(prompt) - 1 + len(out) + 1 + min(kept, n - 1)  # tokens the draft's cache may keep
        d_cache.rewind(min(d_cache.length, seen))
        if eos_id in new:
            new = new[: new.index(eos_id) + 1]
        halted = False
        for token in new:
            out.append(token)
            if on_token is not None and on_token(token):
                halted = True
                break
        if halted or out[-1] == eos_id:
            break
        pending = new[-1]
        backlog = (prompt + out)[d_cache.length :]
    return SpeculativeGeneration(out, proposed, accepted, rounds, prefilled - started, time.perf_counter() - prefilled)


def _room(target: Transformer, draft: Transformer, prompt: list[int], max_new_tokens: int, k: int) -> int:
    """How many tokens can be generated: the request, capped by the smaller context; bad requests raise."""
    if not prompt:
        raise ValueError("the prompt must hold at least one token")
    if draft.config.vocab_size != target.config.vocab_size:
        raise ValueError(
            f"the draft's vocabulary ({draft.config.vocab_size}) differs from the target's ({target.config.vocab_size})"
        )
    if k < 1:
        raise ValueError("k (draft tokens per round) must be >= 1")
    context = min(target.config.context_length, draft.config.context_length)
    limit = min(max_new_tokens, context - len(prompt))
    if limit < 1:
        raise ValueError(f"a {len(prompt)}-token prompt leaves no room in the context of {context}")
    return limit


def _propose(draft, cache, backlog: list[int], n: int, sampling: tuple, generator) -> tuple[list[int], list]:
    """``n`` tokens from the draft after feeding it ``backlog``, and the distribution each was drawn from."""
    temperature, top_k, top_p = sampling
    device = draft.embed.weight.device
    proposals, qs = [], []
    if n:
        logits = draft(torch.tensor([backlog], device=device), cache)[0, -1]
    for i in range(n):
        q = _distribution(logits, temperature, top_k, top_p)
        token = int(torch.multinomial(q, 1, generator=generator)) if temperature > 0 else int(q.argmax())
        proposals.append(token)
        qs.append(q)
        if i < n - 1:
            logits = draft(torch.tensor([[token]], device=device), cache)[0, -1]
    return proposals, qs


def _verify(proposals: list[int], ps, qs: list, sampling: tuple, generator) -> list[int]:
    """The proposals the target accepts, then its own token: a resampled replacement of the first rejected
    proposal, or (all accepted) one drawn from its distribution after the last."""
    temperature, top_k, top_p = sampling
    new = []
    for i, token in enumerate(proposals):
        if temperature > 0:
            ok, replacement = accept_or_resample(
                token, _distribution(ps[i], temperature, top_k, top_p), qs[i], generator
            )
        else:
            best = int(ps[i].argmax())
            ok, replacement = best == token, best
        if not ok:
            new.append(replacement)
            return new
        new.append(token)
    last = _distribution(ps[len(proposals)], temperature, top_k, top_p)
    new.append(int(torch.multinomial(last, 1, generator=generator)) if temperature > 0 else int(last.argmax()))
    return new
