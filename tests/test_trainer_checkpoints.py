"""Checkpoints as untrusted input: a crafted configuration cannot choose how much memory we allocate, the
tokenizer a checkpoint names is read only from inside its folder, every command that loads a checkpoint
answers a bad one with a one-line error; checkpoints and training states go to and from file objects."""

from __future__ import annotations

import io
import os
import re
import zipfile

import pytest
import torch

from pipeline.cli import main
from tests.test_trainer import config, shards  # noqa: F401 - the shards fixture
from trainer.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_training_state,
    save_checkpoint,
    save_training_state,
)
from trainer.generate import load_model
from trainer.loop import Trainer
from trainer.model import Transformer
from trainer.model_config import ModelConfig
from trainer.optim import OptimConfig, build_optimizers


@pytest.fixture(scope="module")
def run_dir(shards, tmp_path_factory):  # noqa: F811
    """A real training run of two steps (its checkpoint and the copy of its tokenizer)."""
    out = tmp_path_factory.mktemp("run")
    run = config(shards, out, steps=2)
    run.schedule.warmup_steps = 1
    Trainer(run, progress=False).run()
    return out


def crafted(run_dir, tmp_path, change) -> str:
    """A copy of the run's checkpoint, in a folder with the tokenizer, changed by ``change(payload)``."""
    payload = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    change(payload)
    path = tmp_path / "crafted" / "checkpoint.pt"
    path.parent.mkdir(exist_ok=True)
    torch.save(payload, path)
    return str(path)


def _model_config(payload, **changes):
    payload["config"]["model"].update(changes)


def _transposed(payload):
    key = "blocks.0.mlp.down.weight"
    payload["model"][key] = payload["model"][key].T.contiguous()


def _expanded(payload):  # one stored float claiming 4 TB through a zero stride
    payload["model"]["embed.weight"] = torch.zeros(1).expand(10**6, 10**6)


CRAFTED = {
    # a 256 TiB embedding (the file holds 1.5 MB): refused from the counts, nothing allocated
    "huge vocabulary": (lambda p: _model_config(p, vocab_size=2**40), "describes 70,368,744,"),
    # a 512 TiB RoPE table, which no tensor of the file accounts for
    "huge context": (lambda p: _model_config(p, context_length=2**45), "builds a model of"),
    "transposed tensor": (
        _transposed,
        "down.weight is torch.float32 (192, 64); its model configuration expects torch.float32 (64, 192)",
    ),
    "extra tensor": (lambda p: p["model"].update(extra=torch.zeros(3)), "unexpected ['extra']"),
    "zero strides": (_expanded, "its tensors claim 4,000,00"),
    "unknown setting": (lambda p: _model_config(p, n_wings=2), "its model configuration is not valid"),
    "bad setting": (lambda p: _model_config(p, d_ff=-10), "d_ff: must be >= 1"),
}


@pytest.mark.parametrize("case", sorted(CRAFTED))
def test_a_checkpoint_must_describe_exactly_its_tensors(run_dir, tmp_path, case):
    change, message = CRAFTED[case]
    path = crafted(run_dir, tmp_path, change)
    with pytest.raises(CheckpointError, match=re.escape(message)):
        load_checkpoint(path)


def test_a_compressed_checkpoint_is_refused(run_dir, tmp_path):
    """torch.save stores its entries; a deflated one could decompress to far more than the file."""
    path = tmp_path / "deflated.pt"
    with zipfile.ZipFile(run_dir / "checkpoint.pt") as source, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for entry in source.infolist():
            out.writestr(entry.filename, source.read(entry.filename))
    with pytest.raises(CheckpointError, match="not a readable checkpoint .*compressed"):
        load_checkpoint(str(path))


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_every_command_that_loads_a_checkpoint_answers_a_crafted_one_in_one_line(run_dir, shards, tmp_path, capsys):  # noqa: F811
    path = crafted(run_dir, tmp_path, CRAFTED["huge vocabulary"][0])
    assert main(["generate", path, "--prompt", "Hello", "--max-new-tokens", "2"]) == 2
    assert "describes 70,368,744," in one_line_error(capsys)
    assert main(["generate", str(run_dir), "--prompt", "Hello", "--draft", path, "--max-new-tokens", "2"]) == 2
    one_line_error(capsys)
    assert main(["quantize", path, "--out", str(tmp_path / "int8.pt")]) == 2
    one_line_error(capsys)
    train = tmp_path / "train.toml"
    train.write_text(
        f'[data]\ntrain = ["{shards}/shards/*"]\n[model]\nvocab_size = 512\ncontext_length = 32\nd_model = 32\n'
        f'n_heads = 4\n[schedule]\nwarmup_steps = 1\n[train]\nsteps = 2\nout_dir = "out"\n'
        f'[distill]\nteacher = "{path}"\n'
    )
    for command in ("validate", "train"):
        assert main([command, str(train)]) == 2
        assert "distill.teacher: " in one_line_error(capsys)
    sft = tmp_path / "sft.toml"
    sft.write_text(f'[init]\ncheckpoint = "{path}"\n[data]\ntrain = ["{tmp_path}/none.jsonl"]\n')
    for command in ("validate", "sft"):
        assert main([command, str(sft)]) == 2
        assert "init.checkpoint: " in one_line_error(capsys)


def test_the_tokenizer_is_read_only_from_inside_the_checkpoints_folder(run_dir, tmp_path, capsys):
    raw = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    assert raw["tokenizer_dir"] == "tokenizer" and (run_dir / "tokenizer" / "vocab.json").exists()  # a copy
    assert load_checkpoint(str(run_dir / "checkpoint.pt"))["tokenizer_dir"] == str(run_dir / "tokenizer")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (tmp_path / "crafted").mkdir()
    os.symlink(outside, tmp_path / "crafted" / "link")  # inside by name, outside in fact
    for named in (str(outside), "../elsewhere", "link"):
        path = crafted(run_dir, tmp_path, lambda p, named=named: p.update(tokenizer_dir=named))
        payload = load_checkpoint(path)
        assert payload["tokenizer_dir"] == "" and "outside the checkpoint's folder" in payload["tokenizer_refused"]
        assert main(["generate", path, "--prompt", "Hello", "--max-new-tokens", "2"]) == 2
        assert f"({named}) is outside the checkpoint's folder: give --tokenizer DIR" in one_line_error(capsys)
    tokenizer = str(run_dir / "tokenizer")
    assert main(["generate", path, "--prompt", "Hello", "--max-new-tokens", "2", "--tokenizer", tokenizer]) == 0


def test_checkpoints_and_training_states_go_to_and_from_file_objects(run_dir, tmp_path):
    payload = load_checkpoint(str(run_dir / "checkpoint.pt"))
    buffer = io.BytesIO()
    save_checkpoint(buffer, payload)  # not rewound: loading reads from the start
    loaded = load_checkpoint(buffer)
    assert loaded["step"] == 2 and all(torch.equal(loaded["model"][k], v) for k, v in payload["model"].items())
    assert loaded["tokenizer_dir"] == "" and "file object" in loaded["tokenizer_refused"]
    buffer.seek(0)
    model, _ = load_model(buffer)
    assert torch.equal(model.embed.weight, payload["model"]["embed.weight"])
    with open(run_dir / "checkpoint.pt", "rb") as f:
        assert load_checkpoint(f)["step"] == 2

    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=50, context_length=8, d_model=16, n_layers=1, n_heads=2)
    model = Transformer(cfg)
    optimizer = build_optimizers(model, OptimConfig())
    model(torch.randint(0, 50, (2, 8)), targets=torch.randint(0, 50, (2, 8))).backward()
    optimizer.step()
    for target in (io.BytesIO(), str(tmp_path / "state.pt")):
        save_training_state(model, optimizer, 7, target)
        fresh = Transformer(cfg)
        fresh_optimizer = build_optimizers(fresh, OptimConfig())
        assert load_training_state(target, fresh, fresh_optimizer) == 7
        assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), model.state_dict().values()))
        saved, restored = optimizer.state_dict(), fresh_optimizer.state_dict()
        for a, b in zip(saved["optimizers"][0]["state"].values(), restored["optimizers"][0]["state"].values()):
            assert all(torch.equal(a[k], b[k]) for k in a)
    other = Transformer(ModelConfig(vocab_size=50, context_length=8, d_model=32, n_layers=1, n_heads=2))
    with pytest.raises(CheckpointError, match="not the state of this model and optimizer"):
        load_training_state(str(tmp_path / "state.pt"), other, build_optimizers(other, OptimConfig()))
