"""Fine-tuning data: JSONL conversations turned into inputs, targets and (when packed) segment ids.

A JSONL line (or a row of a Parquet, CSV or JSON file, read with ``datasets``) is
``{"prompt": ..., "response": ...}`` (optionally with ``"system"``) or
``{"messages": [{"role": "user", "content": ...}, {"role": "assistant", "content": ...}, ...]}``. An example
becomes ``inputs = ids[:-1]`` and ``targets = ids[1:]`` with :data:`IGNORE` wherever the target is not a
learned token (the prompt, the template's openings): no prompt token ever enters the loss. Examples longer
than the context are cut at its end (counted); one left with nothing to learn is dropped (counted).

Training order is a seeded permutation per epoch, examples ``rank, rank + world, ...`` of it on each rank;
the position in it is the loader's whole state, so a resumed run sees the same examples. With ``pack``,
consecutive examples share a row, each in its own segment (the model keeps them apart).
"""

from __future__ import annotations

import glob
import json
import logging
import os
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import torch

from tokenizer.errors import invalid
from trainer.chat import ROLES, CompiledTemplate, Message
from trainer.data import Batch
from trainer.loss import IGNORE
from trainer.sft_functions import Example, example_from, pad_examples

log = logging.getLogger(__name__)


@dataclass(kw_only=True)
class SFTDataConfig:
    train: list[str] = field(default_factory=list)  # JSONL files or globs
    valid: list[str] = field(default_factory=list)  # held-out JSONL files; default: none
    pack: bool = False  # several examples per row, kept apart by the attention mask and positions
    skip_bad_lines: bool = False  # count and skip malformed lines instead of stopping at the first

    def __post_init__(self):
        if not self.train:
            raise invalid("train", "expected at least one JSONL file or glob")


class SFTDataError(ValueError):
    """A line of a fine-tuning file that cannot be used; the message names the file and line."""


def _conversation(record, where: str) -> list[Message]:
    if not isinstance(record, dict):
        raise SFTDataError(f"{where}: expected a JSON object, got {type(record).__name__}")
    if "messages" in record:
        messages = record["messages"]
        if not isinstance(messages, list) or not messages:
            raise SFTDataError(f"{where}: 'messages' must be a non-empty list")
        out = []
        for i, m in enumerate(messages):
            if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
                roles = ", ".join(ROLES)
                raise SFTDataError(f"{where}: messages[{i}] must have a 'role' ({roles}) and a string 'content'")
            out.append((m["role"], m["content"]))
        if not any(role == "assistant" and content.strip() for role, content in out):
            raise SFTDataError(f"{where}: no assistant message with content (nothing to learn)")
        return out
    missing = [k for k in ("prompt", "response") if not isinstance(record.get(k), str)]
    if missing:
        raise SFTDataError(f"{where}: missing {' and '.join(repr(k) for k in missing)} (strings), or 'messages'")
    if not record["response"].strip():
        raise SFTDataError(f"{where}: empty response")
    system = [("system", record["system"])] if isinstance(record.get("system"), str) else []
    return [*system, ("user", record["prompt"]), ("assistant", record["response"])]


DATASETS_FORMATS = {".parquet": "parquet", ".csv": "csv", ".json": "json", ".arrow": "arrow"}


def _records(path: str):
    """(where, record or the error reading it) for each record of a file: JSONL line by line (so an error
    names its line), other formats (Parquet, CSV, JSON, Arrow: e.g. a Hugging Face dataset's export) through
    ``datasets``."""
    suffix = os.path.splitext(path)[1].lower()
    if suffix in DATASETS_FORMATS:
        import datasets

        rows = datasets.load_dataset(DATASETS_FORMATS[suffix], data_files=path, split="train")
        for number, row in enumerate(rows, 1):
            yield f"{path}: row {number}", row
        return
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if line.strip():
                try:
                    yield f"{path}:{number}", json.loads(line)
                except json.JSONDecodeError as exc:
                    yield (
                        f"{path}:{number}",
                        SFTDataError(f"{path}:{number}: not JSON ({exc.msg} at column {exc.colno})"),
                    )


def read_conversations(patterns: list[str], skip_bad_lines: bool, counts: Counter) -> list[list[Message]]:
    """The conversations in JSONL files (or Parquet, CSV, JSON, Arrow files; paths or globs, in order); a bad
    line raises :class:`SFTDataError` naming file and line, or with ``skip_bad_lines`` is logged and counted
    under ``counts["bad_lines"]``."""
    out = []
    for pattern in patterns:
        paths = sorted(glob.glob(pattern))
        if not paths:
            raise invalid("data", f"no file matches {pattern!r}")
        for path in paths:
            for where, record in _records(path):
                try:
                    if isinstance(record, SFTDataError):
                        raise record
                    out.append(_conversation(record, where))
                except SFTDataError as exc:
                    if not skip_bad_lines:
                        raise
                    counts["bad_lines"] += 1
                    log.warning("skipped %s", exc)
    return out


def encode_examples(
    conversations: list[list[Message]], template: CompiledTemplate, context_length: int, counts: Counter
) -> list[Example]:
    """Examples of at most ``context_length`` positions; cuts are counted in ``counts["truncated"]``,
    examples left with no learned token in ``counts["dropped_no_response"]``."""
    out = []
    for conversation in conversations:
        ids, learned = template.encode(conversation)
        if len(ids) > context_length + 1:
            counts["truncated"] += 1
            ids, learned = ids[: context_length + 1], learned[: context_length + 1]
        example = example_from(ids, learned)
        if not example.learned.any():
            counts["dropped_no_response"] += 1
            continue
        out.append(example)
    return out


def collate(examples: list[Example], rows: int | None = None, length: int | None = None, pack: bool = False) -> Batch:
    """A batch of examples: one per row, right-padded (padding is never a target and, the attention being
    causal, never seen by a real position); or, with ``pack``, ``rows`` rows of ``length`` positions that
    hold the examples one after another, in the order given, with their segment numbers."""
    if not pack:
        return pad_examples(examples).as_batch()
    inputs = np.zeros((rows, length), dtype=np.int64)
    targets = np.full((rows, length), IGNORE, dtype=np.int64)
    segments = np.full((rows, length), -1, dtype=np.int64)  # padding: a segment of its own
    row, used = 0, 0
    for number, e in enumerate(examples):
        if used + len(e.inputs) > length:
            row, used = row + 1, 0
        if row == rows:
            raise ValueError(f"{len(examples)} examples do not fit in {rows} rows of {length}")
        span = slice(used, used + len(e.inputs))
        inputs[row, span], targets[row, span], segments[row, span] = e.inputs, e.targets, number
        used += len(e.inputs)
    return Batch(torch.from_numpy(inputs), torch.from_numpy(targets), torch.from_numpy(segments))


class SFTData:
    """Training batches in a seeded order, epoch after epoch, and the held-out examples."""

    def __init__(
        self,
        train: list[Example],
        valid: list[Example],
        *,
        context_length: int,
        pack: bool,
        seed: int,
        rank: int = 0,
        world: int = 1,
        vocab_size: int,
    ):
        if len(train) < world:
            raise invalid("data.train", f"{len(train)} usable examples; at least one per process needed")
        self.train, self.valid = train, valid
        self.length, self.pack = context_length, pack
        self.seed, self.rank, self.world = seed, rank, world
        self.vocab_size = vocab_size
        self.epoch, self.position = 0, 0
        self._order = self._epoch_order()

    def _epoch_order(self) -> list[int]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(len(self.train), generator=generator).tolist()
        return order[self.rank :: self.world]

    def _peek(self) -> Example:
        if self.position == len(self._order):
            self.epoch, self.position = self.epoch + 1, 0
            self._order = self._epoch_order()
        return self.train[self._order[self.position]]

    def batch(self, size: int) -> Batch:
        """``size`` examples, or with packing ``size`` rows filled with as many whole examples as fit."""
        taken: list[Example] = []
        if not self.pack:
            for _ in range(size):
                taken.append(self._peek())
                self.position += 1
            return collate(taken)
        row, used = 0, 0
        while True:
            e = self._peek()
            if used + len(e.inputs) > self.length:
                if row + 1 == size:
                    break
                row, used = row + 1, 0
            taken.append(e)
            used += len(e.inputs)
            self.position += 1
        return collate(taken, size, self.length, pack=True)

    def validation_batches(self, size: int, limit: int):
        """Up to ``limit`` batches of held-out examples, one per row, in file order."""
        for n, start in enumerate(range(0, len(self.valid), size)):
            if n == limit:
                return
            yield collate(self.valid[start : start + size])

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.position = state["epoch"], state["position"]
        self._order = self._epoch_order()
