"""Int8 weight-only quantization of a checkpoint, for inference (the layers are in :mod:`trainer.int8`), and
the held-out loss that measures what it costs.

A quantized checkpoint is an ordinary checkpoint whose payload says ``"quantization": "int8-weight-only"``;
it loads with ``torch.load(weights_only=True)`` like any other.
"""

from __future__ import annotations

import math
import os

import torch
from torch import nn

from trainer.checkpoint import load_checkpoint, model_config_of, save_checkpoint, store_tokenizer
from trainer.data import DataConfig, TokenData
from trainer.int8 import KIND, quantize_model, weight_bytes
from trainer.model import Transformer


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
    state; its tokenizer is copied next to ``out`` when ``out`` is in another folder); with ``data``, measure
    the held-out loss before and after. Returns what was measured."""
    payload = load_checkpoint(path)
    model = Transformer(model_config_of(payload, path))
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
    kept = {k: v for k, v in payload.items() if k not in ("model", "optimizer", "rng", "data", "tokenizer_refused")}
    kept["tokenizer_dir"] = store_tokenizer(payload.get("tokenizer_dir", ""), os.path.dirname(os.path.abspath(out)))
    save_checkpoint(out, {**kept, "model": model.state_dict(), "quantization": KIND})
    return report
