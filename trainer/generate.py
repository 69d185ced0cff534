"""Text generation: prefill the prompts once, then decode a token per step against a preallocated KV cache.

Prompts of different lengths share a batch: they are padded on the left and the padding is masked out of
attention and positions (trainer/cache.py), so every row generates what it would alone; row ``i`` samples
with its own generator seeded ``seed + i``. ``use_cache=False`` recomputes the whole sequence every step, the
reference the cache is tested against. Speculative decoding lives in trainer/speculative.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from trainer.cache import KVCache
from trainer.checkpoint import load_checkpoint, model_config_of
from trainer.int8 import is_quantized, quantize_model
from trainer.model import Transformer


@dataclass
class Generation:
    tokens: list[int]  # the new tokens (EOS or the end of a stop sequence, when reached, included)
    prefill_s: float
    decode_s: float

    @property
    def decode_tokens_per_s(self) -> float:
        return max(len(self.tokens) - 1, 0) / self.decode_s if self.decode_s > 0 else float("nan")


@dataclass
class BatchGeneration:
    tokens: list[list[int]]  # per prompt, as in :class:`Generation`
    prefill_tokens: int  # prompt tokens (padding not counted)
    prefill_s: float
    decode_steps: int  # forward passes after the prefill
    decode_s: float

    @property
    def prefill_tokens_per_s(self) -> float:
        return self.prefill_tokens / self.prefill_s if self.prefill_s > 0 else float("nan")

    @property
    def decode_tokens_per_s(self) -> float:
        """New tokens (each after the first comes from a decode step) per second of decoding."""
        produced = sum(max(len(t) - 1, 0) for t in self.tokens)
        return produced / self.decode_s if self.decode_s > 0 else float("nan")


def probabilities(logits: torch.Tensor, temperature: float, top_k: int | None, top_p: float | None) -> torch.Tensor:
    """The sampling distribution (..., vocab) of ``logits`` at ``temperature`` > 0, restricted to the ``top_k``
    likeliest tokens and then to the smallest set whose probability reaches ``top_p``."""
    logits = logits.float() / temperature
    if top_k and top_k < logits.size(-1):
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        sorted_probs = sorted_logits.softmax(-1)
        drop = sorted_probs.cumsum(-1) - sorted_probs > top_p  # keep the smallest prefix reaching top_p
        logits = logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
    return logits.softmax(-1)


def sample(
    logits: torch.Tensor, temperature: float, top_k: int | None, top_p: float | None, generator: torch.Generator | None
) -> int:
    """The next token from one position's logits: greedy at temperature 0, else top-k / nucleus sampling."""
    if temperature == 0:
        return int(logits.argmax())
    return int(torch.multinomial(probabilities(logits, temperature, top_k, top_p), 1, generator=generator))


def _ends_with_stop(tokens: list[int], eos_id: int | None, stop_sequences: list[list[int]]) -> bool:
    if tokens[-1] == eos_id:
        return True
    return any(seq and tokens[-len(seq) :] == seq for seq in stop_sequences)


@torch.inference_mode()
def generate_batch(
    model: Transformer,
    prompts: list[list[int]],
    max_new_tokens: int,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    eos_id: int | None = None,
    stop_sequences: list[list[int]] = (),
    seed: int = 0,
    on_token: Callable[[int, int], bool | None] | None = None,
) -> BatchGeneration:
    """Continue every prompt (token ids) by up to ``max_new_tokens``; a row stops at ``eos_id``, at the end of
    one of ``stop_sequences`` (token ids), or when ``on_token(row, token)`` (called as each token is chosen:
    streaming) returns True."""
    if not prompts or not all(prompts):
        raise ValueError("every prompt must hold at least one token")
    model.eval()
    device, dtype = model.embed.weight.device, model.embed.weight.dtype
    longest = max(len(p) for p in prompts)
    limit = min(max_new_tokens, model.config.context_length - longest)
    if limit < 1:
        raise ValueError(f"a {longest}-token prompt leaves no room in the context of {model.config.context_length}")
    batch = len(prompts)
    ids = torch.zeros(batch, longest, dtype=torch.long, device=device)
    valid = torch.zeros(batch, longest, dtype=torch.bool, device=device)
    for row, prompt in enumerate(prompts):
        ids[row, longest - len(prompt) :] = torch.tensor(prompt, device=device)
        valid[row, longest - len(prompt) :] = True
    generators = [torch.Generator(device=device).manual_seed(seed + row) for row in range(batch)]
    cache = KVCache(model.config, batch, longest + limit, device, dtype)
    started = time.perf_counter()
    logits = model(ids, cache, valid=None if bool(valid.all()) else valid)[:, -1]
    _synchronize(device)
    prefilled = time.perf_counter()
    out: list[list[int]] = [[] for _ in prompts]
    running = list(range(batch))
    steps = 0
    while True:
        if temperature == 0:
            chosen = logits.argmax(-1).tolist()
        else:
            chosen = [sample(logits[row], temperature, top_k, top_p, generators[row]) for row in range(batch)]
        for row in list(running):
            out[row].append(chosen[row])
            stop = on_token(row, chosen[row]) if on_token else False
            if stop or _ends_with_stop(out[row], eos_id, stop_sequences) or len(out[row]) == limit:
                running.remove(row)
        if not running:
            break
        logits = model(torch.tensor(chosen, device=device)[:, None], cache)[:, -1]
        steps += 1
    _synchronize(device)
    return BatchGeneration(out, int(valid.sum()), prefilled - started, steps, time.perf_counter() - prefilled)


@torch.inference_mode()
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
    on_token: Callable[[int], bool | None] | None = None,
) -> Generation:
    """Continue ``prompt`` (token ids) by up to ``max_new_tokens``, stopping at ``eos_id``; with
    ``use_cache=False`` every step recomputes the whole sequence."""
    if use_cache:
        out = generate_batch(
            model,
            [prompt],
            max_new_tokens,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            eos_id=eos_id,
            seed=seed or 0,
            on_token=(lambda _, token: on_token(token)) if on_token else None,
        )
        return Generation(out.tokens[0], out.prefill_s, out.decode_s)
    if not prompt:
        raise ValueError("every prompt must hold at least one token")
    model.eval()
    device = model.embed.weight.device
    limit = min(max_new_tokens, model.config.context_length - len(prompt))
    if limit < 1:
        raise ValueError(f"a {len(prompt)}-token prompt leaves no room in the context of {model.config.context_length}")
    generator = torch.Generator(device=device).manual_seed(seed or 0)
    ids = list(prompt)
    started = time.perf_counter()
    out: list[int] = []
    while len(out) < limit:
        logits = model(torch.tensor([ids], device=device))[0, -1]
        out.append(sample(logits, temperature, top_k, top_p, generator))
        ids.append(out[-1])
        if out[-1] == eos_id or (on_token and on_token(out[-1])):
            break
    return Generation(out, 0.0, time.perf_counter() - started)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def load_model(path, device: str = "cpu") -> tuple[Transformer, dict]:
    """The model of a training, fine-tuning or quantized checkpoint (a path or a binary file object), and
    the checkpoint's payload; on a GPU the weights are cast to bfloat16. The checkpoint is checked against
    its configuration before the model is built (:func:`trainer.checkpoint.load_checkpoint`)."""
    payload = load_checkpoint(path, map_location=device)
    model = Transformer(model_config_of(payload, str(path)))
    if is_quantized(payload):
        quantize_model(model)
    model.load_state_dict(payload["model"])
    model = model.to(device)
    if torch.device(device).type == "cuda":
        model = model.to(torch.bfloat16)
    return model, payload
