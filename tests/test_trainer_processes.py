"""The trainer as users run it: killed with SIGKILL and resumed, and on two processes with torchrun (DDP)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from pipeline.models.configs import load_train_config
from tests.test_sft import tokenizer_dir  # noqa: F401 - a fixture
from tests.test_trainer import losses_by_step, shards  # noqa: F401 - the shards fixture
from trainer.checkpoint import load_checkpoint
from trainer.data import TokenData
from trainer.model import Transformer
from trainer.optim import build_optimizers
from trainer.schedule import lr_at

pytestmark = pytest.mark.slow
BIN = os.path.dirname(sys.executable)


def write_config(path, shards, out_dir, steps=40):  # noqa: F811
    path.write_text(f"""
[model]
vocab_size = 512
context_length = 32
d_model = 64
n_layers = 2
n_heads = 4
[data]
train = ["{shards}/shards/*"]
[optim]
lr = 3e-3
min_lr = 3e-4
[schedule]
warmup_steps = 5
[train]
steps = {steps}
batch_size = 8
log_every = 1
eval_every = 10
eval_batches = 2
checkpoint_every = 5
out_dir = "{out_dir}"
""")
    return str(path)


# Training processes whose losses are compared bit for bit run on one thread: what these tests check is that
# the saved state (weights, optimizer, data position, RNG) continues the run exactly. The multi-threaded
# path resumes exactly in tests/test_trainer.py; in separate processes on a shared machine under heavy load
# it has twice been seen to change the last bit of a loss.
SERIAL = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def test_sigkill_then_rerun_gives_the_uninterrupted_losses(shards, tmp_path):  # noqa: F811
    reference = write_config(tmp_path / "ref.toml", shards, tmp_path / "ref")
    train = [f"{BIN}/refinery", "train", reference, "--no-progress"]
    subprocess.run(train, check=True, capture_output=True, env=SERIAL)
    config = write_config(tmp_path / "run.toml", shards, tmp_path / "run")
    metrics = tmp_path / "run" / "metrics.jsonl"
    for kill_after in (12, 27):  # killed twice, at different points
        proc = subprocess.Popen(
            [f"{BIN}/refinery", "train", config, "--no-progress"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=SERIAL,
        )
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            if metrics.exists() and max([json.loads(line)["step"] for line in open(metrics)] or [0]) >= kill_after:
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    subprocess.run([f"{BIN}/refinery", "train", config, "--no-progress"], check=True, capture_output=True, env=SERIAL)
    assert load_checkpoint(str(tmp_path / "run" / "checkpoint.pt"))["step"] == 40
    assert losses_by_step(metrics) == losses_by_step(tmp_path / "ref" / "metrics.jsonl")


def test_ddp_on_two_processes_equals_one_process_with_both_batches(shards, tmp_path):  # noqa: F811
    path = write_config(tmp_path / "ddp.toml", shards, tmp_path / "ddp", steps=8)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run(
        [f"{BIN}/torchrun", "--standalone", "--nproc_per_node=2", "-m", "pipeline", "train", path, "--no-progress"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    payload = load_checkpoint(str(tmp_path / "ddp" / "checkpoint.pt"))
    assert payload["step"] == 8 and len(payload["data"]) == 2
    # the same 8 steps in one process: rank 0's and rank 1's windows, losses averaged as DDP averages gradients
    config = load_train_config(path)
    torch.manual_seed(config.train.seed)
    model = Transformer(config.model)
    optimizers = build_optimizers(model, config.optim)
    ranks = [TokenData(config.data, config.model.context_length, seed=config.train.seed + r) for r in (0, 1)]
    losses = []
    for step in range(8):
        optimizers.set_lr_scale(lr_at(step, 8, config.optim.lr, config.optim.min_lr, config.schedule) / config.optim.lr)
        # the trainer's own loss path (blockwise on CPU), so that what differs is DDP alone
        loss = sum(model(b.inputs, targets=b.targets) for b in (data.batch(8) for data in ranks)) / 2
        losses.append(loss.item())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.optim.grad_clip)
        optimizers.step()
        optimizers.zero_grad()
    for name, value in model.state_dict().items():
        torch.testing.assert_close(payload["model"][name], value, rtol=1e-4, atol=1e-5, msg=name)
    # the logged loss is that of both ranks' batches, as one process would log it, not rank 0's half
    logged = [row["loss"] for row in map(json.loads, open(tmp_path / "ddp" / "metrics.jsonl"))]
    assert logged == pytest.approx(losses, rel=1e-5)


def test_sft_ddp_on_two_processes_equals_one_process_with_both_batches(tokenizer_dir, tmp_path):  # noqa: F811
    """Per-token normalization across ranks: rank r takes examples r, r+2, ... of the epoch's order, so two
    ranks of 4 examples see what one process of 8 sees, and must end with the same weights."""
    words = "alpha beta gamma delta epsilon zeta eta theta iota kappa".split()
    train = tmp_path / "train.jsonl"
    train.write_text(
        "".join(
            json.dumps({"prompt": f"say {i}", "response": " ".join(words[: 1 + (i * 7) % 10])}) + "\n"
            for i in range(16)
        )
    )

    def write(name, batch_size):
        path = tmp_path / f"{name}.toml"
        path.write_text(f"""
[init]
tokenizer = "{tokenizer_dir}"
[model]
vocab_size = 403
context_length = 64
d_model = 32
n_layers = 2
n_heads = 4
[data]
train = ["{train}"]
[optim]
lr = 3e-3
[schedule]
warmup_steps = 2
[train]
steps = 5
batch_size = {batch_size}
eval_every = 0
checkpoint_every = 5
eval_at_start = false
out_dir = "{tmp_path / name}"
""")
        return str(path)

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ddp = [f"{BIN}/torchrun", "--standalone", "--nproc_per_node=2", "-m", "pipeline", "sft", write("ddp", 4)]
    run = subprocess.run([*ddp, "--no-progress"], capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    one = subprocess.run([f"{BIN}/refinery", "sft", write("one", 8), "--no-progress"], capture_output=True, text=True)
    assert one.returncode == 0, one.stderr[-3000:]
    ddp_weights = load_checkpoint(str(tmp_path / "ddp" / "checkpoint.pt"))["model"]
    one_weights = load_checkpoint(str(tmp_path / "one" / "checkpoint.pt"))["model"]
    for name, tensor in one_weights.items():
        torch.testing.assert_close(ddp_weights[name], tensor, rtol=1e-4, atol=1e-5)
