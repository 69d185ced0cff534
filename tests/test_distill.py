"""Knowledge distillation: the loss equals its definition (value and gradient), a distilled student moves to
its teacher's distributions where one trained on the data alone does not, and ``[distill]`` files are
checked (errors name the file and key; a teacher not trained yet is reported by ``validate``)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pipeline.cli import main
from pipeline.models.configs import load_train_config
from tokenizer.errors import ConfigError
from tokenizer.shards import ShardWriter
from trainer.checkpoint import load_checkpoint, save_checkpoint
from trainer.config import LoopConfig, TrainConfig
from trainer.data import DataConfig, TokenData
from trainer.distill import DistillConfig, distillation_loss
from trainer.generate import load_model
from trainer.loop import Trainer
from trainer.loss import IGNORE
from trainer.model_config import ModelConfig
from trainer.optim import OptimConfig
from trainer.schedule import ScheduleConfig

VOCAB = 64


def test_the_loss_equals_its_definition_in_value_and_gradient():
    torch.manual_seed(0)
    s, t = torch.randn(3, 5, VOCAB) * 3, torch.randn(3, 5, VOCAB) * 3
    y = torch.randint(0, VOCAB, (3, 5))
    y[0, :2] = IGNORE
    keep = y != IGNORE
    weight, temperature = 0.3, 2.0
    p, log_q = (t[keep] / temperature).softmax(-1), (s[keep] / temperature).log_softmax(-1)
    kl = (p * (p.log() - log_q)).sum()
    ce = F.cross_entropy(s[keep], y[keep], reduction="sum")
    expected = weight * temperature**2 * kl + (1 - weight) * ce
    torch.testing.assert_close(distillation_loss(s, t, y, weight, temperature), expected)
    torch.testing.assert_close(distillation_loss(s, t, y, 0.0, temperature), ce)
    # weight 1, temperature 1: the gradient per counted position is softmax(s) - softmax(t), none elsewhere
    s.requires_grad_()
    distillation_loss(s, t, y, 1.0, 1.0).backward()
    torch.testing.assert_close(s.grad[keep], s[keep].softmax(-1) - t[keep].softmax(-1))
    assert not s.grad[~keep].any()


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """A shard of random tokens: data that holds nothing a teacher could be right about."""
    root = tmp_path_factory.mktemp("distill")
    rng = np.random.default_rng(0)
    with ShardWriter(str(root / "random"), vocab_size=VOCAB, eos_id=VOCAB - 1, tokenizer_hash="random") as writer:
        for _ in range(40):
            writer.write(rng.integers(0, VOCAB - 1, 511).tolist())
    return str(root / "random")


def config(shards, out_dir, **distill) -> TrainConfig:
    return TrainConfig(
        model=ModelConfig(vocab_size=VOCAB, context_length=32, d_model=32, n_layers=2, n_heads=4),
        data=DataConfig(train=[shards], valid_fraction=0.1),
        optim=OptimConfig(lr=1e-2, min_lr=1e-3),
        schedule=ScheduleConfig(warmup_steps=5),
        train=LoopConfig(steps=40, batch_size=8, eval_every=0, checkpoint_every=0, out_dir=str(out_dir)),
        distill=DistillConfig(**distill),
    )


@pytest.fixture(scope="module")
def teacher(shards, tmp_path_factory):
    """A teacher with sharp, input-dependent next-token distributions: a bigger model whose tied embedding is
    scaled up, so its logits are large (its checkpoint is a real one, written by the trainer)."""
    out = tmp_path_factory.mktemp("teacher")
    big = config(shards, out)
    big.model = ModelConfig(vocab_size=VOCAB, context_length=32, d_model=48, n_layers=3, n_heads=4)
    big.train.steps = 1
    Trainer(big, progress=False).run()
    payload = load_checkpoint(str(out / "checkpoint.pt"))
    payload["model"]["embed.weight"] *= 40
    save_checkpoint(str(out / "checkpoint.pt"), payload)
    return str(out)


def mean_kl(teacher, student, shards) -> float:
    """KL(teacher || student) per position over the validation windows."""
    data = TokenData(DataConfig(train=[shards], valid_fraction=0.1), 32, seed=0)
    total = count = 0
    with torch.no_grad():
        for batch in data.validation_batches(8, 4):
            p, log_q = teacher(batch.inputs).log_softmax(-1), student(batch.inputs).log_softmax(-1)
            total += F.kl_div(log_q, p, log_target=True, reduction="sum").item()
            count += batch.inputs.numel()
    return total / count


def test_a_distilled_student_learns_its_teachers_distributions(shards, teacher, tmp_path):
    big = load_model(teacher + "/checkpoint.pt")[0]
    runs = {"data": {}, "teacher": {"teacher": teacher, "weight": 1.0}, "mixed": {"teacher": teacher}}
    kl = {}
    for name, distill in runs.items():
        Trainer(config(shards, tmp_path / name, **distill), progress=False).run()
        kl[name] = mean_kl(big, load_model(str(tmp_path / name / "checkpoint.pt"))[0], shards)
    # random tokens teach nothing about the teacher; its own distributions do
    assert kl["teacher"] < 0.2 * kl["data"] and kl["mixed"] < 0.3 * kl["data"]


def test_distill_sections_are_checked(shards, teacher, tmp_path, capsys):
    def write(distill: str) -> str:
        path = tmp_path / "train.toml"
        path.write_text(
            f"[model]\nvocab_size = {VOCAB}\ncontext_length = 32\nd_model = 32\nn_layers = 2\nn_heads = 4\n"
            f'[data]\ntrain = ["{shards}"]\n[schedule]\nwarmup_steps = 1\n[train]\nsteps = 2\nout_dir = "out"\n'
            f"[distill]\n{distill}\n"
        )
        return str(path)

    path = write('teacher = "missing-run"')
    assert main(["validate", path]) == 0
    assert f"but no checkpoint at {tmp_path}/missing-run yet (train the teacher first)" in capsys.readouterr().out
    assert main(["train", path, "--no-progress"]) == 2
    assert "distill.teacher: no checkpoint at" in capsys.readouterr().err
    for distill, key, message in [
        ("weight = 1.5", "distill.weight", "must be between 0 and 1"),
        ("temperature = 0", "distill.temperature", "must be > 0"),
        ("teachr = 'x'", "distill.teachr", "unknown"),
    ]:
        with pytest.raises(ConfigError) as err:
            load_train_config(write(distill))
        assert err.value.key == key and message in str(err.value)
    with pytest.raises(ConfigError, match=r"distill\.teacher: .*its vocabulary has 64 tokens; the model has 128"):
        load_train_config(write(f'teacher = "{teacher}"'), ["model.vocab_size=128"])
    with pytest.raises(ConfigError, match=r"its context \(32\) is shorter than the model's \(64\)"):
        load_train_config(write(f'teacher = "{teacher}"'), ["model.context_length=64"])
    relative = write(f'teacher = "{os.path.relpath(teacher, tmp_path)}"')
    assert load_train_config(relative).distill.teacher == teacher  # relative to the file
    assert main(["train", relative, "--no-progress"]) == 0
