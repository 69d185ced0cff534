"""The training loop: gradient accumulation, clipping, bf16 autocast on GPU, optional ``torch.compile``,
periodic validation, metrics to ``metrics.jsonl`` and a progress bar, atomic checkpoints, exact resume, and
DDP when started by ``torchrun`` (the same configuration runs on one CPU)."""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict

import torch
from tqdm import tqdm

from tokenizer.errors import invalid
from trainer.checkpoint import (
    LATEST,
    TOKENIZER,
    CheckpointError,
    capture_rng,
    load_checkpoint,
    restore_rng,
    save_checkpoint,
    store_tokenizer,
)
from trainer.config import TrainConfig
from trainer.data import Batch, TokenData, find_shards
from trainer.distill import distillation_loss, load_teacher
from trainer.model import Transformer
from trainer.model_config import ModelConfig
from trainer.optim import build_optimizers
from trainer.schedule import lr_at, schedule_problem
from trainer.sft_functions import microbatch_train_step
from trainer.storage import RemoteOutput, is_url
from trainer.threads import choose_threads

# dense bf16 peak FLOP/s by device name, for MFU (None: unknown device, no MFU reported)
PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12, "A10G": 125e12, "L4": 121e12}


def peak_flops(device: torch.device) -> float | None:
    """The dense bf16 peak FLOP/s of a known CUDA device (for MFU); None on CPU or an unknown GPU."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_BF16.items() if k in name), None)


class Distributed:
    """Rank and world size under ``torchrun`` (one process per GPU, or gloo on CPU); a single process otherwise."""

    def __init__(self):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if self.world > 1 and not torch.distributed.is_initialized():
            backend = "nccl" if torch.cuda.is_available() else "gloo"
            torch.distributed.init_process_group(backend)

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            torch.distributed.barrier()

    def gather(self, obj):
        if self.world == 1:
            return [obj]
        out = [None] * self.world
        torch.distributed.all_gather_object(out, obj)
        return out


def resolve_device(name: str, dist: Distributed) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        torch.cuda.set_device(dist.local_rank)
        return torch.device("cuda", dist.local_rank)
    return torch.device("cpu")


class Trainer:
    """One training run: call :meth:`run`. Resumes from ``<out_dir>/checkpoint.pt`` when it exists."""

    def __init__(self, config: TrainConfig, *, resume: bool = True, progress: bool = True):
        self.config = config
        self.dist = Distributed()
        self.device = resolve_device(config.train.device, self.dist)
        dtype = config.train.dtype
        self.autocast_dtype = (
            torch.bfloat16 if (dtype == "bfloat16" or (dtype == "auto" and self.device.type == "cuda")) else None
        )
        problem = schedule_problem(config.schedule, config.train.steps)
        if problem and self.dist.main:  # a training file refuses this (pipeline/models/configs.py)
            print(f"warning: {problem[0]} {problem[1]}", file=sys.stderr)
        torch.manual_seed(config.train.seed)  # the same initial weights on every rank
        self.data = self._build_data()
        if self.data.vocab_size > config.model.vocab_size:
            raise invalid(
                "vocab_size",
                f"the data uses {self.data.vocab_size} token ids; the model has {config.model.vocab_size}",
            )
        self.model = self._build_model().to(self.device)
        self.teacher = self._build_teacher()
        self.optimizers = build_optimizers(self.model, config.optim)
        self.out_dir = config.train.out_dir
        self.remote = RemoteOutput(self.out_dir) if is_url(self.out_dir) else None
        if self.remote:  # work in a local mirror; resume from what the storage holds
            if resume:
                self.remote.pull()
            self.out_dir = self.remote.local
        self.step = 0
        self.threads: int | None = None  # the CPU threads of the run, once chosen (a checkpoint records them)
        self.progress = progress and self.dist.main
        os.makedirs(self.out_dir, exist_ok=True)
        checkpoint = os.path.join(self.out_dir, LATEST)
        if resume and os.path.exists(checkpoint):
            self._restore(load_checkpoint(checkpoint, map_location=self.device))
        if self.device.type == "cpu":
            self.threads, why = choose_threads(config.train.threads, self.threads)
            torch.set_num_threads(self.threads)
            if self.dist.main:
                print(f"training on {self.threads} CPU thread(s): {why}", file=sys.stderr)
        model = torch.compile(self.model) if config.train.compile else self.model
        if self.dist.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            model = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
        self.train_model = model

    def _build_data(self) -> TokenData:
        """The training and validation data (a fine-tuning trainer overrides this)."""
        c = self.config
        return TokenData(c.data, c.model.context_length, seed=c.train.seed + self.dist.rank)

    def _build_model(self) -> Transformer:
        """The model before any checkpoint is restored: freshly initialized weights."""
        return Transformer(self.config.model)

    def _build_teacher(self) -> Transformer | None:
        """The model to distill from (``[distill] teacher``), or None (a fine-tuning trainer has none)."""
        c = self.config.distill
        return load_teacher(c, self.config.model, self.device) if c.teacher else None

    def tokenizer_source(self) -> str:
        """The tokenizer this run's data was encoded with (here the one next to the shards), or ""."""
        return tokenizer_dir_for(self.config)

    def checkpoint_extras(self) -> dict:
        """What a checkpoint records beside the training state: here where its tokenizer is (a copy inside
        ``out_dir``, relative to the checkpoint)."""
        return {"tokenizer_dir": TOKENIZER if self.tokenizer_source() else ""}

    def _restore(self, payload: dict) -> None:
        saved = payload["config"]
        # rebuilt, so that a checkpoint from before a model setting existed compares with its default
        if asdict(ModelConfig(**saved["model"])) != self.config.to_dict()["model"]:
            raise CheckpointError(
                f"{self.out_dir}: the checkpoint is of another model ({saved['model']}); "
                "use another out_dir or start over"
            )
        if saved.get("optim", {}).get("name", "adamw") != self.config.optim.name:
            raise CheckpointError(
                f"{self.out_dir}: the checkpoint was trained with optim.name = {saved['optim']['name']!r}, whose "
                "state does not carry over; use another out_dir or start over"
            )
        changed = _changed_settings(saved, self.config.to_dict())
        if changed and self.dist.main:
            print(
                f"resuming {self.out_dir} at step {payload['step']} with settings changed since the checkpoint: "
                + ", ".join(changed),
                file=sys.stderr,
            )
        self.model.load_state_dict(payload["model"])
        self.optimizers.load_state_dict(payload["optimizer"])
        ranks = payload["data"]
        if len(ranks) != self.dist.world:
            raise CheckpointError(
                f"the checkpoint was written by {len(ranks)} processes; this run has {self.dist.world}"
            )
        self.data.load_state_dict(ranks[self.dist.rank])
        restore_rng(payload["rng"][self.dist.rank])
        self.step = payload["step"]
        threads = payload.get("threads")
        if threads is not None and not (type(threads) is int and 1 <= threads <= 1024):
            raise CheckpointError(f"{self.out_dir}: the checkpoint's threads ({threads!r}) is not a thread count")
        self.threads = threads

    def save(self) -> None:
        data, rng = self.dist.gather(self.data.state_dict()), self.dist.gather(capture_rng())
        if self.dist.main:
            save_checkpoint(
                os.path.join(self.out_dir, LATEST),
                {
                    "model": self.model.state_dict(),
                    "optimizer": self.optimizers.state_dict(),
                    "step": self.step,
                    "rng": rng,
                    "data": data,
                    "config": self.config.to_dict(),
                    "threads": self.threads,
                    **self.checkpoint_extras(),
                },
            )
            self._push()
        self.dist.barrier()

    def _push(self) -> None:
        """Upload a remote out_dir's files, the checkpoint last (nothing to do for a local out_dir)."""
        if self.remote is not None and self.dist.main:
            self.remote.push()

    def _autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def _normalizer(self, batches: list[Batch]) -> float:
        """What a step's summed loss is divided by: its counted targets on all ranks (a mean per token), over
        the number of ranks because DDP averages the ranks' gradients."""
        count = sum(b.counted for b in batches)
        if self.dist.world > 1:
            total = torch.tensor(float(count), device=self.device)
            torch.distributed.all_reduce(total)
            return max(float(total), 1.0) / self.dist.world
        return max(float(count), 1.0)

    def _train_step(self) -> tuple[float, float, int]:
        """One optimizer step over ``grad_accum`` micro-batches; the loss (mean per counted target over every
        rank's micro-batches), the gradient norm before clipping and the positions this rank processed."""
        c = self.config
        batches = [self.data.batch(c.train.batch_size) for _ in range(c.train.grad_accum)]
        normalizer = self._normalizer(batches)
        total = 0.0
        for micro, batch in enumerate(batches):
            batch = batch.to(self.device)
            sync = contextlib.nullcontext()
            if self.dist.world > 1 and micro < len(batches) - 1:
                sync = self.train_model.no_sync()
            with sync:
                with self._autocast():
                    summed = self._summed_loss(batch)
                _, metadata = microbatch_train_step(summed, normalizer)
            total += metadata["summed_loss"].item()
        params = [p for p in self.model.parameters() if p.grad is not None]
        clip = c.optim.grad_clip if c.optim.grad_clip > 0 else float("inf")
        grad_norm = float(torch.nn.utils.clip_grad_norm_(params, clip))
        self.optimizers.step()
        self.optimizers.zero_grad()
        return (
            self._mean_loss(total, sum(b.counted for b in batches)),
            grad_norm,
            sum(b.inputs.numel() for b in batches),
        )

    def _mean_loss(self, total: float, count: int) -> float:
        """The step's loss per counted target: this rank's alone, or under DDP every rank's summed losses over
        every rank's counted targets (what one process with all the batches would log)."""
        if self.dist.world == 1:
            return total / max(count, 1)
        both = torch.tensor([total, float(count)], dtype=torch.float64, device=self.device)
        torch.distributed.all_reduce(both)
        return float(both[0]) / max(float(both[1]), 1.0)

    def _summed_loss(self, batch: Batch) -> torch.Tensor:
        """The training loss of a micro-batch, summed over its counted targets: the cross-entropy, or with a
        teacher the distillation loss."""
        if self.teacher is None:
            return self.train_model(batch.inputs, targets=batch.targets, segments=batch.segments, reduction="sum")
        with torch.no_grad():
            teacher_logits = self.teacher(batch.inputs, segments=batch.segments)
        logits = self.train_model(batch.inputs, segments=batch.segments)
        c = self.config.distill
        return distillation_loss(logits, teacher_logits, batch.targets, c.weight, c.temperature)

    @torch.no_grad()
    def evaluate(self) -> dict:
        """``val_loss``: the mean loss per target over the validation windows (the same every time); empty
        without validation data."""
        self.model.eval()
        loss, count = 0.0, 0
        for batch in self.data.validation_batches(self.config.train.batch_size, self.config.train.eval_batches):
            batch = batch.to(self.device)
            with self._autocast():
                loss += self.model(batch.inputs, targets=batch.targets, reduction="sum").item()
            count += batch.counted
        self.model.train()
        return {"val_loss": loss / count} if count else {}

    def _open_metrics(self):
        """``metrics.jsonl`` for appending, holding only the rows up to the step this run starts from: a
        fresh run starts it empty, a resumed one drops rows logged after its checkpoint (they are redone)."""
        path = os.path.join(self.out_dir, "metrics.jsonl")
        kept = []
        if self.step and os.path.exists(path):
            with open(path) as f:
                kept = [line for line in f if _logged_step(line) <= self.step]
        with open(path + ".tmp", "w") as f:
            f.writelines(kept)
        os.replace(path + ".tmp", path)
        return open(path, "a")

    def _write_run_files(self) -> None:
        """The tokenizer's copy next to the checkpoints, and ``training.json``: what reports read to link this
        run to the data (and the tokenizer) it trained on."""
        store_tokenizer(self.tokenizer_source(), self.out_dir)
        with open(os.path.join(self.out_dir, "training.json"), "w") as f:
            info = {**self.checkpoint_extras(), "tokenizer_dir": self.tokenizer_source()}
            json.dump({"kind": type(self).__name__, "config": self.config.to_dict(), **info}, f)

    def run(self, stop_after: int | None = None, should_stop: Callable[[dict], str | None] | None = None) -> dict:
        """Train to ``train.steps`` (or stop after ``stop_after`` steps, as an interrupted run would);
        returns the last metrics.

        ``should_stop``, when given, sees every step's metrics row (after validation, before it is logged) and
        ends the run early by returning a reason: that row is logged and returned with ``"stopped": reason``,
        and the run ends there, without the periodic checkpoint of that step (a sweep stops diverging trials
        this way). Under ``torchrun``
        rank 0's answer counts on every rank. Without it the loop is unchanged."""
        c = self.config
        flops = self.model.flops_per_token()["training"]
        peak = peak_flops(self.device)
        log = self._open_metrics() if self.dist.main else None
        if self.dist.main:
            self._write_run_files()
        last: dict = {}
        bar = tqdm(
            total=c.train.steps,
            initial=self.step,
            desc="train",
            unit="step",
            disable=not self.progress,
            file=sys.stderr,
            dynamic_ncols=True,
        )
        if c.train.eval_at_start and self.step == 0:
            first = {"step": 0, **self.evaluate()}
            if log:
                log.write(json.dumps(first) + "\n")
            if self.dist.main:
                tqdm.write(f"before training: {json.dumps(first)}", file=sys.stderr)
        window_start, window_tokens = time.perf_counter(), 0
        try:
            while self.step < c.train.steps and (stop_after is None or self.step < stop_after):
                lr = lr_at(self.step, c.train.steps, c.optim.lr, c.optim.min_lr, c.schedule)
                self.optimizers.set_lr_scale(lr / c.optim.lr)
                loss, grad_norm, positions = self._train_step()
                if not math.isfinite(loss):
                    raise FloatingPointError(f"step {self.step + 1}: the loss is {loss}; lower the learning rate")
                self.step += 1
                window_tokens += positions * self.dist.world
                last = {"step": self.step, "loss": loss, "lr": lr, "grad_norm": grad_norm}
                if self.step % c.train.log_every == 0 or self.step == c.train.steps:
                    if self.device.type == "cuda":
                        torch.cuda.synchronize()
                    elapsed = time.perf_counter() - window_start
                    last["tokens_per_s"] = window_tokens / elapsed
                    if peak:
                        last["mfu"] = last["tokens_per_s"] * flops / (peak * self.dist.world)
                    window_start, window_tokens = time.perf_counter(), 0
                if c.train.eval_every and (self.step % c.train.eval_every == 0 or self.step == c.train.steps):
                    paused = time.perf_counter()
                    last.update(self.evaluate())
                    window_start += time.perf_counter() - paused  # tokens/s counts training time only
                stopped = self.dist.gather(should_stop(last))[0] if should_stop else None
                if stopped:
                    last["stopped"] = stopped
                if log:
                    log.write(json.dumps(last) + "\n")
                    log.flush()
                bar.set_postfix_str(
                    f"loss {loss:.3f} lr {lr:.2e}"
                    + (f" {last['tokens_per_s']:,.0f} tok/s" if "tokens_per_s" in last else ""),
                    refresh=False,
                )
                bar.update(1)
                if stopped:
                    break
                if c.train.checkpoint_every and self.step % c.train.checkpoint_every == 0:
                    paused = time.perf_counter()
                    self.save()
                    window_start += time.perf_counter() - paused
            if self.step == c.train.steps:
                self.save()
        finally:
            bar.close()
            if log:
                log.close()
            self._push()
        return last


def _changed_settings(saved: dict, current: dict, prefix: str = "") -> list[str]:
    """``section.key old -> new`` for every setting that differs between two configuration dicts (a key
    the saved one lacks came with a newer refinery and is left out)."""
    out = []
    for key, value in current.items():
        if key not in saved:
            continue
        if isinstance(value, dict) and isinstance(saved[key], dict):
            out += _changed_settings(saved[key], value, f"{prefix}{key}.")
        elif json.loads(json.dumps(saved[key])) != json.loads(json.dumps(value)):  # tuples as lists
            out.append(f"{prefix}{key} {saved[key]!r} -> {value!r}")
    return out


def _logged_step(line: str) -> float:
    """The step of a metrics line; infinity for a line cut short by a kill (dropped on resume)."""
    try:
        return json.loads(line)["step"]
    except (ValueError, KeyError, TypeError):
        return math.inf


def tokenizer_dir_for(config: TrainConfig) -> str:
    """The tokenizer next to the training shards (``<stage>/tokenizer`` of a workflow run), if any."""
    for pattern in config.data.train:
        for prefix in find_shards(pattern)[:1]:
            guess = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(prefix))), "tokenizer")
            if os.path.exists(os.path.join(guess, "vocab.json")):
                return guess
    return ""
