"""Optimizers: AdamW (PyTorch's fused kernel on CPU and CUDA, foreach elsewhere) on every parameter, or Muon
on the hidden 2-D weight matrices with AdamW on the rest (embedding, LM head, norms). Weight decay applies to
matrices only."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from tokenizer.errors import invalid


@dataclass(kw_only=True)
class OptimConfig:
    name: str = "adamw"
    lr: float = 3e-4
    min_lr: float = 3e-5
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-8
    grad_clip: float = 1.0
    muon_lr: float = 0.02
    muon_momentum: float = 0.95

    def __post_init__(self):
        if self.name not in ("adamw", "muon"):
            raise invalid("name", "expected 'adamw' or 'muon'")
        if not 0 < self.lr < 1 or not 0 <= self.min_lr <= self.lr:
            raise invalid("lr", "expected 0 < min_lr <= lr < 1")
        if not all(0 <= b < 1 for b in self.betas):
            raise invalid("betas", "expected two numbers in [0, 1)")
        if self.grad_clip < 0 or self.weight_decay < 0:
            raise invalid("grad_clip", "grad_clip and weight_decay must be >= 0")


def zeropower_newton_schulz(g: torch.Tensor, steps: int = 5) -> torch.Tensor:
    """An approximately orthogonal matrix with the row and column spaces of ``g`` (Muon's quintic iteration)."""
    a, b, c = 3.4445, -4.7750, 2.0315
    x = g.bfloat16() if g.is_cuda else g.float()
    transposed = x.size(0) > x.size(1)
    if transposed:
        x = x.T
    x = x / (x.norm() + 1e-7)
    for _ in range(steps):
        s = x @ x.T
        x = a * x + (b * s + c * s @ s) @ x
    return (x.T if transposed else x).type_as(g)


class Muon(torch.optim.Optimizer):
    """Momentum SGD whose update is orthogonalised (Newton-Schulz), for 2-D hidden weight matrices."""

    def __init__(self, params, lr: float = 0.02, momentum: float = 0.95, weight_decay: float = 0.0):
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                buf = self.state[p].setdefault("momentum", torch.zeros_like(p))
                buf.mul_(group["momentum"]).add_(p.grad)
                update = zeropower_newton_schulz(p.grad.add(buf, alpha=group["momentum"]))  # Nesterov
                if group["weight_decay"]:
                    p.mul_(1 - group["lr"] * group["weight_decay"])
                p.add_(update, alpha=-group["lr"] * max(1.0, p.size(0) / p.size(1)) ** 0.5)


class Optimizers:
    """One or two optimizers stepped together, with one state dict and group learning rates scaled by the
    schedule (each group keeps its base rate in ``base_lr``)."""

    def __init__(self, optimizers: list[torch.optim.Optimizer]):
        self.optimizers = optimizers
        for opt in optimizers:
            for group in opt.param_groups:
                group.setdefault("base_lr", group["lr"])

    def set_lr_scale(self, scale: float) -> None:
        for opt in self.optimizers:
            for group in opt.param_groups:
                group["lr"] = group["base_lr"] * scale

    def step(self) -> None:
        for opt in self.optimizers:
            opt.step()

    def zero_grad(self) -> None:
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=True)

    def state_dict(self) -> dict:
        return {"optimizers": [opt.state_dict() for opt in self.optimizers]}

    def load_state_dict(self, state: dict) -> None:
        for opt, s in zip(self.optimizers, state["optimizers"], strict=True):
            opt.load_state_dict(s)


FUSED_ADAMW_DEVICES = ("cpu", "cuda")


def build_optimizers(model: nn.Module, config: OptimConfig) -> Optimizers:
    """AdamW for everything, or Muon for the blocks' 2-D weights and AdamW for the rest."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    hidden = [p for n, p in named if p.dim() == 2 and n.startswith("blocks.")]
    rest = [(n, p) for n, p in named if not (config.name == "muon" and p.dim() == 2 and n.startswith("blocks."))]
    decay = [p for _, p in rest if p.dim() >= 2]
    no_decay = [p for _, p in rest if p.dim() < 2]
    # one pass over each parameter and its state per step: 5x faster than foreach on CPU (benchmarks/README.md)
    fused = all(p.device.type in FUSED_ADAMW_DEVICES for _, p in named)
    adamw = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.lr,
        betas=tuple(config.betas),
        eps=config.eps,
        fused=fused or None,
        foreach=None if fused else True,
    )
    if config.name == "adamw":
        return Optimizers([adamw])
    muon = Muon(hidden, lr=config.muon_lr, momentum=config.muon_momentum, weight_decay=config.weight_decay)
    return Optimizers([muon, adamw])
