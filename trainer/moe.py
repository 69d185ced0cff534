"""Feed-forward layers: dense (SwiGLU, or an MLP with ReLU, GELU or SiLU) and a mixture of such experts.

The mixture routes every token to its ``top_k`` experts (softmax router, the chosen weights renormalised to
sum to one) and adds the Switch Transformer's load-balancing loss, ``n_experts * sum_e f_e * P_e`` (``f_e``:
the share of routing slots sent to expert e, ``P_e``: its mean router probability; 1 when balanced). In
training each expert takes at most ``capacity = ceil(capacity_factor * tokens * top_k / n_experts)`` slots,
earlier tokens first; a token over capacity skips that expert (it keeps its residual). In evaluation and
generation no token is dropped, so a row's output does not depend on the other rows of its batch.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = {"relu": F.relu, "gelu": F.gelu, "silu": F.silu}


class FeedForward(nn.Module):
    """SwiGLU, ``down(silu(gate x) * up x)`` with gate and up as one matrix, or ``down(act(up x))``."""

    def __init__(self, d_model: int, d_ff: int, activation: str):
        super().__init__()
        self.activation = activation
        if activation == "swiglu":
            self.gate_up = nn.Linear(d_model, 2 * d_ff, bias=False)
        else:
            self.up = nn.Linear(d_model, d_ff, bias=False)
        self.down = nn.Linear(d_ff, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.activation == "swiglu":
            return self.down(swiglu(self.gate_up(x)))
        return self.down(ACTIVATIONS[self.activation](self.up(x)))


def swiglu(gate_up: torch.Tensor) -> torch.Tensor:
    """``silu(gate) * up`` of the two halves of ``gate_up`` (..., 2 d_ff). In eager training the gradient is
    written straight into one (..., 2 d_ff) tensor instead of being concatenated from its halves: the same
    values, one pass over memory fewer (torch.compile fuses the plain expression itself)."""
    if torch.compiler.is_compiling() or not (torch.is_grad_enabled() and gate_up.requires_grad):
        gate, up = gate_up.chunk(2, dim=-1)
        return F.silu(gate) * up
    return _SwiGLU.apply(gate_up)


class _SwiGLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, gate_up):
        gate, up = gate_up.chunk(2, dim=-1)
        activated = F.silu(gate)
        ctx.save_for_backward(gate_up, activated)
        return activated * up

    @staticmethod
    def backward(ctx, grad):
        gate_up, activated = ctx.saved_tensors
        gate, up = gate_up.chunk(2, dim=-1)
        grad_gate_up = torch.empty_like(gate_up)
        grad_gate, grad_up = grad_gate_up.chunk(2, dim=-1)
        torch.ops.aten.silu_backward.grad_input(grad * up, gate, grad_input=grad_gate)
        torch.mul(grad, activated, out=grad_up)
        return grad_gate_up


class MixtureOfExperts(nn.Module):
    """Top-k routed experts with a load-balancing loss (``aux_loss`` after each forward) and a capacity."""

    def __init__(self, d_model: int, d_ff: int, activation: str, n_experts: int, top_k: int, capacity_factor: float):
        super().__init__()
        self.router = nn.Linear(d_model, n_experts, bias=False)
        self.experts = nn.ModuleList(FeedForward(d_model, d_ff, activation) for _ in range(n_experts))
        self.top_k = min(top_k, n_experts)
        self.capacity_factor = capacity_factor
        self.aux_loss = torch.zeros(())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, x.size(-1))
        n, e = flat.size(0), len(self.experts)
        probs = self.router(flat).float().softmax(-1)
        weights, chosen = probs.topk(self.top_k, dim=-1)
        weights = weights / weights.sum(-1, keepdim=True)
        assigned = F.one_hot(chosen, e).sum(1).float()  # (tokens, experts): 1 where routed
        self.aux_loss = e * (assigned.mean(0) / self.top_k * probs.mean(0)).sum()
        limited = self.training and self.capacity_factor > 0
        capacity = math.ceil(self.capacity_factor * n * self.top_k / e) if limited else n
        out = torch.zeros_like(flat)
        for expert_id, expert in enumerate(self.experts):
            token, slot = (chosen == expert_id).nonzero(as_tuple=True)  # in token order: earlier tokens first
            token, slot = token[:capacity], slot[:capacity]
            if token.numel():
                y = expert(flat[token]) * weights[token, slot, None].to(flat.dtype)
                out.index_add_(0, token, y)
        return out.view_as(x)
