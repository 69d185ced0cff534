"""Checkpoints: model, optimizer, step, RNG and data-loader state, in one file written under a temporary
name and renamed (a kill during a save leaves the previous checkpoint intact), read back with
``torch.load(weights_only=True)``: tensors and plain values only, never arbitrary pickled objects."""

from __future__ import annotations

import os
import random

import torch

LATEST = "checkpoint.pt"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: missing, truncated, tampered with, or from another model."""


def capture_rng() -> dict:
    version, internal, gauss = random.getstate()
    state = {"torch": torch.get_rng_state(), "python": list(internal), "python_gauss": gauss}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate((3, tuple(state["python"]), state["python_gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str, payload: dict) -> None:
    """Write ``payload`` to ``path`` atomically (temporary file, flush to disk, rename)."""
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        torch.save(payload, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_checkpoint(path: str, map_location="cpu") -> dict:
    """A checkpoint's payload; a clear :class:`CheckpointError` for a file that is not a whole checkpoint (an
    inference-only checkpoint, such as a quantized one, holds the model and its configuration only)."""
    if not os.path.exists(path):
        raise CheckpointError(f"{path}: no checkpoint")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises a variety of errors for damaged files
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(exc).__name__}: {exc})") from None
    required = (
        {"model", "config"} if "quantization" in payload else {"model", "optimizer", "step", "rng", "data", "config"}
    )
    missing = required - set(payload)
    if missing:
        raise CheckpointError(f"{path}: incomplete checkpoint, missing {sorted(missing)}")
    return payload
