"""Running an ablation (:mod:`pipeline.models.ablation_file`): the data made comparable
(:mod:`pipeline.models.ablation_data`), then every dataset x shape x seed trained as a task of the engine's
executor, as a sweep runs its trials, and scored; the verdict (:mod:`pipeline.models.verdict`) in
``<output>/ablation.json`` and ``ablation.html``.

``results.jsonl`` is rewritten whole after each trial; a rerun skips the trials it holds as done and resumes
the others from their checkpoints, and refuses an output that holds another ablation."""

from __future__ import annotations

import json
import math
import os
import sys
import time

from pipeline.engine.executor import Executor, RayExecutor, Resources
from pipeline.locks import OutputClaim
from pipeline.models import ablation_data as data
from pipeline.models.ablation_file import Ablation
from pipeline.models.verdict import verdict
from pipeline.report.ablation import write_html
from tokenizer.bpe import Tokenizer
from tokenizer.errors import ConfigError
from trainer.ablation import EvalSuite, read_evaluation, run_ablation_trial
from trainer.config import TrainConfig
from trainer.sweep import read_metrics

RESULTS = "results.jsonl"


def run_ablation(
    ablation: Ablation, *, address: str | None = None, progress: bool = True, executor: Executor | None = None
) -> dict:
    """Prepare the data, run (or resume) every trial, on Ray unless an ``executor`` is given, and write the
    verdict; returns ``ablation.json``'s record."""
    os.makedirs(ablation.output, exist_ok=True)
    with OutputClaim(ablation.output, "ablation output"):
        _claim(ablation)
        started = time.perf_counter()
        prepared = prepare(ablation, address, progress)
        rows = _run_trials(ablation, prepared["suite"], address, progress, executor)
        record = summarize(ablation, prepared, rows)
        record["seconds"] = {"prepare": prepared["seconds"], "total": round(time.perf_counter() - started, 1)}
        _write_json(ablation.path_of("ablation.json"), record)
    write_html(ablation.output)
    return record


def prepare(ablation: Ablation, address: str | None = None, progress: bool = True) -> dict:
    """The shared tokenizer, every dataset encoded with it, and the evaluation suite (see
    :mod:`pipeline.models.ablation_data`)."""
    started = time.perf_counter()

    def run_workflow(workflow) -> None:
        from pipeline.runner import run_workflow as run

        print(f"running the document stages of {workflow.file} first", file=sys.stderr)
        run(workflow, address=address, progress=progress)

    index = data.overlap_index(ablation)
    given = Tokenizer.load(ablation.tokenizer.path) if ablation.tokenizer.path else None
    parts = {d.name: data.dataset_parts(ablation, i, given, run_workflow) for i, d in enumerate(ablation.datasets)}
    tokenizer = data.shared_tokenizer(ablation, parts, index)
    datasets = [data.encode_dataset(ablation, name, p, tokenizer, index) for name, p in parts.items()]
    suite = data.evaluation_suite(ablation, tokenizer)
    return {
        "tokenizer": tokenizer,
        "datasets": datasets,
        "suite": suite,
        "seconds": round(time.perf_counter() - started, 1),
    }


def _run_trials(ablation: Ablation, suite: EvalSuite, address, progress: bool, executor: Executor | None) -> list[dict]:
    ids = {t.id for t in ablation.trials}
    rows = {r["trial"]: r for r in read_rows(ablation.output) if r["trial"] in ids}
    pending = [t for t in ablation.trials if rows.get(t.id, {}).get("status") != "done"]
    if pending:
        s = ablation.settings
        resources = Resources(cpus=s.cpus_per_trial, gpus=s.gpus_per_trial)
        if executor is None:
            executor = RayExecutor(progress, address=address)
            _check_capacity(ablation, executor, resources)

        def record(row: dict, bar) -> None:
            rows[row["trial"]] = row
            _write_rows(ablation, rows)
            bar.set_postfix_str(f"{row['trial']} {row['status']}", refresh=False)

        executor.map(
            _trial_task,
            [(t.config, t.info()) for t in pending],
            shared=(suite, max(1, int(s.cpus_per_trial))),
            desc="ablation",
            unit="trial",
            labels=[f"trial {t.id}" for t in pending],
            total=len(ablation.trials),
            resources=resources,
            on_result=record,
            on_failure=lambda i, error: {**pending[i].info(), "status": "failed", "reason": error},
        )
    _write_rows(ablation, rows)
    return [rows[t.id] for t in ablation.trials if t.id in rows]


def _trial_task(shared, config: TrainConfig, trial: dict) -> dict:
    """One trial inside a task, torch on the task's CPUs; an error becomes a ``failed`` row."""
    import torch

    suite, threads = shared
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return run_ablation_trial(config, trial, suite)
    except Exception as exc:  # the ablation records it and goes on; a rerun retries it
        return {**trial, "status": "failed", "reason": f"{type(exc).__name__}: {exc}"}
    finally:
        torch.set_num_threads(before)  # an in-process executor runs trials in the caller's process


def _check_capacity(ablation: Ablation, executor: RayExecutor, resources: Resources) -> None:
    """A trial must fit on the cluster it is sent to."""
    for name, (asked, has) in executor.missing(resources).items():
        raise ConfigError(
            ablation.path, f"ablation.{name}_per_trial", f"{asked:g} per trial; the Ray cluster has {has:g}"
        )


def summarize(ablation: Ablation, prepared: dict, rows: list[dict]) -> dict:
    """``ablation.json``: the data, the trials, and per shape the verdict of every metric and the curves."""
    tokenizer, suite = prepared["tokenizer"], prepared["suite"]
    budget = ablation.settings.tokens
    datasets = [{**d, "epochs": budget / d["tokens"]} for d in prepared["datasets"]]
    done = [r for r in rows if r["status"] == "done"]
    shapes = []
    for index, shape in enumerate(ablation.shapes):
        trials = [t for t in ablation.trials if t.shape == index]
        finished = {t.id for t in trials} <= {r["trial"] for r in done}
        scores = None
        if finished:
            scores = {
                d.name: [read_evaluation(t.config.train.out_dir) for t in trials if t.dataset == d.name]
                for d in ablation.datasets
            }
        shapes.append(
            {
                "shape": shape,
                "params": next((r["params"] for r in done if r["shape"] == index), None),
                "steps": trials[0].config.train.steps,
                "verdict": verdict(scores) if scores else None,
                "curves": _curves(ablation, trials, data.tokens_per_byte(suite)),
            }
        )
    sample = os.path.join(ablation.path_of("data", "tokenizer"), "sample.json")
    return {
        "ablation": os.path.abspath(ablation.path),
        "budget_tokens": budget,
        "seeds": ablation.settings.seeds,
        "tokenizer": _read_json(sample) if os.path.exists(sample) else {"path": ablation.tokenizer.path},
        "tokenizer_hash": tokenizer.hash,
        "datasets": datasets,
        "reference": {
            "files": ablation.reference_files,
            "documents": len(suite.documents),
            "bytes": sum(suite.document_bytes),
            "items": _item_counts(suite),
        },
        "shapes": shapes,
        "trials": rows,
        "complete": len(done) == len(ablation.trials),
    }


def _item_counts(suite: EvalSuite) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in suite.items:
        counts[item.task] = counts.get(item.task, 0) + 1
    return counts


def _curves(ablation: Ablation, trials: list, tokens_per_byte: float) -> dict[str, list[list]]:
    """Per dataset, per seed: (training tokens, reference bits per byte) at every evaluation of training (the
    validation loss on the first ``curve_tokens`` of the reference texts, per token, in bits per byte)."""
    out: dict[str, list[list]] = {}
    for t in trials:
        c = t.config
        per_step = c.train.batch_size * c.train.grad_accum * c.model.context_length
        rows = read_metrics(c.train.out_dir)
        points = [
            [r["step"] * per_step, r["val_loss"] / math.log(2) * tokens_per_byte] for r in rows if "val_loss" in r
        ]
        out.setdefault(t.dataset, []).append(points)
    return out


def read_rows(output: str) -> list[dict]:
    """The rows of ``<output>/results.jsonl``; none if there is no such file."""
    path = os.path.join(output, RESULTS)
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _write_rows(ablation: Ablation, rows: dict) -> None:
    ordered = [rows[t.id] for t in ablation.trials if t.id in rows]
    path = ablation.path_of(RESULTS)
    with open(path + ".tmp", "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in ordered)
    os.replace(path + ".tmp", path)


def _claim(ablation: Ablation) -> None:
    """Write ``<output>/definition.json``, or check that the one there describes the same ablation."""
    path = ablation.path_of("definition.json")
    definition = ablation.definition()
    if os.path.exists(path):
        if _read_json(path) != definition:
            raise ConfigError(
                ablation.path,
                "ablation.output",
                f"{ablation.output} holds another ablation; choose "
                "another output, or delete that directory to start over",
            )
        return
    _write_json(path, definition)


def _read_json(path: str):
    with open(path) as f:
        return json.load(f)


def _write_json(path: str, record) -> None:
    with open(path + ".tmp", "w") as f:
        json.dump(record, f, indent=1)
    os.replace(path + ".tmp", path)
