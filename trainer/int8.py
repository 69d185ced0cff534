"""Int8 weight-only linear layers, for inference: the representation :mod:`trainer.quantize` writes and
:mod:`trainer.checkpoint` checks checkpoints against.

Each output channel (row) of a weight gets one float scale, ``max |w_row| / 127``; weights are stored as
int8, a quarter of float32's memory. Activations stay in floating point: on CPU the product runs in
PyTorch's int8 weight kernel (``_weight_int8pack_mm``, the one gpt-fast uses), elsewhere the weight is
dequantized on the fly. The token embedding and the LM head (tied or not) stay in floating point: the
embedding is a lookup table, and the head's error would land directly on the logits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

KIND = "int8-weight-only"


class Int8Linear(nn.Module):
    """``x @ (weight * scale[:, None]).T`` with int8 ``weight`` (out, in) and float ``scale`` (out,)."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.register_buffer("weight", torch.zeros(out_features, in_features, dtype=torch.int8))
        self.register_buffer("scale", torch.ones(out_features))

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> Int8Linear:
        if linear.bias is not None:
            raise ValueError("only bias-free linear layers are quantized")
        w = linear.weight.detach().float()
        scale = (w.abs().amax(dim=1) / 127).clamp(min=1e-12)
        q = cls(linear.in_features, linear.out_features).to(linear.weight.device)
        q.weight.copy_(torch.round(w / scale[:, None]).clamp(-127, 127).to(torch.int8))
        q.scale.copy_(scale)
        return q

    def dequantized(self) -> torch.Tensor:
        return self.weight.float() * self.scale[:, None].float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type == "cpu" and x.dtype in (torch.float32, torch.bfloat16, torch.float16):
            flat = x.reshape(-1, self.in_features)
            y = torch.ops.aten._weight_int8pack_mm(flat.contiguous(), self.weight, self.scale.to(x.dtype))
            return y.view(*x.shape[:-1], self.out_features)
        return F.linear(x, self.weight.to(x.dtype)) * self.scale.to(x.dtype)


def quantize_model(model: nn.Module) -> nn.Module:
    """Replace every ``nn.Linear`` in the model's blocks (in place) with an :class:`Int8Linear`; returns the
    model. The embedding and the LM head stay in floating point."""
    for module in list(model.blocks.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, nn.Linear):
                setattr(module, name, Int8Linear.from_linear(child))
    return model


def is_quantized(payload: dict) -> bool:
    """Whether a checkpoint's payload holds int8 weights (and so needs :func:`quantize_model` before loading)."""
    kind = payload.get("quantization")
    if kind not in (None, KIND):
        raise ValueError(f"unknown quantization {kind!r} in the checkpoint; this version reads {KIND!r}")
    return kind == KIND


def weight_bytes(model: nn.Module) -> int:
    """Bytes of the model's saved tensors (the size of its weights)."""
    return sum(t.numel() * t.element_size() for t in model.state_dict().values())
