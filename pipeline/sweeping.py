"""``refinery sweep SWEEP.toml``: a hyperparameter sweep over a training file, one Ray task per trial.

::

    [sweep]
    base = "train.toml"            # a refinery train file, relative to this file
    output = "../runs/sweep-demo"  # the sweep directory, relative to this file
    method = "grid"                # or "random" (then trials = N; seed), or "isoflop" (see below)
    cpus_per_trial = 1             # Ray resources of each trial; torch uses that many threads
    gpus_per_trial = 0
    [sweep.fixed]                  # overrides of every trial
    "train.steps" = 100
    [sweep.grid]                   # every combination; [sweep.random]: a list of choices,
    "model.d_model" = [64, 128]    # {log_uniform = [1e-4, 1e-2]} or {uniform = [a, b]} per key
    [sweep.stop]
    divergence_factor = 2.0        # stop a trial whose loss exceeds 2x its first logged loss (0: never)

``method = "isoflop"`` runs IsoFLOP profiles (Chinchilla's approach 2): every model size at every training
FLOPs budget, with ``train.steps`` computed per trial so that its FLOPs come closest to the budget::

    [sweep.isoflop]
    budgets = [2e11, 6e11, 2e12]   # training FLOPs per trial, as the results' flops column counts them
    "model.d_model" = [32, 48, 64, 96, 128]   # the model sizes: paired lists, the i-th size is the
    "model.n_layers" = [2, 2, 2, 3, 4]        # i-th value of every key (any dotted keys, e.g. optim.lr too)
    min_steps = 10                 # a budget x size below this many steps is skipped and reported
    max_steps = 0                  # likewise above it (0: no maximum)
    [sweep.grid]                   # optional: crossed with every budget and size, e.g. "optim.lr" = [3e-3, 1e-2]

Every trial's configuration is built before any trial starts, so a bad value is refused up front with the
file, the key and what was expected. Trial ``i`` trains into ``<output>/trials/<id>``; ``<output>/sweep.json``
records the trials, ``results.jsonl`` / ``results.csv`` one row per finished trial (rewritten after each), and
``sweep.html`` the curves. A rerun skips trials that are done or diverged, resumes the others from their
checkpoints, and refuses an output directory that holds a different sweep.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import sys
import tomllib
from dataclasses import dataclass
from html import escape
from typing import Literal

from pipeline import svg
from pipeline.schema import ConfigError, build, describe, load_toml
from pipeline.training import PATH_KEYS, SECTIONS, load_train_config
from trainer.config import TrainConfig
from trainer.data import find_shards
from trainer.errors import ConfigValueError
from trainer.sweep import (
    FINAL,
    by_best_val_loss,
    check_distribution,
    failed_row,
    flops_per_step,
    grid_trials,
    isoflop_points,
    isoflop_steps,
    override_strings,
    random_trials,
    read_metrics,
    read_results,
    run_trial,
    trial_id,
    write_results,
)

SEARCH_TABLES = ("fixed", "grid", "random", "isoflop", "stop")
METHOD_TABLES = {"grid": ("grid",), "random": ("random",), "isoflop": ("isoflop", "grid")}  # the tables each reads
_DOTTED = re.compile(r"([a-z_]+)\.([a-z_]+)")


@dataclass(kw_only=True)
class SweepSettings:
    """The ``[sweep]`` table's own keys."""

    base: str
    output: str
    method: Literal["grid", "random", "isoflop"] = "grid"
    trials: int = 0  # random only
    seed: int = 0
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0

    def __post_init__(self):
        if self.method == "random" and self.trials < 1:
            raise ConfigValueError("trials", "a random search needs trials >= 1")
        if self.method != "random" and self.trials:
            raise ConfigValueError(
                "trials", f"only a random search takes trials ({self.method} runs every combination)"
            )
        if self.cpus_per_trial <= 0:
            raise ConfigValueError("cpus_per_trial", "must be > 0")
        if self.gpus_per_trial < 0:
            raise ConfigValueError("gpus_per_trial", "must be >= 0")


@dataclass(kw_only=True)
class StopSettings:
    """``[sweep.stop]``: when a trial counts as diverged."""

    divergence_factor: float = 2.0

    def __post_init__(self):
        if self.divergence_factor != 0 and self.divergence_factor <= 1:
            raise ConfigValueError("divergence_factor", "expected a number > 1, or 0 to stop only on a non-finite loss")


@dataclass(kw_only=True)
class IsoFlopSettings:
    """``[sweep.isoflop]``'s own keys (its dotted keys are the model sizes)."""

    budgets: list[float]
    min_steps: int = 10
    max_steps: int = 0  # 0: no maximum

    def __post_init__(self):
        if not self.budgets:
            raise ConfigValueError("budgets", "expected at least one training-FLOPs budget, e.g. [1e12, 3e12]")
        if any(not b > 0 or not math.isfinite(b) for b in self.budgets):
            raise ConfigValueError("budgets", f"expected positive finite FLOPs, got {self.budgets!r}")
        if len(set(self.budgets)) < len(self.budgets):
            raise ConfigValueError("budgets", f"a budget is listed twice: {self.budgets!r}")
        if self.min_steps < 1:
            raise ConfigValueError("min_steps", "must be >= 1")
        if self.max_steps and self.max_steps < self.min_steps:
            raise ConfigValueError("max_steps", f"must be 0 (no maximum) or >= min_steps ({self.min_steps})")


@dataclass
class Trial:
    """One point of the search: its id, its overrides as the sweep file wrote them, its full configuration,
    and (IsoFLOP) the training-FLOPs budget its steps were computed for."""

    id: str
    overrides: dict
    config: TrainConfig
    budget: float | None = None


@dataclass
class Skipped:
    """An IsoFLOP budget x size that is not run, and why (too few or too many steps)."""

    budget: float
    overrides: dict
    steps: int
    reason: str


@dataclass
class Sweep:
    """A sweep file, checked and expanded: every trial's configuration is built."""

    path: str
    settings: SweepSettings
    stop: StopSettings
    output: str
    trials: list[Trial]
    skipped: list[Skipped] = dataclasses.field(default_factory=list)
    isoflop: IsoFlopSettings | None = None

    def definition(self) -> dict:
        """What ``sweep.json`` records and a rerun must match: the trials and their configurations."""
        trials = [
            {"trial": t.id, "overrides": t.overrides, "config": t.config.to_dict()}
            | ({"budget": t.budget} if t.budget is not None else {})
            for t in self.trials
        ]
        record = {"divergence_factor": self.stop.divergence_factor, "trials": trials}
        return json.loads(json.dumps(record))  # tuples as lists, as read back


def load_sweep(path: str, overrides: list[str] = ()) -> Sweep:
    """The sweep in ``path``, every trial's configuration built (``overrides``: ``section.key=value`` strings
    applied to every trial, as ``--set`` gives them)."""
    table = load_toml(path, "sweep file")
    for name in table:
        if name != "sweep":
            raise ConfigError(path, name, "unknown section; a sweep file holds [sweep] and its subtables")
    spec = table.get("sweep")
    if not isinstance(spec, dict):
        raise ConfigError(path, "sweep", "missing [sweep] table (base, output, method and [sweep.grid] ...)")
    settings = build(SweepSettings, spec, file=path, key="sweep", skip=SEARCH_TABLES)
    stop = build(StopSettings, spec.get("stop", {}), file=path, key="sweep.stop")
    here = os.path.dirname(os.path.abspath(path))
    base = os.path.normpath(os.path.join(here, settings.base))
    output = os.path.normpath(os.path.join(here, settings.output))
    if not os.path.isfile(base):
        raise ConfigError(path, "sweep.base", f"no training file at {base}")
    method = settings.method
    for table in ("grid", "random", "isoflop"):
        if table in spec and table not in METHOD_TABLES[method]:
            raise ConfigError(
                path, f"sweep.{table}", f"not used by method = {method!r}; remove it or change the method"
            )
    fixed = _dotted_table(spec.get("fixed", {}), path, "sweep.fixed")
    if method == "isoflop":
        return _load_isoflop(path, spec, settings, stop, fixed, base, output, overrides)
    space = _dotted_table(spec.get(method), path, f"sweep.{method}")
    if not space:
        raise ConfigError(path, f"sweep.{method}", 'expected at least one dotted key to search, e.g. "optim.lr"')
    for key, values in space.items():
        if key in fixed:
            raise ConfigError(path, f"sweep.{method}.{key}", "also set in [sweep.fixed]; keep one")
        if method == "grid":
            _check_list(path, f"sweep.grid.{key}", values)
        if method == "random":
            try:
                check_distribution(key, values)
            except ConfigValueError as exc:
                raise ConfigError(path, f"sweep.random.{key}", exc.message) from None
    cli = _parse_set(overrides, space)
    points = grid_trials(space) if method == "grid" else random_trials(space, settings.trials, settings.seed)
    sources = {**dict.fromkeys(fixed, "sweep.fixed"), **dict.fromkeys(cli, "--set")}
    shared = {**_absolute(fixed, here), **cli}
    trials = []
    for i, point in enumerate(points):
        tid = trial_id(i, point)
        where = {**sources, **dict.fromkeys(point, f"sweep.{method}")}
        given = {**shared, **_absolute(point, here), "train.out_dir": os.path.join(output, "trials", tid)}
        context = f"trial {tid} ({', '.join(f'{k}={v!r}' for k, v in point.items())}): "
        trials.append(Trial(tid, point, _build(path, base, given, where, f"sweep.{method}", context)))
    return Sweep(path, settings, stop, output, trials)


def _check_list(path: str, key: str, values) -> None:
    if not isinstance(values, list) or not values:
        raise ConfigError(path, key, f"expected a non-empty list of values, got {describe(values)}")


def _load_isoflop(
    path: str, spec: dict, settings: SweepSettings, stop: StopSettings, fixed: dict, base: str, output: str, overrides
) -> Sweep:
    """An IsoFLOP sweep: every budget x size (x grid point), ``train.steps`` computed from the budget."""
    table = spec.get("isoflop")
    if not isinstance(table, dict):
        raise ConfigError(
            path, "sweep.isoflop", 'method = "isoflop" needs a [sweep.isoflop] table: budgets and "model.*" size lists'
        )
    own = {k: v for k, v in table.items() if "." not in k}
    iso = build(IsoFlopSettings, own, file=path, key="sweep.isoflop")
    sizes = _dotted_table({k: v for k, v in table.items() if "." in k}, path, "sweep.isoflop")
    if not sizes:
        raise ConfigError(
            path, "sweep.isoflop", 'expected the model sizes as dotted keys, e.g. "model.d_model" = [32, 64, 128]'
        )
    grid = _dotted_table(spec.get("grid"), path, "sweep.grid")
    first = next(iter(sizes))
    for table_name, space in (("sweep.isoflop", sizes), ("sweep.grid", grid)):
        for key, values in space.items():
            _check_list(path, f"{table_name}.{key}", values)
            if key == "train.steps":
                raise ConfigError(
                    path, f"{table_name}.{key}", "computed from each budget by the IsoFLOP search; remove it"
                )
            if key in fixed:
                raise ConfigError(path, f"{table_name}.{key}", "also set in [sweep.fixed]; keep one")
            if table_name == "sweep.isoflop" and len(values) != len(sizes[first]):
                raise ConfigError(
                    path,
                    f"sweep.isoflop.{key}",
                    f"{len(values)} values, but {first} has {len(sizes[first])}: the size lists are paired "
                    "(the i-th size takes the i-th value of each)",
                )
            if table_name == "sweep.grid" and key in sizes:
                raise ConfigError(path, f"sweep.grid.{key}", "also a size key of [sweep.isoflop]; keep one")
    if "train.steps" in fixed:
        raise ConfigError(path, "sweep.fixed.train.steps", "computed from each budget by the IsoFLOP search; remove it")
    cli = _parse_set(overrides, {**sizes, **grid, "train.steps": None})
    here = os.path.dirname(os.path.abspath(path))
    sources = {**dict.fromkeys(fixed, "sweep.fixed"), **dict.fromkeys(cli, "--set")}
    sources |= dict.fromkeys(sizes, "sweep.isoflop") | dict.fromkeys(grid, "sweep.grid")
    shared = {**_absolute(fixed, here), **cli}
    trials, skipped = [], []
    for budget, point in isoflop_points(iso.budgets, sizes, grid):
        shown = _point(point)
        context = f"budget {budget:g}, {shown}: "
        given = {**shared, **_absolute(point, here), "train.out_dir": os.path.join(output, "trials", "plan")}
        config = _build(path, base, given, sources, "sweep.isoflop", context)
        steps, why = isoflop_steps(budget, flops_per_step(config), iso.min_steps, iso.max_steps)
        if why:
            skipped.append(Skipped(budget, point, steps, why))
            continue
        point = {**point, "train.steps": steps}
        tid = trial_id(len(trials), {**point, "budget": budget})
        given |= {"train.steps": steps, "train.out_dir": os.path.join(output, "trials", tid)}
        context = f"trial {tid} (budget {budget:g}, {shown}, {steps} steps): "
        named = {"train.steps": "sweep.isoflop.budgets"}
        trials.append(Trial(tid, point, _build(path, base, given, sources, "sweep.isoflop", context, named), budget))
    if not trials:
        reasons = "; ".join(f"budget {s.budget:g} {_point(s.overrides)}: {s.reason}" for s in skipped[:4])
        raise ConfigError(path, "sweep.isoflop.budgets", f"no budget x size leaves a trial to run ({reasons} ...)")
    return Sweep(path, settings, stop, output, trials, skipped, iso)


def _point(overrides: dict) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in overrides.items())


def describe_sweep(sweep: Sweep) -> str:
    """What ``refinery validate`` prints of a sweep file: its trials (values searched, steps and training FLOPs;
    IsoFLOP: also the budget) and the budget x size combinations an IsoFLOP search skips, with why."""
    s = sweep.settings
    head = f"{sweep.path}: valid sweep; method {s.method}, {len(sweep.trials)} trials -> {sweep.output}"
    keys = list(dict.fromkeys(k for t in sweep.trials for k in t.overrides if k != "train.steps"))
    isoflop = sweep.isoflop is not None
    lines = [head + (f" ({len(sweep.skipped)} budget x size skipped)" if isoflop else "")]
    header = ["trial", *(["budget"] if isoflop else []), *keys, "steps", "FLOPs", *(["of budget"] if isoflop else [])]
    body = []
    for t in sweep.trials:
        flops = flops_per_step(t.config) * t.config.train.steps
        body.append(
            [t.id, *([f"{t.budget:.3g}"] if isoflop else []), *(str(t.overrides.get(k, "-")) for k in keys)]
            + [str(t.config.train.steps), f"{flops:.3g}", *([f"{flops / t.budget:.1%}"] if isoflop else [])]
        )
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    lines += [
        "  " + "  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(r, widths)))
        for r in [header, *body]
    ]
    lines += skipped_lines(sweep)
    return "\n".join(lines) + _shards_note(sweep)


def _shards_note(sweep: Sweep) -> str:
    missing = missing_shards(sweep)
    return f"\n  no token shards match {missing[0]!r} yet: tokenize before running it" if missing else ""


def skipped_lines(sweep: Sweep) -> list[str]:
    """One line per IsoFLOP budget x size that the sweep does not run, with why."""
    return [f"skipped: budget {s.budget:.3g}, {_point(s.overrides)}: {s.reason}" for s in sweep.skipped]


def _dotted_table(value, path: str, key: str) -> dict:
    """A table of ``"section.key"`` entries of the training file (``train.out_dir`` excepted: the sweep sets it)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(path, key, f'expected a table of "section.key" = value, got {describe(value)}')
    for dotted in value:
        m = _DOTTED.fullmatch(dotted)
        if not m or m.group(1) not in SECTIONS:
            raise ConfigError(
                path, f"{key}.{dotted}", f'expected a quoted "section.key" with section one of: {", ".join(SECTIONS)}'
            )
        if dotted == "train.out_dir":
            raise ConfigError(path, f"{key}.{dotted}", "set by the sweep (<output>/trials/<trial>); remove it")
    return dict(value)


def _parse_set(items: list[str], space: dict) -> dict:
    """``--set section.key=value`` strings as a dict (values in TOML syntax, a bare word is a string)."""
    out = {}
    for item in items:
        dotted, sep, raw = item.partition("=")
        dotted = dotted.strip()
        if not sep or not _DOTTED.fullmatch(dotted):
            raise ConfigError("--set", item, "expected section.key=value, e.g. train.steps=100")
        if dotted in space or dotted == "train.out_dir":
            raise ConfigError("--set", dotted, "set by the sweep itself; change the sweep file instead")
        try:
            out[dotted] = tomllib.loads(f"v = {raw.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            out[dotted] = raw.strip()
    return out


def _absolute(overrides: dict, here: str) -> dict:
    """``overrides`` with relative paths (``data.train``, ``data.valid``) made relative to the sweep file."""

    def absolute(p):
        return os.path.normpath(os.path.join(here, p)) if isinstance(p, str) and p and "://" not in p else p

    paths = {f"{s}.{k}" for s, k in PATH_KEYS}
    return {
        k: ([absolute(p) for p in v] if isinstance(v, list) else absolute(v)) if k in paths else v
        for k, v in overrides.items()
    }


def _build(
    path: str, base: str, overrides: dict, where: dict, fallback: str, context: str, named: dict | None = None
) -> TrainConfig:
    """The base training file with ``overrides`` (its shards need not exist yet: ``missing_shards``). An error
    about a value the sweep set is named after the sweep key that set it (``where``: dotted key -> the table it
    came from, or ``--set``; ``named``: dotted key -> the whole sweep key, for values the sweep computed); any
    other after ``fallback``, with the base file's own error in the message."""
    try:
        config = load_train_config(base, override_strings(overrides))
    except ConfigError as exc:
        if named and exc.key in named:
            raise ConfigError(path, named[exc.key], context + exc.message) from None
        source = where.get(exc.key)
        if source == "--set":
            raise ConfigError("--set", exc.key, context + exc.message) from None
        if source:
            raise ConfigError(path, f"{source}.{exc.key}", context + exc.message) from None
        raise ConfigError(path, fallback, f"{context}{exc}") from None
    return config


def missing_shards(sweep: Sweep) -> list[str]:
    """The trials' ``data.train`` patterns that match no token shards (yet: a sweep file can be checked before
    the run that tokenizes its corpus)."""
    patterns = dict.fromkeys(p for t in sweep.trials for p in t.config.data.train)
    return [p for p in patterns if not find_shards(p)]


def run_sweep(sweep: Sweep, *, address: str | None = None, progress: bool = True) -> list[dict]:
    """Run (or resume) the sweep's unfinished trials as Ray tasks, side by side; returns the results rows in
    trial order, also in ``<output>/results.jsonl`` and ``results.csv``, with ``<output>/sweep.html``."""
    from tqdm import tqdm

    missing = missing_shards(sweep)
    if missing:  # before any trial starts, rather than in each of them
        base = os.path.join(os.path.dirname(os.path.abspath(sweep.path)), sweep.settings.base)
        raise ConfigError(os.path.normpath(base), "data.train", f"no token shards match {missing[0]!r}; tokenize first")
    os.makedirs(os.path.join(sweep.output, "trials"), exist_ok=True)
    _claim(sweep)
    ids = {t.id for t in sweep.trials}
    rows = {r["trial"]: r for r in read_results(sweep.output) if r["trial"] in ids}
    pending = [t for t in sweep.trials if rows.get(t.id, {}).get("status") not in FINAL]
    if pending:
        import ray

        from pipeline.executor import TASK_RETRIES
        from pipeline.runner import connect

        connect(address)
        s = sweep.settings
        for name, need, have in (
            ("cpus_per_trial", s.cpus_per_trial, ray.cluster_resources().get("CPU", 0)),
            ("gpus_per_trial", s.gpus_per_trial, ray.cluster_resources().get("GPU", 0)),
        ):
            if need > have:
                raise ConfigError(sweep.path, f"sweep.{name}", f"{need:g} per trial; the Ray cluster has {have:g}")
        task = ray.remote(num_cpus=s.cpus_per_trial, num_gpus=s.gpus_per_trial, max_retries=TASK_RETRIES)(_trial_task)
        threads = max(1, int(s.cpus_per_trial))
        factor = sweep.stop.divergence_factor
        refs = {task.remote(t.config, t.id, t.overrides, factor, threads, t.budget): t for t in pending}
        done = len(sweep.trials) - len(pending)
        with tqdm(
            total=len(sweep.trials),
            initial=done,
            desc="sweep",
            unit="trial",
            disable=not progress,
            file=sys.stderr,
            dynamic_ncols=True,
        ) as bar:
            while refs:
                [ref], _ = ray.wait(list(refs), num_returns=1)
                trial = refs.pop(ref)
                try:
                    row = ray.get(ref)
                except ray.exceptions.RayError as exc:  # the worker died (the task's own errors are rows)
                    row = failed_row(trial.id, trial.overrides, f"{type(exc).__name__}: {exc}", trial.budget)
                rows[trial.id] = row
                write_results(sweep.output, [rows[t.id] for t in sweep.trials if t.id in rows])
                bar.set_postfix_str(f"{trial.id} {row['status']}", refresh=False)
                bar.update(1)
    ordered = [rows[t.id] for t in sweep.trials if t.id in rows]
    write_results(sweep.output, ordered)
    write_html(sweep, ordered)
    return ordered


def _trial_task(
    config: TrainConfig, trial: str, overrides: dict, divergence_factor: float, threads: int, budget: float | None
) -> dict:
    """One trial inside a Ray task, torch on the task's CPUs; an error becomes a ``failed`` row."""
    import torch

    torch.set_num_threads(threads)
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


def write_html(sweep: Sweep, rows: list[dict]) -> str:
    """Write ``<output>/sweep.html``: the results table, validation loss against step per trial, and the
    final validation loss against training FLOPs per model size; its path."""
    from pipeline.report import STYLE

    curves = {
        t.id: [(r["step"], r["val_loss"]) for r in read_metrics(t.config.train.out_dir) if "val_loss" in r]
        for t in sweep.trials
    }
    charts = [svg.lines(dict(list(curves.items())[i : i + 5])) for i in range(0, len(curves), 5)]
    best: dict[tuple, float] = {}  # (params, FLOPs) -> the lowest final validation loss over the other settings
    for r in rows:
        if r["status"] == "done" and r.get("final_val_loss") is not None and r.get("flops"):
            point = (r["params"], r["flops"])
            best[point] = min(best.get(point, math.inf), r["final_val_loss"])
    by_size: dict[str, list] = {}
    for (params, flops), loss in sorted(best.items()):
        by_size.setdefault(f"{params:,} params", []).append((math.log10(flops), loss))
    by_budget: dict[str, list] = {}  # IsoFLOP: the best final validation loss of each size, per budget
    for r in sorted(rows, key=lambda r: r.get("params") or 0):
        if r.get("budget") and r["status"] == "done" and r.get("final_val_loss") is not None:
            curve = by_budget.setdefault(f"C = {r['budget']:.3g}", [])
            if curve and curve[-1][0] == math.log10(r["params"]):
                curve[-1] = (curve[-1][0], min(curve[-1][1], r["final_val_loss"]))
            else:
                curve.append((math.log10(r["params"]), r["final_val_loss"]))
    isoflop = ""
    if by_budget:
        isoflop = (
            "<h2>IsoFLOP profiles: final validation loss by model size, per budget</h2>"
            '<p class="muted">x: log10 parameters (non-embedding); the best trial of each size at each budget</p>'
            f"{svg.lines(by_budget)}"
        )
    if sweep.skipped:
        items = "".join(f"<li>{escape(line)}</li>" for line in skipped_lines(sweep))
        isoflop += f"<h2>Budget x size not run</h2><ul>{items}</ul>"
    keys = list(dict.fromkeys(k for r in rows for k in r["overrides"]))
    budgets = ["budget"] if any(r.get("budget") for r in rows) else []
    header = ["trial", *budgets, *keys, "status", "params", "tokens", "FLOPs"]
    header += ["best val loss", "final val loss", "seconds"]
    lines = [
        [r["trial"], *([r.get("budget")] if budgets else [])]
        + [*(r["overrides"].get(k) for k in keys), r["status"], r.get("params"), r.get("tokens")]
        + [f"{r['flops']:.3g}" if r.get("flops") else None, r.get("best_val_loss"), r.get("final_val_loss")]
        + [r.get("seconds"), r.get("reason")]
        for r in by_best_val_loss(rows)
    ]
    table = "<tr>" + "".join(f"<th>{escape(h)}</th>" for h in [*header, "reason"]) + "</tr>"
    table += "".join("<tr>" + "".join(f"<td>{escape(_cell(v))}</td>" for v in line) + "</tr>" for line in lines)
    title = f"refinery sweep: {escape(os.path.basename(sweep.output))}"
    html = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f"<style>{STYLE} td{{white-space:nowrap}}</style></head><body><h1>{title}</h1>"
        f'<p class="muted">{escape(sweep.path)}: {len(sweep.trials)} trials, {len(rows)} finished</p>'
        f"<h2>Results (best validation loss first)</h2><table>{table}</table>"
        f"<h2>Validation loss by step</h2>{''.join(charts)}"
        "<h2>Final validation loss by training FLOPs, per model size</h2>"
        '<p class="muted">x: log10 training FLOPs; the best trial at each size and FLOPs (finished trials only)</p>'
        f"{svg.lines(by_size)}{isoflop}"
        "</body></html>"
    )
    path = os.path.join(sweep.output, "sweep.html")
    with open(path, "w", encoding="utf-8") as f:
        f.write(html)
    return path


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)
