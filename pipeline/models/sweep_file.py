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
import tomllib
from dataclasses import dataclass
from typing import Literal

from pipeline import storage
from pipeline.models.configs import PATH_KEYS, SECTIONS, load_train_config
from pipeline.schema import build, describe, load_toml
from pipeline.storage import StorageSettings
from tokenizer.errors import ConfigError, invalid
from trainer.config import TrainConfig
from trainer.data import shards_exist
from trainer.sweep import (
    check_distribution,
    flops_per_step,
    grid_trials,
    isoflop_points,
    isoflop_steps,
    override_strings,
    random_trials,
    trial_id,
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
            raise invalid("trials", "a random search needs trials >= 1")
        if self.method != "random" and self.trials:
            raise invalid("trials", f"only a random search takes trials ({self.method} runs every combination)")
        if self.cpus_per_trial <= 0:
            raise invalid("cpus_per_trial", "must be > 0")
        if self.gpus_per_trial < 0:
            raise invalid("gpus_per_trial", "must be >= 0")


@dataclass(kw_only=True)
class StopSettings:
    """``[sweep.stop]``: when a trial counts as diverged."""

    divergence_factor: float = 2.0

    def __post_init__(self):
        if self.divergence_factor != 0 and self.divergence_factor <= 1:
            raise invalid("divergence_factor", "expected a number > 1, or 0 to stop only on a non-finite loss")


@dataclass(kw_only=True)
class IsoFlopSettings:
    """``[sweep.isoflop]``'s own keys (its dotted keys are the model sizes)."""

    budgets: list[float]
    min_steps: int = 10
    max_steps: int = 0  # 0: no maximum

    def __post_init__(self):
        if not self.budgets:
            raise invalid("budgets", "expected at least one training-FLOPs budget, e.g. [1e12, 3e12]")
        if any(not b > 0 or not math.isfinite(b) for b in self.budgets):
            raise invalid("budgets", f"expected positive finite FLOPs, got {self.budgets!r}")
        if len(set(self.budgets)) < len(self.budgets):
            raise invalid("budgets", f"a budget is listed twice: {self.budgets!r}")
        if self.min_steps < 1:
            raise invalid("min_steps", "must be >= 1")
        if self.max_steps and self.max_steps < self.min_steps:
            raise invalid("max_steps", f"must be 0 (no maximum) or >= min_steps ({self.min_steps})")


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
        if name not in ("sweep", "storage"):
            raise ConfigError(path, name, "unknown section; a sweep file holds [sweep] and its subtables, [storage]")
    if "storage" in table:  # object-storage settings for the trials' shards
        storage.apply(build(StorageSettings, table["storage"], file=path, key="storage"))
    spec = table.get("sweep")
    if not isinstance(spec, dict):
        raise ConfigError(path, "sweep", "missing [sweep] table (base, output, method and [sweep.grid] ...)")
    settings = build(SweepSettings, spec, file=path, key="sweep", skip=SEARCH_TABLES)
    stop = build(StopSettings, spec.get("stop", {}), file=path, key="sweep.stop")
    here = os.path.dirname(os.path.abspath(path))
    base = os.path.normpath(os.path.join(here, settings.base))
    if "://" in settings.output:
        raise ConfigError(
            path,
            "sweep.output",
            "a sweep writes its trials and results to a local or shared folder (its shards may be on object "
            f"storage); got {settings.output}",
        )
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
            except ConfigError as exc:
                raise ConfigError(path, f"sweep.random.{key}", exc.expected) from None
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
            raise ConfigError(path, named[exc.key], context + exc.expected) from None
        source = where.get(exc.key)
        if source == "--set":
            raise ConfigError("--set", exc.key, context + exc.expected) from None
        if source:
            raise ConfigError(path, f"{source}.{exc.key}", context + exc.expected) from None
        raise ConfigError(path, fallback, f"{context}{exc}") from None
    return config


def missing_shards(sweep: Sweep) -> list[str]:
    """The trials' ``data.train`` patterns that match no token shards (yet: a sweep file can be checked before
    the run that tokenizes its corpus)."""
    patterns = dict.fromkeys(p for t in sweep.trials for p in t.config.data.train)
    return [p for p in patterns if not shards_exist(p)]
