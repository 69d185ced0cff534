"""Scaling laws from a sweep's results: how validation loss falls with parameters N and training tokens D.

* The parametric law ``L(N, D) = E + A / N**alpha + B / D**beta`` (Hoffmann et al. 2022, approach 3), fitted
  by minimising the Huber loss (delta 1e-3) between ``log L`` and the law's ``log(E + A/N^alpha + B/D^beta)``
  with L-BFGS-B, started from the best points of Hoffmann et al.'s grid of initialisations. It is
  parametrised as ``a = log A``, ``b = log B``, ``e = log E`` so that A, B, E stay positive; exponents are
  bounded to [0.01, 2], ``a`` and ``b`` to [-20, 100] and ``e`` to [-10, 10], so that a small, noisy sweep
  gives finite constants (with wide bootstrap intervals) instead of running off to infinity.
* Uncertainty by bootstrap: the fit repeated on rows drawn with replacement (seeded, hence repeatable).
* The compute-optimal allocation of a budget ``C = 6 N D`` under the law, and the Chinchilla rule of thumb
  ``D = 20 N`` for comparison.
* IsoFLOP profiles (approach 2): runs grouped by FLOPs budget (the ``budget`` column an IsoFLOP sweep
  writes, else FLOPs within a tolerance), a parabola of loss against ``log N`` per budget, its minimum
  ``N_opt(C)``, then ``N_opt ∝ C**a`` across budgets.
* A holdout check: the law fitted without the largest run, asked to predict that run's loss.

N is the non-embedding parameter count by default (Kaplan et al. 2020 found the law cleanest that way;
Hoffmann et al. count all parameters, choose with ``params="params_total"``).
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections import Counter
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy.optimize import minimize
from threadpoolctl import threadpool_limits

HUBER_DELTA = 1e-3
NAMES = ("E", "A", "B", "alpha", "beta")
# theta = (a, b, e, alpha, beta): the optimiser's coordinates
BOUNDS = [(-20.0, 100.0), (-20.0, 100.0), (-10.0, 10.0), (0.01, 2.0), (0.01, 2.0)]
STARTS = 16  # L-BFGS runs from the best grid points
MIN_RUNS = 5  # five constants
RESULTS_FILES = ("results.jsonl", "results.csv")
FIT_FILE = "scaling_fit.json"


class ScalingError(ValueError):
    """The results cannot be fitted (too few usable runs, a missing column); the message says what is missing."""


def _grid() -> np.ndarray:
    """Hoffmann et al.'s initialisations (their alpha = 0 and beta = 0 moved inside the bounds)."""
    exps = [0.01, 0.5, 1.0, 1.5, 2.0]
    logs = [0.0, 5.0, 10.0, 15.0, 20.0, 25.0]
    es = [-1.0, -0.5, 0.0, 0.5, 1.0, 1.5]
    mesh = np.meshgrid(logs, logs, es, exps, exps, indexing="ij")
    return np.stack([m.ravel() for m in mesh], axis=1)


GRID = _grid()


@dataclass(frozen=True)
class Allocation:
    """Parameters and tokens for a FLOPs budget, and the loss the law predicts for them."""

    flops: float
    params: float
    tokens: float
    loss: float

    @property
    def tokens_per_param(self) -> float:
        """D / N."""
        return self.tokens / self.params


@dataclass(frozen=True)
class Law:
    """``L(N, D) = E + A / N**alpha + B / D**beta``."""

    E: float
    A: float
    B: float
    alpha: float
    beta: float

    def loss(self, params, tokens):
        """Predicted loss of a model of ``params`` parameters trained on ``tokens`` tokens (arrays work)."""
        return self.E + self.A * np.power(params, -self.alpha) + self.B * np.power(tokens, -self.beta)

    def optimal(self, flops: float) -> Allocation:
        """The N and D with ``6 N D = flops`` that minimise the law.

        Along the budget D = C / (6N), so dL/dN = -alpha A N^(-alpha-1) + beta B (C/6)^(-beta) N^(beta-1),
        zero at N^(alpha+beta) = (alpha A / (beta B)) (C/6)^beta: N_opt = G (C/6)^(beta/(alpha+beta)) with
        G = (alpha A / (beta B))^(1/(alpha+beta)), and D_opt = (C/6) / N_opt = (C/6)^(alpha/(alpha+beta)) / G.
        """
        s = self.alpha + self.beta
        g = (self.alpha * self.A / (self.beta * self.B)) ** (1 / s)
        params = g * (flops / 6) ** (self.beta / s)
        tokens = flops / 6 / params
        return Allocation(flops, params, tokens, float(self.loss(params, tokens)))

    def at_ratio(self, flops: float, tokens_per_param: float = 20.0) -> Allocation:
        """The budget spent with ``D = tokens_per_param * N`` (Chinchilla's rule of thumb is 20)."""
        params = math.sqrt(flops / (6 * tokens_per_param))
        tokens = tokens_per_param * params
        return Allocation(flops, params, tokens, float(self.loss(params, tokens)))

    def formula(self) -> str:
        """The law with its constants, for printing."""
        return f"L = {self.E:.4g} + {self.A:.4g}/N^{self.alpha:.3f} + {self.B:.4g}/D^{self.beta:.3f}"

    @classmethod
    def from_theta(cls, theta) -> Law:
        """The law of optimiser coordinates (a, b, e, alpha, beta)."""
        a, b, e, alpha, beta = (float(t) for t in theta)
        return cls(math.exp(e), math.exp(a), math.exp(b), alpha, beta)

    def theta(self) -> np.ndarray:
        """Optimiser coordinates (log A, log B, log E, alpha, beta)."""
        return np.array([math.log(self.A), math.log(self.B), math.log(self.E), self.alpha, self.beta])


@dataclass
class Runs:
    """The usable runs of a sweep (one entry per run in each array) and what was skipped, and why."""

    trials: list[str]
    params: np.ndarray
    tokens: np.ndarray
    flops: np.ndarray
    loss: np.ndarray
    skipped: dict[str, int] = field(default_factory=dict)
    columns: dict[str, str] = field(default_factory=dict)
    source: str = ""
    budgets: np.ndarray | None = None  # an IsoFLOP sweep's budget per run (NaN where a row has none)

    def __len__(self) -> int:
        return len(self.trials)

    def without(self, i: int) -> Runs:
        """These runs but the ``i``-th."""
        keep = np.arange(len(self)) != i
        return Runs(
            [t for j, t in enumerate(self.trials) if j != i],
            self.params[keep],
            self.tokens[keep],
            self.flops[keep],
            self.loss[keep],
            self.skipped,
            self.columns,
            self.source,
            None if self.budgets is None else self.budgets[keep],
        )

    def to_rows(self) -> list[dict]:
        """One dict per run: trial, params, tokens, flops, loss (and budget, where the run has one)."""
        rows = [
            {"trial": t, "params": float(n), "tokens": float(d), "flops": float(c), "loss": float(loss)}
            for t, n, d, c, loss in zip(self.trials, self.params, self.tokens, self.flops, self.loss)
        ]
        if self.budgets is not None:
            for row, budget in zip(rows, self.budgets):
                if math.isfinite(budget):
                    row["budget"] = float(budget)
        return rows


def results_file(path: str) -> str:
    """``path`` itself, or the results.jsonl (else results.csv) in the directory ``path``."""
    if not os.path.isdir(path):
        if not os.path.exists(path):
            raise FileNotFoundError(f"{path}: no such results file or sweep directory")
        return path
    for name in RESULTS_FILES:
        if os.path.exists(os.path.join(path, name)):
            return os.path.join(path, name)
    raise FileNotFoundError(f"{path}: a sweep directory holds {' or '.join(RESULTS_FILES)}; found neither")


def _number(row: dict, key: str) -> float | None:
    value = row.get(key)
    if isinstance(value, bool) or value is None or value == "":
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def load_runs(path: str, loss: str = "final_val_loss", params: str = "params", best: bool = False) -> Runs:
    """The finished runs of a sweep: ``path`` is its results.jsonl, a CSV with the same columns, or the
    directory holding either. Rows whose ``status`` is not "done", or whose ``loss``, ``params`` or ``tokens``
    is missing or not a finite positive number, are skipped and counted by reason. ``flops`` defaults to
    6 N D where a row lacks it; ``budget`` (an IsoFLOP sweep's) is read where present. A line that is not JSON
    (a sweep still writing its last line) is skipped. With ``best``, of runs with the same N and D (a
    learning-rate grid, say) only the lowest loss is kept."""
    file = results_file(path)
    with open(file, newline="" if file.endswith(".csv") else None, encoding="utf-8") as f:
        if file.endswith(".csv"):
            rows = list(csv.DictReader(f))
        else:
            rows = []
            for line in f:
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError:
                        rows.append(None)
    skipped: Counter = Counter()
    kept = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            skipped["unreadable line"] += 1
            continue
        status = row.get("status", "done")
        n, d, value = _number(row, params), _number(row, "tokens"), _number(row, loss)
        if status != "done":
            skipped[f"status {status}"] += 1
        elif value is None or value <= 0:
            skipped[f"{loss} missing or not finite"] += 1
        elif n is None or n <= 0:
            skipped[f"{params} missing or not positive"] += 1
        elif d is None or d <= 0:
            skipped["tokens missing or not positive"] += 1
        else:
            c, budget = _number(row, "flops"), _number(row, "budget")
            budget = budget if budget and budget > 0 else math.nan
            kept.append((str(row.get("trial", i)), n, d, c if c and c > 0 else 6 * n * d, value, budget))
    if best:
        lowest = {}
        for run in kept:
            if (run[1], run[2]) not in lowest or run[4] < lowest[run[1], run[2]][4]:
                lowest[run[1], run[2]] = run
        if len(lowest) < len(kept):
            skipped["not the lowest loss of its N and D"] = len(kept) - len(lowest)
        kept = [run for run in kept if lowest[run[1], run[2]] is run]
    columns = {"loss": loss, "params": params, "tokens": "tokens", "flops": "flops"}
    trials = [k[0] for k in kept]
    arrays = [np.array([k[j] for k in kept], dtype=float) for j in range(1, 6)]
    budgets = arrays.pop()
    if np.isfinite(budgets).any():
        columns["budget"] = "budget"
    else:
        budgets = None
    return Runs(trials, *arrays, skipped=dict(skipped), columns=columns, source=file, budgets=budgets)


def check_runs(runs: Runs) -> None:
    """Raise ScalingError, naming what is missing, unless the runs can determine the law's five constants."""
    skipped = "; ".join(f"{count} skipped: {why}" for why, count in sorted(runs.skipped.items()))
    where = f"{runs.source}: " if runs.source else ""
    if len(runs) < MIN_RUNS:
        raise ScalingError(
            f"{where}a scaling fit needs at least {MIN_RUNS} finished runs with a finite {runs.columns.get('loss')}, "
            f"{runs.columns.get('params')} and tokens; found {len(runs)}" + (f" ({skipped})" if skipped else "")
        )
    sizes, tokens = np.unique(runs.params), np.unique(runs.tokens)
    if len(sizes) < 2 or len(tokens) < 2:
        raise ScalingError(
            f"{where}a scaling fit needs runs of at least 2 model sizes ({runs.columns.get('params')}) and 2 token "
            f"counts; found {len(sizes)} size(s) and {len(tokens)} token count(s)"
        )


def _objective(theta, ln_n, ln_d, ln_l, delta: float):
    """Sum of Huber(log law - log L), scaled by 1/delta, and its gradient in theta."""
    a, b, e, alpha, beta = theta
    t = np.stack([a - alpha * ln_n, b - beta * ln_d, np.full_like(ln_n, e)])
    top = t.max(axis=0)
    w = np.exp(t - top)
    total = w.sum(axis=0)
    r = top + np.log(total) - ln_l
    w /= total
    absr = np.abs(r)
    value = np.where(absr <= delta, 0.5 * r * r, delta * (absr - 0.5 * delta)).sum() / delta
    psi = np.clip(r, -delta, delta) / delta
    pw = psi * w
    grad = np.array([pw[0].sum(), pw[1].sum(), pw[2].sum(), -(pw[0] * ln_n).sum(), -(pw[1] * ln_d).sum()])
    return value, grad


def _grid_values(ln_n, ln_d, ln_l, delta: float) -> np.ndarray:
    """The objective at every grid point (vectorised over the grid)."""
    a, b, e, alpha, beta = (GRID[:, j : j + 1] for j in range(5))
    t1, t2 = a - alpha * ln_n, b - beta * ln_d
    top = np.maximum(np.maximum(t1, t2), e)
    r = top + np.log(np.exp(t1 - top) + np.exp(t2 - top) + np.exp(e - top)) - ln_l
    absr = np.abs(r)
    return np.where(absr <= delta, 0.5 * r * r, delta * (absr - 0.5 * delta)).sum(axis=1)


def _minimise(starts, ln_n, ln_d, ln_l, delta: float) -> np.ndarray:
    """The best of L-BFGS-B runs from ``starts``. Callers hold BLAS to one thread: its threads cost more than
    these 5-dimensional problems, and spin for ~10 ms per call on a busy machine."""
    best, best_value = None, np.inf
    for start in starts:
        res = minimize(
            _objective,
            start,
            args=(ln_n, ln_d, ln_l, delta),
            jac=True,
            method="L-BFGS-B",
            bounds=BOUNDS,
            options={"maxiter": 5000, "ftol": 1e-15, "gtol": 1e-12},
        )
        if np.isfinite(res.fun) and res.fun < best_value:
            best, best_value = res.x, res.fun
    return best


def _best_starts(ln_n, ln_d, ln_l, delta: float, k: int) -> np.ndarray:
    values = _grid_values(ln_n, ln_d, ln_l, delta)
    return GRID[np.argsort(values, kind="stable")[:k]]


def fit_law(params, tokens, loss, *, delta: float = HUBER_DELTA, starts: int = STARTS) -> Law:
    """The law fitted to runs (arrays of N, D and loss): L-BFGS-B from the ``starts`` best grid points, the
    lowest objective wins."""
    ln_n, ln_d, ln_l = (np.log(np.asarray(x, dtype=float)) for x in (params, tokens, loss))
    with threadpool_limits(1):
        theta = _minimise(_best_starts(ln_n, ln_d, ln_l, delta, starts), ln_n, ln_d, ln_l, delta)
    return Law.from_theta(theta)


def bootstrap(
    params, tokens, loss, law: Law, *, resamples: int = 200, seed: int = 0, delta: float = HUBER_DELTA
) -> np.ndarray:
    """The law refitted on ``resamples`` resamples of the runs (drawn with replacement, seeded): an array of
    shape (resamples, 5), columns in NAMES order. Each refit starts from ``law`` and the 2 grid points best on
    all the runs."""
    ln_n, ln_d, ln_l = (np.log(np.asarray(x, dtype=float)) for x in (params, tokens, loss))
    starts = np.vstack([law.theta(), _best_starts(ln_n, ln_d, ln_l, delta, 2)])
    rng = np.random.default_rng(seed)
    out = np.empty((resamples, len(NAMES)))
    with threadpool_limits(1):
        for i in range(resamples):
            pick = rng.integers(0, len(ln_n), len(ln_n))
            fitted = Law.from_theta(_minimise(starts, ln_n[pick], ln_d[pick], ln_l[pick], delta))
            out[i] = [getattr(fitted, name) for name in NAMES]
    return out


def uncertainty(samples: np.ndarray, level: float = 0.95) -> dict[str, dict[str, float]]:
    """Standard error and percentile interval of each constant from bootstrap ``samples``."""
    tail = 100 * (1 - level) / 2
    return {
        name: {
            "se": float(np.std(samples[:, j], ddof=1)) if len(samples) > 1 else float("nan"),
            "low": float(np.percentile(samples[:, j], tail)),
            "high": float(np.percentile(samples[:, j], 100 - tail)),
        }
        for j, name in enumerate(NAMES)
    }


def isoflop(runs: Runs, tolerance: float = 0.1) -> dict:
    """IsoFLOP profiles: runs grouped by budget, a parabola of loss against ln N in each group of 3 or more
    model sizes, whose minimum inside the sizes run is N_opt(C), and ``N_opt = k C**a`` fitted in log-log
    across 2 or more such budgets. ``b = 1 - a`` is D_opt's exponent (C ∝ N D).

    Runs with a ``budget`` (an IsoFLOP sweep's, ``runs.budgets``) are grouped by its exact value, which is
    then the group's C. The others are grouped by their FLOPs: from the smallest up, a group takes the runs
    within ``1 + tolerance`` times its first run's FLOPs; its C is their geometric mean. ``grouping`` says
    which (``budget``, ``flops`` or ``budget+flops``). D_opt is read off the group's own runs (ln D
    interpolated in ln N at N_opt), not C / 6N, since the FLOPs column need not be 6ND. Budgets that give no
    minimum say why in their ``note``; so does the result without ``a``."""
    has_budget = np.zeros(len(runs), dtype=bool) if runs.budgets is None else np.isfinite(runs.budgets)
    groups: list[tuple[float, list[int], str]] = []  # (C, runs, grouped by)
    if has_budget.any():
        for value in np.unique(runs.budgets[has_budget]):
            groups.append((float(value), [int(i) for i in np.flatnonzero(runs.budgets == value)], "budget"))
    bucketed: list[list[int]] = []
    for i in np.argsort(runs.flops, kind="stable"):
        if has_budget[i]:
            continue
        if not bucketed or runs.flops[i] > runs.flops[bucketed[-1][0]] * (1 + tolerance):
            bucketed.append([])
        bucketed[-1].append(int(i))
    for group in bucketed:
        groups.append((float(np.exp(np.mean(np.log(runs.flops[group])))), group, "flops"))
    groups.sort(key=lambda g: g[0])
    budgets = []
    for flops, group, grouped_by in groups:
        x, y = np.log(runs.params[group]), runs.loss[group]
        budget = {"flops": flops, "grouped_by": grouped_by, "params": runs.params[group].tolist()}
        budget.update(loss=y.tolist(), parabola=None, params_opt=None, tokens_opt=None, loss_opt=None, note="")
        sizes = len(np.unique(x))
        if sizes < 3:
            budget["note"] = f"{sizes} model size(s); a parabola needs 3"
            budgets.append(budget)
            continue
        c2, c1, c0 = np.polyfit(x, y, 2)
        budget["parabola"] = [float(c2), float(c1), float(c0)]
        x_opt = -c1 / (2 * c2) if c2 > 0 else None
        if x_opt is None:
            budget["note"] = "loss is not convex in log N at this budget: no minimum"
        elif not x.min() <= x_opt <= x.max():
            budget["note"] = "the parabola's minimum lies outside the model sizes run"
        else:
            sizes_run, where = np.unique(x, return_inverse=True)
            ln_d = np.bincount(where, np.log(runs.tokens[group])) / np.bincount(where)  # mean ln D per size
            tokens_opt = float(np.exp(np.interp(x_opt, sizes_run, ln_d)))
            budget.update(
                params_opt=float(np.exp(x_opt)), tokens_opt=tokens_opt, loss_opt=float(c0 - c1 * c1 / (4 * c2))
            )
        budgets.append(budget)
    kinds = sorted({g[2] for g in groups})
    result = {"tolerance": tolerance, "grouping": "+".join(kinds), "budgets": budgets}
    result.update(a=None, b=None, coefficient=None, note="")
    found = [b for b in budgets if b["params_opt"]]
    if len(found) < 2:
        result["note"] = f"{len(found)} budget(s) with a minimum inside the sizes run; the exponent needs 2"
        return result
    slope, intercept = np.polyfit(np.log([b["flops"] for b in found]), np.log([b["params_opt"] for b in found]), 1)
    result.update(a=float(slope), b=float(1 - slope), coefficient=float(np.exp(intercept)))
    return result


def holdout_largest(runs: Runs, *, delta: float = HUBER_DELTA) -> dict:
    """Fit the law on every run but the largest (most FLOPs; ties: most parameters) and predict its loss:
    ``predicted``, ``observed``, ``abs_error``, ``rel_error`` (of the observed loss). When the other runs are
    too few to fit, ``note`` says so instead."""
    i = max(range(len(runs)), key=lambda j: (runs.flops[j], runs.params[j]))
    held = {"trial": runs.trials[i], "params": float(runs.params[i]), "tokens": float(runs.tokens[i])}
    held.update(flops=float(runs.flops[i]), observed=float(runs.loss[i]), runs=len(runs) - 1)
    rest = runs.without(i)
    try:
        check_runs(rest)
    except ScalingError as exc:
        return {**held, "note": f"without the largest run: {exc}"}
    law = fit_law(rest.params, rest.tokens, rest.loss, delta=delta)
    predicted = float(law.loss(held["params"], held["tokens"]))
    error = predicted - held["observed"]
    return {**held, "predicted": predicted, "abs_error": abs(error), "rel_error": abs(error) / held["observed"]}


@dataclass
class ScalingFit:
    """A fitted law with its bootstrap samples, the runs it came from, IsoFLOP profiles and the holdout check."""

    law: Law
    samples: np.ndarray
    runs: Runs
    isoflop: dict
    holdout: dict
    seed: int = 0
    delta: float = HUBER_DELTA

    def uncertainty(self, level: float = 0.95) -> dict[str, dict[str, float]]:
        """Standard error and percentile interval of each constant."""
        return uncertainty(self.samples, level)

    def optimal_interval(self, flops: float, level: float = 0.95) -> dict[str, tuple[float, float]]:
        """Percentile intervals of the compute-optimal params, tokens, tokens per parameter and loss at
        ``flops`` over the bootstrap's laws."""
        tail = 100 * (1 - level) / 2
        out = {}
        with np.errstate(all="ignore"):  # a degenerate resample's law can put N_opt at 0 or infinity
            allocations = [Law(*row).optimal(flops) for row in self.samples]
            for key in ("params", "tokens", "tokens_per_param", "loss"):
                values = np.array([getattr(a, key) for a in allocations], dtype=float)
                values = values[np.isfinite(values)]  # such resamples say nothing finite: left out
                if not len(values):
                    out[key] = (math.nan, math.nan)
                else:
                    out[key] = (float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail)))
        return out

    def to_dict(self) -> dict:
        """The fit as JSON-ready data (what ``refinery scaling predict`` reads back)."""
        return {
            "law": asdict(self.law),
            "uncertainty": self.uncertainty(),
            "huber_delta": self.delta,
            "bootstrap": {"seed": self.seed, "names": list(NAMES), "samples": self.samples.tolist()},
            "source": self.runs.source,
            "columns": self.runs.columns,
            "num_runs": len(self.runs),
            "skipped": self.runs.skipped,
            "runs": self.runs.to_rows(),
            "isoflop": self.isoflop,
            "holdout": self.holdout,
        }

    @classmethod
    def from_dict(cls, data: dict) -> ScalingFit:
        """The fit that ``to_dict`` gave ``data``."""
        rows = data["runs"]
        budgets = np.array([r.get("budget", math.nan) for r in rows], dtype=float)
        runs = Runs(
            [r["trial"] for r in rows],
            *(np.array([r[k] for r in rows], dtype=float) for k in ("params", "tokens", "flops", "loss")),
            skipped=data["skipped"],
            columns=data["columns"],
            source=data["source"],
            budgets=budgets if np.isfinite(budgets).any() else None,
        )
        samples = np.array(data["bootstrap"]["samples"], dtype=float).reshape(-1, len(NAMES))
        return cls(
            Law(**data["law"]),
            samples,
            runs,
            data["isoflop"],
            data["holdout"],
            data["bootstrap"]["seed"],
            data["huber_delta"],
        )


def fit_results(
    path: str,
    *,
    loss: str = "final_val_loss",
    params: str = "params",
    best: bool = False,
    resamples: int = 200,
    seed: int = 0,
    tolerance: float = 0.1,
) -> ScalingFit:
    """Everything ``refinery scaling fit`` reports, from a sweep's results (file or directory): the law with
    ``resamples`` bootstrap refits, IsoFLOP profiles and the holdout check of the largest run. ``loss``,
    ``params`` and ``best`` choose the runs and columns as in :func:`load_runs`."""
    if resamples < 2:
        raise ScalingError("the bootstrap needs at least 2 resamples")
    runs = load_runs(path, loss, params, best)
    check_runs(runs)
    law = fit_law(runs.params, runs.tokens, runs.loss)
    samples = bootstrap(runs.params, runs.tokens, runs.loss, law, resamples=resamples, seed=seed)
    return ScalingFit(law, samples, runs, isoflop(runs, tolerance), holdout_largest(runs), seed)


def save_fit(fit: ScalingFit, path: str) -> str:
    """Write the fit as JSON to ``path``; the path."""
    with open(path, "w", encoding="utf-8") as f:
        json.dump(fit.to_dict(), f, indent=1)
    return path


def load_fit(path: str) -> ScalingFit:
    """A fit saved by ``refinery scaling fit``: its JSON file, or the directory holding scaling_fit.json."""
    file = os.path.join(path, FIT_FILE) if os.path.isdir(path) else path
    if not os.path.exists(file):
        raise FileNotFoundError(f"{file}: no scaling fit here (write one with `refinery scaling fit RESULTS`)")
    try:
        with open(file, encoding="utf-8") as f:
            return ScalingFit.from_dict(json.load(f))
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ScalingError(f"{file}: not a fit written by `refinery scaling fit` ({exc!r})") from None
