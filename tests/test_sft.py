"""Supervised fine-tuning: exact masking, packing, gradient accumulation, bad input, resume, and a tiny
model that learns a real task (language ID on Tatoeba sentences)."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from pipeline.cli import main
from pipeline.models.configs import load_sft_config
from tests.helpers import FIXTURES
from tokenizer.bpe import Tokenizer
from tokenizer.errors import ConfigError
from tokenizer.train import train_bpe
from trainer.chat import ChatTemplate, CompiledTemplate
from trainer.checkpoint import load_checkpoint
from trainer.config import LoopConfig
from trainer.loss import IGNORE, linear_cross_entropy
from trainer.model import Transformer
from trainer.model_config import ModelConfig
from trainer.optim import OptimConfig
from trainer.schedule import ScheduleConfig
from trainer.sft import EvalConfig, InitConfig, SFTConfig, SFTTrainer
from trainer.sft_data import SFTDataConfig, SFTDataError, collate, encode_examples, read_conversations

ROOT = Path(__file__).resolve().parents[1]
LANGUAGE_ID = ROOT / "data" / "sft"
SPECIALS = ["<|endoftext|>", "<|user|>", "<|assistant|>"]


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    """A small byte-level BPE with the chat template's special tokens, trained on Tatoeba's sentences."""
    root = tmp_path_factory.mktemp("tokenizer")
    text = root / "text.txt"
    rows = (FIXTURES / "text/tatoeba/tatoeba_long.tsv").read_text(encoding="utf-8").splitlines()[1:]
    text.write_text("\n".join(r.split("\t")[-1] for r in rows), encoding="utf-8")
    vocab, merges = train_bpe(text, 400, SPECIALS)
    Tokenizer(vocab, merges, SPECIALS).save(root / "tok")
    return root / "tok"


@pytest.fixture(scope="module")
def template(tokenizer_dir):
    return CompiledTemplate(ChatTemplate(), Tokenizer.load(tokenizer_dir))


def write_jsonl(path: Path, records) -> str:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records), encoding="utf-8")
    return str(path)


def sft_config(tokenizer_dir, out_dir, train, valid=(), model=None, **loop) -> SFTConfig:
    return SFTConfig(
        model=model or ModelConfig(vocab_size=403, context_length=64, d_model=64, n_layers=2, n_heads=4),
        init=InitConfig(tokenizer=str(tokenizer_dir)),
        data=SFTDataConfig(train=[train], valid=list(valid)),
        optim=OptimConfig(lr=3e-3, min_lr=3e-4, weight_decay=0.0),
        schedule=ScheduleConfig(warmup_steps=5),
        eval=EvalConfig(examples=60, max_new_tokens=6),
        train=LoopConfig(
            **{
                "steps": 10,
                "batch_size": 4,
                "eval_every": 0,
                "log_every": 5,
                "checkpoint_every": 0,
                "eval_at_start": True,
                "out_dir": str(out_dir),
                **loop,
            }
        ),
    )


def test_template_marks_exactly_the_response_and_its_end_token(template):
    ids, learned = template.encode([("user", "Bonjour <|assistant|> tout le monde"), ("assistant", "fr")])
    tokenizer = template.tokenizer
    assert tokenizer.decode([i for i, keep in zip(ids, learned) if keep]) == "fr<|endoftext|>"
    assert tokenizer.decode([i for i, keep in zip(ids, learned) if not keep]) == (
        "<|user|>\nBonjour <|assistant|> tout le monde\n<|assistant|>\n"
    )
    # a special token typed in the content stays text: only the template's own <|assistant|> is the control id
    assert ids.count(tokenizer.special_ids["<|assistant|>"]) == 1
    (example,) = encode_examples([[("user", "Hallo"), ("assistant", "de")]], template, 64, Counter())
    assert tokenizer.decode(example.targets[example.targets != IGNORE].tolist()) == "de<|endoftext|>"
    prompt = template.prompt([("user", "Hallo")])
    assert tokenizer.decode(prompt) == "<|user|>\nHallo\n<|assistant|>\n"
    assert template.answer(template.tokenizer.encode("de<|endoftext|>junk")) == "de"


def test_template_naming_a_missing_special_token_is_an_error(tokenizer_dir):
    with pytest.raises(ConfigError, match=r"template.user.*<\|im_start\|>"):
        CompiledTemplate(ChatTemplate(user="<|im_start|>user\n{content}"), Tokenizer.load(tokenizer_dir))


def test_no_prompt_token_contributes_to_loss_or_gradient():
    torch.manual_seed(0)
    hidden = torch.randn(40, 16, requires_grad=True)
    weight = torch.randn(50, 16, requires_grad=True)
    targets = torch.randint(0, 50, (40,))
    targets[::3] = IGNORE
    for reduction in ("mean", "sum"):
        hidden.grad = weight.grad = None
        loss = linear_cross_entropy(hidden, weight, targets, reduction, block_rows=8)
        loss.backward()
        reference = F.cross_entropy(hidden @ weight.T, targets, ignore_index=IGNORE, reduction=reduction)
        torch.testing.assert_close(loss, reference)
        assert torch.count_nonzero(hidden.grad[targets == IGNORE]) == 0  # exactly zero, not small
        assert torch.count_nonzero(hidden.grad[targets != IGNORE].abs().sum(-1)) == int((targets != IGNORE).sum())


def test_packed_rows_compute_exactly_what_their_examples_compute_one_by_one(template):
    conversations = [[("user", "x" * n), ("assistant", "y" * (n % 5 + 1))] for n in (3, 17, 8, 25, 1, 12)]
    examples = encode_examples(conversations, template, 64, Counter())
    for attention in ("sdpa", "reference"):
        torch.manual_seed(0)
        model = Transformer(
            ModelConfig(vocab_size=403, context_length=64, d_model=32, n_layers=2, n_heads=4, attention=attention)
        )
        results = []
        for batch in (collate(examples), collate(examples, rows=3, length=64, pack=True)):
            model.zero_grad()
            loss = model(batch.inputs, targets=batch.targets, segments=batch.segments, reduction="sum")
            loss.backward()
            results.append((loss.detach(), [p.grad.clone() for p in model.parameters()]))
        (unpacked, grads_u), (packed, grads_p) = results
        torch.testing.assert_close(packed, unpacked, rtol=1e-5, atol=1e-5)
        for a, b in zip(grads_p, grads_u):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    packed = collate(examples, rows=3, length=64, pack=True)
    assert packed.inputs.shape[0] < len(examples)  # really packed: fewer rows than examples
    assert packed.counted == collate(examples).counted


def varied_examples(path: Path, n: int = 16) -> str:
    """Prompt/response pairs whose responses differ in length, so that a mean of micro-batch means would
    differ from the mean per token."""
    words = "alpha beta gamma delta epsilon zeta eta theta iota kappa".split()
    return write_jsonl(
        path,
        [{"prompt": f"say {i} words", "response": " ".join(words[: 1 + (i * 7) % 10])} for i in range(n)],
    )


def test_gradient_accumulation_equals_one_large_batch(tokenizer_dir, tmp_path):
    train = varied_examples(tmp_path / "train.jsonl")
    weights = []
    for batch_size, accum in ((8, 1), (2, 4)):
        trainer = SFTTrainer(
            sft_config(
                tokenizer_dir,
                tmp_path / f"run{accum}",
                train,
                steps=2,
                batch_size=batch_size,
                grad_accum=accum,
                eval_at_start=False,
            ),
            progress=False,
        )
        trainer.run()
        weights.append([p.detach().clone() for p in trainer.model.parameters()])
    for a, b in zip(*weights):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_sft_resume_reproduces_the_uninterrupted_run(tokenizer_dir, tmp_path):
    train = varied_examples(tmp_path / "train.jsonl", 12)

    def losses(out_dir):
        rows = [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]
        return [(r["step"], r["loss"]) for r in rows if "loss" in r]

    whole = SFTTrainer(
        sft_config(tokenizer_dir, tmp_path / "whole", train, steps=8, eval_at_start=False), progress=False
    )
    whole.run()
    split = sft_config(tokenizer_dir, tmp_path / "split", train, steps=8, checkpoint_every=4, eval_at_start=False)
    SFTTrainer(split, progress=False).run(stop_after=4)
    resumed = SFTTrainer(split, progress=False)
    assert resumed.step == 4
    resumed.run()
    assert losses(tmp_path / "split") == losses(tmp_path / "whole")


def test_bad_lines_are_errors_naming_file_and_line_or_counted_skips(tmp_path):
    path = write_jsonl(
        tmp_path / "bad.jsonl",
        [
            {"prompt": "ok", "response": "fine"},
            "{not json",
            {"prompt": "no response"},
            {"prompt": "empty", "response": "  "},
            {"messages": [{"role": "user", "content": "hi"}]},
            {"messages": [{"role": "robot", "content": "hi"}]},
            "",
            {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]},
        ],
    )
    for line, message in (
        (2, "not JSON"),
        (3, "missing 'response'"),
        (4, "empty response"),
        (5, "no assistant message"),
        (6, r"messages\[0\] must have a 'role'"),
    ):
        lines = Path(path).read_text().splitlines()
        only = write_jsonl(tmp_path / f"one{line}.jsonl", [lines[0], lines[line - 1]])
        with pytest.raises(SFTDataError, match=rf"one{line}.jsonl:2: {message}"):
            read_conversations([only], skip_bad_lines=False, counts=Counter())
    counts = Counter()
    conversations = read_conversations([path], skip_bad_lines=True, counts=counts)
    assert counts["bad_lines"] == 5
    assert conversations == [[("user", "ok"), ("assistant", "fine")], [("user", "hi"), ("assistant", "hello")]]


def test_parquet_files_are_read_with_datasets_like_jsonl(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    records = [
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]},
        {
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "2+2?"},
                {"role": "assistant", "content": "4"},
            ]
        },
    ]
    pq.write_table(pa.Table.from_pylist(records), tmp_path / "chat.parquet")
    jsonl = write_jsonl(tmp_path / "chat.jsonl", records)
    from_parquet = read_conversations([str(tmp_path / "chat.parquet")], skip_bad_lines=False, counts=Counter())
    assert from_parquet == read_conversations([jsonl], skip_bad_lines=False, counts=Counter())
    assert from_parquet[1] == [("system", "be brief"), ("user", "2+2?"), ("assistant", "4")]
    pq.write_table(pa.Table.from_pylist([{"prompt": "q", "response": ""}]), tmp_path / "bad.parquet")
    with pytest.raises(SFTDataError, match=r"bad.parquet: row 1: empty response"):
        read_conversations([str(tmp_path / "bad.parquet")], skip_bad_lines=False, counts=Counter())


def test_long_examples_are_cut_and_counted_and_those_left_without_response_dropped(template):
    counts = Counter()
    conversations = [
        [("user", "short"), ("assistant", "answer " * 40)],  # cut inside the response: kept
        [("user", "word " * 80), ("assistant", "lost")],  # the prompt alone fills the context: dropped
    ]
    examples = encode_examples(conversations, template, 32, counts)
    assert counts == {"truncated": 2, "dropped_no_response": 1}
    assert len(examples) == 1 and len(examples[0].inputs) == 32


def test_sft_config_errors_name_file_and_key(tmp_path, tokenizer_dir):
    train = varied_examples(tmp_path / "train.jsonl")
    base = f'[init]\ntokenizer = "{tokenizer_dir}"\n[data]\ntrain = ["{train}"]\n'
    cases = [
        (base, "model", "missing: name [init] checkpoint"),
        (base + "[model]\nd_model = 64\n[loss]\nnormalization = 'constant'\n", "loss.constant", "must be > 0"),
        (base + "[model]\nd_model = 64\n[template]\nuser = 'no content'\n", "template.user", "exactly one"),
        (base.replace("[init]", "[init]\ncheckpoint = 'nowhere'"), "init.checkpoint", "no checkpoint"),
    ]
    for text, key, message in cases:
        path = tmp_path / "sft.toml"
        path.write_text(text)
        with pytest.raises(ConfigError, match=rf"sft.toml: {re.escape(key)}: .*{re.escape(message)}"):
            load_sft_config(str(path))


def test_a_tiny_model_learns_language_id_and_generate_uses_the_chat_template(tokenizer_dir, tmp_path, capsys):
    """From random weights, on six languages of the shipped Tatoeba task: held-out exact match goes from 0
    to most answers right."""
    languages = {"en", "de", "fr", "ru", "ja", "ar"}

    def subset(name):
        lines = (LANGUAGE_ID / f"language_id.{name}.jsonl").read_text(encoding="utf-8").splitlines()
        return write_jsonl(tmp_path / f"{name}.jsonl", [r for r in lines if json.loads(r)["response"] in languages])

    config = sft_config(
        tokenizer_dir,
        tmp_path / "run",
        subset("train"),
        [subset("valid")],
        model=ModelConfig(vocab_size=403, context_length=128, d_model=64, n_layers=2, n_heads=4),
        steps=150,
        batch_size=8,
        eval_every=150,
    )
    config.data.pack = True
    SFTTrainer(config, progress=False).run()
    rows = [json.loads(line) for line in (tmp_path / "run/metrics.jsonl").read_text().splitlines()]
    before, after = rows[0], rows[-1]
    assert before["step"] == 0 and after["step"] == 150
    assert before["val_exact_match"] < 0.1 and after["val_exact_match"] >= 0.5, (before, after)
    assert after["val_loss"] < before["val_loss"] and after["val_entropy"] < before["val_entropy"]
    assert after["val_response_logprob"] > before["val_response_logprob"]
    prompt = json.loads(Path(subset("valid")).read_text(encoding="utf-8").splitlines()[0])["prompt"]
    assert main(["generate", str(tmp_path / "run"), "--prompt", prompt, "--temperature", "0"]) == 0
    out = capsys.readouterr()
    assert out.out.strip() in languages and "chat template" in out.err


def test_cli_reports_a_bad_line_or_skips_it_when_asked(tokenizer_dir, tmp_path, capsys):
    train = write_jsonl(
        tmp_path / "train.jsonl", [{"prompt": "a", "response": "b"}, "{oops", {"prompt": "c", "response": "d"}]
    )
    config = tmp_path / "sft.toml"
    config.write_text(f"""
[init]
tokenizer = "{tokenizer_dir}"
[model]
vocab_size = 403
context_length = 32
d_model = 32
n_layers = 1
n_heads = 2
[data]
train = ["{train}"]
[schedule]
warmup_steps = 1
[train]
steps = 2
batch_size = 2
out_dir = "{tmp_path / "out"}"
""")
    assert main(["sft", str(config), "--no-progress"]) == 2
    assert "train.jsonl:2: not JSON" in capsys.readouterr().err
    assert main(["validate", str(config)]) == 0
    assert main(["sft", str(config), "--no-progress", "--skip-bad-lines"]) == 0
    err = capsys.readouterr().err
    assert "2 training examples" in err and "bad lines 1" in err
    assert load_checkpoint(str(tmp_path / "out" / "checkpoint.pt"))["data_counts"] == {"bad_lines": 1}
