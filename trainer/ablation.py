"""One trial of a data ablation, the part that needs no cluster: train a model on one dataset's shards
(resuming from its checkpoint), then score it on the reference documents (bits per byte) and the likelihood
tasks (:mod:`trainer.evaluation`), writing every document's and item's score to ``<out_dir>/evaluation.json``
so that intervals can be drawn over documents as well as over seeds. :mod:`pipeline.models.ablations` runs
the trials as tasks."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass

from trainer.config import TrainConfig
from trainer.evaluation import EncodedItem, choice_log_likelihoods, document_bits, item_scores
from trainer.loop import Trainer
from trainer.sweep import read_metrics

EVALUATION = "evaluation.json"


@dataclass
class EvalSuite:
    """The reference documents and task items, already encoded with the ablation's tokenizer."""

    documents: list[list[int]]
    document_bytes: list[int]
    items: list[EncodedItem]
    eos_id: int
    document_ids: list[str]
    document_sources: list[str]  # the reference file (set) each document comes from


def evaluate(model, suite: EvalSuite) -> dict:
    """Per-unit scores of ``model``: ``bits`` and ``bytes`` of every reference document (its id in
    ``documents``, its file in ``sources``), and per task ``right`` (0/1) and ``correct_prob`` of every item,
    in the suite's order."""
    scores = {
        "bits": document_bits(model, suite.documents, suite.eos_id),
        "bytes": suite.document_bytes,
        "sources": suite.document_sources,
        "documents": suite.document_ids,
    }
    lls = choice_log_likelihoods(model, suite.items)
    for item, ll in zip(suite.items, lls):
        right, prob = item_scores(item, ll)
        task = scores.setdefault(item.task, {"right": [], "correct_prob": []})
        task["right"].append(right)
        task["correct_prob"].append(prob)
    return scores


def summary(scores: dict) -> dict:
    """A trial's headline numbers: bits per byte over all reference bytes, and per task its accuracy and mean
    correct-choice probability."""
    out = {"bpb": sum(scores["bits"]) / sum(scores["bytes"])}
    for task, values in scores.items():
        if isinstance(values, dict):  # a task's items
            out[f"{task}_accuracy"] = sum(values["right"]) / len(values["right"])
            out[f"{task}_correct_prob"] = sum(values["correct_prob"]) / len(values["correct_prob"])
    return out


def run_ablation_trial(config: TrainConfig, trial: dict, suite: EvalSuite) -> dict:
    """Train one trial (``trial``: its id, dataset, shape and seed, copied into the row) to its last step,
    resuming from ``<out_dir>/checkpoint.pt``, evaluate the final model and return the results row."""
    started = time.perf_counter()
    trainer = Trainer(config, progress=False)
    resumed_from = trainer.step
    trainer.run()
    trained = time.perf_counter()
    scores = evaluate(trainer.model, suite)
    out_dir = config.train.out_dir
    with open(os.path.join(out_dir, EVALUATION + ".tmp"), "w") as f:
        json.dump(scores, f)
    os.replace(os.path.join(out_dir, EVALUATION + ".tmp"), os.path.join(out_dir, EVALUATION))
    metrics = read_metrics(out_dir)
    steps = max((r["step"] for r in metrics), default=0)
    t = config.train
    return {
        **trial,
        "status": "done",
        "steps": steps,
        "tokens": steps * t.batch_size * t.grad_accum * config.model.context_length,
        "params": trainer.model.num_parameters(embedding=False),
        **summary(scores),
        "seconds": round(time.perf_counter() - started, 3),
        "eval_seconds": round(time.perf_counter() - trained, 3),
        "resumed_from": resumed_from,
    }


def read_evaluation(out_dir: str) -> dict:
    """The per-unit scores a finished trial wrote."""
    with open(os.path.join(out_dir, EVALUATION)) as f:
        return json.load(f)
