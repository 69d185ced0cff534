"""SFT as plain tensor functions (trainer/sft_functions.py) and ``get_batch``, each against a straightforward
reference computation; the trainer's fused loss is the functions' loss."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from tests.test_sft import tokenizer_dir  # noqa: F401 - a fixture
from tokenizer.bpe import Tokenizer
from trainer.data import get_batch
from trainer.loss import IGNORE
from trainer.model import Transformer
from trainer.model_config import ModelConfig
from trainer.sft_functions import (
    encode_prompts_and_responses,
    masked_mean,
    masked_normalize,
    microbatch_train_step,
    response_log_probs,
    sft_microbatch_train_step,
    token_entropy,
)

PROMPTS = ["Which language is this? Guten Morgen!", "Say hi", "", "Translate: the cat sleeps on the warm mat"]
RESPONSES = ["de", "Hello there, how are you today?", "An answer to nothing", "le chat dort"]


def tiny_model(vocab_size=403) -> Transformer:
    torch.manual_seed(0)
    return Transformer(ModelConfig(vocab_size=vocab_size, context_length=64, d_model=32, n_layers=2, n_heads=4))


def test_prompts_and_responses_become_ids_labels_and_a_response_mask(tokenizer_dir):  # noqa: F811
    tokenizer = Tokenizer.load(tokenizer_dir)
    batch = encode_prompts_and_responses(PROMPTS, RESPONSES, tokenizer, pad_id=7)
    sequences = [(tokenizer.encode(p), tokenizer.encode(r)) for p, r in zip(PROMPTS, RESPONSES)]
    width = max(len(p) + len(r) for p, r in sequences) - 1
    for row, (prompt, response) in enumerate(sequences):
        ids = prompt + response
        padding = [7] * (width - len(ids) + 1)
        assert batch.input_ids[row].tolist() == ids[:-1] + padding
        assert batch.labels[row].tolist() == ids[1:] + padding
        # label j is ids[j + 1]: a response token from j = len(prompt) - 1 on, padding never
        assert batch.response_mask[row].tolist() == [len(prompt) - 1 <= j < len(ids) - 1 for j in range(width)]
    assert batch.input_ids.dtype == batch.labels.dtype == torch.int64 and batch.response_mask.dtype == torch.bool
    targets = batch.as_batch().targets
    assert torch.equal(targets, torch.where(batch.response_mask, batch.labels, IGNORE))
    with pytest.raises(ValueError, match="2 prompts but 1 responses"):
        encode_prompts_and_responses(PROMPTS[:2], RESPONSES[:1], tokenizer)


def test_entropy_equals_its_definition_and_stays_finite_on_large_logits():
    torch.manual_seed(1)
    logits = torch.randn(3, 5, 50) * 4
    p = logits.double().softmax(-1)
    torch.testing.assert_close(token_entropy(logits).double(), -(p * p.log()).sum(-1), rtol=1e-5, atol=1e-6)
    peaked = torch.randn(3, 5, 50) * 1e4  # softmax underflows to exact zeros: 0 log 0 must count as 0
    assert torch.isfinite(token_entropy(peaked)).all() and token_entropy(peaked).min() >= 0
    assert token_entropy(torch.zeros(2, 50)) == pytest.approx(np.log(50))
    assert token_entropy(logits.bfloat16()).dtype == torch.float32


def test_response_log_probs_equal_log_softmax_at_the_labels():
    model = tiny_model()
    ids, labels = torch.randint(0, 403, (3, 20)), torch.randint(0, 403, (3, 20))
    labels[0, :5] = IGNORE
    out = response_log_probs(model, ids, labels, with_entropy=True)
    with torch.no_grad():
        log_p = model(ids).double().log_softmax(-1)
    expected = log_p.gather(-1, labels.clamp_min(0)[..., None]).squeeze(-1).masked_fill(labels == IGNORE, 0)
    torch.testing.assert_close(out.log_probs.double(), expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.entropy.double(), -(log_p.exp() * log_p).sum(-1), rtol=1e-5, atol=1e-5)
    assert response_log_probs(model, ids, labels).entropy is None
    out.log_probs.sum().backward()  # gradients reach the model
    assert model.embed.weight.grad is not None and model.embed.weight.grad.abs().sum() > 0

    class Wrapped(torch.nn.Module):  # a model whose output has .logits, as Hugging Face causal LMs return
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, ids):
            return SimpleNamespace(logits=self.inner(ids))

    torch.testing.assert_close(response_log_probs(Wrapped(model), ids, labels).log_probs, out.log_probs.detach())


def test_masked_normalize_and_masked_mean():
    torch.manual_seed(2)
    values, mask = torch.randn(4, 6), torch.rand(4, 6) > 0.4
    mask[1] = False  # a row with nothing to count
    values[~mask] = float("-inf")  # what is masked out never leaks in, not even as nan
    for dim in (None, 0, 1, -1):
        kept = torch.where(mask, values, torch.zeros_like(values))
        total = kept.sum() if dim is None else kept.sum(dim)
        count = mask.sum() if dim is None else mask.sum(dim)
        torch.testing.assert_close(masked_normalize(values, mask, 2.5, dim), total / 2.5)
        torch.testing.assert_close(masked_mean(values, mask, dim), total / count, equal_nan=True)
    assert masked_mean(values, mask, dim=1)[1].isnan()
    rows = [[v for v, m in zip(r, k) if m] for r, k in zip(values.tolist(), mask.tolist())]
    assert masked_normalize(values, mask, 1.0, -1).tolist() == pytest.approx([sum(r) for r in rows])


def reference_sft_loss(log_probs, mask, grad_accum, constant):
    """CS336's definition written out: per row, minus the sum of response log-probs over the constant;
    averaged over the rows and divided by the gradient-accumulation steps."""
    rows = [-(lp[m.bool()]).sum() / constant for lp, m in zip(log_probs, mask)]
    return torch.stack(rows).mean() / grad_accum


def test_sft_microbatch_train_step_value_gradient_and_accumulation():
    torch.manual_seed(3)
    logits = torch.randn(4, 7, 30, requires_grad=True)
    labels, mask = torch.randint(0, 30, (4, 7)), torch.rand(4, 7) > 0.3

    def log_probs():
        return logits.log_softmax(-1).gather(-1, labels[..., None]).squeeze(-1)

    loss, metadata = sft_microbatch_train_step(log_probs(), mask, gradient_accumulation_steps=3, normalize_constant=2.0)
    grad, logits.grad = logits.grad.clone(), None
    expected = reference_sft_loss(log_probs(), mask, 3, 2.0)
    expected.backward()
    torch.testing.assert_close(loss, expected.detach())
    torch.testing.assert_close(grad, logits.grad)
    assert not loss.requires_grad and metadata["response_tokens"] == int(mask.sum())
    torch.testing.assert_close(metadata["summed_loss"], -(log_probs() * mask).sum().detach() / 2.0)
    # two micro-batches of two rows with grad_accum = 2 add up to one batch of four rows
    logits.grad = None
    sft_microbatch_train_step(log_probs(), mask, 1)
    whole, logits.grad = logits.grad.clone(), None
    for rows in (slice(0, 2), slice(2, 4)):
        sft_microbatch_train_step(log_probs()[rows], mask[rows], 2)
    torch.testing.assert_close(logits.grad, whole)


def test_the_trainers_fused_loss_is_the_functions_loss(tokenizer_dir):  # noqa: F811
    """What SFTTrainer trains on (the model's blockwise loss, summed over response tokens, over the step's
    response tokens) equals the functions' loss on per-token log-probs, in value and gradient."""
    tokenizer = Tokenizer.load(tokenizer_dir)
    batch = encode_prompts_and_responses(PROMPTS, RESPONSES, tokenizer)
    rows, count = len(PROMPTS), int(batch.response_mask.sum())
    model = tiny_model()
    fused = batch.as_batch()
    loss, _ = microbatch_train_step(model(fused.inputs, targets=fused.targets, reduction="sum"), count)
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    out = response_log_probs(model, batch.input_ids, batch.labels)
    expected, _ = sft_microbatch_train_step(out.log_probs, batch.response_mask, 1, normalize_constant=count / rows)
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)
    for a, p in zip(grads, model.parameters()):
        torch.testing.assert_close(a, p.grad, rtol=1e-4, atol=1e-6)


def test_get_batch_draws_every_window_of_an_in_memory_array():
    tokens = np.arange(10, dtype=np.uint16)  # a context of 8 fits twice: starting at 0 and at 1
    generator = torch.Generator().manual_seed(0)
    starts = set()
    for _ in range(64):
        x, y = get_batch(tokens, 4, 8, "cpu", generator)
        assert x.shape == y.shape == (4, 8) and x.dtype == y.dtype == torch.int64
        assert torch.equal(y, x + 1) and torch.equal(x, x[:, :1] + torch.arange(8))
        starts |= set(x[:, 0].tolist())
    assert starts == {0, 1}
    again = get_batch(tokens, 4, 8, "cpu", torch.Generator().manual_seed(5))
    assert torch.equal(again[0], get_batch(tokens, 4, 8, "cpu", torch.Generator().manual_seed(5))[0])
    assert get_batch(torch.arange(9), 3, 8)[0].tolist() == [list(range(8))] * 3
    with pytest.raises(ValueError, match="8 tokens hold no window of 9"):
        get_batch(np.arange(8), 1, 8)
