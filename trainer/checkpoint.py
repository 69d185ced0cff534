"""Checkpoints: model, optimizer, step, RNG and data-loader state, in one file written under a temporary
name and renamed (a kill during a save leaves the previous checkpoint intact), read back with
``torch.load(weights_only=True)``: tensors and plain values only, never arbitrary pickled objects.

A checkpoint is untrusted input until checked. Before anything is allocated from it, :func:`load_checkpoint`
checks that the file is an uncompressed zip (as ``torch.save`` writes it) whose entries fit in the file,
that its tensors claim no more bytes than the file holds, and that the model configuration it carries
describes exactly its tensors (names, shapes, kinds), so a crafted configuration cannot make us build a
model larger than the file. The tokenizer it names is used only from inside the checkpoint's folder.
Sources may be paths or binary file objects.
"""

from __future__ import annotations

import filecmp
import io
import os
import random
import shutil
import zipfile
from typing import BinaryIO

import torch

from trainer.accounting import parameter_counts
from trainer.int8 import is_quantized, quantize_model
from trainer.model import Transformer
from trainer.model_config import ModelConfig
from trainer.storage import fetch_checkpoint, is_url

LATEST = "checkpoint.pt"
TOKENIZER = "tokenizer"  # the folder, next to a run's checkpoint, that holds its tokenizer
# A model built from a checkpoint may take 4 bytes per byte of the file (int8 weights are built in float32
# first) plus this much for the tables it computes itself (RoPE angles, sinusoidal positions).
COMPUTED_TABLES_BYTES = 256 * 2**20

Source = str | os.PathLike | BinaryIO


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


def save_checkpoint(target: str | os.PathLike | BinaryIO, payload: dict) -> None:
    """Write ``payload`` to a path atomically (temporary file, flush to disk, rename), or to a binary file
    object as it is."""
    if not isinstance(target, (str, os.PathLike)):
        torch.save(payload, target)
        return
    tmp = f"{os.fspath(target)}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        torch.save(payload, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, target)


def load_checkpoint(source: Source, map_location="cpu") -> dict:
    """A checkpoint's payload, from a path or a binary file object; a clear :class:`CheckpointError` for a
    file that is not a whole, consistent checkpoint (an inference-only checkpoint, such as a quantized one,
    holds the model and its configuration only). ``tokenizer_dir`` comes back as an absolute path inside the
    checkpoint's folder, or empty with ``tokenizer_refused`` saying why it was not trusted."""
    if isinstance(source, str) and is_url(source):
        source = fetch_checkpoint(source)  # with its tokenizer folder, into the local cache
    name = _name(source)
    payload, size = _read(source, map_location)
    required = (
        {"model", "config"} if "quantization" in payload else {"model", "optimizer", "step", "rng", "data", "config"}
    )
    missing = required - set(payload)
    if missing:
        raise CheckpointError(f"{name}: incomplete checkpoint, missing {sorted(missing)}")
    check_model_tensors(payload, name, size)
    folder = os.path.dirname(os.path.abspath(source)) if isinstance(source, (str, os.PathLike)) else None
    _resolve_tokenizer(payload, folder)
    return payload


def checkpoint_path(path: str) -> str:
    """A checkpoint file, or the ``checkpoint.pt`` in a training run's folder (a local folder, or a URL that
    does not end in ``.pt``)."""
    if is_url(path):
        return path if path.endswith(".pt") else f"{path.rstrip('/')}/{LATEST}"
    return os.path.join(path, LATEST) if os.path.isdir(path) else path


def checkpoint_exists(path: str) -> bool:
    """Whether the checkpoint file ``path`` (local or a URL) exists."""
    if is_url(path):
        from fsspec.core import url_to_fs

        fs, inner = url_to_fs(path)
        return fs.exists(inner)
    return os.path.exists(path)


def model_config_of(payload: dict, name: str = "checkpoint") -> ModelConfig:
    """The model configuration a checkpoint's payload carries."""
    config = payload.get("config")
    model = config.get("model") if isinstance(config, dict) else None
    if not isinstance(model, dict):
        raise CheckpointError(f"{name}: no model configuration")
    try:
        return ModelConfig(**model)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{name}: its model configuration is not valid ({exc})") from None


def check_model_tensors(payload: dict, name: str, file_bytes: int) -> None:
    """Raise :class:`CheckpointError` unless the payload's model configuration describes exactly its model
    tensors and the model it builds fits the file (see :data:`COMPUTED_TABLES_BYTES`). Nothing is allocated:
    parameters are counted from the configuration first, then a model on the ``meta`` device gives the
    expected names and shapes."""
    config = model_config_of(payload, name)
    state = payload["model"]
    if not isinstance(state, dict) or not all(isinstance(t, torch.Tensor) for t in state.values()):
        raise CheckpointError(f"{name}: 'model' is not a table of tensors")
    held = sum(t.numel() for t in state.values())
    described = parameter_counts(config)["total"]
    if described > held:
        raise CheckpointError(
            f"{name}: its configuration describes {described:,} parameters, but the file holds {held:,} values"
        )
    try:
        quantized = is_quantized(payload)
    except ValueError as exc:
        raise CheckpointError(f"{name}: {exc}") from None
    with torch.device("meta"):
        model = Transformer(config)
        built = sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))
        if quantized:
            quantize_model(model)
    if built > 4 * file_bytes + COMPUTED_TABLES_BYTES:
        raise CheckpointError(
            f"{name}: its configuration builds a model of {built:,} bytes from a file of {file_bytes:,} bytes"
        )
    expected = model.state_dict()
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{name}: its tensors are not those of its model configuration "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    for key, want in expected.items():
        have = state[key]
        if have.shape != want.shape or have.is_floating_point() != want.is_floating_point():
            raise CheckpointError(
                f"{name}: tensor {key} is {have.dtype} {tuple(have.shape)}; its model configuration expects "
                f"{want.dtype} {tuple(want.shape)}"
            )


def save_training_state(model: torch.nn.Module, optimizer, step: int, target: str | os.PathLike | BinaryIO) -> None:
    """Save a model's and an optimizer's state and the step, for a training loop of one's own, to a path
    (atomically) or a binary file object."""
    save_checkpoint(target, {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step})


def load_training_state(source: Source, model: torch.nn.Module, optimizer) -> int:
    """Restore what :func:`save_training_state` saved into ``model`` and ``optimizer``; the step."""
    name = _name(source)
    payload, _ = _read(source, "cpu")
    missing = {"model", "optimizer", "step"} - set(payload)
    if missing:
        raise CheckpointError(f"{name}: incomplete training state, missing {sorted(missing)}")
    try:
        model.load_state_dict(payload["model"])
        optimizer.load_state_dict(payload["optimizer"])
    except (RuntimeError, ValueError, KeyError) as exc:
        raise CheckpointError(f"{name}: not the state of this model and optimizer ({exc})") from None
    return int(payload["step"])


def store_tokenizer(source: str, folder: str) -> str:
    """Copy the tokenizer directory ``source`` into ``<folder>/tokenizer``, where a checkpoint in ``folder``
    names it (relative to itself); returns that name, or "" without a source. Another tokenizer already
    there is not replaced."""
    if not source:
        return ""
    target = os.path.join(folder, TOKENIZER)
    if os.path.realpath(source) == os.path.realpath(target):
        return TOKENIZER
    files = sorted(f for f in os.listdir(source) if os.path.isfile(os.path.join(source, f)))
    clash = [f for f in files if os.path.exists(os.path.join(target, f))]
    if clash and filecmp.cmpfiles(source, target, clash, shallow=False)[1:] != ([], []):
        raise CheckpointError(f"{target} holds another tokenizer; write into a folder of its own")
    os.makedirs(target, exist_ok=True)
    for f in files:
        shutil.copyfile(os.path.join(source, f), os.path.join(target, f))
    return TOKENIZER


def _name(source: Source) -> str:
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    name = getattr(source, "name", None)
    return name if isinstance(name, str) else "checkpoint"


def _read(source: Source, map_location) -> tuple[dict, int]:
    """The payload of a checkpoint (a path, or a file object read from its start) and the file's size,
    after checking that its zip entries are stored uncompressed and fit in the file, and that its tensors
    claim no more bytes than the file holds."""
    name = _name(source)
    if isinstance(source, (str, os.PathLike)):
        if not os.path.exists(source):
            raise CheckpointError(f"{name}: no checkpoint")
        size = os.path.getsize(source)
    else:
        if not source.seekable():
            source = io.BytesIO(source.read())
        size = source.seek(0, io.SEEK_END)
    try:
        with zipfile.ZipFile(source) as archive:
            entries = archive.infolist()
        if any(e.compress_type != zipfile.ZIP_STORED for e in entries) or sum(e.file_size for e in entries) > size:
            raise ValueError("compressed or overlapping entries, which torch.save does not write")
        if not isinstance(source, (str, os.PathLike)):
            source.seek(0)
        payload = torch.load(source, map_location=map_location, weights_only=True)
    except Exception as exc:  # zipfile and torch raise a variety of errors for damaged files
        raise CheckpointError(f"{name}: not a readable checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(payload, dict):
        raise CheckpointError(f"{name}: not a checkpoint (a {type(payload).__name__}, not a table)")
    claimed = sum(t.numel() * t.element_size() for t in _tensors(payload))
    if claimed > size:
        raise CheckpointError(f"{name}: its tensors claim {claimed:,} bytes, more than the file's {size:,}")
    return payload, size


def _tensors(value):
    """Every tensor in a payload of nested tables and lists."""
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _tensors(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _tensors(item)


def _resolve_tokenizer(payload: dict, folder: str | None) -> None:
    """Make ``tokenizer_dir`` an absolute path inside ``folder`` (the checkpoint's), or empty it and say why
    in ``tokenizer_refused``: a checkpoint must not send us reading files elsewhere."""
    named = payload.get("tokenizer_dir")
    if not named:
        return
    payload["tokenizer_dir"] = ""
    if not isinstance(named, str) or folder is None:
        payload["tokenizer_refused"] = "a checkpoint read from a file object names no folder to find it in"
        return
    root = os.path.realpath(folder)
    path = os.path.realpath(os.path.join(root, named))
    if os.path.commonpath([root, path]) != root:
        payload["tokenizer_refused"] = f"the tokenizer it names ({named}) is outside the checkpoint's folder"
        return
    payload["tokenizer_dir"] = path
