"""Hyperparameter sweeps, the parts that need no cluster: search spaces expanded into trials (a grid, seeded
random draws, or IsoFLOP profiles: model sizes at fixed training-FLOPs budgets, steps computed per trial),
stable trial ids, one trial run in this process with a divergence stop, and the results table
(``results.jsonl``, ``results.csv`` and a text table). :mod:`pipeline.models.sweep_file` reads sweep files and runs the
trials as Ray tasks.

A trial is a dict of overrides, dotted key -> value (``{"model.d_model": 64, "optim.lr": 0.003}``), applied
to a base training file as ``section.key=value`` strings (:func:`override_strings`).
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import math
import os
import random
import time
from typing import Any

from tokenizer.errors import invalid
from trainer.accounting import flops_per_token
from trainer.config import TrainConfig
from trainer.loop import Trainer

FINAL = ("done", "diverged")  # statuses a rerun keeps; a failed trial is run again
FIELDS = (
    "trial",
    "overrides",
    "status",
    "reason",
    "params",
    "params_total",
    "steps",
    "tokens",
    "flops",
    "budget",
    "final_loss",
    "final_val_loss",
    "best_val_loss",
    "seconds",
    "resumed_from",
)
DISTRIBUTIONS = ("uniform", "log_uniform")


def grid_trials(grid: dict[str, list]) -> list[dict]:
    """Every combination of the values in ``grid`` (dotted key -> list of values), the last key varying
    fastest."""
    keys = list(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]


def check_distribution(key: str, spec: Any) -> None:
    """Raise :class:`ConfigValueError` (naming ``key``) unless ``spec`` is a non-empty list of choices or a
    table ``{uniform = [lo, hi]}`` / ``{log_uniform = [lo, hi]}`` with lo < hi (and lo > 0 for log-uniform)."""
    if isinstance(spec, list):
        if not spec:
            raise invalid(key, "expected a non-empty list of choices")
        return
    expected = "a list of choices, {uniform = [lo, hi]} or {log_uniform = [lo, hi]}"
    if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in DISTRIBUTIONS:
        raise invalid(key, f"expected {expected}, got {spec!r}")
    ((kind, bounds),) = spec.items()
    numbers = isinstance(bounds, list) and len(bounds) == 2
    numbers = numbers and all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in bounds)
    if not numbers or not bounds[0] < bounds[1]:
        raise invalid(key, f"expected {kind} = [lo, hi], two numbers with lo < hi, got {bounds!r}")
    if kind == "log_uniform" and bounds[0] <= 0:
        raise invalid(key, f"expected log_uniform bounds > 0, got {bounds!r}")


def random_trials(space: dict[str, Any], trials: int, seed: int) -> list[dict]:
    """``trials`` draws from ``space`` (dotted key -> distribution, see :func:`check_distribution`), the same
    for the same seed. Integer bounds draw integers (log-uniform ones rounded); other draws are rounded to 4
    significant digits, within the bounds."""
    for key, spec in space.items():
        check_distribution(key, spec)
    rng = random.Random(seed)
    return [{key: _draw(rng, spec) for key, spec in space.items()} for _ in range(trials)]


def _draw(rng: random.Random, spec: Any) -> Any:
    if isinstance(spec, list):
        return rng.choice(spec)
    ((kind, (lo, hi)),) = spec.items()
    if kind == "uniform" and isinstance(lo, int) and isinstance(hi, int):
        return rng.randint(lo, hi)
    value = rng.uniform(lo, hi) if kind == "uniform" else math.exp(rng.uniform(math.log(lo), math.log(hi)))
    if isinstance(lo, int) and isinstance(hi, int):
        return min(max(round(value), lo), hi)
    return min(max(float(f"{value:.4g}"), lo), hi)


def isoflop_points(budgets: list[float], sizes: dict[str, list], grid: dict[str, list]) -> list[tuple[float, dict]]:
    """(budget, overrides) of an IsoFLOP search: every budget x model size x grid combination. ``sizes`` holds
    paired lists (the i-th size is the i-th value of every key, e.g. ``model.d_model`` with ``model.n_layers``),
    ``grid`` is crossed with every size; the budget varies slowest, then the size, then the grid."""
    count = len(next(iter(sizes.values()))) if sizes else 0
    shapes = [{key: values[i] for key, values in sizes.items()} for i in range(count)]
    rest = grid_trials(grid) if grid else [{}]
    return [(budget, {**shape, **point}) for budget in budgets for shape in shapes for point in rest]


def flops_per_step(config: TrainConfig) -> int:
    """Training FLOPs of one optimizer step: the trainer's count per token (what the results table's
    ``flops`` uses) x batch_size x grad_accum x context_length."""
    t = config.train
    return flops_per_token(config.model)["training"] * t.batch_size * t.grad_accum * config.model.context_length


def isoflop_steps(budget: float, per_step: float, min_steps: int = 1, max_steps: int = 0) -> tuple[int, str]:
    """The whole number of steps whose training FLOPs (``per_step`` each) come closest to ``budget``, and why
    that many cannot be run: fewer than ``min_steps``, or more than ``max_steps`` (0: no maximum); ``""`` if
    they can."""
    steps = round(budget / per_step)
    if steps < min_steps:
        return steps, f"{steps} steps < min_steps {min_steps} (one step is {per_step:.3g} FLOPs)"
    if max_steps and steps > max_steps:
        return steps, f"{steps} steps > max_steps {max_steps}"
    return steps, ""


def trial_id(index: int, overrides: dict) -> str:
    """``t<index>-<hash of the overrides>``, e.g. ``t003-5f1c2a``: stable for the same sweep definition."""
    digest = hashlib.sha1(json.dumps(overrides, sort_keys=True).encode()).hexdigest()[:6]
    return f"t{index:03d}-{digest}"


def toml_value(value: Any) -> str:
    """``value`` in TOML syntax (what a ``section.key=value`` override holds)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as a TOML value")


def override_strings(overrides: dict) -> list[str]:
    """``section.key=value`` strings for :func:`pipeline.models.configs.load_train_config`."""
    return [f"{key}={toml_value(value)}" for key, value in overrides.items()]


class DivergenceStop:
    """A ``should_stop`` hook for :meth:`trainer.loop.Trainer.run`: a reason once a step's loss exceeds
    ``factor`` times the first logged loss, or its validation loss is not finite (a non-finite training loss
    already ends the run with ``FloatingPointError``). ``first`` is that first loss for a resumed run."""

    def __init__(self, factor: float, first: float | None = None):
        self.factor = factor
        self.first = first

    def __call__(self, metrics: dict) -> str | None:
        step, loss, val = metrics.get("step"), metrics.get("loss"), metrics.get("val_loss")
        if val is not None and not math.isfinite(val):
            return f"step {step}: the validation loss is {val}"
        if loss is None:
            return None
        if self.first is None:
            self.first = loss
        elif loss > self.factor * self.first:
            return f"step {step}: loss {loss:.4g} > {self.factor:g} x the first logged loss {self.first:.4g}"
        return None


def read_metrics(out_dir: str) -> list[dict]:
    """The rows of ``<out_dir>/metrics.jsonl`` (none if it does not exist; a line cut short is skipped)."""
    path = os.path.join(out_dir, "metrics.jsonl")
    if not os.path.exists(path):
        return []
    rows = []
    with open(path) as f:
        for line in f:
            try:
                rows.append(json.loads(line))
            except ValueError:
                continue
    return rows


def run_trial(
    config: TrainConfig, trial: str, overrides: dict, divergence_factor: float, budget: float | None = None
) -> dict:
    """Train one trial in this process (resuming from ``<out_dir>/checkpoint.pt``) and return its results
    row (``budget``: the IsoFLOP budget its steps were chosen for, recorded as is). A trial whose loss
    diverges (see :class:`DivergenceStop`; ``divergence_factor`` 0 stops only on a non-finite loss) ends early
    with status ``diverged``; other errors propagate."""
    started = time.perf_counter()
    trainer = Trainer(config, progress=False)
    resumed_from = trainer.step
    first = next((r["loss"] for r in read_metrics(config.train.out_dir) if "loss" in r), None) if resumed_from else None
    stop = DivergenceStop(divergence_factor, first) if divergence_factor else None
    status, reason = "done", ""
    try:
        last = trainer.run(should_stop=stop)
        if "stopped" in last:
            status, reason = "diverged", last["stopped"]
    except FloatingPointError as exc:
        status, reason = "diverged", str(exc)
    model = trainer.model
    metrics = read_metrics(config.train.out_dir)
    steps = max((r["step"] for r in metrics), default=0)
    t = config.train
    tokens = steps * t.batch_size * t.grad_accum * config.model.context_length
    val = [r["val_loss"] for r in metrics if "val_loss" in r]
    losses = [r["loss"] for r in metrics if "loss" in r]
    return {
        "trial": trial,
        "overrides": overrides,
        "status": status,
        "reason": reason,
        "params": model.num_parameters(embedding=False),
        "params_total": model.num_parameters(),
        "steps": steps,
        "tokens": tokens,
        "flops": model.flops_per_token()["training"] * tokens,
        "budget": budget,
        "final_loss": _finite(losses[-1] if losses else None),
        "final_val_loss": _finite(val[-1] if val else None),
        "best_val_loss": _finite(min(val) if val else None),
        "seconds": round(time.perf_counter() - started, 3),
        "resumed_from": resumed_from,
    }


def failed_row(trial: str, overrides: dict, error: str, budget: float | None = None) -> dict:
    """The results row of a trial that raised: status ``failed``, the error as its reason."""
    row = {**dict.fromkeys(FIELDS), "trial": trial, "overrides": overrides, "status": "failed", "reason": error}
    return {**row, "budget": budget}


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def read_results(directory: str) -> list[dict]:
    """The rows of ``<directory>/results.jsonl``; none if there is no such file."""
    path = os.path.join(directory, "results.jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def write_results(directory: str, rows: list[dict]) -> None:
    """Write ``results.jsonl`` (one row per trial) and ``results.csv`` (one column per override key) into
    ``directory``, each replaced whole and atomically."""
    _write_atomic(os.path.join(directory, "results.jsonl"), "".join(json.dumps(r) + "\n" for r in rows))
    keys = list(dict.fromkeys(k for r in rows for k in r["overrides"]))
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["trial", *keys, *FIELDS[2:]])
    for r in rows:
        writer.writerow([r["trial"], *(r["overrides"].get(k, "") for k in keys), *(r.get(f) for f in FIELDS[2:])])
    _write_atomic(os.path.join(directory, "results.csv"), text.getvalue())


def _write_atomic(path: str, text: str) -> None:
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


def by_best_val_loss(rows: list[dict]) -> list[dict]:
    """``rows`` sorted by best validation loss, trials without one last."""
    return sorted(rows, key=lambda r: (r.get("best_val_loss") is None, r.get("best_val_loss") or 0.0, r["trial"]))


def format_table(rows: list[dict]) -> str:
    """The results as a text table, best validation loss first, then the reasons of trials that did not
    finish."""
    keys = list(dict.fromkeys(k for r in rows for k in r["overrides"]))
    budgets = any(r.get("budget") is not None for r in rows)
    header = ["trial", *(["budget"] if budgets else []), *keys]
    header += ["status", "params", "tokens", "FLOPs", "best val", "final val", "seconds"]
    body = [
        [
            r["trial"],
            *([_show(r.get("budget"))] if budgets else []),
            *(_show(r["overrides"].get(k)) for k in keys),
            r["status"],
            f"{r['params']:,}" if r.get("params") is not None else "-",
            f"{r['tokens']:,}" if r.get("tokens") is not None else "-",
            f"{r['flops']:.3g}" if r.get("flops") is not None else "-",
            *(f"{r[f]:.4f}" if r.get(f) is not None else "-" for f in ("best_val_loss", "final_val_loss")),
            f"{r['seconds']:.1f}" if r.get("seconds") is not None else "-",
        ]
        for r in by_best_val_loss(rows)
    ]
    widths = [max(len(str(line[i])) for line in [header, *body]) for i in range(len(header))]
    lines = [
        "  ".join(str(v).rjust(w) if i else str(v).ljust(w) for i, (v, w) in enumerate(zip(line, widths)))
        for line in [header, *body]
    ]
    lines += [f"{r['trial']} {r['status']}: {r['reason']}" for r in rows if r["status"] != "done"]
    return "\n".join(lines)


def _show(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:g}" if isinstance(value, float) else str(value)
