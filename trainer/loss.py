"""Next-token cross-entropy of an LM head, computed a block of rows at a time.

``linear_cross_entropy(hidden, weight, targets)`` equals
``F.cross_entropy((hidden @ weight.T).float(), targets)`` without ever holding the (tokens x vocab) logits:
each block of rows is multiplied out, turned into its loss and, when gradients are wanted, straight into the
gradients of ``hidden`` and ``weight`` while it is still in cache. The saved work is the separate log-softmax
forward and backward passes over the whole logits tensor in memory; the matmuls are the same three as with
an ``nn.Linear`` head. On CPU this makes a training step 5-20% faster (benchmarks/README.md) and cuts the
peak memory by the logits and their gradient (both float32). On GPU and under ``torch.compile`` the plain
logits path is used: the compiler fuses it, and the blockwise loop has not been measured on a GPU yet.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

BLOCK_ROWS = 256  # measured best on CPU for vocabularies of 2k-32k (benchmarks/README.md)
IGNORE = -100  # a target that takes no part in the loss: a prompt token, padding (PyTorch's ignore_index)


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Next-token cross-entropy over the targets that are not :data:`IGNORE` (their mean or sum), computed
    in float32 whatever the logits' dtype."""
    return F.cross_entropy(
        logits.float().reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=IGNORE, reduction=reduction
    )


def linear_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    reduction: str = "mean",
    block_rows: int = BLOCK_ROWS,
) -> torch.Tensor:
    """Cross-entropy (``reduction`` "mean" or "sum") of the logits ``hidden @ weight.T`` (hidden: (..., d),
    weight: (vocab, d), targets: (...)), block by block on CPU; positions whose target is :data:`IGNORE`
    are left out before the LM head is applied. Under autocast the matmuls run in the autocast dtype, the
    softmax in float32."""
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    hidden = hidden.reshape(-1, hidden.size(-1))
    targets = targets.reshape(-1)
    if hidden.device.type != "cpu" or torch.compiler.is_compiling():
        return cross_entropy(F.linear(hidden, weight), targets, reduction)
    counted = targets != IGNORE
    if not bool(counted.all()):
        hidden, targets = hidden[counted], targets[counted]
    divisor = len(targets) if reduction == "mean" else 1
    device = hidden.device.type
    dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else hidden.dtype
    if torch.is_grad_enabled() and (hidden.requires_grad or weight.requires_grad):
        return _LinearCrossEntropy.apply(hidden, weight, targets, dtype, block_rows, divisor)
    with torch.autocast(device, enabled=False):
        h, w = hidden.to(dtype), weight.to(dtype)
        total = sum(
            _block_losses(h[s : s + block_rows], w, targets[s : s + block_rows])[0].sum()
            for s in range(0, len(targets), block_rows)
        )
    return total / divisor


def _block_losses(h: torch.Tensor, w: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-row losses of one block, with its float32 logits and their log-sum-exp for the gradient."""
    logits = (h @ w.t()).float()
    lse = torch.logsumexp(logits, dim=-1)
    return lse - logits.gather(1, y[:, None]).squeeze(1), logits, lse


class _LinearCrossEntropy(torch.autograd.Function):
    """Forward computes the loss (the sum of the rows' losses over ``divisor``) and both gradients (for a
    loss of weight 1); backward scales them."""

    @staticmethod
    def forward(ctx, hidden, weight, targets, dtype, block_rows, divisor):
        with torch.autocast(hidden.device.type, enabled=False):
            h, w = hidden.to(dtype), weight.to(dtype)
            grad_h = torch.empty_like(hidden)
            grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device)
            total = torch.zeros((), dtype=torch.float32, device=hidden.device)
            for s in range(0, len(targets), block_rows):
                hb, yb = h[s : s + block_rows], targets[s : s + block_rows]
                losses, logits, lse = _block_losses(hb, w, yb)
                total += losses.sum()
                # d(loss)/d(logits) = (softmax - one_hot) / divisor, built in place over the logits
                grad = logits.sub_(lse[:, None]).exp_()
                grad[torch.arange(len(yb), device=grad.device), yb] -= 1.0
                grad = grad.div_(divisor).to(dtype)
                grad_h[s : s + block_rows] = grad @ w
                if dtype == torch.float32:
                    grad_w.addmm_(grad.t(), hb)
                else:
                    grad_w += grad.t() @ hb
        ctx.save_for_backward(grad_h, grad_w.to(weight.dtype))
        return total / divisor

    @staticmethod
    def backward(ctx, grad_loss):
        grad_h, grad_w = ctx.saved_tensors
        return grad_h * grad_loss, grad_w * grad_loss, None, None, None, None
