"""Text generation: prefill the prompt once, then decode one token at a time against a KV cache
(``use_cache=False`` recomputes the whole sequence every step, the reference the cache is tested against)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from trainer.checkpoint import load_checkpoint
from trainer.model import KVCache, ModelConfig, Transformer


@dataclass
class Generation:
    tokens: list[int]  # the new tokens (EOS, when reached, included)
    prefill_s: float
    decode_s: float

    @property
    def decode_tokens_per_s(self) -> float:
        return max(len(self.tokens) - 1, 0) / self.decode_s if self.decode_s > 0 else float("nan")


def sample(
    logits: torch.Tensor, temperature: float, top_k: int | None, top_p: float | None, generator: torch.Generator | None
) -> int:
    """The next token from the last position's logits: greedy at temperature 0, else top-k / nucleus sampling."""
    if temperature == 0:
        return int(logits.argmax())
    logits = logits.float() / temperature
    if top_k:
        kth = torch.topk(logits, min(top_k, logits.numel())).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1:
        sorted_logits, order = logits.sort(descending=True)
        cumulative = sorted_logits.softmax(-1).cumsum(-1)
        drop = cumulative - sorted_logits.softmax(-1) > top_p  # keep the smallest prefix reaching top_p
        logits[order[drop]] = float("-inf")
    return int(torch.multinomial(logits.softmax(-1), 1, generator=generator))


@torch.no_grad()
def generate(
    model: Transformer,
    prompt: list[int],
    max_new_tokens: int,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    eos_id: int | None = None,
    seed: int | None = None,
    use_cache: bool = True,
) -> Generation:
    """Continue ``prompt`` (token ids) by up to ``max_new_tokens``, stopping at ``eos_id``."""
    if not prompt:
        raise ValueError("the prompt must hold at least one token")
    model.eval()
    device = next(model.parameters()).device
    limit = min(max_new_tokens, model.config.context_length - len(prompt))
    if limit < 1:
        raise ValueError(f"a {len(prompt)}-token prompt leaves no room in the context of {model.config.context_length}")
    generator = torch.Generator(device=device).manual_seed(seed) if seed is not None else None
    ids = torch.tensor([prompt], device=device)
    cache = KVCache(model.config, 1, len(prompt) + limit, device, next(model.parameters()).dtype) if use_cache else None
    started = time.perf_counter()
    logits = model(ids, cache)[0, -1]
    prefilled = time.perf_counter()
    out: list[int] = []
    while True:
        token = sample(logits, temperature, top_k, top_p, generator)
        out.append(token)
        if token == eos_id or len(out) == limit:
            break
        ids = torch.cat([ids, torch.tensor([[token]], device=device)], dim=1)
        logits = model(ids[:, -1:], cache)[0, -1] if use_cache else model(ids)[0, -1]
    return Generation(out, prefilled - started, time.perf_counter() - prefilled)


def load_model(path: str, device: str = "cpu") -> tuple[Transformer, dict]:
    """The model of a training or fine-tuning checkpoint, and the checkpoint's payload."""
    payload = load_checkpoint(path, map_location=device)
    model = Transformer(ModelConfig(**payload["config"]["model"]))
    model.load_state_dict(payload["model"])
    return model.to(device), payload
