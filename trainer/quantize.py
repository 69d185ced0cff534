"""Int8 weight-only quantization of a model's linear layers, for inference.

Each output channel (row) of a weight gets one float scale, ``max |w_row| / 127``; weights are stored as
int8, a quarter of float32's memory. Activations stay in floating point: on CPU the product runs in
PyTorch's int8 weight kernel (``_weight_int8pack_mm``, the one gpt-fast uses), elsewhere the weight is
dequantized on the fly. The token embedding and the LM head (tied or not) stay in floating point: the
embedding is a lookup table, and the head's error would land directly on the logits.
A quantized checkpoint is an ordinary checkpoint whose payload says ``"quantization": "int8-weight-only"``;
it loads with ``torch.load(weights_only=True)`` like any other.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from trainer.checkpoint import load_checkpoint, save_checkpoint
from trainer.data import DataConfig, TokenData
from trainer.model import Transformer
from trainer.model_config import ModelConfig

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


@torch.inference_mode()
def heldout_loss(model: nn.Module, data: DataConfig, batch_size: int = 8, batches: int = 50) -> tuple[float, int]:
    """Mean next-token loss over the held-out windows of ``data`` (the same windows every call), and the
    number of targets it averages."""
    model.eval()
    windows = TokenData(data, model.config.context_length, seed=0)
    device = model.embed.weight.device
    total, count = 0.0, 0
    for batch in windows.validation_batches(batch_size, batches):
        batch = batch.to(device)
        total += float(model(batch.inputs, targets=batch.targets, reduction="sum"))
        count += batch.counted
    if not count:
        raise ValueError("the data holds no held-out windows: name validation shards or a valid_fraction > 0")
    return total / count, count


def quantize_checkpoint(path: str, out: str, data: DataConfig | None = None, batches: int = 50) -> dict:
    """Write an int8 copy of the checkpoint at ``path`` to ``out`` (weights and configuration, no training
    state); with ``data``, measure the held-out loss before and after. Returns what was measured."""
    payload = load_checkpoint(path)
    model = Transformer(ModelConfig(**payload["config"]["model"]))
    model.load_state_dict(payload["model"])
    report = {"bytes_before": weight_bytes(model)}
    if data is not None:
        report["loss_before"], report["targets"] = heldout_loss(model, data, batches=batches)
    quantize_model(model)
    report["bytes_after"] = weight_bytes(model)
    if data is not None:
        report["loss_after"], _ = heldout_loss(model, data, batches=batches)
        report["perplexity_before"] = math.exp(report["loss_before"])
        report["perplexity_after"] = math.exp(report["loss_after"])
    kept = {k: v for k, v in payload.items() if k not in ("model", "optimizer", "rng", "data")}
    save_checkpoint(out, {**kept, "model": model.state_dict(), "quantization": KIND})
    return report
