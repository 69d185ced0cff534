"""The training section of a run's report: the models trained on its shards (linked by the
``training.json`` the trainer writes into its ``out_dir``), pretraining first, then fine-tuning, each with
its loss, learning rate, throughput and held-out exact match by step."""

from __future__ import annotations

import json
import os
from html import escape

from pipeline.report import charts
from pipeline.report.axes import format_number
from pipeline.report.page import figure, section
from pipeline.rundir import RunDir

KINDS = {"Trainer": "pretraining", "SFTTrainer": "fine-tuning (SFT)"}


def linked_training_runs(run: RunDir) -> list[str]:
    """Training output folders inside the run (a workflow's ``[train]`` and ``[sft]``) or next to it (siblings
    of its directory) whose tokenizer is this run's."""
    if "://" in run.url:
        return []
    root = os.path.abspath(run.url)
    candidates = [os.path.join(root, n) for n in sorted(os.listdir(root))]
    candidates += [os.path.join(os.path.dirname(root), n) for n in sorted(os.listdir(os.path.dirname(root)))]
    found = []
    for folder in candidates:
        tokenizer = _info(folder).get("tokenizer_dir") or ""
        if tokenizer and os.path.abspath(tokenizer).startswith(root + os.sep):
            found.append(folder)
    return found


def _info(folder: str) -> dict:
    path = os.path.join(folder, "training.json")
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


def in_training_order(folders: list[str]) -> list[str]:
    """Pretraining runs before fine-tuning runs (by the trainer ``kind`` in ``training.json``), each group by
    when it started (``training.json`` is written as a run starts)."""

    def key(folder: str) -> tuple:
        path = os.path.join(folder, "training.json")
        started = os.path.getmtime(path) if os.path.exists(path) else 0.0
        return (_info(folder).get("kind") != "Trainer", started, folder)

    return sorted(folders, key=key)


def training_section(run: RunDir, extra: list[str]) -> str:
    """Curves of every model trained on the run's shards, and of the ``extra`` training folders."""
    folders = in_training_order(list(dict.fromkeys([*linked_training_runs(run), *extra])))
    parts = [_one_run(folder) for folder in folders if os.path.exists(os.path.join(folder, "metrics.jsonl"))]
    if not parts:
        parts = [
            "<p>No model has been trained on this run's shards yet (refinery train; its out_dir is linked "
            "when it sits next to the run directory, or pass --training DIR).</p>"
        ]
    return section("training", "Training", "".join(parts))


def _one_run(folder: str) -> str:
    with open(os.path.join(folder, "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    kind = _info(folder).get("kind", "training")

    def series(key: str) -> list[tuple[float, float]]:
        return [(r["step"], r[key]) for r in rows if r.get(key) is not None]

    plots = [
        (
            charts.lines(
                {"training loss": series("loss"), "validation loss": series("val_loss")},
                x_label="step",
                y_label="loss (nats per token)",
            ),
            "Training and validation loss",
        ),
        (charts.lines({"learning rate": series("lr")}, x_label="step", y_label="learning rate"), "Learning rate"),
        (
            charts.lines({"tokens/s": series("tokens_per_s")}, x_label="step", y_label="tokens per second"),
            "Throughput",
        ),
        (
            charts.lines(
                {"exact match": series("val_exact_match")}, x_label="step", y_label="held-out exact match (share)"
            ),
            "Held-out exact match (greedy answers)",
        ),
    ]
    figures = "".join(figure(chart, escape(caption)) for chart, caption in plots)
    last = rows[-1] if rows else {}
    summary = ", ".join(f"{k} {format_number(v)}" for k, v in last.items() if isinstance(v, float))
    return (
        f"<h3>{escape(KINDS.get(kind, kind))}: <code>{escape(folder)}</code></h3>"
        f"<p>last logged: step {last.get('step')}, {escape(summary)}</p><div class='wide'>{figures}</div>"
    )
