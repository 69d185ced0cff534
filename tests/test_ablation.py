"""Data ablations: real Wikipedia text against the same text shuffled into noise and against itself in another
order, with one shared tokenizer, an equal token budget and several seeds, scored on the shipped reference
texts; the verdict's intervals, the overlap check, resuming after a kill, the evaluation functions, the
likelihood tasks and the ablation file's errors."""

from __future__ import annotations

import gzip
import json
import math
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from pipeline.cli import main
from pipeline.engine.executor import LocalExecutor
from pipeline.models.ablation_file import load_ablation
from pipeline.models.ablations import read_rows, run_ablation
from pipeline.models.verdict import metric_verdict, seeds_until_stable
from tests.helpers import ROOT
from tokenizer.bpe import Tokenizer
from tokenizer.errors import ConfigError
from tokenizer.shards import ShardReader
from trainer.ablation import read_evaluation
from trainer.eval_tasks import build_items, paragraphs
from trainer.evaluation import LN2, _windows, document_bits, encode_item, item_scores
from trainer.model import Transformer
from trainer.model_config import ModelConfig

REFERENCE = ROOT / "data" / "eval" / "rust-book.jsonl"
TRAIN = """
[model]
context_length = 32
d_model = 32
n_layers = 1
n_heads = 2
[optim]
lr = 1e-2
min_lr = 1e-3
[schedule]
warmup_steps = 5
[train]
batch_size = 8
log_every = 10
checkpoint_every = 20
"""
ABLATION = """
[ablation]
base = "train.toml"
output = "{output}"
tokens = 20480
seeds = 2
curve_points = 2
[ablation.tokenizer]
vocab_size = 512
sample_bytes = "1MB"
[ablation.eval]
reference = ["{reference}"]
items_per_document = 2
curve_tokens = 512
[[ablation.datasets]]
name = "real"
documents = ["real.jsonl"]
[[ablation.datasets]]
name = "reordered"
documents = ["reordered.jsonl"]
[[ablation.datasets]]
name = "noise"
documents = ["noise.jsonl"]
"""


def write_ablation(folder, output: str = "out", text: str = ABLATION) -> str:
    (folder / "train.toml").write_text(TRAIN)
    (folder / "ablation.toml").write_text(text.format(output=output, reference=REFERENCE))
    return str(folder / "ablation.toml")


def write_jsonl(path, docs: list[dict]) -> None:
    path.write_text("".join(json.dumps(d) + "\n" for d in docs))


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    """Real Wikipedia articles (and two reference documents, which the overlap check must leave out), the
    same articles in another order, and the articles with their characters shuffled (noise)."""
    folder = tmp_path_factory.mktemp("ablation")
    with gzip.open(ROOT / "data" / "models" / "enwiki-sample.jsonl.gz", "rt") as f:
        articles = [json.loads(line) for line, _ in zip(f, range(40))]
    real = [{"id": a["id"], "text": a["text"][:3000]} for a in articles]
    copied = [json.loads(line) for line in REFERENCE.read_text().splitlines()[:2]]
    rng = random.Random(0)
    write_jsonl(folder / "real.jsonl", real + [{"id": d["id"], "text": d["text"]} for d in copied])
    write_jsonl(folder / "reordered.jsonl", rng.sample(real, len(real)))
    write_jsonl(
        folder / "noise.jsonl", [{"id": d["id"], "text": "".join(rng.sample(d["text"], len(d["text"])))} for d in real]
    )
    return folder


@pytest.fixture(scope="module")
def finished(datasets):
    """The ablation, run in this process (its trials one after the other), and its record."""
    ablation = load_ablation(write_ablation(datasets))
    return ablation, run_ablation(ablation, executor=LocalExecutor(progress=False))


@pytest.mark.slow
def test_noise_is_ranked_below_real_text_with_a_clear_interval(finished):
    _, record = finished
    (shape,) = record["shapes"]
    bpb = shape["verdict"]["bpb"]
    assert bpb["lower_is_better"] and bpb["ranking"][-1] == "noise"
    for better in ("real", "reordered"):
        pair = next(p for p in bpb["pairs"] if p["better"] == better and p["worse"] == "noise")
        assert pair["significant"] and pair["high"] < 0 and pair["low"] <= pair["difference"] <= pair["high"]
        assert bpb["datasets"][better]["high"] < bpb["datasets"]["noise"]["mean"]
    assert len(bpb["per_seed_rankings"]) == 2 and all(r[-1] == "noise" for r in bpb["per_seed_rankings"])
    assert bpb["datasets"]["noise"]["p_best"] == 0
    for name, d in bpb["datasets"].items():
        assert d["low"] <= d["mean"] <= d["high"] and len(d["trials"]) == 2
        assert d["mean"] == pytest.approx(np.mean([r["bpb"] for r in record["trials"] if r["dataset"] == name]))


@pytest.mark.slow
def test_identical_datasets_have_overlapping_intervals(finished):
    _, record = finished
    for metric, v in record["shapes"][0]["verdict"].items():
        real, reordered = v["datasets"]["real"], v["datasets"]["reordered"]
        assert real["low"] <= reordered["high"] and reordered["low"] <= real["high"], metric
        pair = next(p for p in v["pairs"] if {p["better"], p["worse"]} == {"real", "reordered"})
        assert not pair["significant"], (metric, pair)


@pytest.mark.slow
def test_every_dataset_is_encoded_with_one_tokenizer_trained_on_equal_samples(finished):
    ablation, record = finished
    tokenizer = Tokenizer.load(ablation.path_of("data", "tokenizer"))
    assert record["tokenizer_hash"] == tokenizer.hash
    sample = record["tokenizer"]
    assert len({s["bytes"] for s in sample["datasets"].values()}) == 1  # equal samples
    assert sample["sample_bytes"] == sample["datasets"]["real"]["bytes"] > 0
    for d in ablation.datasets:
        prefixes = sorted({p.rsplit(".", 1)[0] for p in os.listdir(ablation.path_of("data", d.name))})
        assert prefixes and all(
            ShardReader(ablation.path_of("data", d.name, p)).header["tokenizer_hash"] == tokenizer.hash
            for p in prefixes
        )
    for trial in ablation.trials:  # each model keeps a copy of the tokenizer it was trained with
        assert Tokenizer.load(os.path.join(trial.config.train.out_dir, "tokenizer")).hash == tokenizer.hash
        assert trial.config.model.vocab_size == 512


@pytest.mark.slow
def test_every_trial_trains_exactly_the_token_budget(finished):
    ablation, record = finished
    assert record["budget_tokens"] == 20480 and record["complete"]
    for row, trial in zip(record["trials"], ablation.trials):
        c = trial.config
        metrics = [json.loads(line) for line in open(os.path.join(c.train.out_dir, "metrics.jsonl"))]
        trained = max(m["step"] for m in metrics) * c.train.batch_size * c.train.grad_accum * c.model.context_length
        assert row["tokens"] == trained == 20480 and row["steps"] == c.train.steps == 80
    epochs = {d["name"]: d["epochs"] for d in record["datasets"]}
    assert epochs["real"] == pytest.approx(20480 / next(d["tokens"] for d in record["datasets"] if d["name"] == "real"))


@pytest.mark.slow
def test_documents_that_overlap_the_reference_are_left_out(finished):
    _, record = finished
    by_name = {d["name"]: d for d in record["datasets"]}
    assert by_name["real"]["overlapping"] == by_name["real"]["dropped"] == 2
    assert by_name["real"]["documents"] == by_name["reordered"]["documents"] == 40
    assert by_name["noise"]["overlapping"] == 0


@pytest.mark.slow
def test_the_curves_and_the_report_show_the_verdict(finished, capsys):
    ablation, record = finished
    curves = record["shapes"][0]["curves"]
    assert set(curves) == {"real", "reordered", "noise"}
    for seeds in curves.values():
        assert len(seeds) == 2 and [p[0] for p in seeds[0]] == [10240, 20480]
        assert all(math.isfinite(p[1]) and p[1] > 0 for s in seeds for p in s)
    os.remove(ablation.path_of("ablation.html"))
    assert main(["report", ablation.output]) == 0
    html = open(ablation.path_of("ablation.html")).read()
    assert "real vs noise" in html or "reordered vs noise" in html
    assert html.count("<svg") >= 4 and "no significant difference" in html
    per_doc = read_evaluation(ablation.trials[0].config.train.out_dir)
    assert len(per_doc["bits"]) == record["reference"]["documents"] == 16
    assert len(per_doc["cloze"]["right"]) == record["reference"]["items"]["cloze"]


@pytest.mark.slow
def test_a_rerun_skips_finished_trials_and_a_killed_ablation_resumes_to_the_same_verdict(finished, datasets):
    ablation, record = finished
    stamps = {t.id: os.stat(os.path.join(t.config.train.out_dir, "metrics.jsonl")).st_mtime_ns for t in ablation.trials}
    again = run_ablation(load_ablation(ablation.path), executor=LocalExecutor(progress=False))
    assert again["trials"] == record["trials"]
    assert stamps == {
        t.id: os.stat(os.path.join(t.config.train.out_dir, "metrics.jsonl")).st_mtime_ns for t in ablation.trials
    }

    path = write_ablation(datasets, "killed")
    code = (
        "from pipeline.engine.executor import LocalExecutor\nfrom pipeline.models.ablation_file import load_ablation\n"
        "from pipeline.models.ablations import run_ablation\n"
        f"run_ablation(load_ablation({path!r}), executor=LocalExecutor(progress=False))\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env, stderr=subprocess.DEVNULL)
    output = datasets / "killed"
    second = output / "trials" / ablation.trials[1].id / "checkpoint.pt"
    while not (read_rows(str(output)) and second.exists()):  # the first trial done, the second part way
        assert process.poll() is None, "the ablation finished before it could be killed"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert len(read_rows(str(output))) == 1
    resumed = run_ablation(load_ablation(path), executor=LocalExecutor(progress=False))
    assert resumed["trials"][1]["resumed_from"] > 0
    keep = ("trial", "status", "steps", "tokens", "bpb", "cloze_correct_prob", "next_sentence_accuracy")
    assert [{k: r[k] for k in keep} for r in resumed["trials"]] == [{k: r[k] for k in keep} for r in record["trials"]]
    assert resumed["shapes"][0]["verdict"] == record["shapes"][0]["verdict"]


def test_a_runs_document_stage_is_a_dataset_and_a_workflow_is_run_first(datasets, tmp_path):
    from pipeline.models.ablation_data import dataset_parts
    from pipeline.runner import run_workflow

    workflow = tmp_path / "wf.toml"
    workflow.write_text(
        f'[run]\nname = "docs"\noutput = "{tmp_path}"\n[input]\npaths = ["{datasets}/real.jsonl"]\n'
        '[[stages]]\nkind = "filter"\nname = "short"\n  [[stages.filters]]\n  kind = "gopher_quality"\n'
        '[[stages]]\nkind = "exact_dedup"\n'
    )
    text = ABLATION.replace('documents = ["real.jsonl"]', f'run = "{tmp_path}/docs"\nstage = "short"')
    ablation = load_ablation(write_ablation(tmp_path, text=text))
    with pytest.raises(ConfigError, match=r"holds no run \(no workflow.json\); run its workflow first") as err:
        dataset_parts(ablation, 0, None)
    assert err.value.key == "ablation.datasets[0].run"

    ran = []  # a dataset given as a workflow file: its run is run (here in this process) when unfinished

    def run_first(wf):
        ran.append(wf.file)
        run_workflow(wf, executor=LocalExecutor(progress=False))

    text = ABLATION.replace('documents = ["real.jsonl"]', 'workflow = "wf.toml"\nstage = "short"')
    by_workflow = load_ablation(write_ablation(tmp_path, text=text))
    (part,) = dataset_parts(by_workflow, 0, None, run_first)
    (again,) = dataset_parts(by_workflow, 0, None, run_first)  # finished: not run again
    assert ran == [str(workflow)] and part[0] == again[0]
    texts = [t for t, _ in part[1]()]
    stages = json.load(open(tmp_path / "docs" / "stats.json"))["stages"]
    kept = next(s["docs_kept"] for s in stages if s["stage"] == "short")
    assert len(texts) == kept > 0 and [t for t, _ in dataset_parts(ablation, 0, None)[0][1]()] == texts
    text = ABLATION.replace('documents = ["real.jsonl"]', f'run = "{tmp_path}/docs"\nstage = "nope"')
    with pytest.raises(ConfigError, match="no document stage 'nope'"):
        dataset_parts(load_ablation(write_ablation(tmp_path, text=text)), 0, None)
    text = ABLATION.replace('documents = ["real.jsonl"]', f'run = "{tmp_path}/docs"')  # default: the last one
    (last,) = dataset_parts(load_ablation(write_ablation(tmp_path, text=text)), 0, None)
    assert len(list(last[1]())) == next(s["docs_kept"] for s in stages if s["stage"] == "exact_dedup")


@pytest.mark.slow
def test_shards_written_by_another_tokenizer_are_refused(finished, datasets, tmp_path):
    ablation, _ = finished
    other = tmp_path / "tok"
    Tokenizer({i: bytes([i]) for i in range(256)}, [], ["<|endoftext|>"]).save(str(other))
    text = ABLATION.replace('documents = ["noise.jsonl"]', f'shards = ["{ablation.path_of("data", "noise", "*")}"]')
    text = text.replace('["real.jsonl"]', f'["{datasets}/real.jsonl"]').replace(
        '["reordered', f'["{datasets}/reordered'
    )
    text = text.replace("vocab_size = 512\n", f'path = "{other}"\n')
    with pytest.raises(ConfigError, match="was written by tokenizer") as err:
        run_ablation(load_ablation(write_ablation(tmp_path, text=text)), executor=LocalExecutor(progress=False))
    assert err.value.key == "ablation.datasets[2].shards"


@pytest.mark.parametrize(
    "change, key, message",
    [
        (("seeds = 2", "seeds = 1"), "ablation.seeds", "at least 2"),
        (("tokens = 20480", "tokens = 20000"), "ablation.tokens", "use 19,968 or 20,224"),
        (
            ('documents = ["noise.jsonl"]', 'documents = ["noise.jsonl"]\nrun = "x"'),
            "ablation.datasets[2].run",
            "exactly one",
        ),
        (('name = "noise"', 'name = "real"'), "ablation.datasets[2].name", "names another dataset"),
        (('documents = ["noise.jsonl"]', 'shards = ["x/*"]'), "ablation.datasets[2].shards", "need the tokenizer"),
        (
            ("curve_points = 2", '[ablation.shapes]\n"model.d_model" = [16, 32]\n"model.n_layers" = [1]'),
            "ablation.shapes",
            "paired",
        ),
        (("curve_points = 2", '[ablation.shapes]\n"train.steps" = [5]'), "ablation.shapes.train.steps", "model.key"),
        (
            ("curve_points = 2", '[ablation.shapes]\n"model.d_model" = [31]'),
            "ablation.shapes",
            "shape {'model.d_model': 31}: .*n_heads",
        ),
    ],
)
def test_ablation_file_errors_name_the_file_and_key(tmp_path, change, key, message):
    path = write_ablation(tmp_path, text=ABLATION.replace(*change))
    with pytest.raises(ConfigError, match=message) as err:
        load_ablation(path)
    assert err.value.file == path and err.value.key == key


def test_validate_describes_an_ablation_without_running_it(tmp_path, capsys):
    path = write_ablation(tmp_path)
    assert main(["validate", path]) == 0
    out = capsys.readouterr().out
    assert "valid ablation; 3 datasets x 1 shape(s) x 2 seeds = 6 trials of 20,480 tokens (80 steps)" in out
    assert "noise: documents" in out and not (tmp_path / "out").exists()


def test_shapes_multiply_the_trials_and_share_the_budget(tmp_path):
    text = ABLATION.replace(
        "curve_points = 2", '[ablation.shapes]\n"model.d_model" = [16, 32]\n"model.n_heads" = [1, 2]'
    )
    ablation = load_ablation(write_ablation(tmp_path, text=text))
    assert len(ablation.trials) == 3 * 2 * 2 and ablation.trials[0].id == "real-m0-s0"
    assert {t.config.model.d_model for t in ablation.trials if t.shape == 1} == {32}
    assert {t.config.train.steps for t in ablation.trials} == {80}


def test_windows_score_every_target_once_with_at_least_half_a_context():
    for length in (4, 7, 32):
        for n in range(1, 120):
            scored = []
            for i, (window, first) in enumerate(_windows(list(range(n)), length)):
                assert len(window) <= length + 1 and (first == 0 if i == 0 else first >= length // 2)
                scored += [window[0] + 1 + k for k in range(first, len(window) - 1)]  # ids are their positions
            assert scored == list(range(1, n))


def test_document_bits_is_the_models_own_loss_and_items_are_scored_per_byte():
    torch.manual_seed(0)
    model = Transformer(ModelConfig(vocab_size=64, context_length=16, d_model=16, n_layers=1, n_heads=2))
    ids = torch.randint(1, 64, (12,)).tolist()
    sequence = torch.tensor([[0, *ids]])
    with torch.no_grad():
        expected = float(model(sequence[:, :-1], targets=sequence[:, 1:], reduction="sum")) / LN2
    assert document_bits(model, [ids], eos_id=0) == [pytest.approx(expected, rel=1e-5)]
    long = torch.randint(1, 64, (50,)).tolist()  # longer than the context: windows, every token counted once
    assert document_bits(model, [long], eos_id=0)[0] > document_bits(model, [long[:10]], eos_id=0)[0] > 0

    class Item:
        task, context, choices, answer = "cloze", "a b", (" cd", " efgh"), 1

    encoded = encode_item(Item, lambda text: [ord(c) % 64 for c in text], eos_id=0)
    assert encoded.context[0] == 0 and encoded.choice_bytes == [3, 5]
    right, prob = item_scores(encoded, [-3.0, -4.0])  # per byte: -1.0 against -0.8: the longer one wins
    assert right == 1.0 and prob == pytest.approx(math.exp(-4) / (math.exp(-3) + math.exp(-4)))


def test_tasks_are_built_from_the_reference_text_with_distractors_from_the_same_document():
    docs = [(d["id"], d["text"]) for d in map(json.loads, REFERENCE.read_text().splitlines())]
    items = build_items(docs, per_document=3, choices=4, seed=1)
    assert items == build_items(docs, per_document=3, choices=4, seed=1) != build_items(docs, 3, 4, seed=2)
    texts = dict(docs)
    for item in items:
        assert len(item.choices) == 4 and len(set(item.choices)) == 4
        document = " ".join(texts[item.document].split())
        assert (item.context + item.choices[item.answer]) in document
        assert all(choice.strip() in document for choice in item.choices)  # distractors from the same document
    assert {i.task for i in items} == {"cloze", "next_sentence"} and len(items) > 60
    assert paragraphs("One. Two is here.\n\nThree") == [["One.", "Two is here."], ["Three"]]


def test_the_bootstrap_is_paired_over_units_and_the_ranking_is_checked_seed_by_seed():
    rng = np.random.default_rng(0)
    hard = rng.uniform(1, 5, size=30)  # unit difficulty, shared by both datasets
    trials = {
        "good": [(hard * 1.0 + rng.normal(0, 0.01, 30), np.ones(30)) for _ in range(3)],
        "bad": [(hard * 1.02 + rng.normal(0, 0.01, 30), np.ones(30)) for _ in range(3)],
    }
    v = metric_verdict(trials, "bpb", 2000, 0)
    assert v["ranking"] == ["good", "bad"] and v["stable_across_seeds"]
    (pair,) = v["pairs"]
    assert pair["significant"] and pair["high"] < 0  # 2% apart: clear once units are paired ...
    assert v["datasets"]["good"]["high"] > v["datasets"]["bad"]["low"]  # ... though the intervals overlap
    same = metric_verdict({"a": trials["good"], "b": trials["good"]}, "bpb", 500, 0)
    assert same["pairs"][0]["difference"] == 0 and not same["pairs"][0]["significant"]
    values = {"a": np.array([1.0, 3.0, 1.0, 1.0]), "b": np.array([2.0, 1.0, 2.0, 2.0])}
    assert seeds_until_stable(values, lower_is_better=True) == 3  # a is ahead after 1, behind after 2, ahead on


@pytest.mark.slow
def test_ablate_runs_its_trials_as_ray_tasks(ray_session, datasets, tmp_path, capsys):
    text = ABLATION.replace('[[ablation.datasets]]\nname = "reordered"\ndocuments = ["reordered.jsonl"]\n', "")
    text = text.replace("tokens = 20480", "tokens = 10240")  # 40 steps: what is tested is where trials run
    path = write_ablation(datasets, str(tmp_path / "ray"), text)
    assert main(["ablate", path, "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "bits per byte on the reference texts: real" in printed and "real vs noise" in printed
    rows = read_rows(str(tmp_path / "ray"))
    assert [r["status"] for r in rows] == ["done"] * 4
