"""Running a sweep (:mod:`pipeline.models.sweep_file`): its unfinished trials as tasks of the engine's
executor, each with the sweep's CPUs and GPUs, side by side; a trial that fails (or whose worker dies for
good) is a ``failed`` row, a diverged one a ``diverged`` row. Results are rewritten after every trial, and
a rerun resumes: trials that are done or diverged are skipped, the others resume from their checkpoints."""

from __future__ import annotations

import json
import os

from pipeline.engine.executor import Executor, RayExecutor, Resources
from pipeline.locks import OutputClaim
from pipeline.models.sweep_file import Sweep, missing_shards
from pipeline.report.sweep import write_html
from tokenizer.errors import ConfigError
from trainer.config import TrainConfig
from trainer.sweep import FINAL, failed_row, read_results, run_trial, write_results
from trainer.threads import task_threads


def run_sweep(
    sweep: Sweep, *, address: str | None = None, progress: bool = True, executor: Executor | None = None
) -> list[dict]:
    """Run (or resume) the sweep's unfinished trials side by side, on Ray unless an ``executor`` is given;
    returns the results rows in trial order, also in ``<output>/results.jsonl`` and ``results.csv``, with
    ``<output>/sweep.html``."""
    missing = missing_shards(sweep)
    if missing:  # before any trial starts, rather than in each of them
        base = os.path.join(os.path.dirname(os.path.abspath(sweep.path)), sweep.settings.base)
        raise ConfigError(os.path.normpath(base), "data.train", f"no token shards match {missing[0]!r}; tokenize first")
    os.makedirs(os.path.join(sweep.output, "trials"), exist_ok=True)
    with OutputClaim(sweep.output, "sweep output"):
        return _run_trials(sweep, address, progress, executor)


def _run_trials(sweep: Sweep, address: str | None, progress: bool, executor: Executor | None) -> list[dict]:
    _claim(sweep)
    ids = {t.id for t in sweep.trials}
    rows = {r["trial"]: r for r in read_results(sweep.output) if r["trial"] in ids}
    pending = [t for t in sweep.trials if rows.get(t.id, {}).get("status") not in FINAL]
    if pending:
        s = sweep.settings
        resources = Resources(cpus=s.cpus_per_trial, gpus=s.gpus_per_trial)
        if executor is None:
            executor = RayExecutor(progress, address=address)
            _check_capacity(sweep, executor, resources)

        def record(row: dict, bar) -> None:
            rows[row["trial"]] = row
            write_results(sweep.output, [rows[t.id] for t in sweep.trials if t.id in rows])
            bar.set_postfix_str(f"{row['trial']} {row['status']}", refresh=False)

        executor.map(
            _trial_task,
            [(t.config, t.id, t.overrides, t.budget) for t in pending],
            shared=(sweep.stop.divergence_factor, max(1, int(s.cpus_per_trial))),
            desc="sweep",
            unit="trial",
            labels=[f"trial {t.id}" for t in pending],
            total=len(sweep.trials),
            resources=resources,
            on_result=record,
            on_failure=lambda i, error: failed_row(pending[i].id, pending[i].overrides, error, pending[i].budget),
        )
    ordered = [rows[t.id] for t in sweep.trials if t.id in rows]
    write_results(sweep.output, ordered)
    write_html(sweep, ordered)
    return ordered


def _check_capacity(sweep: Sweep, executor: RayExecutor, resources: Resources) -> None:
    """A trial must fit on the cluster it is sent to."""
    for name, (asked, has) in executor.missing(resources).items():
        raise ConfigError(sweep.path, f"sweep.{name}_per_trial", f"{asked:g} per trial; the Ray cluster has {has:g}")


def _trial_task(shared, config: TrainConfig, trial: str, overrides: dict, budget: float | None) -> dict:
    """One trial inside a task, torch on the task's CPUs; an error becomes a ``failed`` row."""
    divergence_factor, cpus = shared
    with task_threads(cpus):
        try:
            return run_trial(config, trial, overrides, divergence_factor, budget)
        except Exception as exc:  # the sweep records it and goes on
            return failed_row(trial, overrides, f"{type(exc).__name__}: {exc}", budget)


def _claim(sweep: Sweep) -> None:
    """Write ``<output>/sweep.json``, or check that the one there describes the same trials."""
    path = os.path.join(sweep.output, "sweep.json")
    definition = sweep.definition()
    if os.path.exists(path):
        with open(path) as f:
            recorded = json.load(f)
        if not _matches(recorded, definition):
            raise ConfigError(
                sweep.path,
                "sweep.output",
                f"{sweep.output} holds another sweep ({_difference(recorded, definition)}); "
                "choose another output, or delete that directory to start over",
            )
        return
    with open(path + ".tmp", "w") as f:
        json.dump(definition, f, indent=1)
    os.replace(path + ".tmp", path)


def _matches(recorded, current) -> bool:
    """Whether ``current`` equals what ``sweep.json`` recorded, settings that a newer refinery added (keys the
    record lacks) aside."""
    if isinstance(recorded, dict) and isinstance(current, dict):
        return recorded.keys() <= current.keys() and all(_matches(v, current[k]) for k, v in recorded.items())
    if isinstance(recorded, list) and isinstance(current, list):
        return len(recorded) == len(current) and all(_matches(a, b) for a, b in zip(recorded, current))
    return recorded == current


def _difference(recorded: dict, definition: dict) -> str:
    if recorded.get("divergence_factor") != definition["divergence_factor"]:
        return f"divergence_factor {recorded.get('divergence_factor')} there"
    old, new = recorded.get("trials", []), definition["trials"]
    if len(old) != len(new):
        return f"{len(old)} trials there, {len(new)} here"
    for a, b in zip(old, new):
        if not _matches(a, b):
            if a["trial"] != b["trial"]:
                return f"trial {a['trial']} there, {b['trial']} here"
            return f"trial {a['trial']} has another configuration"
    return "another definition"
